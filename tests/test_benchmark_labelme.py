"""Smoke tests of the LabelMe benchmark harness (a handful of tiny tasks)."""
# SPDX-License-Identifier: BSD-3-Clause

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

pytestmark = pytest.mark.usefixtures("labelme_data")  # skips without the data


@pytest.fixture(scope="module")
def labelme():
    from benchmarks import labelme

    return labelme


#: One method per code path of the harness (the variants of a path, e.g.
#: ``em_input``, ``gold_proto``, ``unlabelled_pca`` and ``unlabelled_mixed``, run in
#: the benchmark). Our EM without meta-learning (``_em``) runs in the full-data
#: setting only, where its accuracy is checked; each method with the default
#: ``"auto"`` choices costs seconds on the ~550 images of the "all" setting,
#: whose tasks are checked without fitting in the task-building test.
TINY = {
    "splits": [[4, 5, 6, 7]],
    "shots": [1, 5],
    "n_tasks": 2,
    "methods": [
        "ours",
        "ours_pa",
        "prmv",
        "lrmv",
        "lrds",
        "cl",
        "gold",
        "em_pca_source",
        "unlabelled_items",
    ],
    "n_episodes": 4,
    "episodes_per_epoch": 4,
    "n_val_episodes": 2,
    "cl_epochs": 5,
    "full_methods": ["em_global"],
    "full_seeds": [0],
    "threads": 1,
    "verbose": 0,
}


def test_crowd_labels_drop_and_count_non_target_labels(labelme):
    answers = np.array(
        [
            [4, -1, 0, 5],  # one non-target label (0)
            [-1, 1, 2, -1],  # only non-target labels: the image is left unlabelled
            [7, 7, -1, -1],
        ]
    )
    codes, stats = labelme.crowd_labels(answers, [4, 5, 6, 7])
    assert stats == {
        "labels": 7,
        "non_target": 3,
        "unlabelled": 1,
        "annotators": 3,
        "named_classes": 3,
    }
    # annotator 2 gave only non-target labels: its column is dropped
    np.testing.assert_array_equal(codes, [[0, -1, 1], [-1, -1, -1], [3, 3, -1]])


def test_tasks_are_seeded_class_balanced_and_keep_only_target_labels(
    labelme, labelme_data
):
    data = labelme.load_labelme(labelme_data)
    target = [1, 3, 5, 7]
    tasks, _ = labelme.make_tasks(data, target, 3, n_tasks=3, seed=0, split_index=2)
    again, _ = labelme.make_tasks(data, target, 3, n_tasks=3, seed=0, split_index=2)
    for task, same in zip(tasks, again):
        np.testing.assert_array_equal(task["support"], same["support"])
        assert task["stats"]["support"] == 12
        assert np.isin(data.y_train[task["support"]], target).all()
        codes = task["Y"].to_codes()
        assert codes.max() <= 3 and (codes >= 0).any(axis=1).all()
        np.testing.assert_array_equal(
            task["y"], np.searchsorted(target, data.y_train[task["support"]])
        )
    # the "all" setting: one task with every crowd-labelled image of the classes
    (task,), _ = labelme.make_tasks(
        data, [4, 5, 6, 7], "all", n_tasks=3, seed=0, split_index=0
    )
    assert task["stats"]["support"] == 554 and task["stats"]["non_target"] > 0


def test_the_oracle_ceiling_meta_trains_on_target_validation_images_only(
    labelme, labelme_data
):
    data = labelme.load_labelme(labelme_data)
    cfg, target = labelme.default_config(), [1, 3, 5, 7]
    key = (0, "oracle", 2)
    X_tr, y_tr, X_val, y_val = labelme._meta_sets(
        data.X_valid, data.y_valid, target, cfg["oracle_val_fraction"], key
    )
    assert set(y_tr) == set(y_val) == set(target)
    # every validation class can fill an episode (n_shot 5 + n_query 10)
    assert np.bincount(y_val)[target].min() >= 15
    # disjoint from the supports (training images) and the queries (test images)
    used = np.vstack([data.X_train, data.X_test])
    seen = {row.tobytes() for row in used}
    assert not any(row.tobytes() in seen for row in np.vstack([X_tr, X_val]))
    assert len(y_tr) + len(y_val) == np.isin(data.y_valid, target).sum()


