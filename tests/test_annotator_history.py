"""fit(X, Y, annotator_prior=...): annotator history carried from an earlier task."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pandas as pd
import pytest
import torch

import sklearn_metaannot
from sklearn_metaannot import CrowdLabelMatrix, MetaAnnotatorClassifier
from sklearn_metaannot.em import _steps as _em

K = 3
WORKERS = ["w0", "w1", "w2", "w3", "w4"]  # w0, w1 flip k -> k + 1; w2-w4 honest


def _crowd(y, rng, sparse):
    """Two flipping workers who label everything, three honest ones (80 % right).

    With ``sparse`` each item gets one honest label only, so the flippers hold the
    majority on every item.
    """
    labels = {}
    for w in WORKERS:
        if w in ("w0", "w1"):
            labels[w] = ((y + 1) % K).astype(float)
        else:
            right = rng.random(len(y)) < 0.8
            labels[w] = np.where(right, y, rng.integers(0, K, len(y))).astype(float)
    Y = pd.DataFrame(labels)
    if sparse:
        honest = rng.integers(2, 5, len(y))
        for j, w in enumerate(WORKERS[2:], start=2):
            Y.loc[honest != j, w] = np.nan
    return Y


def _tasks(seed):
    """Task A (9 items per class, dense labels), small task B (3 per class), query.

    B's columns are the same workers in another order. A keeps the first 9 of 40
    items drawn per class (the draws of B and the query stay those of a 40-item
    A); below 10 labelled items per class, fit checks no MLP head, so A fits in a
    tenth of the time.
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(K, 8))
    yA, yB, yq = (np.repeat(np.arange(K), n) for n in (40, 3, 100))
    XA, XB, Xq = (centers[y] + rng.normal(size=(len(y), 8)) for y in (yA, yB, yq))
    YA = _crowd(yA, rng, sparse=False)
    YB = _crowd(yB, rng, sparse=True)
    YB = YB[list(np.array(WORKERS)[rng.permutation(len(WORKERS))])]
    kept = (40 * np.arange(K)[:, None] + np.arange(9)).ravel()
    XA, YA, yA = XA[kept], YA.iloc[kept].reset_index(drop=True), yA[kept]
    return (XA, YA, yA), (XB, YB, yB), (Xq, yq)


def _em_model(**params):
    return MetaAnnotatorClassifier(representation="scaled", **params)


def test_history_from_task_a_identifies_flippers_on_small_task_b():
    gains = []
    for seed in range(10):
        (XA, YA, _), (XB, YB, _), (Xq, yq) = _tasks(seed)
        previous = _em_model().fit(XA, YA)
        plain = _em_model().fit(XB, YB)
        carried = _em_model().fit(XB, YB, annotator_prior=previous)
        assert carried.annotator_has_history_.all()
        # the flippers' history is found by id, whatever their column in B
        for r, w in enumerate(carried.annotators_):
            np.testing.assert_allclose(
                carried.annotator_prior_counts_[r],
                previous.annotator_counts_[WORKERS.index(w)],
            )
        gains.append(carried.score(Xq, yq) - plain.score(Xq, yq))
    # measured over seeds 0-19: 0.092 without history (the flippers win every
    # vote), 0.811 with it; smallest gain 0.42 (seeds 0-9: 0.108 and 0.796)
    assert np.mean(gains) > 0.5
    assert min(gains) > 0.2


def test_history_weight_scales_and_zero_weight_ignores_history():
    (XA, YA, _), (XB, YB, _), _ = _tasks(0)
    previous = _em_model().fit(XA, YA)
    plain = _em_model().fit(XB, YB)
    half = _em_model(history_weight=0.5).fit(XB, YB, annotator_prior=previous)
    full = _em_model().fit(XB, YB, annotator_prior=previous)
    np.testing.assert_allclose(
        half.annotator_prior_counts_, 0.5 * full.annotator_prior_counts_
    )
    zero = _em_model(history_weight=0.0).fit(XB, YB, annotator_prior=previous)
    for name in ("prototypes_", "class_prior_", "annotator_confusion_"):
        np.testing.assert_array_equal(getattr(zero, name), getattr(plain, name))


