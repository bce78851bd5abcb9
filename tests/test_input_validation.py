"""Bad input gets a clear error naming the argument."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_metaannot import (
    CrowdLabelMatrix,
    MetaAnnotatorClassifier,
    MetaLearner,
    MetaLearningWarning,
)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3))
    Y = np.tile(np.array([0.0, 1.0, 2.0]), 4)[:, None].repeat(2, axis=1)
    Y[0, 1] = np.nan
    return X, Y


def test_length_mismatch(data):
    X, Y = data
    with pytest.raises(ValueError, match="Y has 11 samples but X has 12"):
        MetaAnnotatorClassifier().fit(X, Y[:-1])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_X(data, bad):
    X, Y = data
    X[3, 1] = bad
    with pytest.raises(ValueError, match="Input X contains"):
        MetaAnnotatorClassifier().fit(X, Y)


def test_all_labels_missing(data):
    X, _ = data
    with pytest.raises(ValueError, match="Y has no label at all"):
        MetaAnnotatorClassifier().fit(X, np.full((12, 3), np.nan))


def test_one_class_only(data):
    X, _ = data
    Y = np.full((12, 2), np.nan)
    Y[:, 0] = 1
    with pytest.raises(ValueError, match="one class only"):
        MetaAnnotatorClassifier().fit(X, Y)


def test_more_than_two_dimensions(data):
    X, _ = data
    with pytest.raises(ValueError, match="Y must be 1-D .* or 2-D"):
        MetaAnnotatorClassifier().fit(X, np.zeros((12, 2, 2)))


def test_infinite_label(data):
    X, Y = data
    Y[2, 0] = np.inf
    with pytest.raises(ValueError, match="Y contains infinity"):
        MetaAnnotatorClassifier().fit(X, Y)


def test_continuous_labels(data):
    X, _ = data
    with pytest.raises(ValueError, match="Unknown label type"):
        MetaAnnotatorClassifier().fit(X, np.linspace(0, 1, 12))


def test_unknown_labels_at_score_count_as_errors(data):
    # scikit-learn's convention: no exception, every unseen label is an error
    X, Y = data
    clf = MetaAnnotatorClassifier().fit(X, Y)
    assert clf.score(X, np.full(12, 7)) == 0.0
    y = clf.predict(X).astype(object)
    y[:3] = "unseen"
    assert clf.score(X, y) == pytest.approx(9 / 12)


def test_crowd_label_matrix_with_wrong_sample_count(data):
    X, Y = data
    with pytest.raises(ValueError, match="Y has 6 samples but X has 12"):
        MetaAnnotatorClassifier().fit(X, CrowdLabelMatrix.from_dense(Y[:6]))


def _source(n_classes=6, n_per_class=20, n_features=3):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(n_classes), n_per_class)
    return rng.normal(size=(len(y), n_features)), y


def test_feature_count_differs_from_meta_fit(data):
    X, Y = data
    Xs, ys = _source(n_features=5)
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=2,
            n_shot=1,
            n_query=2,
            n_episodes=4,
            episodes_per_epoch=4,
            validation_classes=0.0,
        )
    )
    with pytest.warns(UserWarning):
        clf.meta_fit(Xs, ys)
    with pytest.raises(ValueError, match="X has 3 features, but the meta-learned"):
        clf.set_params(representation="meta").fit(X, Y)


def test_n_way_larger_than_source_classes():
    # fewer source classes than n_way: smaller training episodes, with a warning
    Xs, ys = _source(n_classes=3)
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=4, validation_classes=0.0, n_episodes=10, episodes_per_epoch=10
        )
    )
    with pytest.warns(MetaLearningWarning, match="3-way training episodes"):
        clf.meta_fit(Xs, ys)
    assert len(clf.meta_history_) == 1
    with pytest.raises(ValueError, match="at least 2 source classes"):
        clone(clf).meta_fit(Xs[ys == ys[0]], ys[ys == ys[0]])


def test_source_class_too_small():
    Xs, ys = _source(n_classes=6, n_per_class=8)
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=2, n_shot=(1, 5), n_query=5, validation_classes=0.0
        )
    )
    with pytest.raises(ValueError, match="at least n_shot \\+ n_query = 10 examples"):
        with pytest.warns(UserWarning):
            clf.meta_fit(Xs, ys)


def test_meta_fit_label_errors():
    Xs, ys = _source()
    clf = MetaAnnotatorClassifier()
    with pytest.raises(ValueError, match="X_source and y_source have different"):
        clf.meta_fit(Xs, ys[:-1])
    with pytest.raises(ValueError, match="y_source must be 1-D"):
        clf.meta_fit(Xs, ys[:, None].repeat(2, 1))
    with pytest.raises(ValueError, match="X_val and y_val must be given together"):
        clf.meta_fit(Xs, ys, X_val=Xs)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"encoder": "transformer"}, "'encoder' parameter"),
        ({"b": 0.5}, "'b' parameter"),
        ({"c": (0.5, 1.0)}, "c must be a float >= 1"),
        ({"n_em_iter": -1}, "'n_em_iter' parameter"),
        ({"max_grad_norm": 0.0}, "'max_grad_norm' parameter"),
        ({"annotator_mixture": (0.5, 0.5)}, "annotator_mixture .* 3 weights"),
    ],
)
def test_bad_parameters(data, params, match):
    X, Y = data
    Xs, ys = _source()
    # meta-training parameters belong to the MetaLearner
    learner = {k: v for k, v in params.items() if k in MetaLearner().get_params()}
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(**learner) if learner else None,
        **{k: v for k, v in params.items() if k not in learner},
    )
    with pytest.raises((ValueError, TypeError), match=match):
        clf.fit(X, Y)
        clf.meta_fit(Xs, ys)


@pytest.mark.parametrize(
    "device, match",
    [
        ("not-a-device", "device='not-a-device' is not a torch device"),
        pytest.param(
            "cuda",
            "torch sees no CUDA device",
            marks=pytest.mark.skipif(
                torch.cuda.is_available(), reason="a CUDA device is present"
            ),
        ),
    ],
)
def test_unusable_device(device, match):
    rng = np.random.default_rng(0)
    X, y = rng.random((120, 4)), np.repeat(np.arange(6), 20)
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(n_way=3, n_episodes=10, device=device)
    )
    with pytest.raises(ValueError, match=match):
        clf.meta_fit(X, y)
