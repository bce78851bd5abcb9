"""Smoke test of the small-source study (the default model on few source classes)."""
# SPDX-License-Identifier: BSD-3-Clause

import json

import numpy as np

from benchmarks import small_source as study
from sklearn_metaannot.adapt._representation import INPUT_SPACES


def test_small_source_study_runs_and_writes_its_tables(tmp_path):
    results = study.run(
        quick=True,
        digits_sources=[4],
        n_tasks=3,
        shots=[1, 3],
        estimator={"n_way": 4, "n_threads": 1, "n_episodes": 40},
        output_dir=str(tmp_path),
        verbose=0,
    )
    rows = results["summary"]
    assert [(r["data"], r["n_source"], r["shot"]) for r in rows] == [
        ("digits", 4, "1"),
        ("digits", 4, "3"),
    ]
    for r in rows:
        for m in study.METHODS:
            assert r[m]["n"] == 3 and 0.0 <= r[m]["mean"] <= 1.0
        # one-shot tasks: the validated default (an input space: 2-way
        # validation cannot validate the encoder), never the unvalidated encoder
        assert set(r["chosen"]) <= {*INPUT_SPACES, "meta"}
    assert set(rows[0]["chosen"]) <= set(INPUT_SPACES)
    info = results["raw"][0]["meta_fit"]
    assert info["meta_selected"] in INPUT_SPACES
    assert set(info["val_scores"]) == {"meta", *INPUT_SPACES}
    on_disk = json.loads((tmp_path / "small_source_quick.json").read_text())
    assert np.isclose(on_disk["summary"][0]["auto"]["mean"], rows[0]["auto"]["mean"])
    assert "csv-table" in (tmp_path / "small_source_quick_tables.rst").read_text()
    assert "| digits | 4 | 1 |" in (tmp_path / "small_source_quick.md").read_text()


def test_rescaled_features_differ_in_scale_and_standardise_back():
    X = np.random.default_rng(0).uniform(size=(50, 8))
    Xr = study.rescale_features(X, seed=0)
    np.testing.assert_array_equal(Xr, study.rescale_features(X, seed=0))
    assert Xr.std(axis=0).max() / Xr.std(axis=0).min() > 10
    # per-feature standardisation (representation="input") undoes the rescaling
    z = (X - X.mean(0)) / X.std(0)
    np.testing.assert_allclose((Xr - Xr.mean(0)) / Xr.std(0), z, atol=1e-6)
