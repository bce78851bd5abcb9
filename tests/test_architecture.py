"""The package's layering: no module imports one of a higher layer."""

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sklearn_metaannot"


def _layers():
    """Module name -> layer index (0 = top), from the architecture diagram."""
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location(
        "architecture_diagram", ROOT / "scripts" / "architecture_diagram.py"
    )
    diagram = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(diagram)
    layers = {}
    for index, (_, _, boxes) in enumerate(diagram.LAYERS):
        for box in boxes:
            for name in box.split("\n")[0].split(","):
                layers[name.strip()] = index
    return layers


def _imports(path):
    """The package modules that ``path`` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "sklearn_metaannot."
        ):
            found.add(node.module.split(".")[1])
    return found


def test_every_module_is_in_the_diagram():
    layers = _layers()
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert modules <= set(layers), sorted(modules - set(layers))


def test_imports_run_downwards_only():
    layers = _layers()
    upward = [
        f"{path.stem} (layer {layers[path.stem]}) imports {name} (layer {layers[name]})"
        for path in sorted(PACKAGE.glob("*.py"))
        if path.stem in layers
        for name in sorted(_imports(path))
        if name in layers and layers[name] < layers[path.stem]
    ]
    assert not upward, upward
