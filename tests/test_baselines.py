"""Tests of the baselines: aggregate-then-classify, prototypes and the crowd layer."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_metaannot import (
    DawidSkene,
    FittedEncoder,
    MajorityVote,
    MetaAnnotatorClassifier,
    MetaLearner,
    simulate_annotators,
)
from sklearn_metaannot.baselines import (
    AggregateThenClassify,
    CrowdLayerClassifier,
    PrototypeClassifier,
)


def _blobs(n_per_class=25, n_classes=4, n_features=8, sep=2.5, seed=0):
    rng = np.random.default_rng(seed)
    centres = sep * rng.normal(size=(n_classes, n_features))
    y = np.repeat(np.arange(n_classes), n_per_class)
    return centres[y] + rng.normal(size=(len(y), n_features)), y


def _crowd_task(seed=0, n_annotators=5):
    """An easy seeded task: 4 blobs, a crowd with the paper's (0.1, 0.7, 0.2) mix."""
    X, y = _blobs(seed=seed)
    rng = np.random.default_rng(seed)
    train = rng.permutation(len(y))[:40]
    test = np.setdiff1d(np.arange(len(y)), train)
    Y, _, _ = simulate_annotators(y[train], n_annotators, random_state=seed)
    return X[train], Y, X[test], y[test]


def _linear_encoder(n_features=8, dim=6, seed=0):
    torch.manual_seed(seed)
    module = torch.nn.Linear(n_features, dim)
    return FittedEncoder(module, np.zeros(n_features), np.ones(n_features), n_features)


BASELINES = {
    "LRMV": lambda: AggregateThenClassify(MajorityVote(), random_state=0),
    "LRDS": lambda: AggregateThenClassify(DawidSkene(), random_state=0),
    "RFMV": lambda: AggregateThenClassify(
        MajorityVote(), RandomForestClassifier(n_estimators=30), random_state=0
    ),
    "RFDS": lambda: AggregateThenClassify(
        DawidSkene(), RandomForestClassifier(n_estimators=30), random_state=0
    ),
    "PrMV": lambda: PrototypeClassifier(_linear_encoder(), MajorityVote()),
    "PrDS": lambda: PrototypeClassifier(_linear_encoder(), DawidSkene()),
    "PrDS-hard": lambda: PrototypeClassifier(
        _linear_encoder(), DawidSkene(), soft=False, random_state=0
    ),
    "Pr-input": lambda: PrototypeClassifier(),
    "CL": lambda: CrowdLayerClassifier(random_state=0),
    "MCL": lambda: CrowdLayerClassifier(
        _linear_encoder(), hidden_layer_sizes=(), random_state=0
    ),
    "MCL-fine-tuned": lambda: CrowdLayerClassifier(
        _linear_encoder(), hidden_layer_sizes=(), fine_tune=True, random_state=0
    ),
}


@pytest.mark.parametrize("name", list(BASELINES))
def test_baseline_beats_chance_on_an_easy_task(name):
    X, Y, X_test, y_test = _crowd_task()
    clf = BASELINES[name]().fit(X, Y)
    # 4 classes: chance is 0.25
    assert clf.score(X_test, y_test) > 0.75
    proba = clf.predict_proba(X_test)
    assert proba.shape == (len(X_test), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.classes_, np.arange(4))


@pytest.mark.parametrize("name", ["LRDS", "RFMV", "PrDS-hard", "CL", "MCL"])
def test_baselines_are_reproducible(name):
    X, Y, X_test, _ = _crowd_task(seed=3)
    p1 = BASELINES[name]().fit(X, Y).predict_proba(X_test)
    p2 = BASELINES[name]().fit(X, Y).predict_proba(X_test)
    np.testing.assert_allclose(p1, p2)


