"""Tests of the MajorityVote and DawidSkene aggregators."""
# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from sklearn_metaannot.aggregation import DawidSkene, MajorityVote
from sklearn_metaannot.crowd._labels import CrowdLabelMatrix


def make_crowd(seed, *, n_items=300, n_workers=20, n_classes=3, n_hammers=0, rate=1.0):
    """A synthetic crowd with known confusion matrices.

    Honest workers answer correctly with probability >= 0.6 (the rest of each
    row is Dirichlet noise); the last ``n_hammers`` workers answer one fixed
    class whatever the truth. Each (item, worker) cell is labelled with
    probability ``rate``. Returns truth, confusions [worker, true, observed]
    and the (n_items, n_workers) labels with -1 for missing.
    """
    rng = np.random.default_rng(seed)
    k = n_classes
    truth = rng.integers(0, k, n_items)
    conf = 0.4 * rng.dirichlet(np.ones(k), size=(n_workers, k))
    conf[:, np.arange(k), np.arange(k)] += 0.6
    for j in range(n_workers - n_hammers, n_workers):
        conf[j] = 0.0
        conf[j, :, j % k] = 1.0
    cum = conf[np.arange(n_workers)[None, :], truth[:, None]].cumsum(axis=-1)
    u = rng.random((n_items, n_workers, 1))
    Y = np.minimum((u > cum).sum(axis=-1), k - 1)
    Y = np.where(rng.random((n_items, n_workers)) < rate, Y, -1)
    return truth, conf, Y


# ---------------------------------------------------------------------- MajorityVote


def test_majority_vote_attributes():
    Y = np.array([[0, 1, 1], [2, 2, np.nan], [np.nan] * 3, [0, 2, np.nan]])
    mv = MajorityVote(tie_break="first").fit(Y)
    np.testing.assert_array_equal(mv.classes_, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(mv.labels_, [1.0, 2.0, np.nan, 0.0])
    np.testing.assert_allclose(
        mv.probas_,
        [[1 / 3, 2 / 3, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3], [0.5, 0, 0.5]],
    )
    np.testing.assert_array_equal(mv.fit_predict(Y), mv.labels_)


def test_majority_vote_random_ties_are_seeded():
    Y = np.array([[0, 1]] * 50)
    a = MajorityVote(random_state=0).fit_predict(Y)
    b = MajorityVote(random_state=0).fit_predict(Y)
    np.testing.assert_array_equal(a, b)
    assert set(a.tolist()) == {0, 1}


def test_majority_vote_string_labels_and_input_types():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        {
            "task": ["q1", "q1", "q1", "q2", "q3"],
            "worker": ["w1", "w2", "w3", "w1", "w3"],
            "label": ["spam", "ham", "spam", "ham", "ham"],
        }
    )
    expected = np.array(["spam", "ham", "ham"], dtype=object)
    Y = CrowdLabelMatrix.from_long(df)
    for data in [df, Y, Y.to_dense(missing=None), Y.to_dense()]:
        labels = MajorityVote(random_state=0).fit_predict(data)
        np.testing.assert_array_equal(labels, expected)
    codes = MajorityVote().fit(Y.to_sparse())
    np.testing.assert_array_equal(codes.labels_, [1, 0, 0])  # codes of ham, spam


def test_majority_vote_predict_proba():
    mv = MajorityVote().fit([[0, 1], [2, 2]])
    np.testing.assert_array_equal(
        mv.predict_proba([[1, 1], [np.nan, np.nan]]), [[0, 1, 0], [1 / 3] * 3]
    )
    with pytest.raises(ValueError, match=r"Y contains 1 value\(s\) not in classes_"):
        mv.predict_proba([[5, 1]])
    np.testing.assert_array_equal(
        MajorityVote().predict_proba([["a", "b"]]), [[0.5, 0.5]]
    )


def test_majority_vote_bad_parameters():
    with pytest.raises(ValueError, match="'tie_break' parameter of MajorityVote"):
        MajorityVote(tie_break="last").fit([[0, 1]])
    with pytest.raises(ValueError, match="Y holds no label at all"):
        MajorityVote().fit(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="Y must be 1-D"):
        MajorityVote().fit(np.zeros((2, 2, 2)))


