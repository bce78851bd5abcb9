"""Smoke test of the scaling benchmark of data-parallel meta_fit (one process)."""
# SPDX-License-Identifier: BSD-3-Clause

from benchmarks import distributed as module


def test_one_process_run_gives_a_row_per_setting_and_a_report():
    config = {"processes": [1], "n_episodes": 16, "meta_batch_sizes": [4], "rounds": 1}
    results = module.run(config)
    (row,) = results["rows"]
    assert (row["meta_batch_size"], row["processes"], row["ratio"]) == (4, 1, 1.0)
    assert row["episodes_per_s"] == 16 / row["seconds"][0]
    assert results["config"]["name"] == "distributed"
    assert len(results["load_average"]) == 3
    assert "| 4 | 1 |" in module.markdown(results)
