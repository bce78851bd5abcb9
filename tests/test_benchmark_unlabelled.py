"""Smoke test of the unlabelled-items benchmark (no, counted and guarded pools)."""
# SPDX-License-Identifier: BSD-3-Clause

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import omniglot, unlabelled


def test_quick_run_on_a_simulated_set_writes_its_files(tmp_path):
    results = unlabelled.run(
        quick=True,
        datasets=["anisotropic"],
        synthetic_shots=[1, 5],
        n_tasks=2,
        n_samples=600,
        output_dir=str(tmp_path),
        verbose=0,
    )
    summary = results["summary"]["anisotropic"]
    assert list(summary) == ["clean", "mixed", "other"]
    for pool, per in summary.items():
        assert list(per) == ["1", "5"]
        for cell in per.values():
            assert set(cell["accuracy"]) == set(unlabelled.METHODS)
            assert all(s["n"] == 2 for s in cell["accuracy"].values())
            assert 0.0 <= cell["used"] <= 1.0
        # at one labelled item per class the guard never checks: no gain and
        # no loss against the fit without the unlabelled items
        assert per["1"]["gain"]["guarded"]["mean"] == 0.0
        assert per["1"]["used"] == 0.0
    rows = results["raw"]["anisotropic"]
    assert len(rows) == 2 * 2 * 3  # shots x tasks x pools
    # the same tasks for every row: "none" is one fit per task, whatever the pool
    for task in range(0, len(rows), 3):
        assert len({r["none"] for r in rows[task : task + 3]}) == 1
    for r in rows:
        assert r["forced_reason"] == "forced" and r["forced_weight"] == 1.0
        assert r["n_unlabelled"] > 0
    assert {(t["data"], t["pool"]) for t in results["targets"]} == {
        ("anisotropic", p) for p in ("clean", "mixed", "other")
    }
    files = {p.name for p in tmp_path.iterdir()}
    assert {"unlabelled_quick.json", "unlabelled_quick.md"} <= files
    assert "unlabelled_quick_tables.rst" in files
    on_disk = json.loads((tmp_path / "unlabelled_quick.json").read_text())
    assert on_disk["config"]["n_tasks"] == 2
    assert np.isfinite(on_disk["targets"][0]["gain"])


def test_pools_of_a_synthetic_task():
    cfg = unlabelled.default_config(quick=True) | {"n_samples": 600, "n_tasks": 1}
    cfg["synthetic_shots"] = [3]
    ((about, (X, Y, X_query, y_query, _), pools, model),) = list(
        unlabelled.synthetic_tasks(cfg, "gaussian")
    )
    assert model is None and len(about["target"]) == 4
    assert X.shape[0] == 12 and Y.shape[0] == 12
    assert set(np.unique(y_query)) == {0, 1, 2, 3}
    assert len(pools["mixed"]) == len(pools["clean"]) + len(pools["other"])
    # the clean pool: the task's classes' other training items (300 per half)
    assert len(pools["clean"]) + len(pools["other"]) + len(X) == 300


def test_pools_of_an_omniglot_task(monkeypatch):
    # the tasks and pools only: meta-training is the benchmark's, not this test's
    cfg = unlabelled.default_config(quick=True) | {"n_tasks": 1}
    if not Path(cfg["omniglot_data"]).is_dir():
        pytest.skip("Omniglot data not found in ../shared/data/omniglot")
    cfg["omniglot_shots"] = [2]
    monkeypatch.setattr(omniglot, "meta_fit", lambda model, data: (model, None))
    ((about, (X, Y, X_query, y_query, _), pools, _model),) = list(
        unlabelled.omniglot_tasks(cfg)
    )
    assert about == {"shot": 2}
    assert X.shape == (8, 784) and Y.shape == (8, 5) and X_query.shape == (40, 784)
    assert not np.isnan(Y).all(axis=1).any()  # every support image is labelled
    X_test, y_test = omniglot.load_pools(omniglot.default_config())["pools"]["test"]

    def characters(images):
        rows = [np.flatnonzero((X_test == x).all(axis=1))[0] for x in images]
        return y_test[rows]

    task = set(characters(X_query))
    assert len(task) == 4 and set(characters(X)) == task
    # clean: 5 more images of each task character; other: 5 of each of 4 others
    clean, other = characters(pools["clean"]), characters(pools["other"])
    assert len(clean) == 20 and set(clean) == task
    assert len(other) == 20 and len(set(other)) == 4 and not set(other) & task
    assert len(pools["mixed"]) == 40
