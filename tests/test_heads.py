"""The linear head: a class-probability model that grows with the data (issue 29)."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest
from sklearn.base import clone

from sklearn_metaannot import (
    DawidSkene,
    MetaAnnotatorClassifier,
    load,
    save,
    simulate_annotators,
)

K, M = 3, 6


def _elongated_task(n, seed=0):
    """Classes sharing one covariance with a direction of large variance that
    carries no class information: nearest prototype fails, a linear rule
    (LDA, logistic regression) does not."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(M, M))
    A[:, 0] *= 6.0
    means = 1.5 * rng.normal(size=(K, M))
    means[:, 0] = 0.0

    def draw(size):
        y = rng.integers(0, K, size)
        return means[y] + rng.normal(size=(size, M)) @ A.T, y

    return draw(n), draw(2000)


@pytest.fixture(scope="module")
def task():
    (X, y), (X_test, y_test) = _elongated_task(300)
    Y, _, _ = simulate_annotators(y, 3, random_state=0)
    return X, Y, y, X_test, y_test


def test_linear_head_learns_what_prototypes_cannot(task):
    X, Y, y, X_test, y_test = task
    proto = MetaAnnotatorClassifier(representation="input").fit(X, Y)
    linear = MetaAnnotatorClassifier(representation="input", head="linear").fit(X, Y)
    assert proto.score(X_test, y_test) < 0.75
    assert linear.score(X_test, y_test) > proto.score(X_test, y_test) + 0.15
    # truth inference no worse than the labels alone
    ds = DawidSkene().fit(Y)
    inferred = linear.classes_[linear.sample_posterior_.argmax(axis=1)]
    assert np.mean(inferred == y) >= np.mean(ds.labels_ == y)
    assert linear.coef_.shape == (K, M) and linear.intercept_.shape == (K,)
    assert not hasattr(proto, "coef_")


def test_a_strong_pull_keeps_the_prototype_model(task):
    X, Y, _, X_test, _ = task
    proto = MetaAnnotatorClassifier(representation="input").fit(X, Y)
    pulled = MetaAnnotatorClassifier(
        representation="input", head="linear", head_penalty=1e7
    ).fit(X, Y)
    np.testing.assert_allclose(
        pulled.predict_proba(X_test), proto.predict_proba(X_test), atol=1e-3
    )
    # and the head is the prototype model written as a linear rule
    np.testing.assert_allclose(pulled.coef_, proto.prototypes_, atol=1e-3)


def test_linear_head_keeps_what_fit_supports(task, tmp_path):
    X, Y, y, X_test, _ = task
    gold = np.full(len(y), np.nan)
    gold[:30] = y[:30]
    unlabelled = np.vstack([Y, np.full((50, Y.shape[1]), np.nan)])
    X_more = np.vstack([X, X_test[:50]])
    clf = MetaAnnotatorClassifier(representation="input", head="linear")
    clf.fit(X_more, unlabelled, y_gold=np.concatenate([gold, np.full(50, np.nan)]))
    # gold items keep their labels; unlabelled items get a posterior too
    np.testing.assert_array_equal(clf.sample_posterior_[:30].argmax(axis=1), y[:30])
    assert np.allclose(clf.sample_posterior_.sum(axis=1), 1.0)
    assert list(clf.annotator_report().index) == [0, 1, 2]
    # a class nobody named is kept
    four = clone(clf).fit(X, Y, classes=[0, 1, 2, 3])
    assert four.predict_proba(X_test).shape == (len(X_test), 4)
    # annotator history from a linear model
    nxt = clone(clf).fit(X, Y, annotator_prior=clf)
    assert nxt.annotator_has_history_.all()
    # saved and loaded without loss
    loaded = load(save(clf, tmp_path / "linear.zip"))
    np.testing.assert_array_equal(
        loaded.predict_proba(X_test), clf.predict_proba(X_test)
    )
    # a refit with the prototype model drops the head
    assert not hasattr(clf.set_params(head="prototype").fit(X, Y), "coef_")


def test_auto_head_chooses_from_held_out_crowd_labels(task):
    X, Y, y, X_test, y_test = task
    auto = MetaAnnotatorClassifier(representation="input", head="auto", random_state=0)
    auto.fit(X, Y)
    # where the prototypes fail, the crowd's held-out labels say so
    assert auto.head_ == "linear"
    assert auto.head_scores_["linear"] > auto.head_scores_["prototype"]
    assert auto.score(X_test, y_test) > 0.85
    # on round classes with few items the paper's model stays
    rng = np.random.default_rng(1)
    y_round = np.repeat(np.arange(K), 4)
    X_round = rng.normal(size=(len(y_round), M)) + 4.0 * np.eye(K, M)[y_round]
    Y_round, _, _ = simulate_annotators(y_round, 3, random_state=1)
    small = clone(auto).fit(X_round, Y_round)
    assert small.head_ == "prototype" and not hasattr(small, "coef_")
    one = clone(auto).fit(X_round[::4], Y_round[::4])  # one item per class
    assert one.head_ == "prototype" and np.isnan(one.head_scores_["linear"])
