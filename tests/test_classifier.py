"""Tests of MetaAnnotatorClassifier: adaptation, meta-training, sklearn integration."""
# SPDX-License-Identifier: BSD-3-Clause

import copy
import warnings
from unittest import mock

import joblib
import numpy as np
import pytest
import torch
from _factories import meta_classifier, small_meta_classifier
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_metaannot import (
    CrowdLabelMatrix,
    MetaAnnotatorClassifier,
    MetaLearner,
    MetaLearningWarning,
    simulate_annotators,
)
from sklearn_metaannot.adapt._representation import INPUT_SPACES
from sklearn_metaannot.em import _steps as _em


def _blobs(n_classes, n_per_class, n_features=6, sep=3.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = sep * rng.normal(size=(n_classes, n_features))
    y = np.repeat(np.arange(n_classes), n_per_class)
    return centres[y] + rng.normal(size=(len(y), n_features)), y


TARGET = np.array([1, 5, 9, 13])


def _nonlinear_source(n_classes=16, n_per_class=40, seed=0):
    """Classes that differ in a 2-d subspace buried in 10 noisy nuisance features."""
    rng = np.random.default_rng(seed)
    angle = 2 * np.pi * np.arange(n_classes) / n_classes
    centres = np.stack([np.cos(angle), np.sin(angle)], 1) * 3
    y = np.repeat(np.arange(n_classes), n_per_class)
    signal = centres[y] + 0.3 * rng.normal(size=(len(y), 2))
    noise = 3.0 * rng.normal(size=(len(y), 10))
    return np.hstack([signal, noise]), y


@pytest.fixture(scope="module")
def meta_fitted():
    X, y = _nonlinear_source()
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=4,
            n_shot=(2, 4),
            n_annotators=(3, 5),
            embedding_dim=8,
            hidden_layer_sizes=(32,),
            n_episodes=600,
            episodes_per_epoch=100,
            n_val_episodes=30,
            lr=3e-3,
        ),
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        source = ~np.isin(y, TARGET)
        return clf.meta_fit(X[source], y[source])


def _target_task(seed=1, n_shot=4, n_annotators=5):
    X, y = _nonlinear_source(seed=seed)
    target = np.isin(y, TARGET)
    X, y = X[target], y[target]
    rng = np.random.default_rng(seed)
    support = np.concatenate(
        [
            rng.choice(np.flatnonzero(y == k), n_shot, replace=False)
            for k in np.unique(y)
        ]
    )
    query = np.setdiff1d(np.arange(len(y)), support)
    Y, _, _ = simulate_annotators(y[support], n_annotators, random_state=seed)
    return X[support], Y, y[support], X[query], y[query]


def test_fit_without_meta_learning_recovers_classes_and_annotators():
    X, y = _blobs(3, 40)
    Y, conf, _ = simulate_annotators(
        y, 6, mixture={"hammer": 1.0}, hammer_accuracy=(0.6, 0.9), random_state=0
    )
    clf = MetaAnnotatorClassifier(n_em_iter=10).fit(X, Y)
    assert clf.representation_ in INPUT_SPACES  # no meta_fit: no "meta"
    assert clf.score(X, y) > 0.95
    assert clf.annotator_confusion_.shape == (6, 3, 3)
    assert np.abs(clf.annotator_confusion_ - conf).max() < 0.2
    np.testing.assert_allclose(clf.annotator_confusion_.sum(-1), 1.0)
    assert clf.sample_posterior_.shape == (120, 3)
    assert clf.prototypes_.shape == (3, 6)
    assert clf.n_annotators_ == 6 and clf.n_features_in_ == 6
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(1), 1.0)


def test_string_labels_missing_entries_and_crowd_label_matrix_input():
    X, y = _blobs(3, 20, seed=2)
    names = np.array(["cat", "dog", "owl"])
    Y, _, _ = simulate_annotators(names[y], 4, annotation_rate=0.6, random_state=1)
    assert any(v is None for v in Y.ravel())
    clf = MetaAnnotatorClassifier().fit(X, Y)
    assert list(clf.classes_) == ["cat", "dog", "owl"]
    assert clf.score(X, names[y]) > 0.9
    clf2 = MetaAnnotatorClassifier().fit(X, CrowdLabelMatrix.from_dense(Y))
    np.testing.assert_allclose(clf.predict_proba(X), clf2.predict_proba(X))


