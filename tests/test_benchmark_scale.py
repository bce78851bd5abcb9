"""Smoke tests of the scale benchmark harness (benchmarks/scale.py)."""
# SPDX-License-Identifier: BSD-3-Clause

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def harness():
    from benchmarks import scale

    return scale


def test_synthetic_crowd_has_distinct_annotators_and_the_requested_size(harness):
    X, y, rows, cols, codes = harness.make_crowd(
        500, 12, 5, n_classes=4, n_features=3, seed=0
    )
    assert X.shape == (500, 3) and y.shape == (500,)
    assert rows.size == cols.size == codes.size == 2500
    keys = rows * 12 + cols
    assert np.all(np.diff(keys) > 0)  # sorted, one label per (item, annotator)
    assert cols.min() >= 0 and cols.max() < 12
    assert set(np.unique(codes)) == {0, 1, 2, 3}
    # annotator accuracies in [0.3, 0.9]: the labels agree with y well above chance
    assert 0.45 < (codes == y[rows]).mean() < 0.75


def test_measure_and_tables(harness, tmp_path):
    config = {**harness.default_config(), "sizes": {"tiny": [300, 20, 5]}}
    config["repeats"] = {}
    rows = [harness.measure("tiny", m, config) for m in ("fit", "ours_ds", "ours_mv")]
    for row in rows:
        assert row["n_labels"] == 1500 and row["seconds"] > 0
        assert row["peak_rss_mb"] >= row["data_rss_mb"] > 0
    # features make the classifier far better than the labels alone
    assert rows[0]["accuracy"] > 0.95
    assert rows[0]["accuracy"] > rows[2]["accuracy"]
    results = {
        "config": {**config, "crowds": ["tiny"], "methods": ["fit", "ours_ds"]},
        "environment": {"cpu": "x", "cpu_count": 1, "torch": "t"},
        "date": "today",
        "rows": rows[:2]
        + [{"crowd": "tiny", "method": "crowdkit_ds", "error": "skipped"}],
    }
    harness.write_outputs(results, tmp_path)
    md = (tmp_path / "scale.md").read_text()
    assert "| tiny | MetaAnnotatorClassifier.fit (input) |" in md
    assert "1.00" in md  # our DawidSkene relative to itself
    assert "csv-table" in (tmp_path / "scale_tables.rst").read_text()


def test_no_write_prints_the_tables_and_writes_nothing(harness, tmp_path, capsys):
    results = {
        "config": {**harness.default_config(), "crowds": ["tiny"], "methods": []},
        "environment": {"cpu": "x", "cpu_count": 1, "torch": "t"},
        "date": "today",
        "rows": [],
    }
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(results))
    out = tmp_path / "out"
    harness.main(["--render", str(saved), "--out", str(out), "--no-write"])
    assert "# Scale benchmark (today)" in capsys.readouterr().out
    assert not out.exists()
