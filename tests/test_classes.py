"""Explicit classes in fit: classes nobody named, class order, unseen labels."""
# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np
import pytest

from sklearn_metaannot import (
    MetaAnnotatorClassifier,
    MetaLearner,
    MetaLearningWarning,
    MissingClassWarning,
)

CENTRES = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0], [0.0, -4.0]])


def _task(seed=0, n_per_class=5, unnamed=3):
    """4 classes; nobody labels the items of class ``unnamed`` (NaN rows)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), n_per_class)
    X = CENTRES[y] + 0.5 * rng.normal(size=(len(y), 2))
    Y = np.stack([y, y, y], axis=1).astype(float)
    Y[y == unnamed] = np.nan
    return X, Y, y


def test_a_class_nobody_named_is_kept_and_predicted():
    X, Y, y = _task()
    clf = MetaAnnotatorClassifier().fit(X, Y, classes=[0, 1, 2, 3])
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2, 3])
    assert clf.prototypes_.shape == (4, 2)
    assert clf.annotator_confusion_.shape == (3, 4, 4)
    for attr in ("prototypes_", "class_prior_", "annotator_confusion_"):
        assert np.isfinite(getattr(clf, attr)).all(), attr
    proba = clf.predict_proba(X)
    assert np.isfinite(proba).all() and proba.shape == (20, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # the unlabelled items of class 3 are recognised as class 3
    np.testing.assert_array_equal(clf.predict(X), y)
    assert clf.score(X, y) == 1.0
    # without classes, class 3 does not exist and counts as errors at score
    clf3 = MetaAnnotatorClassifier().fit(X, Y)
    np.testing.assert_array_equal(clf3.classes_, [0, 1, 2])
    assert clf3.score(X, y) == pytest.approx(15 / 20)


@pytest.mark.parametrize("c", [(2.0, 1.0), 1.0])
def test_empty_class_with_tau_zero_is_finite(c):
    # every item is labelled. With c=(2, 1) the confusion prior says that
    # annotators name the true class, so the empty class gets no mass at all:
    # its prototype is the prior mean (the origin); with c=1 the EM gives it
    # a share of the items. Nothing is NaN either way.
    X, Y, y = _task()
    keep = y != 3
    clf = MetaAnnotatorClassifier(tau=0.0, c=c)
    clf.fit(X[keep], Y[keep], classes=[0, 1, 2, 3])
    if c != 1.0:
        np.testing.assert_allclose(clf.prototypes_[3], 0.0, atol=1e-8)
        # the origin of the latent space is nearest to the empty class
        offset, _ = clf.input_scaling_[clf.representation_]
        origin = np.broadcast_to(offset, (1, X.shape[1]))  # embeds to the origin
        assert clf.predict(origin)[0] == 3
    assert clf.class_prior_[3] > 0
    for attr in ("prototypes_", "class_prior_", "annotator_confusion_"):
        assert np.isfinite(getattr(clf, attr)).all(), attr
    assert np.isfinite(clf.predict_proba(X)).all()


def test_classes_order_sets_classes_and_proba_columns():
    X, Y, _ = _task()
    ref = MetaAnnotatorClassifier().fit(X, Y, classes=[0, 1, 2, 3])
    order = [2, 3, 0, 1]
    clf = MetaAnnotatorClassifier().fit(X, Y, classes=order)
    np.testing.assert_array_equal(clf.classes_, order)
    np.testing.assert_allclose(
        clf.predict_proba(X), ref.predict_proba(X)[:, order], atol=1e-10
    )
    np.testing.assert_array_equal(clf.predict(X), ref.predict(X))


def test_string_classes_and_labels_outside_classes():
    X, Y, y = _task()
    names = np.array(["north", "south", "east", "west"], dtype=object)
    Ys = np.where(np.isnan(Y), None, names[np.nan_to_num(Y).astype(int)])
    clf = MetaAnnotatorClassifier().fit(X, Ys, classes=["west", *names[:3]])
    assert clf.classes_.tolist() == ["west", "north", "south", "east"]
    np.testing.assert_array_equal(clf.predict(X), names[y])
    with pytest.raises(ValueError, match=r"Y contains 1 value\(s\) not in classes"):
        MetaAnnotatorClassifier().fit(X, Ys, classes=["north", "south", "west"])
    with pytest.raises(ValueError, match="not in classes: \\[2"):
        MetaAnnotatorClassifier().fit(X, Y, classes=[0, 1])


@pytest.mark.parametrize(
    "classes, match",
    [
        ([0], "classes must list at least 2"),
        ([0, 1, 1], "classes must hold unique values"),
        ([0, np.nan], "classes must not contain NaN"),
        ([[0, 1]], "classes must be 1-D"),
    ],
)
def test_bad_classes(classes, match):
    X, Y, _ = _task()
    with pytest.raises(ValueError, match=match):
        MetaAnnotatorClassifier().fit(X, Y, classes=classes)


def test_one_named_class_is_enough_with_explicit_classes():
    X, _, y = _task()
    Y = np.where(y == 0, 0.0, np.nan)[:, None]
    clf = MetaAnnotatorClassifier().fit(X, Y, classes=[0, 1])
    assert np.isfinite(clf.predict_proba(X)).all()
    with pytest.raises(ValueError, match="labels of one class only"):
        MetaAnnotatorClassifier().fit(X, Y)


@pytest.fixture(scope="module")
def meta_fitted_4way():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 20)
    X = 3 * rng.normal(size=(10, 2))[y] + rng.normal(size=(200, 2))
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=4,
            n_shot=1,
            n_annotators=3,
            embedding_dim=4,
            hidden_layer_sizes=(8,),
            n_episodes=4,
            episodes_per_epoch=4,
            validation_classes=0,
        ),
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        return clf.meta_fit(X, y)


def test_real_crowd_failure_4way_1shot_with_an_unnamed_class(meta_fitted_4way):
    # issue 13: in a 4-way 1-shot task no annotator named class 3 (they all
    # mistook its item for class 0); score on a query set with class 3 raised
    rng = np.random.default_rng(1)
    X_support = CENTRES + 0.3 * rng.normal(size=(4, 2))
    Y = np.array([[0, 0, 0], [1, 1, np.nan], [2, 2, 2], [0, 0, np.nan]])
    y_query = np.repeat(np.arange(4), 5)
    X_query = CENTRES[y_query] + 0.3 * rng.normal(size=(20, 2))
    clf = meta_fitted_4way
    with pytest.warns(MissingClassWarning, match="named 3 classes.*n_way=4"):
        clf.fit(X_support, Y)
    # class 3 can only be wrong; the named classes are all right
    assert clf.score(X_query, y_query) == 15 / 20
    named = y_query < 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingClassWarning)
        clf.fit(X_support, Y, classes=[0, 1, 2, 3])
    proba = clf.predict_proba(X_query)
    assert proba.shape == (20, 4)
    # the kept class costs the named ones nothing, and keeps some probability
    np.testing.assert_array_equal(clf.predict(X_query)[named], y_query[named])
    assert proba[:, 3].min() > 0.1