def test_crowd_layer_learns_a_pairwise_flipper():
    """Two reliable annotators and one who says k + 1 on 40 % of class-k examples."""
    X, y = _blobs(n_per_class=60, sep=4.0, seed=1)
    rng = np.random.default_rng(1)
    K = 4
    flip = np.eye(K) * 0.6
    flip[np.arange(K), (np.arange(K) + 1) % K] += 0.4
    Y = np.stack(
        [
            y,
            np.where(rng.random(len(y)) < 0.95, y, (y + 2) % K),
            np.array([rng.choice(K, p=flip[k]) for k in y]),
        ],
        axis=1,
    ).astype(float)
    clf = CrowdLayerClassifier(random_state=0).fit(X, Y)
    assert clf.score(X, y) > 0.95
    conf = clf.annotator_confusion_[2]
    np.testing.assert_allclose(conf.sum(axis=1), 1.0)
    # close to the flipper's empirical confusion matrix (the one that generated
    # these labels): mass on the diagonal and on the next class only
    empirical = (
        np.stack([np.bincount(Y[y == k, 2].astype(int), minlength=K) for k in range(K)])
        / np.bincount(y)[:, None]
    )
    assert np.abs(conf - empirical).max() < 0.1
    for k in range(K):
        others = np.delete(conf[k], [k, (k + 1) % K])
        assert conf[k, (k + 1) % K] > 2 * others.max()
    # the reliable annotator is recognised as such
    assert np.all(np.diag(clf.annotator_confusion_[0]) > 0.85)
    assert clf.crowd_weights_.shape == (3, K, K)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_prototypes_are_weighted_means_of_aggregated_labels():
    X = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [12.0, 10.0]])
    Y = np.array([[0, 0, 1], [0, 0, 0], [1, 1, 1], [1, 1, 0]], dtype=float)
    soft = PrototypeClassifier(_identity_encoder(2)).fit(X, Y)
    # vote fractions: (2/3, 1/3), (1, 0), (0, 1), (1/3, 2/3)
    w = np.array([[2, 1], [3, 0], [0, 3], [1, 2]]) / 3
    expected = (w.T @ X) / w.sum(axis=0)[:, None]
    np.testing.assert_allclose(soft.prototypes_, expected)
    hard = PrototypeClassifier(_identity_encoder(2), soft=False).fit(X, Y)
    np.testing.assert_allclose(hard.prototypes_, [[1.0, 0.0], [11.0, 10.0]])
    np.testing.assert_array_equal(hard.predict([[1, 1], [11, 9]]), [0, 1])


def _identity_encoder(n_features):
    module = torch.nn.Identity()
    return FittedEncoder(module, np.zeros(n_features), np.ones(n_features), n_features)


def test_prototype_classifier_accepts_a_meta_fitted_classifier():
    X, y = _blobs(n_per_class=20, n_classes=10, seed=2)
    meta = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=4,
            n_shot=2,
            n_query=5,
            embedding_dim=4,
            hidden_layer_sizes=(16,),
            n_episodes=8,
            episodes_per_epoch=8,
            validation_classes=0.0,
        ),
        random_state=0,
    )
    with pytest.warns(UserWarning, match="no validation tasks"):
        meta.meta_fit(X[y < 8], y[y < 8])
    target = y >= 8
    Y, _, _ = simulate_annotators(y[target], 3, random_state=0)
    via_clf = PrototypeClassifier(meta).fit(X[target], Y)
    via_encoder = PrototypeClassifier(meta.meta_encoder_).fit(X[target], Y)
    assert via_clf.prototypes_.shape == (2, 4)
    np.testing.assert_allclose(via_clf.prototypes_, via_encoder.prototypes_)
    # clone keeps the (meta-fitted) encoder parameter usable
    clone(via_clf).fit(X[target], Y)


def test_aggregated_labels_and_ties():
    X = np.arange(8.0).reshape(4, 2)
    Y = np.array([[0, 1], [0, 0], [1, 1], [1, 0]], dtype=float)  # rows 0, 3 tie
    labels = [
        AggregateThenClassify(random_state=s).fit(X, Y).labels_ for s in range(20)
    ]
    np.testing.assert_array_equal(np.array(labels)[:, [1, 2]], [[0, 1]] * 20)
    # ties are broken at random, reproducibly
    assert len({tuple(v) for v in labels}) > 1
    np.testing.assert_array_equal(
        AggregateThenClassify(random_state=4).fit(X, Y).labels_,
        AggregateThenClassify(random_state=4).fit(X, Y).labels_,
    )