def test_unlabelled_items_counted_in_fit_improve_a_few_shot_task():
    # 4 classes, 2 crowd-labelled items each, 50 more per class without labels:
    # the unlabelled items pull the prototypes to the class means (semi-supervised EM)
    gains = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        means = rng.normal(scale=0.7, size=(4, 20))

        def draw(n):
            y = np.repeat(np.arange(4), n)
            return means[y] + rng.normal(size=(len(y), 20)), y

        (X, y), (X_unlabelled, _), (X_query, y_query) = draw(2), draw(50), draw(100)
        Y = simulate_annotators(y, 5, random_state=seed)[0]
        no_labels = np.full((len(X_unlabelled), Y.shape[1]), np.nan)
        clf = MetaAnnotatorClassifier(
            representation="input", unlabelled_weight=1.0, random_state=0
        )
        few = clone(clf).fit(X, Y).score(X_query, y_query)
        more = clf.fit(np.vstack([X, X_unlabelled]), np.vstack([Y, no_labels]))
        assert more.sample_posterior_.shape == (len(X) + len(X_unlabelled), 4)
        gains.append((few, more.score(X_query, y_query)))
    few, more = np.mean(gains, axis=0)
    assert more > 0.8 and more > few + 0.1, gains


def test_fit_matches_dense_em_on_the_standardised_features():
    # fit runs EM on the observed labels; the dense items x annotators x classes
    # EM of meta-training gives the same fitted parameters
    X, y = _blobs(3, 30, seed=3)
    Y, _, _ = simulate_annotators(y, 7, annotation_rate=0.5, random_state=3)
    Y[0] = np.nan  # an example nobody labelled, counted like the others
    clf = MetaAnnotatorClassifier(
        n_em_iter=6, tau=0.5, representation="input", unlabelled_weight=1.0
    )
    clf.fit(X, Y)
    U = (X - X.mean(axis=0)) / X.std(axis=0)
    codes = CrowdLabelMatrix.from_dense(Y).to_codes()
    dense = _em.run_em(
        torch.from_numpy(U)[None],
        _em.one_hot_annotations(torch.from_numpy(codes)[None], 3).double(),
        n_iter=6,
        tau=0.5,
        b=clf.b,
        c=clf.c,
    )
    np.testing.assert_allclose(clf.prototypes_, dense.mu[0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        clf.class_prior_, dense.log_pi[0].exp(), rtol=0, atol=1e-10
    )
    np.testing.assert_allclose(
        clf.annotator_confusion_, dense.log_A[0].exp(), rtol=0, atol=1e-10
    )
    np.testing.assert_allclose(clf.sample_posterior_, dense.lam[0], rtol=0, atol=1e-10)


def test_fit_never_builds_items_by_annotators_arrays():
    # 10 000 items x 200 000 annotators: a dense code matrix alone would take
    # 16 GB, but the 30 000 labels fit in a few MB (the default may fit the MLP
    # head on every item: more items only make the test slower)
    rng = np.random.default_rng(0)
    n, R, K = 10_000, 200_000, 3
    y = rng.integers(0, K, size=n)
    X = y[:, None] * 3.0 + rng.normal(size=(n, 2))
    rows = np.repeat(np.arange(n), 3)
    cols = (rows * 37 + np.tile([0, 1, 2], n) * 66_667) % R
    codes = np.where(
        rng.random(3 * n) < 0.8, np.repeat(y, 3), rng.integers(0, K, 3 * n)
    )
    Y = CrowdLabelMatrix(
        rows,
        cols,
        codes,
        sample_ids=np.arange(n),
        annotator_ids=np.arange(R),
        classes=np.arange(K),
    )
    clf = MetaAnnotatorClassifier().fit(X, Y)  # "auto": held-out checks stay sparse
    assert clf.n_annotators_ == R
    assert clf.annotator_confusion_.shape == (R, K, K)
    assert (clf.sample_posterior_.argmax(1) == y).mean() > 0.95


def test_predict_proba_is_the_closed_form_with_the_class_prior():
    # 80/10/10: items between a rare class's prototype and the common one's
    # belong to the common class, as the class prior (paper Eq. 8) says
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]])

    def draw(n):
        y = np.repeat([0, 1, 2], [8 * n, n, n])
        return centres[y] + rng.normal(size=(len(y), 2)), y

    (X, y), (Xq, yq) = draw(20), draw(50)
    Y, _, _ = simulate_annotators(y, 5, mixture={"hammer": 1.0}, random_state=0)
    clf = MetaAnnotatorClassifier(representation="input").fit(X, Y)
    assert clf.class_prior_[0] > 0.6  # b=10 shrinks the 0.8 towards 1/3
    U = (Xq - X.mean(axis=0)) / X.std(axis=0)
    distances = ((U[:, None, :] - clf.prototypes_[None]) ** 2).sum(axis=-1)
    logits = np.log(clf.class_prior_) - 0.5 * distances
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(clf.predict_proba(Xq), expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(Xq), expected.argmax(axis=1))
    # the prior is what lifts the accuracy above the nearest prototype's
    nearest = distances.argmin(axis=1)
    assert clf.score(Xq, yq) > np.mean(nearest == yq) + 0.1