# ------------------------------------------------------------------------ DawidSkene


def test_dawid_skene_recovers_confusions():
    truth, conf, Y = make_crowd(0)
    ds = DawidSkene(random_state=0).fit(CrowdLabelMatrix.from_dense(Y, missing=-1))
    assert ds.confusions_.shape == (20, 3, 3)
    np.testing.assert_allclose(ds.confusions_.sum(axis=2), 1.0)
    np.testing.assert_allclose(ds.probas_.sum(axis=1), 1.0)
    np.testing.assert_allclose(ds.priors_.sum(), 1.0)
    assert (ds.labels_ == truth).mean() > 0.99
    # 100 items per true class and worker: sampling noise ~0.03 per cell
    assert np.abs(ds.confusions_ - conf).mean() < 0.05
    np.testing.assert_allclose(ds.priors_, np.bincount(truth) / len(truth), atol=0.01)
    assert 1 <= ds.n_iter_ < 100


def test_dawid_skene_beats_majority_vote_with_spammers():
    truth, conf, Y = make_crowd(1, n_hammers=12, rate=0.5)
    Y = CrowdLabelMatrix.from_dense(Y, missing=-1)
    mv = MajorityVote(random_state=0).fit(Y)
    ds = DawidSkene(random_state=0).fit(Y)
    acc_mv = (mv.labels_ == truth).mean()
    acc_ds = (ds.labels_ == truth).mean()
    assert acc_ds > acc_mv + 0.05, (acc_ds, acc_mv)
    # the hammers' confusion matrices: one column of ones
    hammers = ds.confusions_[-12:]
    observed = np.arange(8, 20) % 3
    np.testing.assert_allclose(
        hammers[np.arange(12), :, observed], np.ones((12, 3)), atol=0.05
    )


def test_dawid_skene_empty_rows_and_silent_annotators():
    Y = np.array(
        [
            [0, 0, 1, np.nan],
            [1, 1, 0, np.nan],
            [np.nan, np.nan, np.nan, np.nan],
            [0, 0, 1, np.nan],
            [1, 1, 0, np.nan],
        ]
    )
    ds = DawidSkene(random_state=0).fit(Y)
    np.testing.assert_allclose(ds.probas_[2], ds.priors_)
    np.testing.assert_array_equal(ds.labels_, [0, 1, np.nan, 0, 1])
    np.testing.assert_allclose(ds.confusions_[3], 0.5)  # never labelled
    assert ds.confusions_[2, 0, 1] > 0.9  # the flipper
    np.testing.assert_array_equal(ds.annotator_ids_, [0, 1, 2, 3])


def test_dawid_skene_string_labels_and_input_types():
    pd = pytest.importorskip("pandas")
    truth, _, Y = make_crowd(2, n_items=60, n_workers=6, rate=0.7)
    names = np.array(["bird", "cat", "dog"], dtype=object)
    dense = np.where(Y >= 0, names[np.maximum(Y, 0)], None)
    M = CrowdLabelMatrix.from_dense(dense)
    ds = DawidSkene(random_state=0, tie_break="first")
    ref = ds.fit_predict(M)
    assert ref.dtype == object and set(ref.tolist()) <= set(names)
    for data in [dense, M.to_long(), pd.DataFrame(dense)]:
        np.testing.assert_array_equal(clone(ds).fit_predict(data), ref)
    S = ds.fit(M.to_sparse()).labels_
    np.testing.assert_array_equal(names[S], ref)


def test_dawid_skene_permuting_annotators_permutes_confusions():
    _, _, Y = make_crowd(3, n_items=100, n_workers=8, rate=0.6)
    perm = np.random.default_rng(0).permutation(8)
    a = DawidSkene(tie_break="first").fit(CrowdLabelMatrix.from_dense(Y, missing=-1))
    b = DawidSkene(tie_break="first").fit(
        CrowdLabelMatrix.from_dense(Y[:, perm], missing=-1)
    )
    np.testing.assert_allclose(b.confusions_, a.confusions_[perm], atol=1e-10)
    np.testing.assert_allclose(b.probas_, a.probas_, atol=1e-10)