def test_aggregated_labels_of_one_class_predict_that_class():
    X = np.arange(6.0).reshape(3, 2)
    Y = np.array([[0, 0, 1], [0, 0, np.nan], [0, 1, 0]])  # every vote says 0
    clf = AggregateThenClassify(random_state=0).fit(X, Y)
    assert clf.classifier_ is None
    np.testing.assert_array_equal(clf.predict(X), [0, 0, 0])
    np.testing.assert_allclose(clf.predict_proba(X)[:, 1], 0.0)


def test_string_labels_and_missing_annotations():
    X, Y, X_test, y_test = _crowd_task(seed=5)
    names = np.array(["ant", "bee", "cat", "dog"])
    Y_str = np.where(np.isnan(Y), None, names[np.nan_to_num(Y).astype(int)]).astype(
        object
    )
    Y_str[::3, 0] = None  # sparse annotation
    for clf in (
        AggregateThenClassify(DawidSkene(), random_state=0),
        PrototypeClassifier(aggregator=DawidSkene()),
        CrowdLayerClassifier(random_state=0),
    ):
        clf.fit(X, Y_str)
        np.testing.assert_array_equal(clf.classes_, names)
        assert np.mean(clf.predict(X_test) == names[y_test]) > 0.75


def test_fine_tuning_leaves_the_given_encoder_unchanged():
    enc = _linear_encoder()
    before = enc.module.weight.clone()
    X, Y, _, _ = _crowd_task()
    clf = CrowdLayerClassifier(enc, fine_tune=True, n_epochs=20, random_state=0)
    clf.fit(X, Y)
    torch.testing.assert_close(enc.module.weight, before)
    tuned = clf.net_.base[0].module.weight
    assert not torch.allclose(tuned, before)


def test_input_errors():
    X, Y, _, _ = _crowd_task()
    with pytest.raises(ValueError, match="samples but X has"):
        AggregateThenClassify().fit(X[:-1], Y)
    with pytest.raises(ValueError, match="no label at all"):
        PrototypeClassifier().fit(X, np.full_like(Y, np.nan))
    with pytest.raises(TypeError, match="encoder"):
        PrototypeClassifier(encoder="conv4").fit(X, Y)
    with pytest.raises(TypeError, match="classifier"):
        AggregateThenClassify(classifier="logistic").fit(X, Y)
    with pytest.raises(ValueError, match="meta_fit first"):
        PrototypeClassifier(MetaAnnotatorClassifier()).fit(X, Y)
    with pytest.raises(ValueError, match="expects 8"):
        PrototypeClassifier(_linear_encoder()).fit(X[:, :5], Y)
    with pytest.raises(ValueError, match="needs an encoder"):
        CrowdLayerClassifier(fine_tune=True).fit(X, Y)

    class Lookup:
        def transform(self, X):
            return np.asarray(X)

    with pytest.raises(TypeError, match="FittedEncoder"):
        CrowdLayerClassifier(Lookup(), fine_tune=True).fit(X, Y)
    with pytest.raises(ValueError, match="positive"):
        CrowdLayerClassifier(hidden_layer_sizes=(0,)).fit(X, Y)
    with pytest.raises(ValueError, match="n_epochs"):
        CrowdLayerClassifier(n_epochs=0).fit(X, Y)
    with pytest.raises(ValueError, match="features"):
        PrototypeClassifier().fit(X, Y).predict(X[:, :3])
    for clf in (AggregateThenClassify(), PrototypeClassifier(), CrowdLayerClassifier()):
        with pytest.raises(NotFittedError):
            clf.predict(X)


EXPECTED_FAILED_CHECKS = {
    "check_supervised_y_2d": (
        "a (n_samples, 1) Y is a valid one-annotator label matrix, so no "
        "DataConversionWarning is raised"
    ),
}


@parametrize_with_checks(
    [
        AggregateThenClassify(),
        PrototypeClassifier(),
        CrowdLayerClassifier(n_epochs=100),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
    xfail_strict=True,
)
def test_sklearn_compatible_baselines(estimator, check):
    check(estimator)