def test_one_dimensional_y_is_one_annotator():
    X, y = _blobs(2, 30)
    clf = MetaAnnotatorClassifier().fit(X, y)
    assert clf.n_annotators_ == 1
    assert clf.score(X, y) > 0.95


def test_meta_fit_records_history_and_beats_no_meta_learning(meta_fitted):
    clf = meta_fitted
    history = clf.meta_history_
    assert len(history) == 6
    for key in ("train_loss", "valid_loss", "valid_acc", "valid_acc_no_meta"):
        assert all(np.isfinite(history[:, key]))
    # gradient norms before clipping: one per gradient step, the epoch's maximum
    per_batch = history[-1, "batches", :, "grad_norm"]
    assert len(per_batch) == 100 // clf.meta_learner.meta_batch_size
    assert history[-1, "grad_norm_max"] == max(per_batch) > 0
    assert clf.meta_selected_ == "meta"
    assert clf.meta_val_accuracy_ > clf.no_meta_val_accuracy_ + 0.05
    # on the target task, the meta-learned space beats standardised inputs
    Xs, Ys, _, Xq, yq = _target_task()
    meta = clone(clf).fit(Xs, Ys)
    plain = MetaAnnotatorClassifier().fit(Xs, Ys)
    assert meta.representation_ == "meta"
    assert meta.score(Xq, yq) > 0.8
    assert meta.score(Xq, yq) > plain.score(Xq, yq) + 0.1


def test_meta_learning_that_hurts_falls_back_with_a_warning():
    # source classes that share nothing with their validation classes
    X, y = _blobs(12, 30, n_features=4, sep=4.0, seed=3)
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=3,
            n_shot=2,
            n_annotators=3,
            embedding_dim=2,
            hidden_layer_sizes=(4,),
            n_episodes=100,
            episodes_per_epoch=50,
            n_val_episodes=20,
            lr=1e-5,
        ),
        random_state=0,
    )
    with pytest.warns(MetaLearningWarning, match="did not help"):
        clf.meta_fit(X, y)
    assert clf.meta_selected_ in INPUT_SPACES
    assert clf.meta_val_accuracy_ < clf.meta_val_scores_[clf.meta_selected_]
    Xs, ys = X[y < 3], y[y < 3]
    assert clf.fit(Xs, ys).representation_ != "meta"
    assert clone(clf).set_params(representation="meta").fit(Xs, ys).representation_ == (
        "meta"
    )


def test_no_validation_classes_warns():
    X, y = _blobs(3, 20)
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=3, n_shot=2, n_episodes=20, episodes_per_epoch=20
        )
    )
    with pytest.warns(MetaLearningWarning, match="no validation tasks"):
        clf.meta_fit(X, y)
    assert np.isnan(clf.meta_val_accuracy_)
    # the unvalidated encoder is not the default of fit(representation="auto"):
    # the better input space on episodes of the source classes is
    assert clf.meta_selected_ in INPUT_SPACES
    scores = clf.meta_input_scores_
    assert clf.meta_selected_ == max(INPUT_SPACES, key=scores.get)


