"""Packaging (no setuptools deprecations, a lean `test` extra) and docs claims."""
# SPDX-License-Identifier: BSD-3-Clause

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib (Python >= 3.11)")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression(pyproject):
    # a TOML table and license classifiers are deprecated since setuptools 77
    assert pyproject["project"]["license"] == "BSD-3-Clause"
    classifiers = pyproject["project"]["classifiers"]
    assert not [c for c in classifiers if c.startswith("License ::")]
    assert "setuptools>=77" in pyproject["build-system"]["requires"]


def test_test_extra_is_lean_and_ci_installs_interop_and_peers(pyproject):
    extras = pyproject["project"]["optional-dependencies"]
    heavy = ("crowd-kit", "accelerate")  # transformers, nltk, pyarrow, hf hub
    peers = ("cleanlab", "scikit-activeml")  # the learning curve's other packages
    assert not [r for r in extras["test"] if r.startswith(heavy + peers)]
    assert sorted(r.split(">")[0] for r in extras["interop"]) == sorted(heavy)
    assert sorted(r.split(">")[0] for r in extras["peers"]) == sorted(peers)
    assert '".[test,interop,peers]"' in (REPO / ".ci" / "run").read_text()


def test_docs_describe_the_current_defaults():
    """Pages that once described the former default, or a slower demo."""
    docs = REPO / "docs"
    index = " ".join((docs / "index.rst").read_text().split())
    assert "episodes whose supports are labelled by *simulated*" not in index
    assert "clean by default" in index
    install = (docs / "install.rst").read_text()
    assert "demo     # meta-trains two models: about 20 s" in install
    omniglot = " ".join((docs / "benchmarks" / "omniglot.rst").read_text().split())
    headline = omniglot[omniglot.index("**In short:**") :][:300]
    assert "default model" in headline and "**0.864**" in headline
    assert "ours                   0.892" not in omniglot
