"""Smoke test of the LabelMe gold-label and annotator-history study (tiny setting)."""
# SPDX-License-Identifier: BSD-3-Clause

import json

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("labelme_data")  # skips without the data


@pytest.fixture(scope="module")
def study():
    from benchmarks import labelme_gold

    return labelme_gold


def test_crowd_matrix_names_columns_by_worker(study, labelme_data):
    from sklearn_metaannot.datasets import load_labelme

    data = load_labelme(labelme_data)
    target = [4, 5, 6, 7]
    items = np.flatnonzero(np.isin(data.y_train, target))[:30]
    Y, kept = study.crowd_matrix(data, items, target)
    # the matrices of the LabelMe benchmark's tasks, label by label
    task = study.labelme.make_tasks(data, target, 3, 1, 0, 0)[0][0]
    same, _ = study.crowd_matrix(data, task["support"], target)
    for name in ("rows", "cols", "codes"):
        np.testing.assert_array_equal(getattr(same, name), getattr(task["Y"], name))
    dense = Y.to_dense(missing=-1)
    for j, worker in enumerate(Y.annotator_ids):
        col = data.answers[kept, list(data.annotator_ids).index(worker)]
        expected = np.where(np.isin(col, target), np.searchsorted(target, col), -1)
        np.testing.assert_array_equal(dense[:, j], expected)


def test_study_runs_on_a_tiny_setting_and_writes_its_tables(study, tmp_path):
    results = study.run(
        splits=[[4, 5, 6, 7]],
        shots=[1, 3],
        n_tasks=2,
        methods=["em_global"],
        history_shots=["same", 5],
        output_dir=str(tmp_path),
        verbose=0,
    )
    summary = results["summary"]
    assert summary["1"]["em_global"]["gold2"] is None  # 2 gold items at 1 shot
    assert summary["3"]["em_global"]["gold2"]["n"] == 2
    # 1 gold item per class at 1 shot: every support item is gold
    assert summary["1"]["em_global"]["gold1"]["vs_crowd_only"]["p"] <= 1.0
    coverage = summary["3"]["history_coverage"]["5"]
    assert 0 < coverage["with_history"] <= coverage["workers"]
    saved = json.loads((tmp_path / "labelme_gold.json").read_text())
    assert saved["summary"]["3"]["em_global"]["gold0"]["n"] == 2
    rst = (tmp_path / "labelme_gold_tables.rst").read_text()
    assert rst.count(".. csv-table::") == 2 and "history: disjoint task" in rst
    # the crowd-only row is the LabelMe benchmark's "EM, no meta (global scaling)"
    labelme = study.labelme
    reference = labelme.run(
        splits=[[4, 5, 6, 7]],
        shots=[3],
        n_tasks=2,
        methods=["em_global"],
        full_data=False,
        write=False,
        verbose=0,
    )
    np.testing.assert_allclose(
        results["raw"][0]["3"]["accuracy"]["em_global"]["gold0"],
        reference["raw"][0]["3"]["accuracy"]["em_global"],
    )