def test_the_source_pca_sees_no_image_of_the_target_classes(labelme, labelme_data):
    data = labelme.load_labelme(labelme_data)
    target = [1, 3, 5, 7]
    pcas = labelme.projections(labelme.default_config(), data, target)
    y = np.concatenate([data.y_train, data.y_valid])
    assert pcas["source"][-1].n_samples_ == (~np.isin(y, target)).sum()
    assert pcas["all"][-1].n_samples_ == len(y) == 1500
    # the unit-norm items are projected on 16 components
    assert pcas["source"].transform(data.X_test[:3]).shape == (3, 16)


def test_unlabelled_images_are_empty_rows_and_every_label_is_kept(
    labelme, labelme_data
):
    from sklearn_metaannot import MetaAnnotatorClassifier

    data = labelme.load_labelme(labelme_data)
    target = [4, 5, 6, 7]
    (task,), _ = labelme.make_tasks(data, target, 3, n_tasks=1, seed=0, split_index=0)
    X, Y = data.X_train[task["support"]], task["Y"]
    plain = MetaAnnotatorClassifier(representation="normalized").fit(X, Y)
    wrapped = labelme.WithUnlabelled(clone(plain), X[:0]).fit(X, Y)
    np.testing.assert_allclose(
        wrapped.estimator.sample_posterior_, plain.sample_posterior_
    )
    extra = data.X_test[:30]
    wrapped = labelme.WithUnlabelled(clone(plain), extra).fit(X, Y)
    assert wrapped.estimator.sample_posterior_.shape == (len(X) + 30, 4)


def test_harness_runs_end_to_end_and_writes_its_outputs(labelme, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is needed for the plots")
    results = labelme.run(
        TINY,
        name="labelme_smoke",
        output_dir=str(tmp_path / "results"),
        plot_dir=str(tmp_path / "plots"),
    )
    summary = results["summary"]
    assert set(summary) == {"1", "5"}
    assert summary["1"]["ours"]["n"] == summary["5"]["ours"]["n"] == 2
    for shot in summary:
        for method in TINY["methods"]:
            assert 0.0 <= summary[shot][method]["mean"] <= 1.0
    stats = results["label_stats"]["5"]
    assert stats["support_images"] == 20 and stats["n_tasks"] == 2
    # meta-training info of the two models the methods need
    assert set(results["meta_training"][0]["models"]) == {"pa", "wopa"}
    full = results["full_data"]
    assert full["methods"]["em_global"]["accuracy"] > 0.8
    assert full["references"]["MLP on gold labels"] == 0.92

    files = results["files"]
    saved = json.loads(Path(files["json"]).read_text())
    assert saved["summary"]["1"]["ours"]["n"] == 2
    with open(files["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert {r["setting"] for r in rows} == {"few-shot", "full-data"}
    with open(files["tasks_csv"]) as fh:
        assert len(list(csv.DictReader(fh))) == 4  # 2 tasks at each of 2 shots
    assert "Full-data setting" in Path(files["markdown"]).read_text()
    assert ".. csv-table::" in Path(files["rst"]).read_text()
    assert len(files["plots"]) == 2
    for plot in files["plots"]:
        assert Path(plot).stat().st_size > 1000


def test_unknown_methods_and_keys_are_rejected(labelme):
    with pytest.raises(ValueError, match="unknown configuration keys"):
        labelme.run(not_a_key=1, write=False)
    with pytest.raises(ValueError, match="unknown methods"):
        labelme.run(methods=["nope"], write=False)
