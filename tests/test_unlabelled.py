"""Unlabelled items in fit: X_unlabelled, unlabelled_weight and the guard."""

import numpy as np
import pytest
from sklearn.base import clone

from sklearn_metaannot import (
    CrowdLabelMatrix,
    MetaAnnotatorClassifier,
    UnlabelledChoice,
    load,
    save,
    simulate_annotators,
)
from sklearn_metaannot.adapt import _unlabelled


def _task(seed, *, other_classes=False, n_labelled=5):
    """4 classes, ``n_labelled`` crowd-labelled items per class, 50 unlabelled
    items per class of the task's classes (or of 4 other classes), a query set."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=0.7, size=(8, 20))

    def draw(n, classes):
        y = np.repeat(classes, n)
        return means[y] + rng.normal(size=(len(y), 20)), y

    X, y = draw(n_labelled, np.arange(4))
    X_unlabelled, _ = draw(50, np.arange(4, 8) if other_classes else np.arange(4))
    X_query, y_query = draw(100, np.arange(4))
    Y = simulate_annotators(y, 5, random_state=seed)[0]
    return X, Y, X_unlabelled, X_query, y_query


def _same_choice(a, b):
    """Equal choices (NaN scores compare equal)."""
    assert (a.weight, a.candidate, a.reason, a.n_unlabelled) == (
        b.weight,
        b.candidate,
        b.reason,
        b.n_unlabelled,
    )
    np.testing.assert_equal(a.scores, b.scores)


def _model(**params):
    return MetaAnnotatorClassifier(representation="input", random_state=0, **params)


def test_the_guard_uses_unlabelled_items_of_the_task_classes_and_gains():
    gains = []
    for seed in range(3):
        X, Y, X_unlabelled, X_query, y_query = _task(seed)
        without = _model().fit(X, Y).score(X_query, y_query)
        guarded = _model().fit(X, Y, X_unlabelled=X_unlabelled)
        choice = guarded.unlabelled_choice_
        assert choice.reason == "held-out crowd labels"
        assert choice.candidate in ("all", "masked") and choice.weight > 0.5
        assert choice.scores[choice.candidate] > choice.scores["none"]
        gains.append(guarded.score(X_query, y_query) - without)
    assert np.mean(gains) > 0.04, gains


def test_the_guard_keeps_out_unlabelled_items_of_other_classes():
    # counted, the items of 4 other classes cost 10 to 20 points on these tasks
    for seed in range(3):
        X, Y, X_unlabelled, X_query, y_query = _task(seed, other_classes=True)
        without = _model().fit(X, Y)
        forced = _model(unlabelled_weight=1.0).fit(X, Y, X_unlabelled=X_unlabelled)
        guarded = _model().fit(X, Y, X_unlabelled=X_unlabelled)
        assert forced.score(X_query, y_query) < without.score(X_query, y_query) - 0.05
        choice = guarded.unlabelled_choice_
        assert (choice.weight, choice.candidate, choice.reason) == (
            0.0,
            "none",
            "default held",
        )
        assert choice.n_unlabelled == len(X_unlabelled)
        # left out, they change nothing: the model is the one without them
        np.testing.assert_allclose(
            guarded.predict_proba(X_query), without.predict_proba(X_query), atol=1e-10
        )
        np.testing.assert_allclose(
            guarded.sample_posterior_, without.sample_posterior_, atol=1e-10
        )


def test_x_unlabelled_and_rows_without_labels_are_the_same_items():
    X, Y, X_unlabelled, X_query, _ = _task(0)
    as_argument = _model().fit(X, Y, X_unlabelled=X_unlabelled)
    # the same items as rows of Y without a label, first and last
    no_labels = np.full((len(X_unlabelled), Y.shape[1]), None)
    for X_all, Y_all, rows in [
        (np.vstack([X, X_unlabelled]), np.vstack([Y, no_labels]), slice(0, len(X))),
        (np.vstack([X_unlabelled, X]), np.vstack([no_labels, Y]), slice(200, None)),
    ]:
        as_rows = _model().fit(X_all, Y_all)
        _same_choice(as_rows.unlabelled_choice_, as_argument.unlabelled_choice_)
        np.testing.assert_allclose(
            as_rows.predict_proba(X_query), as_argument.predict_proba(X_query)
        )
        # sample_posterior_ has a row for every row of X, unlabelled ones too
        assert as_rows.sample_posterior_.shape == (len(X_all), 4)
        np.testing.assert_allclose(
            as_rows.sample_posterior_[rows], as_argument.sample_posterior_
        )
    assert as_argument.sample_posterior_.shape == (len(X), 4)
    report = as_argument.annotator_report()
    assert report["n_labels"].sum() == np.sum(Y != None)  # noqa: E711


def test_forced_weights_and_the_reasons():
    X, Y, X_unlabelled, X_query, y_query = _task(1, n_labelled=1)
    plain = _model().fit(X, Y)
    assert plain.unlabelled_choice_ == UnlabelledChoice(
        0.0, "none", "no unlabelled items", {}, 0
    )
    small = _model().fit(X, Y, X_unlabelled=X_unlabelled)
    assert small.unlabelled_choice_.reason == "too few labelled items"
    assert small.unlabelled_choice_.weight == 0.0
    assert np.isnan(small.unlabelled_choice_.scores["all"])
    for weight in (0.0, 0.3, 1.0):
        forced = _model(unlabelled_weight=weight).fit(X, Y, X_unlabelled=X_unlabelled)
        choice = forced.unlabelled_choice_
        assert (choice.weight, choice.candidate, choice.reason) == (
            weight,
            "uniform",
            "forced",
        )
    # weight 0: the fit without them; weight 1: the semi-supervised EM
    zero = _model(unlabelled_weight=0.0).fit(X, Y, X_unlabelled=X_unlabelled)
    np.testing.assert_allclose(
        zero.predict_proba(X_query), plain.predict_proba(X_query), atol=1e-10
    )
    one = _model(unlabelled_weight=1.0).fit(X, Y, X_unlabelled=X_unlabelled)
    assert one.score(X_query, y_query) > plain.score(X_query, y_query) + 0.05


def test_linear_head_with_unlabelled_items():
    X, Y, X_unlabelled, X_query, y_query = _task(0)
    clf = _model(head="linear", unlabelled_weight=0.5)
    clf.fit(X, Y, X_unlabelled=X_unlabelled)
    assert clf.coef_.shape == (4, 20) and clf.score(X_query, y_query) > 0.8


def test_unlabelled_choice_is_saved(tmp_path):
    X, Y, X_unlabelled, X_query, _ = _task(0)
    clf = _model().fit(X, Y, X_unlabelled=X_unlabelled)
    loaded = load(save(clf, tmp_path / "model.zip"))
    _same_choice(loaded.unlabelled_choice_, clf.unlabelled_choice_)
    assert set(loaded.unlabelled_choice_.scores) == {"none", "all", "masked"}


@pytest.mark.parametrize(
    "X_unlabelled, message",
    [
        (np.zeros((3, 5)), "X_unlabelled has 5 features, but X has 20"),
        (np.zeros(20), "X_unlabelled"),
        (np.full((2, 20), np.nan), "X_unlabelled"),
        ([["a"] * 20], "X_unlabelled"),
    ],
)
def test_bad_x_unlabelled(X_unlabelled, message):
    X, Y, _, _, _ = _task(0)
    with pytest.raises(ValueError, match=message):
        _model().fit(X, Y, X_unlabelled=X_unlabelled)


def test_bad_unlabelled_weight():
    X, Y, X_unlabelled, _, _ = _task(0)
    for weight in (-0.1, 1.5, "always"):
        with pytest.raises(ValueError, match="unlabelled_weight"):
            clone(_model(unlabelled_weight=weight)).fit(X, Y)


def test_distractor_mask_keeps_the_task_classes_and_drops_other_classes():
    X, Y, clean, _, _ = _task(0)
    _, _, other, _, _ = _task(0, other_classes=True)
    X_all = np.vstack([X, clean, other])
    scaled = (X_all - X_all.mean(axis=0)) / X_all.std(axis=0)
    Y_all = np.vstack([Y, np.full((len(clean) + len(other), Y.shape[1]), None)])
    items = _unlabelled.arrange(CrowdLabelMatrix.from_dense(Y_all), None)
    em = {"n_iter": 3, "tau": 0.0, "b": 10.0, "c": (2.0, 1.0)}
    mask = _unlabelled.distractor_mask(scaled[items.order], items, 4, em)
    assert mask.shape == (400,) and np.all((mask >= 0) & (mask <= 1))
    assert mask[:200].mean() > 0.7 and mask[200:].mean() < 0.3