@pytest.mark.parametrize("n_classes, train_way, val_way", [(4, 2, 2), (6, 4, 2)])
def test_few_source_classes_validate_on_smaller_episodes(n_classes, train_way, val_way):
    X, y = _blobs(n_classes, 20)
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=4,
            n_shot=2,
            n_query=5,
            n_episodes=20,
            episodes_per_epoch=10,
            n_val_episodes=5,
        ),
        random_state=0,
    )
    with pytest.warns(MetaLearningWarning, match=f"{val_way}-way validation"):
        with pytest.warns(MetaLearningWarning, match="cannot validate"):
            clf.meta_fit(X, y)
    assert np.isfinite(clf.meta_val_accuracy_)
    assert set(clf.meta_val_scores_) == {"meta", *INPUT_SPACES}
    # smaller validation episodes cannot validate the encoder; the input spaces
    # are compared on n_way-way episodes of all source classes
    scores = clf.meta_input_scores_
    assert clf.meta_selected_ == max(INPUT_SPACES, key=scores.get)
    assert all(0 <= v <= 1 for v in clf.meta_val_scores_.values())
    # the encoder adapts to 4-way target tasks all the same
    Xt, yt = _blobs(4, 10, seed=9)
    assert clone(clf).set_params(representation="meta").fit(Xt, yt).classes_.size == 4


def test_pseudo_annotation_meta_trains_on_simulated_annotators():
    # spammers only: pseudo-annotated supports carry no label information, so
    # the query loss is at chance (log 3) or worse; clean supports (the
    # default) give the right prototypes of these well separated classes
    X, y = _blobs(9, 15, n_features=4, sep=3.0)
    loss = {}
    for pseudo_annotation in (True, False):
        clf = small_meta_classifier(
            encoder="residual_mlp",  # starts at the input space: no training needed
            pseudo_annotation=pseudo_annotation,
            annotator_mixture={"spammer": 1.0},
            n_episodes=10,
            validation_classes=0.0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MetaLearningWarning)
            clf.meta_fit(X, y)
        loss[pseudo_annotation] = clf.meta_history_[-1, "train_loss"]
    assert loss[True] > np.log(3) > 0.5 > loss[False]


def test_clone_grid_search_and_cross_validation_keep_the_encoder(
    meta_fitted, monkeypatch
):
    Xs, Ys, ys, Xq, yq = _target_task(n_shot=6)
    cloned = clone(meta_fitted)
    # the frozen encoder is a parameter: clone keeps the object itself
    assert cloned.meta_encoder is meta_fitted.meta_encoder
    assert cloned.meta_encoder_ is meta_fitted.meta_encoder_
    assert not hasattr(cloned, "classes_")
    # a clone of a fitted model is not fitted, but keeps the encoder
    refit = clone(clone(meta_fitted).fit(Xs, Ys))
    assert not hasattr(refit, "classes_")
    assert refit.meta_encoder is meta_fitted.meta_encoder

    def no_meta_training(*args, **kwargs):
        raise AssertionError("meta-training ran again")

    monkeypatch.setattr(MetaLearner, "fit", no_meta_training)
    grid = GridSearchCV(
        meta_fitted,
        param_grid={"n_em_iter": [1, 2, 3, 5], "b": [1, 10, 100]},
        cv=KFold(3, shuffle=True, random_state=0),
    ).fit(Xs, Ys)
    best = grid.best_estimator_
    assert best.representation_ == "meta"
    assert best.meta_encoder is meta_fitted.meta_encoder
    assert best.meta_encoder_ is meta_fitted.meta_encoder_
    # the refit model equals a direct fit with the best parameters
    direct = clone(meta_fitted).set_params(**grid.best_params_).fit(Xs, Ys)
    np.testing.assert_allclose(best.predict_proba(Xq), direct.predict_proba(Xq))
    # cross-validation fits clones that keep the encoder: far above the
    # input features on this task
    scores = cross_val_score(meta_fitted, Xs, Ys, cv=KFold(3))
    plain = cross_val_score(MetaAnnotatorClassifier(), Xs, Ys, cv=KFold(3))
    assert scores.shape == (3,)
    assert scores.mean() > plain.mean() + 0.2
    labels = CrowdLabelMatrix.from_dense(Ys)
    grid2 = GridSearchCV(meta_fitted, {"b": [1, 100]}, cv=KFold(3)).fit(Xs, labels)
    assert grid2.best_estimator_.meta_encoder_ is meta_fitted.meta_encoder_
    # in a pipeline, the crowd labels reach fit past the transformers
    pipe = make_pipeline(StandardScaler(), MetaAnnotatorClassifier()).fit(Xs, Ys)
    scaler = StandardScaler().fit(Xs)
    direct = MetaAnnotatorClassifier().fit(scaler.transform(Xs), Ys)
    np.testing.assert_allclose(
        pipe.predict_proba(Xq), direct.predict_proba(scaler.transform(Xq))
    )


