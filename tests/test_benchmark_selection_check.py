"""The replay of the per-task check in benchmarks/selection_check.py."""
# SPDX-License-Identifier: BSD-3-Clause

from types import SimpleNamespace

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


def test_the_scores_use_the_folds_and_em_of_fit():
    """The benchmark reads only public parameters; it must stay in step with
    the private rules of ``fit`` (its fold seed and EM settings)."""
    from sklearn_metaannot import MetaAnnotatorClassifier

    for random_state in (None, 0, 7):
        model = MetaAnnotatorClassifier(random_state=random_state, c=[3, 1.5])
        assert module.fold_seed(model) == model._held_out_seed()
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 10)
    U = y[:, None] * 2.0 + rng.normal(size=(20, 2))
    codes = np.stack([y, y, rng.integers(0, 2, 20)]).T

    rows, cols = np.nonzero(codes >= 0)
    labels = SimpleNamespace(rows=rows, cols=cols, codes=codes[rows, cols])

    from sklearn_metaannot.adapt._representation import N_FOLDS, held_out_agreement

    got = module.held_out_scores(model, U, labels, 2, 3, score="match")
    expected = held_out_agreement(
        U,
        (rows, cols, labels.codes),
        2,
        n_folds=N_FOLDS,
        random_state=3,
        by_item=True,
        score="match",
        **model._em_params(),
    )
    np.testing.assert_array_equal(got, expected)
