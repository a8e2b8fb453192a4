"""Sphinx configuration of skal's documentation (builds offline: no intersphinx)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Gallery examples run their fast variants unless SKAL_DOCS_FULL=1 asks for the full ones.
if os.environ.get("SKAL_DOCS_FULL") != "1":
    os.environ.setdefault("SKAL_EXAMPLES_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import skal  # noqa: E402

project = "skal"
author = "the skal developers"
copyright = "the skal developers"
version = release = skal.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# results/ holds the experiments' own outputs (their table.rst is pasted into pages by hand)
exclude_patterns = ["_build", "gen_modules/backreferences/*.examples", "results"]
templates_path = []
html_theme = "alabaster"
html_static_path = []
html_theme_options = {"description": "active learning for scikit-learn", "fixed_sidebar": True}

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    # not gallery scripts: a plain walkthrough, an hours-long reproduction experiment and its
    # redundancy check
    "ignore_pattern": r"(quickstart_digits|batchbald_mnist|batchbald_redundancy)\.py",
    "doc_module": ("skal",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"skal": None},
    "download_all_examples": False,
    "plot_gallery": "True",
    "remove_config_comments": True,
}


def _skip_inherited_library_members(app, what, name, obj, skip, options):
    """Leave out methods that scikit-learn/skorch define (``set_*_request``, ``get_params``,
    ``ClassifierMixin.score`` ...): their docstrings point into those projects' docs."""
    module = getattr(obj, "__module__", None) or ""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    if module.startswith(("sklearn.", "skorch.", "torch.")):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_inherited_library_members)