def test_joblib_round_trip_gives_identical_predictions(meta_fitted, tmp_path):
    Xs, Ys, _, Xq, _ = _target_task()
    clf = clone(meta_fitted).fit(Xs, Ys)
    path = tmp_path / "model.joblib"
    joblib.dump(clf, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(Xq), clf.predict_proba(Xq))
    np.testing.assert_array_equal(
        clone(loaded).fit(Xs, Ys).predict_proba(Xq), clf.predict_proba(Xq)
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_meta_fit_loads_on_cpu(tmp_path):
    X, y = _nonlinear_source()
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=4,
            n_episodes=100,
            episodes_per_epoch=50,
            n_val_episodes=10,
            device="cuda",
        ),
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        clf.meta_fit(X[~np.isin(y, TARGET)], y[~np.isin(y, TARGET)])
    assert next(clf.meta_encoder_.module.parameters()).device.type == "cpu"
    Xs, Ys, _, Xq, _ = _target_task()
    clf.fit(Xs, Ys)
    joblib.dump(clf, tmp_path / "m.joblib")
    # load in a process that sees no GPU
    import subprocess
    import sys

    code = (
        "import joblib, numpy as np;"
        f"m = joblib.load({str(tmp_path / 'm.joblib')!r});"
        f"np.save({str(tmp_path / 'p.npy')!r}, m.predict_proba(np.load("
        f"{str(tmp_path / 'x.npy')!r})))"
    )
    np.save(tmp_path / "x.npy", Xq)
    env = {"CUDA_VISIBLE_DEVICES": ""}
    import os

    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, **env})
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), clf.predict_proba(Xq))


def test_meta_fit_checkpoint_written_on_a_gpu_resumes_on_the_cpu(tmp_path):
    # the CPU half of test_cuda_meta_fit_loads_on_cpu: a checkpoint whose
    # tensors are tagged as saved from "cuda:0" (as on a GPU machine) resumes
    # here, where torch sees no GPU, and gives the same encoder
    X, y = _blobs(9, 15, n_features=4)
    clf = small_meta_classifier(checkpoint_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        clf.meta_fit(X, y)
        path = next(tmp_path.glob("*resume*"))
        state = torch.load(path, map_location="cpu", weights_only=True)
        with mock.patch.object(
            torch.serialization, "location_tag", lambda storage: "cuda:0"
        ):
            torch.save(state, path)
        if not torch.cuda.is_available():  # the tag is real: a plain load fails
            with pytest.raises(RuntimeError, match="CUDA"):
                torch.load(path, weights_only=True)
        resumed = small_meta_classifier(checkpoint_dir=tmp_path).meta_fit(X, y)
    np.testing.assert_array_equal(
        resumed.meta_encoder_.transform(X), clf.meta_encoder_.transform(X)
    )
    assert resumed.meta_history_[:, "dur"] == clf.meta_history_[:, "dur"]


def test_meta_fit_is_reproducible_with_random_state():
    X, y = _nonlinear_source(n_classes=10, n_per_class=20)
    kw = {
        "n_way": 3,
        "n_shot": 2,
        "n_annotators": 3,
        "n_episodes": 40,
        "episodes_per_epoch": 20,
        "n_val_episodes": 5,
        "embedding_dim": 4,
        "hidden_layer_sizes": (8,),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        a = MetaAnnotatorClassifier(meta_learner=MetaLearner(**kw), random_state=7)
        b = MetaAnnotatorClassifier(meta_learner=MetaLearner(**kw), random_state=7)
        a, b = a.meta_fit(X, y), b.meta_fit(X, y)
    np.testing.assert_array_equal(
        a.meta_encoder_.transform(X), b.meta_encoder_.transform(X)
    )


def test_conv4_encoder_on_images():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(8), 15)
    images = rng.random((len(y), 1, 12, 12)).astype(np.float32)
    images[np.arange(len(y)), 0, y, :] += 2.0  # class = a bright row
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            encoder="conv4",
            n_way=3,
            n_shot=2,
            n_query=5,
            n_annotators=3,
            embedding_dim=16,
            n_episodes=20,
            episodes_per_epoch=10,
            n_val_episodes=5,
        ),
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        clf.meta_fit(images[y < 5], y[y < 5])
    target = y >= 5
    # meta-training helped on the validation classes' images
    assert clf.meta_val_accuracy_ > clf.meta_history_[0, "valid_acc_initial"] + 0.1
    # the prototype model: the probe of the encoder's space
    clf.set_params(representation="meta", head="prototype")
    clf.fit(images[target], y[target])
    assert clf.meta_encoder_.transform(images[:3].reshape(3, -1)).shape == (3, 16)
    # the encoder sees the images: new classes are told apart in its space
    assert clf.score(images[target], y[target]) > 0.9


