"""Smoke test of the throughput benchmark harness (benchmarks/throughput.py)."""
# SPDX-License-Identifier: BSD-3-Clause

from benchmarks import throughput as module


def test_throughput_harness_measures_both_loops():
    results = module.run(
        {
            "meta_batches": [2],
            "steps": 2,
            "min_episodes": 0,
            "rounds": 1,
            "hidden_layer_sizes": [16],
            "validation": False,
        }
    )
    (row,) = results["rows"]
    assert row["episodes"] == 4
    assert row["ours_episodes_per_s"] > 0 and row["plain_episodes_per_s"] > 0
    assert (
        abs(row["ratio"] - row["plain_episodes_per_s"] / row["ours_episodes_per_s"])
        < 1e-12
    )
    assert row["ours_em0_episodes_per_s"] > 0
    assert row["em_iterations_share"] < 1
    assert "| 2 | 4 |" in module.markdown(results)
    assert module.n_steps(4, {"steps": 25, "min_episodes": 400}) == 100


def test_validation_cost_times_the_validation_of_a_short_meta_fit(monkeypatch):
    tiny = {"n_episodes": 8, "episodes_per_epoch": 4, "n_val_episodes": 6}
    monkeypatch.setattr(
        module, "VALIDATION_CONFIG", {**module.VALIDATION_CONFIG, **tiny}
    )
    X, y = module.load_data()
    cfg = {**module.DEFAULT_CONFIG, "rounds": 1, "hidden_layer_sizes": [16]}
    v = module.validation_cost(X, y, cfg)
    # 2 epochs: a validation before training and after each epoch
    assert len(v["valid_acc"]) == 2 and all(0 <= a <= 1 for a in v["valid_acc"])
    assert 0 < v["validation_current_s"] <= min(v["seconds"])
    assert 0 < v["validation_share_current"] < 1
    assert "## Validation cost" in module._validation_markdown(v)
