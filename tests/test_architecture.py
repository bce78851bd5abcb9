"""The package's layering: no module imports one of a higher layer."""

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sklearn_metaannot"


def _layers():
    """Module path (``meta._learner``) -> layer index (0 = top), from the diagram."""
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location(
        "architecture_diagram", ROOT / "scripts" / "architecture_diagram.py"
    )
    diagram = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(diagram)
    layers = {}
    for index, (_, _, boxes) in enumerate(diagram.LAYERS):
        for box in boxes:
            # the module names: the first line, and the next ones while a line ends
            # with a comma
            for line in box.split("\n"):
                layers.update(
                    dict.fromkeys(
                        (name.strip() for name in line.split(",") if name.strip()),
                        index,
                    )
                )
                if not line.rstrip().endswith(","):
                    break
    return layers


def _modules():
    """Every module of the package, by its dotted path inside the package."""
    return {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts): path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name not in {"__init__.py", "__main__.py"}
    }


def _imports(module):
    """The package modules that ``module`` imports, at any depth of its code.

    ``from X import name`` counts ``X`` and ``X.name`` (kept when it is a module).
    """
    package = module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(_modules()[module].read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            parts = package[: len(package) - node.level + 1]
            parts += node.module.split(".") if node.module else []
        elif node.module and node.module.split(".")[0] == "sklearn_metaannot":
            parts = node.module.split(".")[1:]
        else:
            continue
        if parts:
            found.add(".".join(parts))
        found.update(".".join([*parts, alias.name]) for alias in node.names)
    return found


def test_every_module_is_in_the_diagram():
    modules = set(_modules())
    layers = _layers()
    assert modules <= set(layers), sorted(modules - set(layers))


def test_diagram_names_only_existing_modules():
    assert set(_layers()) <= set(_modules()), sorted(set(_layers()) - set(_modules()))


def test_private_modules_live_in_folders():
    """The top level holds the public modules and the estimator; the private
    implementation lives in the folders of its layer."""
    top_private = {
        name for name in _modules() if "." not in name and name.startswith("_")
    }
    assert top_private == {"_classifier"}


def test_imports_run_downwards_only():
    layers = _layers()
    upward = [
        f"{module} (layer {layers[module]}) imports {name} (layer {layers[name]})"
        for module in sorted(_modules())
        if module in layers
        for name in sorted(_imports(module))
        if name in layers and layers[name] < layers[module]
    ]
    assert not upward, upward


def test_import_resolution_sees_relative_and_absolute_imports():
    # the checker itself: meta._learner imports the representation (``from
    # ..adapt import``) and the crowd labels (``from ..crowd._annotators import``)
    imports = _imports("meta._learner")
    assert {"adapt._representation", "crowd._annotators", "meta._episodic"} <= imports


# -- the benchmarks use the public API only ------------------------------------

BENCHMARKS = ROOT / "benchmarks"


def _package_private_members():
    """Private (``_x``, not dunder) names that the package's classes define."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(item.name)
                elif isinstance(item, ast.Assign | ast.AnnAssign):
                    targets = (
                        item.targets if isinstance(item, ast.Assign) else [item.target]
                    )
                    names.update(t.id for t in targets if isinstance(t, ast.Name))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _is_private_package_path(module):
    parts = module.split(".")
    return parts[0] == "sklearn_metaannot" and any(p.startswith("_") for p in parts)


def _private_uses(path, private_members):
    """What ``path`` uses of the package's private side, and of ``mock``."""
    tree = ast.parse(path.read_text())
    package_names = set()  # names bound by `from sklearn_metaannot... import`
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_private_package_path(alias.name):
                    found.append(f"{where} imports {alias.name}")
                if alias.name.split(".")[0] == "mock" or alias.name.startswith(
                    "unittest.mock"
                ):
                    found.append(f"{where} imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
            names = [alias.name for alias in node.names]
            if module.split(".")[0] == "sklearn_metaannot":
                package_names.update(a.asname or a.name for a in node.names)
                private = [n for n in names if n.startswith("_")]
                if _is_private_package_path(module) or private:
                    found.append(f"{where} imports {module}: {names}")
            if module in ("unittest", "unittest.mock", "mock") and (
                module != "unittest" or "mock" in names
            ):
                found.append(f"{where} imports mock from {module}")
        elif isinstance(node, ast.Attribute) and node.attr in private_members:
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"{where} uses the private member .{node.attr}")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("sklearn_metaannot",):
                found.append(f"{where} uses sklearn_metaannot.{node.attr}")
    for node in ast.walk(tree):
        # subclasses of the package's classes that override their private hooks
        if isinstance(node, ast.ClassDef) and any(
            isinstance(b, ast.Name) and b.id in package_names for b in node.bases
        ):
            for item in node.body:
                defined = []
                if isinstance(item, ast.FunctionDef):
                    defined = [item.name]
                elif isinstance(item, ast.Assign):
                    defined = [t.id for t in item.targets if isinstance(t, ast.Name)]
                for name in defined:
                    if name in private_members:
                        found.append(
                            f"{path.name}:{item.lineno} {node.name} overrides the "
                            f"private hook {name}"
                        )
    return found


def test_the_private_use_check_finds_what_it_must(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import sklearn_metaannot.em._steps\n"
        "from sklearn_metaannot.meta._episodic import torch_threads\n"
        "from sklearn_metaannot import _representation, MetaLearner\n"
        "from unittest import mock\n"
        "import unittest.mock\n"
        "x = model._em_params()\n"
        "class Hooked(MetaLearner):\n"
        "    _SEAMS = {}\n"
    )
    found = _private_uses(bad, _package_private_members())
    assert len(found) == 7, found


def test_benchmarks_use_only_the_public_api():
    """No private import, no private member of the package, no mock: what the
    benchmarks need is public (issue 28, step 4)."""
    private = _package_private_members()
    found = [
        use
        for path in sorted(BENCHMARKS.glob("*.py"))
        for use in _private_uses(path, private)
    ]
    assert not found, found
