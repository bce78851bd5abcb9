"""End-to-end smoke test of the Omniglot benchmark harness (a handful of tasks)."""
# SPDX-License-Identifier: BSD-3-Clause

import copy
import csv
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "omniglot"

pytestmark = pytest.mark.skipif(
    not (DATA / "images_background_small1.zip").is_file(),
    reason=f"Omniglot archives not found in {DATA} (the shared data folder next to "
    "the repository); the benchmark harness needs them",
)


@pytest.fixture(scope="module")
def omniglot():
    """The benchmark module; its runs here read the archives once (the pools of
    the first run that needs them, a copy for every run)."""
    pytest.importorskip("PIL", reason="Pillow is needed to read Omniglot")
    pytest.importorskip("matplotlib", reason="matplotlib is needed for the plots")
    from benchmarks import omniglot

    loaded, load_pools = {}, omniglot.load_pools

    def read_once(cfg):
        keys = ("data", "val_alphabets", "test_alphabets", "rotations")
        key = json.dumps([cfg[k] for k in keys])
        if key not in loaded:
            loaded[key] = load_pools(cfg)
        return copy.deepcopy(loaded[key])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(omniglot, "load_pools", read_once)
        yield omniglot


#: Meta-training episodes of 2 support and 2 query images per class at most (the
#: benchmark's: 5 and 10): each meta-training step costs a fraction of theirs.
#: One small test alphabet (340 images to embed; the benchmark's: two).
TINY_META = {
    "test_alphabets": ["Tagalog"],
    "meta_n_shot": [1, 2],
    "meta_n_query": 2,
    "episodes_per_epoch": 4,
    "n_val_episodes": 2,
    "meta_threads": 1,
}

TINY = {
    **TINY_META,
    "n_episodes": 4,
    "n_val_tasks": 1,
    "shots": [1, 2],
    "annotators": [3],
    "n_test_tasks": 2,
    "spammer_mixtures": [[0.1, 0.5, 0.4]],
    "other_types": ["pairwise_flipper"],
    "sweep_shots": [1],
    "sweep_annotators": [3],
    "n_sweep_tasks": 2,
    "em_iter_grid": [1, 2],
    "b_grid": [10.0],
    "maml_steps_grid": [1, 2],
    "rf_n_estimators": 5,
    "cl_epochs": 5,
    "timing_rounds": 1,
    "timing_episodes": 4,
    "verbose": 0,
}


