"""Command line: ``python -m sklearn_metaannot COMMAND ...`` (see its --help)."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import argparse
import ast
import importlib.util
import pkgutil
import runpy
import sys
from pathlib import Path

CLI_COMMANDS = ("meta-fit", "fit-predict")  # in .cli, imported on demand

#: Where the benchmarks are: the ``benchmarks`` package of a source checkout
#: (a clone of the repository), next to this package; not installed with it.
BENCHMARKS_PACKAGE = "benchmarks"

NO_CLONE = (
    "benchmarks ship with the source repository, not with the installed package: "
    "run them from a clone of the repository"
)


def _benchmarks_folder():
    """The ``benchmarks`` package folder of the checkout of this package, or None."""
    folder = Path(__file__).resolve().parents[1] / BENCHMARKS_PACKAGE
    return folder if (folder / "__init__.py").is_file() else None


def discover_benchmarks(folder=None) -> dict:
    """The benchmarks of a checkout: name -> first line of their docstring.

    A benchmark is a public module (its name does not start with ``_``) of the
    ``benchmarks`` package that defines a module-level ``main`` function; the
    helpers (``harness``, ``_maml``) are not. The sources are read, not imported.
    Empty without a checkout.
    """
    folder = _benchmarks_folder() if folder is None else Path(folder)
    if folder is None:
        return {}
    found = {}
    for info in pkgutil.iter_modules([str(folder)]):
        if info.ispkg or info.name.startswith("_"):
            continue
        tree = ast.parse((folder / f"{info.name}.py").read_text(encoding="utf-8"))
        if any(
            isinstance(node, ast.FunctionDef) and node.name == "main"
            for node in tree.body
        ):
            doc = (ast.get_docstring(tree) or "").strip()
            found[info.name] = doc.splitlines()[0] if doc else ""
    return dict(sorted(found.items()))


def _benchmark_help(benchmarks) -> str:
    """``benchmark --help``: the usage and the benchmarks found, one per line."""
    head = """\
usage: python -m sklearn_metaannot benchmark NAME [options]

Run the benchmark NAME of a source checkout as 'python -m benchmarks.NAME
[options]' (benchmarks ship with the source repository, not with the installed
package); the options go to the benchmark. 'benchmark NAME --help' lists a
benchmark's options; most have --quick (a few minutes) and --no-write (print
the tables, write no file).
"""
    if not benchmarks:
        return f"{head}\nno benchmarks found: {NO_CLONE}"
    width = max(map(len, benchmarks))
    names = [f"  {name:<{width}}  {line}".rstrip() for name, line in benchmarks.items()]
    return "\n".join([head, "benchmarks:", *names])


def _benchmarks_package(folder):
    """The ``benchmarks`` package of ``folder``, imported (from there) if need be."""
    package = sys.modules.get(BENCHMARKS_PACKAGE)
    if package is None:
        spec = importlib.util.spec_from_file_location(
            BENCHMARKS_PACKAGE,
            folder / "__init__.py",
            submodule_search_locations=[str(folder)],
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[BENCHMARKS_PACKAGE] = package
        spec.loader.exec_module(package)
    if str(folder) not in map(str, getattr(package, "__path__", [])):
        raise RuntimeError(
            f"another package named {BENCHMARKS_PACKAGE!r} is imported: "
            f"{getattr(package, '__file__', package)}"
        )
    return package


def _run_benchmark(folder, name, args):
    """Run ``python -m benchmarks.NAME args`` (in this process, as ``-m`` does)."""
    _benchmarks_package(folder)
    sys.argv = [str(folder / f"{name}.py"), *args]
    runpy.run_module(
        f"{BENCHMARKS_PACKAGE}.{name}", run_name="__main__", alter_sys=True
    )


def main(argv=None):
    """Entry point of ``python -m sklearn_metaannot`` and ``sklearn-metaannot``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_metaannot",
        description=(
            "Meta-learned representations for learning from multiple noisy "
            "annotators. 'meta-fit' meta-learns on a CSV with clean labels and "
            "saves the model; 'fit-predict' infers the true labels of a crowd "
            "file (task,worker,label) from the labels and task features. "
            "'demo' runs the whole job on scikit-learn's digits; "
            "'benchmark NAME' runs a benchmark of a source checkout "
            "('benchmark --help' lists them). Options after the command go to it: "
            "'python -m sklearn_metaannot demo --help'."
        ),
    )
    commands = ("demo", "benchmark", *CLI_COMMANDS)
    parser.add_argument("command", choices=commands)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv[:1] if argv and argv[0] in commands else argv)
    rest = argv[1:]
    if ns.command in CLI_COMMANDS:
        from .cli import main as cli_main

        return cli_main(argv)
    if ns.command == "demo":
        from .demo import main as demo_main

        return demo_main(rest)
    folder = _benchmarks_folder()
    benchmarks = discover_benchmarks(folder) if folder is not None else {}
    if rest[:1] in (["-h"], ["--help"]):
        print(_benchmark_help(benchmarks))
        raise SystemExit(0)
    if folder is None:
        parser.error(f"benchmarks/ not found: {NO_CLONE}")
    if not rest or rest[0] not in benchmarks:
        given = f"unknown benchmark {rest[0]!r}" if rest else "benchmark needs a name"
        print(_benchmark_help(benchmarks), file=sys.stderr)
        print(f"{parser.prog} benchmark: error: {given}", file=sys.stderr)
        raise SystemExit(2)
    _run_benchmark(folder, rest[0], rest[1:])
    return None


if __name__ == "__main__":
    main()
