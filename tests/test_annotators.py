"""Tests of the annotator simulator."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest

from sklearn_metaannot import AnnotatorSimulator, simulate_annotators
from sklearn_metaannot.crowd._annotators import check_mixture


def test_mixture_proportions_follow_the_paper_default():
    sim = AnnotatorSimulator()
    types = sim.sample_types(20000, np.random.default_rng(0))
    freq = {t: types.count(t) / len(types) for t in ("expert", "hammer", "spammer")}
    assert freq == pytest.approx(
        {"expert": 0.1, "hammer": 0.7, "spammer": 0.2}, abs=0.01
    )


@pytest.mark.parametrize(
    "kind", ["expert", "hammer", "spammer", "pairwise_flipper", "classwise_spammer"]
)
def test_confusion_matrices_are_row_stochastic(kind):
    A = AnnotatorSimulator().confusion_matrix(kind, 4, np.random.default_rng(1))
    assert A.shape == (4, 4)
    np.testing.assert_allclose(A.sum(axis=1), 1.0)
    assert (A >= 0).all()


def test_accuracy_ranges_and_structures():
    rng = np.random.default_rng(2)
    sim = AnnotatorSimulator(
        expert_accuracy=(0.9, 1.0),
        hammer_accuracy=(0.5, 0.9),
        flipper_accuracy=0.7,
        classwise_spam_fraction=0.5,
    )
    for _ in range(50):
        assert 0.9 <= np.diag(sim.confusion_matrix("expert", 5, rng)).min() <= 1.0
        d = np.diag(sim.confusion_matrix("hammer", 5, rng))
        assert 0.5 <= d.min() and d.max() <= 0.9
    flip = sim.confusion_matrix("pairwise_flipper", 4, rng)
    np.testing.assert_allclose(np.diag(flip), 0.7)
    np.testing.assert_allclose(flip[np.arange(4), (np.arange(4) + 1) % 4], 0.3)
    cw = sim.confusion_matrix("classwise_spammer", 4, rng)
    assert sum(np.allclose(row, 0.25) for row in cw) == 2
    np.testing.assert_allclose(sim.confusion_matrix("spammer", 4, rng), 0.25)


def test_simulated_labels_follow_the_confusion_matrices():
    y = np.repeat(np.arange(3), 4000)
    Y, conf, types = simulate_annotators(y, 4, random_state=3)
    for r in range(4):
        empirical = (
            np.stack(
                [np.bincount(Y[y == k, r].astype(int), minlength=3) for k in range(3)]
            )
            / 4000
        )
        np.testing.assert_allclose(empirical, conf[r], atol=0.03)
    assert len(types) == 4


def test_annotation_rate_leaves_every_example_one_label():
    y = np.repeat(np.arange(2), 500)
    Y, _, _ = simulate_annotators(y, 5, annotation_rate=0.3, random_state=4)
    observed = ~np.isnan(Y)
    assert observed.mean() == pytest.approx(0.3 + 0.7 * 0.7**5 * 0.2, abs=0.03)
    assert observed.any(axis=1).all()


def test_string_labels_and_seeding():
    y = np.array(["a", "b", "c", "a"])
    Y1, _, _ = simulate_annotators(y, 3, random_state=0)
    Y2, _, _ = simulate_annotators(y, 3, random_state=0)
    assert Y1.dtype == object and set(Y1.ravel()) <= {"a", "b", "c"}
    np.testing.assert_array_equal(Y1, Y2)


def test_bad_input():
    with pytest.raises(ValueError, match="annotator_mixture has unknown annotator"):
        check_mixture({"genius": 1.0})
    with pytest.raises(ValueError, match="non-negative"):
        check_mixture((0.5, -0.1, 0.6))
    with pytest.raises(TypeError, match="annotator_mixture must be a dict"):
        check_mixture("expert")
    with pytest.raises(ValueError, match="hammer_accuracy must satisfy"):
        AnnotatorSimulator(hammer_accuracy=(0.9, 0.5))
    with pytest.raises(ValueError, match="annotation_rate must be in"):
        AnnotatorSimulator(annotation_rate=0.0)
    with pytest.raises(ValueError, match="n_annotators must be a positive int"):
        simulate_annotators([0, 1], 0)
    with pytest.raises(ValueError, match="y must be 1-D"):
        simulate_annotators([[0, 1]], 2)
