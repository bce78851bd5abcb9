"""Every gallery example runs to completion with quick settings."""
# SPDX-License-Identifier: BSD-3-Clause

import runpy
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("plot_*.py"))

# optional modules an example needs beyond the package (in the "test" extra but
# crowdkit, which is in "interop"), and the extra that installs each
REQUIRES = {
    "plot_3_grid_search.py": ["pandas"],
    "plot_4_crowdkit_long_format.py": ["pandas", "crowdkit"],
}
EXTRA = {"pandas": "[test]", "crowdkit": "[interop]"}
# examples that may legitimately show no figure (their data can be absent)
MAY_SKIP = {"plot_6_omniglot.py", "plot_7_labelme_annotators.py"}


def test_examples_found():
    assert len(EXAMPLES) >= 7, f"expected the gallery examples in {EXAMPLES_DIR}"


@pytest.fixture
def quick_run(monkeypatch, tmp_path):
    """Quick settings, a non-interactive backend, and a count of shown figures."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    shown = []

    def show(*args, **kwargs):
        shown.extend(plt.get_fignums())
        plt.close("all")

    monkeypatch.setenv("SKLEARN_METAANNOT_EXAMPLE_QUICK", "1")
    monkeypatch.setattr(plt, "show", show)
    monkeypatch.chdir(tmp_path)  # nothing an example writes lands in the repository
    # The examples handle tiny tensors; on a busy machine intra-op threads only
    # contend with each other (a 4x4 einsum can take 15 ms instead of 20 us).
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield shown
    finally:
        torch.set_num_threads(n_threads)
        plt.close("all")


# With the quick settings (a few dozen episodes), meta-learning on Omniglot does
# not beat the input features yet, and meta_fit says so; the full example does.
@pytest.mark.filterwarnings("ignore:meta-learning did not help:UserWarning")
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, quick_run):
    for module in REQUIRES.get(path.name, []):
        pytest.importorskip(module, reason=f"{module} (extra {EXTRA[module]})")
    runpy.run_path(str(path), run_name="__main__")
    if path.name not in MAY_SKIP:
        assert quick_run, f"{path.name} showed no figure"
