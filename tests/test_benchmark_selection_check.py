"""The replay of the per-task check in benchmarks/selection_check.py."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from benchmarks import selection_check as module


def test_replay_follows_the_rule_of_fit_for_each_default_unit_and_threshold():
    rng = np.random.default_rng(0)
    base = rng.uniform(size=20)
    # "meta" is clearly better on the held-out labels and on the query
    scores = {
        "meta": base + 0.2 + 0.05 * rng.normal(size=20),
        "input": base,
        "scaled": base + 0.01 * rng.normal(size=20),
        "normalized": base + 0.01 * rng.normal(size=20),
    }
    record = {
        "scores": dict.fromkeys(module.UNITS, scores),
        "accuracy": {"meta": 0.9, "input": 0.5, "scaled": 0.55, "normalized": 0.55},
        "crowd": "dense",
    }
    flat = {"scores": dict.fromkeys(module.UNITS, dict.fromkeys(scores, base))}
    flat |= {"accuracy": dict.fromkeys(scores, 0.3), "crowd": "sparse"}
    rows = module.replay([record, flat], [1.0, 1e9])
    n_rules = len(module.SPACES) * len(module.RULES)
    assert len(rows) == 2 * n_rules == 2 * 4 * len(module.RULES)
    # each crowd is replayed on its own tasks
    assert {r["z=1"] for r in rows if r["crowd"] == "sparse"} == {0.3}
    by = {(r["default"], r["unit"]): r for r in rows if r["crowd"] == "dense"}
    # a wrong default is overruled at z = 1, never at an infinite threshold
    assert by["input", "items"]["z=1"] == 0.9
    assert by["input", "items"]["z=1e+09"] == by["input", "items"]["never"] == 0.5
    # the right default stands
    assert by["meta", "annotations"]["z=1"] == 0.9
