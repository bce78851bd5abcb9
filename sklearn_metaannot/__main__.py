"""Command line: ``python -m sklearn_metaannot COMMAND ...`` (see its --help)."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

CLI_COMMANDS = ("meta-fit", "fit-predict")  # in .cli, imported on demand
BENCHMARKS = (
    "omniglot",
    "omniglot_clipping",
    "omniglot_variants",
    "omniglot_seeds",
    "labelme",
    "labelme_gold",
    "small_source",
    "aggregation",
    "throughput",
    "distributed",
    "scale",
    "selection_check",
)


BENCHMARK_HELP = f"""\
usage: python -m sklearn_metaannot benchmark NAME [options]

Run benchmarks/NAME.py of a source checkout (benchmarks ship with the source
repository, not with the installed package); the options go to the script.
'benchmark NAME --help' lists a benchmark's options; most have --quick (a few
minutes) and --no-write (print the tables, write no file).

names: {", ".join(BENCHMARKS)}"""


def _benchmark_script(name):
    """Path of ``benchmarks/<name>.py`` in a source checkout, or None."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    return path if path.exists() else None


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
            f"({', '.join(BENCHMARKS)}). Options after the command go to it: "
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
    if rest[:1] in (["-h"], ["--help"]):
        print(BENCHMARK_HELP)
        raise SystemExit(0)
    if not rest or rest[0] not in BENCHMARKS:
        parser.error(f"benchmark needs a name, one of {', '.join(BENCHMARKS)}")
    script = _benchmark_script(rest[0])
    if script is None:
        parser.error(
            f"benchmarks/{rest[0]}.py not found: benchmarks ship with the source "
            "repository, not with the installed package"
        )
    sys.argv = [str(script), *rest[1:]]
    runpy.run_path(str(script), run_name="__main__")
    return None


if __name__ == "__main__":
    main()