def test_dawid_skene_predict_proba_reproduces_last_e_step():
    _, _, Y = make_crowd(4, n_items=80, n_workers=5, rate=0.8)
    M = CrowdLabelMatrix.from_dense(Y, missing=-1)
    ds = DawidSkene().fit(M)
    np.testing.assert_allclose(ds.predict_proba(M), ds.probas_, atol=1e-10)
    with pytest.raises(ValueError, match="Y has 2 annotators but DawidSkene"):
        ds.predict_proba(np.zeros((3, 2)))


def test_dawid_skene_init_and_iterations():
    truth, _, Y = make_crowd(5, n_items=100, n_workers=10, rate=0.5)
    M = CrowdLabelMatrix.from_dense(Y, missing=-1)
    onehot = np.eye(3)[truth]
    ds = DawidSkene(init=onehot, n_iter=0).fit(M)
    assert ds.n_iter_ == 0
    np.testing.assert_allclose(ds.probas_, onehot)
    with pytest.warns(ConvergenceWarning, match="did not converge in n_iter=1"):
        DawidSkene(n_iter=1, tol=0).fit(M)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = DawidSkene(n_iter=500, tol=0).fit(M)
    assert ds.n_iter_ < 500  # tol=0 stops when the likelihood stops improving


def test_dawid_skene_bad_parameters():
    Y = [[0, 1], [1, 1]]
    with pytest.raises(ValueError, match="init must have shape"):
        DawidSkene(init=np.ones((3, 2))).fit(Y)
    with pytest.raises(ValueError, match="init must hold finite non-negative"):
        DawidSkene(init=-np.ones((2, 2))).fit(Y)
    with pytest.raises(ValueError, match="'init' parameter of DawidSkene"):
        DawidSkene(init="random").fit(Y)
    with pytest.raises(ValueError, match="'smoothing' parameter of DawidSkene"):
        DawidSkene(smoothing=-1).fit(Y)
    with pytest.raises(ValueError, match="'n_iter' parameter of DawidSkene"):
        DawidSkene(n_iter=1.5).fit(Y)
    with pytest.raises(ValueError, match="Y holds no label at all"):
        DawidSkene().fit(sp.csr_matrix((3, 2)))


# crowd-kit 1.4 uses pandas features that pandas 3 deprecates
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_dawid_skene_matches_crowdkit():
    pytest.importorskip("crowdkit", reason="crowd-kit (extra [interop])")
    pd = pytest.importorskip("pandas")
    from crowdkit.aggregation import DawidSkene as CKDawidSkene

    truth, _, Y = make_crowd(6, n_items=200, n_workers=10, rate=0.5)
    M = CrowdLabelMatrix.from_dense(Y, missing=-1)
    df = M.to_long()
    ck = CKDawidSkene(n_iter=100, tol=1e-7).fit(df)
    ours = DawidSkene(n_iter=100, tol=1e-7, smoothing=0.0, tie_break="first").fit(M)

    ck_probas = ck.probas_.reindex(index=M.sample_ids, columns=M.classes).to_numpy()
    np.testing.assert_allclose(ours.probas_, ck_probas, atol=0.02)
    ck_labels = ck.labels_.reindex(M.sample_ids).to_numpy()
    assert (ck_labels == ours.labels_).mean() > 0.98
    np.testing.assert_allclose(
        ours.priors_, ck.priors_.reindex(M.classes).to_numpy(), atol=0.02
    )
    # errors_.loc[(worker, observed), true]; absent (worker, observed) pairs are 0
    errors = ck.errors_.reindex(
        pd.MultiIndex.from_product([M.annotator_ids, M.classes]), fill_value=0.0
    )[list(M.classes)].to_numpy()
    ck_conf = errors.reshape(M.n_annotators, M.n_classes, M.n_classes)
    np.testing.assert_allclose(ours.confusions_, ck_conf.transpose(0, 2, 1), atol=0.02)