class _Standardise(torch.nn.Module):
    """``(x - offset) / scale``: a fitted encoder's input scaling as a module."""

    def __init__(self, offset, scale):
        super().__init__()
        self.register_buffer("offset", torch.as_tensor(offset))
        self.register_buffer("scale", torch.as_tensor(scale))

    def forward(self, x):
        return (x - self.offset) / self.scale


def _validation_accuracy(encoder, X, y, params):
    """Re-score a fitted encoder on the validation tasks of ``meta_fit(X, y)``
    with ``params``: the accuracy, before training, of a run that starts from it
    (same seed, hence the same validation classes and tasks)."""
    module = torch.nn.Sequential(
        _Standardise(encoder.offset, encoder.scale), copy.deepcopy(encoder.module)
    )
    for p in module.parameters():
        p.requires_grad_(True)
    probe = {**params, "encoder": module, "n_episodes": 1, "episodes_per_epoch": 1}
    probe = meta_classifier(**probe).meta_fit(X, y)
    return probe.meta_history_[0, "valid_acc_initial"]


def test_checkpoint_dir_and_early_stopping_keep_the_best_encoder(tmp_path):
    X, y = _nonlinear_source(n_classes=10, n_per_class=20)
    params = {
        "n_way": 3,
        "n_shot": 2,
        "n_annotators": 3,
        "n_episodes": 400,
        "episodes_per_epoch": 20,
        "n_val_episodes": 5,
        "lr": 1e-3,
    }
    clf = meta_classifier(**params, patience=2, checkpoint_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        clf.meta_fit(X, y)
        rescored = _validation_accuracy(clf.meta_encoder_, X, y, params)
    history = clf.meta_history_
    assert len(history) < 20  # early stopping fired
    assert (tmp_path / "params.pt").exists()
    assert (tmp_path / "history.json").exists()
    # the encoder that comes back is the best epoch's, not the last one's
    accuracy = history[:, "valid_acc"]
    best = clf.meta_best_epoch_
    assert 0 < best < len(history) and history[best - 1, "valid_acc_best"]
    assert clf.meta_val_accuracy_ == accuracy[best - 1] == max(accuracy)
    assert accuracy[-1] < clf.meta_val_accuracy_
    assert rescored == clf.meta_val_accuracy_


def _scales_task(informative_scale, noise_scale, n_classes=4, n=30, seed=0):
    """Classes apart in 4 features of one scale, 40 noise features of another."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n)
    informative = 2.0 * np.eye(n_classes, 4)[y] + 0.5 * rng.normal(size=(len(y), 4))
    noise = rng.normal(size=(len(y), 40))
    return np.hstack([informative_scale * informative, noise_scale * noise]), y


def _lengths_task(n_classes=4, n=30, seed=0):
    """Classes apart in direction only: every item has a random length (as the
    activations of a CNN grow with an image's contrast)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n)
    direction = 1.0 + 3.0 * np.eye(n_classes, 8)[y] + 0.5 * rng.normal(size=(len(y), 8))
    return np.exp(rng.normal(size=(len(y), 1))) * direction, y


def _short_meta_fit(X, y):
    """A few meta-training episodes on (X, y): enough to compare the input spaces
    on 30 validation episodes (its MetaLearningWarnings ignored)."""
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=4,
            n_shot=(1, 3),
            n_query=5,
            n_episodes=10,
            episodes_per_epoch=10,
            n_val_episodes=30,
        ),
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        return clf.meta_fit(X, y)


def test_normalized_space_ignores_the_length_of_items():
    X, y = _lengths_task()
    # the prototype model: a linear head would learn to ignore the lengths
    clf = MetaAnnotatorClassifier(representation="normalized", head="prototype")
    clf.fit(X, y)
    assert clf.representation_ == "normalized"
    assert clf.score(X, y) > 0.95
    lengths = np.random.default_rng(1).uniform(0.1, 10.0, size=(len(y), 1))
    np.testing.assert_array_equal(clf.predict(lengths * X), clf.predict(X))
    scaled = clone(clf).set_params(representation="scaled").fit(X, y)
    assert scaled.score(X, y) < clf.score(X, y) - 0.1
    # a row of zeros has no direction: it stays at the origin, no NaN
    assert np.isfinite(clf.predict_proba(np.zeros((1, X.shape[1])))).all()


def test_few_source_classes_choose_the_normalized_space_for_directions():
    X, y = _lengths_task(n_classes=6)
    clf = _short_meta_fit(X, y)
    assert clf.meta_selected_ == "normalized"
    scores = clf.meta_input_scores_
    assert scores["normalized"] > max(scores["input"], scores["scaled"]) + 0.1
    # a 1-shot target task keeps it (too small to check)
    Xt, yt = _lengths_task(n=1, seed=5)
    assert clf.fit(Xt, yt).representation_ == "normalized"


@pytest.mark.parametrize(
    "informative_scale, noise_scale, standardise",
    # standardising blows the small noise features up to the informative ones'
    # scale: one global scale is better (the items' lengths are alike, so
    # "normalized" does as well); the other way round, standardising shrinks
    # the loud noise features and wins
    [(1.0, 0.05, False), (0.05, 1.0, True)],
)
def test_few_source_classes_choose_the_better_input_space(
    informative_scale, noise_scale, standardise
):
    X, y = _scales_task(informative_scale, noise_scale)
    clf = _short_meta_fit(X, y)  # 4 source classes: 2-way validation episodes
    scores = clf.meta_input_scores_
    global_best = max(scores["scaled"], scores["normalized"])
    if standardise:
        assert clf.meta_selected_ == "input"
        assert scores["input"] > global_best + 0.1
    else:
        assert clf.meta_selected_ in ("scaled", "normalized")
        assert global_best > scores["input"] + 0.1
    # fit(representation="auto") keeps it on a 1-shot target task (too small for
    # held-out crowd labels to overrule it)
    Xt, yt = _scales_task(informative_scale, noise_scale, n=1, seed=5)
    assert clf.fit(Xt, yt).representation_ == clf.meta_selected_


def test_the_check_switches_only_to_input_spaces_plausible_on_the_source():
    X, y = _scales_task(0.05, 1.0)  # standardising wins by far on the source
    clf = _short_meta_fit(X, y)
    assert clf.meta_selected_ == "input"
    assert clf.meta_input_candidates_ == ("input",)
    Xt, yt = _scales_task(0.05, 1.0, n=5, seed=5)  # large enough to be checked
    scores = clf.fit(Xt, yt).representation_scores_
    assert set(scores) == {*INPUT_SPACES, "meta"}
    # the spaces that clearly lost on the source episodes are not scored
    assert np.isnan(scores["scaled"]) and np.isnan(scores["normalized"])
    assert np.isfinite(scores["input"]) and np.isfinite(scores["meta"])
    # without meta_fit every input space is a candidate
    plain = MetaAnnotatorClassifier(random_state=0).fit(Xt, yt)
    assert set(plain.representation_scores_) == set(INPUT_SPACES)
    assert np.isfinite(list(plain.representation_scores_.values())).all()


def test_validation_data_of_source_classes_chooses_the_epoch_not_the_space():
    X, y = _scales_task(1.0, 0.05, n=40)
    held = np.arange(len(y)) % 4 == 0  # images of the same classes
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=4,
            n_shot=(1, 3),
            n_query=5,
            n_episodes=20,
            episodes_per_epoch=10,
            n_val_episodes=20,
        ),
        random_state=0,
    )
    with pytest.warns(MetaLearningWarning, match="X_val shares 4 classes"):
        clf.meta_fit(X[~held], y[~held], X_val=X[held], y_val=y[held])
    assert clf.meta_best_epoch_ is not None  # the epoch is still chosen on them
    assert set(clf.meta_val_scores_) == {"meta", *INPUT_SPACES}
    # the better input space, though the encoder scored higher on these tasks
    scores = clf.meta_input_scores_
    assert clf.meta_selected_ == max(INPUT_SPACES, key=scores.get) != "input"
    assert clf.meta_input_scores_ == {k: clf.meta_val_scores_[k] for k in INPUT_SPACES}
