"""Tests of the differentiable EM steps."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest
import torch

from sklearn_metaannot.crowd._annotators import AnnotatorSimulator
from sklearn_metaannot.em import _steps as _em


def _random_task(T=3, N=12, R=4, K=3, M=5, missing=0.3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(T, N, M, generator=g, dtype=dtype)
    codes = torch.randint(0, K, (T, N, R), generator=g)
    codes[torch.rand(T, N, R, generator=g) < missing] = -1
    codes[:, :, -1] = -1  # one annotator who labelled nothing
    codes[:, 0, :] = -1  # one example nobody labelled
    Y = _em.one_hot_annotations(codes, K).to(dtype)
    return U, Y


def test_one_hot_annotations_masks_missing():
    codes = torch.tensor([[[0, -1], [2, 1]]])
    Y = _em.one_hot_annotations(codes, 3)
    assert Y.shape == (1, 2, 2, 3)
    assert Y[0, 0, 1].sum() == 0
    assert Y[0, 1, 0].tolist() == [0.0, 0.0, 1.0]


def test_majority_vote_init_soft_and_uniform_for_unlabelled():
    codes = torch.tensor([[[0, 0, 1], [-1, -1, -1]]])
    lam = _em.majority_vote_init(_em.one_hot_annotations(codes, 2))
    assert torch.allclose(lam[0, 0], torch.tensor([2 / 3, 1 / 3]))
    assert torch.allclose(lam[0, 1], torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize("c", [1.0, 2.0, (3.0, 1.5)])
@pytest.mark.parametrize("tau,b", [(0.0, 1.0), (0.5, 10.0)])
def test_map_objective_never_decreases(c, tau, b):
    U, Y = _random_task(seed=1)
    kw = {"tau": tau, "b": b, "c": c}
    lam = _em.majority_vote_init(Y)
    previous = None
    for _ in range(15):
        mu, log_pi, log_A = _em.m_step(U, Y, lam, **kw)
        obj = _em.map_objective(U, Y, mu, log_pi, log_A, **kw)
        if previous is not None:
            assert torch.all(obj >= previous - 1e-9), (obj, previous)
        previous = obj
        lam = _em.e_step(U, Y, mu, log_pi, log_A)


def test_gradcheck_through_unrolled_em():
    U, Y = _random_task(T=2, N=6, R=3, K=3, M=3, seed=2)
    Uq = torch.randn(2, 4, 3, dtype=torch.float64)
    U.requires_grad_(True)

    def fn(U):
        res = _em.run_em(U, Y, n_iter=3, tau=0.1, b=2.0, c=(2.0, 1.0))
        return _em.predict_log_proba(Uq, res.mu, res.log_pi)

    assert torch.autograd.gradcheck(fn, (U,), eps=1e-6, atol=1e-5)


def test_one_clean_annotator_equals_prototypical_network():
    rng = np.random.default_rng(3)
    K, n_shot, M = 4, 5, 6
    y = np.repeat(np.arange(K), n_shot)
    U = torch.from_numpy(rng.normal(size=(1, K * n_shot, M)))
    Uq = torch.from_numpy(rng.normal(size=(1, 30, M)))
    Y = _em.one_hot_annotations(torch.from_numpy(y)[None, :, None], K).double()
    # balanced classes make the MAP class prior uniform for any b
    res = _em.run_em(U, Y, n_iter=3, tau=0.0, b=1.0, c=(2.0, 1.0))
    proba = _em.predict_log_proba(Uq, res.mu, res.log_pi).exp()[0]
    prototypes = torch.stack([U[0, y == k].mean(0) for k in range(K)])
    dist = torch.cdist(Uq[0], prototypes) ** 2
    protonet = torch.softmax(-0.5 * dist, dim=-1)
    assert torch.allclose(res.mu[0], prototypes, atol=1e-8)
    assert torch.allclose(proba, protonet, atol=1e-8)


def test_confusion_matrices_recovered_on_synthetic_task():
    rng = np.random.default_rng(4)
    K, R, N, M = 3, 6, 600, 2
    y = rng.integers(0, K, N)
    centres = 4.0 * rng.normal(size=(K, M))
    U = centres[y] + rng.normal(size=(N, M))
    sim = AnnotatorSimulator({"hammer": 1.0}, hammer_accuracy=(0.55, 0.85))
    _, conf = sim.sample_confusions(R, K, rng)
    codes = sim.annotate_codes(y, conf, rng)
    Y = _em.one_hot_annotations(torch.from_numpy(codes)[None], K).double()
    res = _em.run_em(torch.from_numpy(U)[None], Y, n_iter=20, tau=0.0, b=1.0, c=1.0)
    estimated = res.log_A[0].exp().numpy()
    assert np.abs(estimated - conf).max() < 0.08
    assert (res.lam[0].argmax(-1).numpy() == y).mean() > 0.95


def test_sample_mask_ignores_padding():
    U, Y = _random_task(T=1, N=8, seed=5)
    w = torch.ones(1, 8, dtype=U.dtype)
    w[0, 5:] = 0
    full = _em.run_em(U, Y, n_iter=2, w=w, b=2.0, c=2.0)
    trimmed = _em.run_em(U[:, :5], Y[:, :5], n_iter=2, b=2.0, c=2.0)
    assert torch.allclose(full.mu, trimmed.mu)
    assert torch.allclose(full.log_pi, trimmed.log_pi)
    assert torch.allclose(full.log_A, trimmed.log_A)


def test_batched_tasks_match_single_tasks():
    U, Y = _random_task(T=3, seed=6)
    batched = _em.run_em(U, Y, n_iter=3, b=10.0, c=(2.0, 1.0))
    for t in range(3):
        single = _em.run_em(U[t : t + 1], Y[t : t + 1], n_iter=3, b=10.0, c=(2.0, 1.0))
        assert torch.allclose(batched.mu[t], single.mu[0])
        assert torch.allclose(batched.lam[t], single.lam[0])


def test_no_nan_with_flat_confusion_prior_and_empty_classes():
    # c = 1 and an annotator with no labels: rows of A are 0/0 without the guard
    U, Y = _random_task(seed=7, missing=0.8)
    res = _em.run_em(U, Y, n_iter=3, tau=0.0, b=1.0, c=1.0)
    for t in res:
        assert torch.isfinite(t).all()
    assert torch.allclose(
        res.log_A[:, -1].exp(), torch.full_like(res.log_A[:, -1], 1 / 3)
    )


def _triplets(Y):
    """(item, annotator, label) index vectors of a one-hot (N, R, K) tensor."""
    item, annotator, label = torch.nonzero(Y > 0, as_tuple=True)
    return item, annotator, label


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"n_iter": 0},
        {"n_iter": 5, "tau": 0.5, "b": 10.0, "c": (2.0, 1.0)},
        {"tau": 1.0, "b": 2.0, "c": 3.0},
    ],
)
def test_sparse_em_equals_dense_em(seed, params):
    # random tasks with many missing labels, an item nobody labelled, an annotator
    # who labelled nothing and one who labelled a single item
    U, Y = _random_task(T=1, N=40, R=9, K=4, M=6, missing=0.7, seed=seed)
    Y[0, :, -2] = 0
    Y[0, 5, -2, 1] = 1
    dense = _em.run_em(U, Y, **params)
    sparse = _em.run_em_sparse(U[0], *_triplets(Y[0]), 4, 9, **params)
    for name, d, s in zip(dense._fields, dense, sparse):
        assert s.shape == d.shape[1:], name
        assert s.dtype == torch.float64, name
        torch.testing.assert_close(s, d[0], atol=1e-10, rtol=0, msg=name)


def test_sparse_em_chunks_give_the_same_result(monkeypatch):
    U, Y = _random_task(T=1, N=50, R=6, K=3, M=4, missing=0.4, seed=7)
    args = (U[0], *_triplets(Y[0]), 3, 6)
    whole = _em.run_em_sparse(*args, n_iter=4, b=5.0)
    monkeypatch.setattr(_em, "_CHUNK", 7)  # labels in many chunks
    chunked = _em.run_em_sparse(*args, n_iter=4, b=5.0)
    for d, s in zip(whole, chunked):
        torch.testing.assert_close(s, d, atol=1e-12, rtol=0)


def test_sparse_em_rejects_bad_triplets():
    U = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"annotator indices must lie in \[0, 2\)"):
        _em.run_em_sparse(U, [0, 1], [0, 2], [0, 1], 2, 2)
    with pytest.raises(ValueError, match="same length"):
        _em.run_em_sparse(U, [0, 1], [0], [0, 1], 2, 2)
    with pytest.raises(ValueError, match="item must be a 1-D integer tensor"):
        _em.run_em_sparse(U, [0.0, 1.0], [0, 1], [0, 1], 2, 2)
    with pytest.raises(ValueError, match=r"U must have shape \(N, M\)"):
        _em.run_em_sparse(U[None], [0], [0], [0], 2, 2)
