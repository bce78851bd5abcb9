"""Every public class, function and method has a numpydoc docstring with Examples.

The examples themselves run as doctests (``--doctest-modules`` in pyproject);
this test makes sure that none is missing.
"""
# SPDX-License-Identifier: BSD-3-Clause

import importlib
import inspect

import pytest

PUBLIC_MODULES = [
    "sklearn_metaannot",
    "sklearn_metaannot.aggregation",
    "sklearn_metaannot.baselines",
    "sklearn_metaannot.datasets",
    "sklearn_metaannot.demo",
    "sklearn_metaannot.cli",
    "sklearn_metaannot.episodes",
]


def _public_objects():
    seen = {}
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None) or [
            n
            for n, obj in vars(module).items()
            if not n.startswith("_")
            and (inspect.isclass(obj) or inspect.isfunction(obj))
            and getattr(obj, "__module__", "") == module.__name__
        ]
        for attr in names:
            obj = getattr(module, attr)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                seen.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
                if inspect.isclass(obj):
                    # methods defined in the package, inherited ones included
                    for meth_name, meth in inspect.getmembers(obj, callable):
                        owner = getattr(meth, "__module__", "") or ""
                        if meth_name.startswith("_") or inspect.isclass(meth):
                            continue
                        if not owner.startswith("sklearn_metaannot"):
                            continue
                        seen.setdefault(f"{obj.__module__}.{meth.__qualname__}", meth)
    return sorted(seen.items())


OBJECTS = _public_objects()


@pytest.mark.parametrize("qualname, obj", OBJECTS, ids=[q for q, _ in OBJECTS])
def test_public_object_has_docstring_with_examples(qualname, obj):
    doc = inspect.getdoc(obj)
    assert doc, f"{qualname} has no docstring"
    assert "Examples\n--------\n>>> " in doc, f"{qualname} has no Examples section"
