"""Smoke test of the learning-curve benchmark (accuracy against items per class)."""
# SPDX-License-Identifier: BSD-3-Clause

import json

import numpy as np
import pytest

from benchmarks import learning_curve


def _check_accuracies(results, datasets, sizes, reps):
    assert list(results["raw"]) == datasets
    assert list(results["summary"]) == datasets
    for name in datasets:
        summary = results["summary"][name]
        assert list(summary) == [str(s) for s in sizes]
        for size, n_rep in zip(map(str, sizes), reps):
            cell = summary[size]
            rows = {*results["config"]["methods"], learning_curve.GOLD[0]}
            assert set(cell["accuracy"]) == rows
            # the reference is trained on the gold labels it is scored against
            assert cell["train_accuracy"]["gold_lr"]["mean"] == 1.0
            for kind in ("accuracy", "train_accuracy"):
                for stats in cell[kind].values():
                    assert stats["n"] == n_rep
                    assert 0.0 <= stats["mean"] <= 1.0
            raw = results["raw"][name]["sizes"][size]
            values = np.concatenate([raw["accuracy"][m] for m in raw["accuracy"]])
            # an accuracy on the test set: a multiple of 1 / n_test in [0, 1]
            n_test = results["raw"][name]["n_test"]
            np.testing.assert_allclose(values * n_test, np.round(values * n_test))
    # one target row per data set and candidate, with all items in the run
    candidates = [
        m for m in learning_curve.CANDIDATES if m in results["config"]["methods"]
    ]
    assert {(r["data"], r["method"]) for r in results["targets"]} == {
        (d, m) for d in datasets for m in candidates
    }
    for row in results["targets"]:
        assert -1.0 <= row["worst_margin"] <= row["mean_margin"] <= 1.0
        assert isinstance(row["posterior_ok"], bool)


def test_quick_run_on_a_simulated_set_writes_its_files(tmp_path):
    # the other simulated set runs in test_main_runs_without_writing
    results = learning_curve.run(
        quick=True,
        datasets=["anisotropic"],
        output_dir=str(tmp_path),
        verbose=0,
    )
    cfg = results["config"]
    assert cfg["name"] == "learning_curve_quick" and cfg["plot_dir"] is None
    _check_accuracies(results, ["anisotropic"], cfg["sizes"], cfg["repetitions"])
    # size s: s items per class (6 classes); "all": the training half
    assert results["summary"]["anisotropic"]["1"]["n_items"] == 6
    assert results["raw"]["anisotropic"]["sizes"]["all"]["n_items"] == [300]
    files = {p.name for p in tmp_path.iterdir()}
    assert {"learning_curve_quick.json", "learning_curve_quick.md"} <= files
    assert "learning_curve_quick.png" in files
    on_disk = json.loads((tmp_path / "learning_curve_quick.json").read_text())
    on_disk = on_disk["summary"]["anisotropic"]["all"]["accuracy"]["default"]
    in_memory = results["summary"]["anisotropic"]["all"]["accuracy"]["default"]
    assert on_disk["mean"] == pytest.approx(in_memory["mean"])
    assert "csv-table" in (tmp_path / "learning_curve_quick_tables.rst").read_text()


def test_quick_run_on_labelme(labelme_data):
    # skipped (with the reason) when ../shared/data/labelme is absent
    results = learning_curve.run(
        quick=True,
        datasets=["labelme"],
        labelme_data=str(labelme_data),
        # the LabelMe plumbing, with the target's baselines: the default's head
        # checks on 1000 items of 512-d features cost seconds, and the
        # simulated sets' quick run has every method
        methods=["prototype", "lrmv", "lrds"],
        write=False,
        verbose=0,
    )
    cfg = results["config"]
    _check_accuracies(results, ["labelme"], cfg["sizes"], cfg["repetitions"])
    assert results["raw"]["labelme"]["n_test"] == 1188
    assert results["summary"]["labelme"]["all"]["n_items"] == 1000


def test_missing_labelme_folder_is_skipped_with_a_message(tmp_path, capsys):
    results = learning_curve.run(
        quick=True,
        datasets=["labelme"],
        labelme_data=str(tmp_path / "none"),
        write=False,
    )
    assert results["skipped"] == ["labelme"] and results["summary"] == {}
    assert "labelme: skipped, no data" in capsys.readouterr().out


def test_main_runs_without_writing(tmp_path, capsys, monkeypatch):
    # the other simulated set runs in test_quick_run_on_a_simulated_set_writes_its_files
    monkeypatch.chdir(tmp_path)
    learning_curve.main(["--quick", "--no-write", "--datasets", "gaussian"])
    out = capsys.readouterr().out
    assert "| Default (MetaAnnotatorClassifier()) |" in out
    assert list(tmp_path.iterdir()) == []


def test_items_per_class_and_the_gaussian_family():
    X, y = learning_curve.gaussian_mixtures(
        600, n_classes=6, n_features=20, n_modes=2, scale=6.0, seed=0
    )
    assert X.shape == (600, 20) and np.bincount(y).tolist() == [100] * 6
    X2, _ = learning_curve.gaussian_mixtures(
        600, n_classes=6, n_features=20, n_modes=2, scale=6.0, seed=0
    )
    np.testing.assert_array_equal(X, X2)
    items = learning_curve.draw_items(y, 3, seed=[0, 1])
    assert np.bincount(y[items]).tolist() == [3] * 6
    np.testing.assert_array_equal(items, learning_curve.draw_items(y, 3, seed=[0, 1]))
    assert len(learning_curve.draw_items(y, "all", seed=0)) == 600


@pytest.mark.parametrize(
    "name, module", [("crowdlab", "cleanlab"), ("activeml", "skactiveml")]
)
def test_peer_rows_learn_from_a_crowd(name, module):
    """The optional peers of other packages: labels of the training items and
    predictions in the task's label values (here strings), above chance."""
    pytest.importorskip(module)
    from sklearn.datasets import make_classification

    from benchmarks import peers
    from sklearn_metaannot import simulate_annotators

    X, y = make_classification(
        400, 10, n_informative=6, n_classes=3, random_state=0, class_sep=2.0
    )
    Y = simulate_annotators(y[:200], 4, random_state=0)[0]
    names = np.array(["cat", "dog", "eel"], dtype=object)
    Y_named = np.where(np.isnan(Y), None, names[np.nan_to_num(Y).astype(int)])
    build = learning_curve.METHODS[name].build
    est = build(None, 0).fit(X[:200], Y_named)
    assert set(est.labels_) <= set(names)
    assert np.mean(est.labels_ == names[y[:200]]) > 0.7
    assert np.mean(est.predict(X[200:]) == names[y[200:]]) > 0.6
    assert peers.available(name) and peers.available("default")