def test_harness_runs_end_to_end_and_writes_its_outputs(omniglot, tmp_path):
    results = omniglot.run(
        TINY,
        output_dir=str(tmp_path / "results"),
        plot_dir=str(tmp_path / "plots"),
        name="omniglot_smoke",
    )
    # every method ran on the same tasks of every cell
    main = results["raw"]["main"]["cells"]
    assert set(main) == {"1-shot, R=3", "2-shot, R=3"}
    for cell in main.values():
        for name in omniglot.METHODS:
            acc = cell["accuracies"][name]
            assert len(acc) == 2 and all(0.0 <= a <= 1.0 for a in acc)
    head = results["summary"]["main"]["headline"]
    assert head["best_baseline"] in omniglot.BASELINES
    assert head["n_cells"] == 2
    assert set(results["summary"]) == {"main", "spammer_0.4", "pairwise_flipper"}
    assert results["meta_training"]["ratio_ours_over_wopa"] > 0
    grad = results["meta_training"]["Ours"]["grad_norm"]
    assert grad["steps"] == 1 and grad["max"] >= grad["median"] > 0
    assert grad["clipped_fraction"] in (0.0, 1.0)
    selection = results["hyperparameters"]["selection"]
    assert set(selection) == {"Ours", "w/o PA", "MaMV", "MaDS"}
    assert selection["MaMV"]["steps"] in (1, 2) and selection["MaDS"]["steps"] in (1, 2)
    maml = results["meta_training"]["MAML"]
    assert maml["wall_seconds"] > 0 and 0.0 <= maml["val_accuracy"] <= 1.0
    assert results["meta_training"]["ratio_maml_over_wopa"] > 0

    files = {k: Path(v) for k, v in results["files"].items()}
    for path in files.values():
        assert path.is_file() and path.stat().st_size > 0
    saved = json.loads(files["json"].read_text())
    assert saved["summary"]["main"]["headline"]["n_cells"] == 2
    with open(files["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert {"setting", "n_shot", "n_annotators", "method", "mean", "sem"} <= set(
        rows[0]
    )
    assert "Ours against the best baseline" in files["markdown"].read_text()
    assert files["rst"].read_text().startswith(".. csv-table:: Test accuracy")


def test_tasks_are_seeded_and_shared(omniglot):
    from benchmarks.harness import sample_crowd_tasks

    y = np.repeat(np.arange(10), 20)
    kw = {"n_tasks": 3, "n_way": 4, "n_shot": 2, "n_query": 5, "n_annotators": 3}
    kw["seed"] = [0, 1]
    a, b = sample_crowd_tasks(y, **kw), sample_crowd_tasks(y, **kw)
    for ta, tb in zip(a, b):
        np.testing.assert_array_equal(ta.support, tb.support)
        np.testing.assert_array_equal(ta.Y, tb.Y)
    assert a[0].Y.shape == (8, 3) and len(a[0].query) == 20


def test_unknown_configuration_key_is_an_error(omniglot):
    with pytest.raises(ValueError, match="unknown configuration keys"):
        omniglot.run(n_epsiodes=3)


def test_clipping_ablation_runs_and_writes_its_outputs(omniglot, tmp_path):
    ablation = _load("omniglot_clipping")
    results = ablation.run(
        n_episodes=8,
        clip_values=[None, 0.5],
        models=["Ours"],
        verbose=0,
        omniglot={**TINY_META, "output_dir": str(tmp_path)},
    )
    none, clipped = results["rows"]
    assert (none["max_grad_norm"], clipped["max_grad_norm"]) == (None, 0.5)
    for row in results["rows"]:
        assert 0.0 <= row["best_val_accuracy"] <= 1.0
        assert row["grad_norm"]["steps"] == 2  # 8 episodes in batches of 4
    assert none["grad_norm"]["clipped_fraction"] is None
    assert 0.0 <= clipped["grad_norm"]["clipped_fraction"] <= 1.0
    text = Path(results["files"]["markdown"]).read_text()
    assert "| Ours | none |" in text and "| Ours | 0.5 |" in text
    assert Path(results["files"]["rst"]).read_text().startswith(".. csv-table::")
    assert (
        json.loads(Path(results["files"]["json"]).read_text())["rows"][1][
            "max_grad_norm"
        ]
        == 0.5
    )


def _load(name):
    """The benchmark module ``benchmarks.<name>``."""
    return importlib.import_module(f"benchmarks.{name}")


def test_seed_study_runs_and_writes_its_outputs(omniglot, tmp_path):
    seeds = _load("omniglot_seeds")
    tiny = {k: v for k, v in TINY.items() if k != "verbose"}
    results = seeds.run(
        seeds=[0, 1],
        verbose=0,
        omniglot={**tiny, "output_dir": str(tmp_path), "plot_dir": str(tmp_path)},
    )
    first, second = results["runs"]
    assert (first["meta_seed"], second["meta_seed"]) == (0, 1)
    for run in results["runs"]:
        assert set(run["average"]) == {"Ours", "w/o PA", "PrMV", "PrDS"}
        assert set(run["cells"]) == {"1-shot, R=3", "2-shot, R=3"}
    # a different meta-training seed gives a different encoder
    assert first["val_accuracy"] != second["val_accuracy"] or (
        first["average"] != second["average"]
    )
    text = Path(results["files"]["markdown"]).read_text()
    assert "| 0 |" in text and "| 1 |" in text and "mean ± sd" in text


def test_variant_study_runs_and_writes_its_outputs(omniglot, tmp_path):
    variants = _load("omniglot_variants")
    results = variants.run(
        n_episodes=8,
        n_val_tasks=1,
        n_gradient_episodes=4,
        verbose=0,
        omniglot={**TINY_META, "output_dir": str(tmp_path)},
    )
    assert [r["variant"] for r in results["rows"]] == list(variants.VARIANTS)
    for row in results["rows"]:
        assert 0.0 <= row["best_val_accuracy"] <= 1.0
        assert set(row["empty_class_rate"]) == {"1-shot", "3-shot", "5-shot"}
    spikes = results["gradient_spikes"]
    assert spikes["n_episodes"] == 4 and spikes["max"] >= spikes["median"] > 0
    # the variants go through the public seams of MetaLearner: nothing is patched
    import sklearn_metaannot.em._steps as em
    import sklearn_metaannot.meta._episodic as meta

    assert em.e_step.__module__ == "sklearn_metaannot.em._steps"
    assert meta.EpisodicEM.forward.__qualname__ == "EpisodicEM.forward"
    assert meta.pad_episode.__module__ == "sklearn_metaannot.episodes"
    assert Path(results["files"]["rst"]).read_text().startswith(".. csv-table::")


def test_unknown_variant_is_an_error(omniglot):
    variants = _load("omniglot_variants")
    with pytest.raises(ValueError, match="unknown variants"):
        variants.run(variants=["Ours", "bigger encoder"], write=False)


def test_the_variants_em_is_the_em_of_fit():
    """The empty-class counts run the EM of the model's adaptation settings
    through the public EpisodicEM, as the private run_em did."""
    import torch

    from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearner
    from sklearn_metaannot.em._steps import one_hot_annotations, run_em

    variants = _load("omniglot_variants")
    model = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(n_way=3), n_em_iter=4, tau=0.2, b=3.0, c=[2, 1.5]
    )
    rng = np.random.default_rng(0)
    U = torch.as_tensor(rng.normal(size=(1, 9, 2)))
    codes = rng.integers(-1, 3, size=(9, 4))
    got = variants._run_em(model, U, codes)
    Y = one_hot_annotations(torch.as_tensor(codes)[None], 3).to(U.dtype)
    expected = run_em(U, Y, **model._em_params())
    for a, b in zip(got, expected):
        assert torch.equal(a, b)
