"""The study of semi-supervised meta-training episodes (issue 25, item 2)."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest

from benchmarks import unlabelled_episodes as study


def test_tasks_hold_a_labelled_support_a_clean_pool_and_distractors():
    cfg = study.default_config(quick=True) | {"n_tasks": 3}
    y = np.repeat(np.arange(10), 20)
    for support, Y, query, query_y, pools, _seed in study.tasks(cfg, y):
        task = set(y[query])
        assert len(support) == 4 and len(task) == 4 and set(y[support]) == task
        assert Y.shape == (4, 5) and not np.isnan(Y).all(axis=1).any()
        np.testing.assert_array_equal(np.bincount(query_y), [10] * 4)
        # clean: 5 more images per task class; the pool adds 5 of 2 others each
        assert len(pools["clean"]) == 20 and set(y[pools["clean"]]) == task
        distractors = np.setdiff1d(pools["pool"], pools["clean"])
        assert len(distractors) == 10 and not set(y[distractors]) & task
        assert len(set(y[distractors])) == 2
        seen = np.concatenate([support, query, pools["pool"]])
        assert len(np.unique(seen)) == len(seen)


def test_unknown_configuration_is_an_error():
    with pytest.raises(ValueError, match="unknown configuration keys"):
        study.run(n_shot=3, write=False)


def test_summary_pairs_the_rows_on_the_same_tasks():
    acc = {f"{e} {s}": [0.5, 0.7] for e in study.ENCODERS for s in study.SETTINGS}
    acc["semi pool counted"] = [0.6, 0.9]
    summary = study.summarize(acc)
    gain = summary["gains"]["semi pool counted - semi none"]
    assert gain["mean"] == pytest.approx(0.15) and gain["n"] == 2
    assert summary["gains"]["semi none - plain none"]["mean"] == 0.0