def test_no_prior_is_the_plain_sparse_em_bit_for_bit():
    (_, _, _), (XB, YB, _), _ = _tasks(1)
    clf = _em_model().fit(XB, YB)
    labels = CrowdLabelMatrix.from_dense(YB)
    U = torch.from_numpy(clf._embed(XB))
    res = _em.run_em_sparse(
        U,
        torch.tensor(labels.rows),
        torch.tensor(labels.cols),
        torch.tensor(np.searchsorted(clf.classes_, labels.classes[labels.codes])),
        K,
        len(WORKERS),
        n_iter=clf.n_em_iter,
        tau=clf.tau,
        b=clf.b,
        c=clf._em_params()["c"],
    )
    np.testing.assert_array_equal(clf.prototypes_, res.mu.numpy())
    np.testing.assert_array_equal(clf.annotator_confusion_, res.log_A.exp().numpy())
    np.testing.assert_array_equal(clf.sample_posterior_, res.lam.numpy())
    assert not clf.annotator_has_history_.any()
    np.testing.assert_array_equal(clf.annotator_prior_counts_, 0.0)
    # an empty mapping or zero counts change nothing either
    for prior in ({}, {w: np.zeros((K, K)) for w in WORKERS}):
        other = _em_model().fit(XB, YB, annotator_prior=prior)
        np.testing.assert_array_equal(other.prototypes_, clf.prototypes_)
        np.testing.assert_array_equal(
            other.annotator_confusion_, clf.annotator_confusion_
        )


def test_counts_are_the_m_step_statistics_and_prior_enters_as_pseudo_counts():
    (XA, YA, _), (XB, YB, _), _ = _tasks(2)
    previous = _em_model(c=1.5).fit(XA, YA)
    clf = _em_model(c=1.5).fit(XB, YB, annotator_prior=previous)
    # spec 3.2: alpha^r_kl = (counts + c - 1 + history) / row sum
    conc = clf.annotator_counts_ + 0.5 + clf.annotator_prior_counts_
    np.testing.assert_allclose(
        clf.annotator_confusion_, conc / conc.sum(axis=2, keepdims=True), atol=1e-12
    )
    np.testing.assert_allclose(
        clf.annotator_counts_.sum(axis=(1, 2)), clf.annotator_n_labels_
    )


def test_dense_and_sparse_em_agree_with_prior_counts():
    rng = np.random.default_rng(0)
    N, R = 12, 4
    U = torch.from_numpy(rng.normal(size=(N, 3)))
    codes = rng.integers(-1, K, size=(N, R))
    codes[:, 0] = rng.integers(0, K, N)
    prior = torch.from_numpy(rng.gamma(1.0, 2.0, size=(R, K, K)))
    Y = _em.one_hot_annotations(torch.from_numpy(codes), K).to(torch.float64)
    dense = _em.run_em(U[None], Y[None], b=2.0, c=(2.0, 1.0), prior_counts=prior)
    n, r = np.nonzero(codes >= 0)
    sparse = _em.run_em_sparse(
        U, n, r, codes[n, r], K, R, b=2.0, c=(2.0, 1.0), prior_counts=prior
    )
    np.testing.assert_allclose(dense.log_A[0], sparse.log_A, atol=1e-10)
    np.testing.assert_allclose(dense.mu[0], sparse.mu, atol=1e-10)


