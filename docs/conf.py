"""Sphinx configuration of the sklearn-metaannot documentation."""
# SPDX-License-Identifier: BSD-3-Clause

import os
import sys
from pathlib import Path

# the package is documented from the source tree, installed or not
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sklearn_metaannot  # noqa: E402

project = "sklearn-metaannot"
author = "sklearn-metaannot developers"
copyright = "2025, sklearn-metaannot developers"
release = sklearn_metaannot.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
default_role = "literal"

# -- autodoc / autosummary / numpydoc ------------------------------------------------

autosummary_generate = True
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"
# the class template lists the members; numpydoc must not add a second table
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# do not turn every "CrowdLabelMatrix" of a type description into a cross-reference
numpydoc_xref_param_type = False

# -- sphinx-gallery -----------------------------------------------------------------

# The examples are not executed during the docs build unless SPHINX_GALLERY_RUN=1:
# CI time matters, and tests/test_examples.py runs every example (quick settings).
_run_gallery = os.environ.get("SPHINX_GALLERY_RUN", "0").lower() in ("1", "true", "yes")

sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "plot_gallery": _run_gallery,
    "within_subsection_order": "FileNameSortKey",
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("sklearn_metaannot",),
    "abort_on_example_error": True,
    "min_reported_time": 1,
    "matplotlib_animations": False,
}

# -- HTML ---------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-metaannot {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_sidebars = {"install": [], "changelog": []}


def _skip_metadata_routing(app, what, name, obj, skip, options):
    """Hide scikit-learn's generated ``set_*_request`` methods.

    They are documented by scikit-learn; their docstrings refer to scikit-learn's
    glossary, which this site does not have.
    """
    if name.startswith("set_") and name.endswith("_request"):
        return True
    if name == "get_metadata_routing":
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_routing)