def test_classes_are_matched_by_value():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 2))
    Y_old = pd.DataFrame({"a": rng.choice(["x", "y", "z"], 30), "b": ["x"] * 30})
    previous = _em_model().fit(X, Y_old)  # classes_ x, y, z
    Y_new = pd.DataFrame({"b": rng.choice(["z", "q", "x"], 30)})
    clf = _em_model().fit(X, Y_new, classes=["z", "q", "x"], annotator_prior=previous)
    old = previous.annotator_counts_[1]  # annotator "b"
    got = clf.annotator_prior_counts_[0]
    # shared classes z, x at new positions 0, 2 and old positions 2, 0
    np.testing.assert_allclose(got[np.ix_([0, 2], [0, 2])], old[np.ix_([2, 0], [2, 0])])
    # "q" (new only) and "y" (old only) carry no history
    np.testing.assert_array_equal(got[1], 0.0)
    np.testing.assert_array_equal(got[:, 1], 0.0)
    assert clf.annotator_has_history_.tolist() == [True]


def test_chained_history_accumulates():
    (XA, YA, _), (XB, YB, _), _ = _tasks(4)
    a = _em_model().fit(XA, YA)
    b = _em_model().fit(XB, YB, annotator_prior=a)
    c = _em_model().fit(XB, YB, annotator_prior=b)
    np.testing.assert_allclose(
        c.annotator_prior_counts_, b.annotator_counts_ + b.annotator_prior_counts_
    )


def test_no_shared_class_warns():
    X = np.arange(8.0)[:, None]
    previous = _em_model().fit(X, [[0], [1]] * 4)
    with pytest.warns(UserWarning, match="annotator_prior.*share none"):
        clf = _em_model().fit(X, [["a"], ["b"]] * 4, annotator_prior=previous)
    np.testing.assert_array_equal(clf.annotator_prior_counts_, 0.0)


@pytest.mark.parametrize(
    "prior, error, match",
    [
        ({"w0": np.ones((2, 2))}, ValueError, r"annotator_prior\['w0'\].*shape"),
        ({"w1": -np.ones((K, K))}, ValueError, r"annotator_prior\['w1'\].*negative"),
        ({"w2": np.full((K, K), np.nan)}, ValueError, "annotator_prior.*non-finite"),
        ({"other": np.full((K, K), np.inf)}, ValueError, "annotator_prior.*finite"),
        ({"w0": "abc"}, TypeError, r"annotator_prior\['w0'\]"),
        ([np.ones((K, K))], TypeError, "annotator_prior must be"),
        (MetaAnnotatorClassifier(), ValueError, "annotator_prior must be a fitted"),
    ],
)
def test_bad_priors_name_the_argument(prior, error, match):
    (_, _, _), (XB, YB, _), _ = _tasks(0)
    with pytest.raises(error, match=match):
        _em_model().fit(XB, YB, annotator_prior=prior)


def test_annotator_report_is_rejected_with_a_hint():
    (XA, YA, _), (XB, YB, _), _ = _tasks(0)
    report = _em_model().fit(XA, YA).annotator_report()
    with pytest.raises(TypeError, match="annotator_prior.*fitted estimator"):
        _em_model().fit(XB, YB, annotator_prior=report)


def test_negative_history_weight_is_rejected():
    (_, _, _), (XB, YB, _), _ = _tasks(0)
    with pytest.raises(ValueError, match="history_weight"):
        _em_model(history_weight=-1.0).fit(XB, YB)


def test_save_load_keeps_history_and_serves_as_prior(tmp_path):
    (XA, YA, _), (XB, YB, _), (Xq, _) = _tasks(5)
    previous = _em_model().fit(XA, YA)
    clf = _em_model(history_weight=0.7).fit(XB, YB, annotator_prior=previous)
    path = sklearn_metaannot.save(clf, tmp_path / "model.zip")
    loaded = sklearn_metaannot.load(path)
    for name in ("annotator_counts_", "annotator_prior_counts_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(clf, name))
    assert loaded.annotator_has_history_.dtype == bool
    np.testing.assert_array_equal(
        loaded.annotator_has_history_, clf.annotator_has_history_
    )
    assert loaded.history_weight == 0.7
    # a loaded model hands its history on like the original
    a = _em_model().fit(XB, YB, annotator_prior=loaded)
    b = _em_model().fit(XB, YB, annotator_prior=clf)
    np.testing.assert_array_equal(a.predict_proba(Xq), b.predict_proba(Xq))
