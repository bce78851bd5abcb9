"""Data-loading workers, mixed precision and cheaper validation of meta_fit."""
# SPDX-License-Identifier: BSD-3-Clause

import shutil
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sklearn_metaannot import EpisodeSampler, MetaAnnotatorClassifier, MetaLearner
from sklearn_metaannot.adapt._representation import no_meta_accuracy
from sklearn_metaannot.em._steps import one_hot_annotations, predict_log_proba, run_em
from sklearn_metaannot.meta._encoders import build_encoder
from sklearn_metaannot.meta._episodic import (
    EpisodeDataset,
    EpisodicEM,
    TrainingConfig,
    episode_accuracy,
    make_net,
)
from sklearn_metaannot.meta._throughput import episode_iterator, validation_batch_size


def _source(n_classes=9, per_class=20, n_features=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), per_class)
    X = rng.normal(size=(len(y), n_features)) + 2 * np.eye(n_classes, n_features)[y]
    return X.astype(np.float32), y


def _meta_fit(**params):
    X, y = _source()
    kw = {
        "n_way": 3,
        "embedding_dim": 8,
        "hidden_layer_sizes": (16,),
        "n_episodes": 24,
        "episodes_per_epoch": 8,
        "n_val_episodes": 10,
        "validation_classes": 0.34,
        "random_state": 0,
        "n_threads": 1,
    }
    kw.update(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MetaAnnotatorClassifier(meta_learner=MetaLearner(**kw)).meta_fit(X, y)


def _weights(clf):
    return [p.detach().numpy() for p in clf.meta_encoder_.module.parameters()]


def test_num_workers_gives_the_same_encoder_and_history():
    a = _meta_fit(num_workers=0)
    b = _meta_fit(num_workers=2, pin_memory=True)  # pin_memory: ignored on the CPU
    for wa, wb in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(wa, wb)
    assert [r["train_loss"] for r in a.meta_history_] == [
        r["train_loss"] for r in b.meta_history_
    ]
    assert a.meta_val_scores_ == b.meta_val_scores_


@pytest.mark.parametrize("mixed_precision", ["bf16", "fp16"])
def test_mixed_precision_runs_on_the_cpu(mixed_precision):
    clf = _meta_fit(mixed_precision=mixed_precision)
    losses = [r["train_loss"] for r in clf.meta_history_]
    assert np.all(np.isfinite(losses))
    assert all(np.isfinite(w).all() for w in _weights(clf))
    # close to the float32 run, not equal to it
    ref = [r["train_loss"] for r in _meta_fit().meta_history_]
    np.testing.assert_allclose(losses, ref, rtol=0.05)


def test_mixed_precision_keeps_the_em_in_float32():
    torch.manual_seed(0)
    module = EpisodicEM(torch.nn.Linear(4, 3), 2, autocast_dtype=torch.bfloat16)
    seen = {}
    import sklearn_metaannot.meta._episodic as meta

    original = meta.run_em

    def spy(U, Y, **kw):
        seen["dtype"] = U.dtype
        return original(U, Y, **kw)

    meta.run_em = spy
    try:
        out = module(
            torch.randn(1, 4, 4),
            torch.tensor([[[0], [0], [1], [1]]]),
            torch.ones(1, 4),
            torch.randn(1, 6, 4),
        )
    finally:
        meta.run_em = original
    assert seen["dtype"] == torch.float32 and out.dtype == torch.float32


@pytest.mark.parametrize(
    "params, name",
    [
        ({"num_workers": -1}, "num_workers"),
        ({"num_workers": 1.5}, "num_workers"),
        ({"pin_memory": "yes"}, "pin_memory"),
        ({"mixed_precision": True}, "mixed_precision"),
        ({"mixed_precision": "fp32"}, "mixed_precision"),
    ],
)
def test_invalid_throughput_parameters(params, name):
    X, y = _source()
    with pytest.raises(ValueError, match=name):
        MetaAnnotatorClassifier(meta_learner=MetaLearner(**params)).meta_fit(X, y)


def _val_dataset(n_episodes=13):
    X, y = _source()
    sampler = EpisodeSampler(X, y, n_way=3, n_shot=(1, 3), n_annotators=(2, 4))
    return EpisodeDataset(sampler, n_episodes, seed=3, fixed=True)


def test_fixed_episodes_are_sampled_once_and_batches_cached():
    ds = _val_dataset()
    first = ds.episode(2)
    assert ds.episode(2) is first
    batches = episode_iterator(ds, batch_size=5)
    assert [len(b[1]) for b in batches] == [5, 5, 3]
    assert episode_iterator(ds, batch_size=5) is batches
    # the same content as skorch's DataLoader
    for ours, ref in zip(batches, DataLoader(ds, batch_size=5)):
        for key in ref[0]:
            torch.testing.assert_close(ours[0][key], ref[0][key], rtol=0, atol=0)
        torch.testing.assert_close(ours[1], ref[1], rtol=0, atol=0)


def test_validation_accuracy_does_not_depend_on_the_validation_batch_size():
    ds = _val_dataset(20)
    torch.manual_seed(0)
    encoder = build_encoder(
        "mlp", 6, embedding_dim=8, hidden_layer_sizes=(16,), image_shape=None
    )
    scores = []
    for valid_batch_size in (None, 20):
        config = TrainingConfig(
            lr=1e-3, max_epochs=1, batch_size=4, valid_batch_size=valid_batch_size
        )
        net, _ = make_net(EpisodicEM(encoder, 3), ds, config)
        net.initialize()
        scores.append(episode_accuracy(net, ds))
    assert scores[0] == scores[1]
    assert validation_batch_size(4, 100) == 16
    assert validation_batch_size(4, 10) == 10


def test_no_meta_accuracy_batched_matches_one_task_at_a_time():
    ds = _val_dataset(30)
    em = {"n_em_iter": 3, "tau": 0.0, "b": 10.0, "c": (2.0, 1.0)}
    for scaling in ("input", "scaled"):
        correct = total = 0
        for i in range(len(ds)):  # the former per-task loop
            ep = ds.episode(i)
            xs = ep.support_X.astype(np.float64)
            xq = ep.query_X.astype(np.float64)
            if scaling == "input":
                mean, scale = xs.mean(0), xs.std(0)
                scale[scale == 0] = 1.0
            else:
                mean, scale = xs.mean(), xs.std() or 1.0
            U = torch.from_numpy((xs - mean) / scale)[None]
            Uq = torch.from_numpy((xq - mean) / scale)[None]
            codes = torch.from_numpy(ep.support_codes)[None]
            Y = one_hot_annotations(codes, 3).double()
            res = run_em(U, Y, n_iter=3, tau=0.0, b=10.0, c=(2.0, 1.0))
            pred = predict_log_proba(Uq, res.mu, res.log_pi)[0].argmax(-1).numpy()
            correct += int((pred == ep.query_y).sum())
            total += len(ep.query_y)
        assert no_meta_accuracy(ds, scaling=scaling, **em) == correct / total


def test_fp16_checkpoint_keeps_the_loss_scale(tmp_path):
    from sklearn_metaannot.meta._checkpoint import CHECKPOINT_NAME, load_checkpoint

    a = _meta_fit(mixed_precision="fp16", checkpoint_dir=tmp_path)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["grad_scaler"]["scale"] > 0
    # a finished run is not repeated: the same encoder comes back
    b = _meta_fit(mixed_precision="fp16", checkpoint_dir=tmp_path)
    for wa, wb in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(wa, wb)


def _episode_batch(T=3, N=6, R=3, K=3, M=4, Q=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(T, N, M, generator=g, requires_grad=True)
    Uq = torch.randn(T, Q, M, generator=g, requires_grad=True)
    codes = torch.randint(-1, K, (T, N, R), generator=g)
    w = torch.ones(T, N)
    w[0, -2:] = 0  # padding rows
    yq = torch.randint(0, K, (T * Q,), generator=g)
    return U, codes, w, Uq, yq


def _loss_and_grads(head, batch, K=3, n_iter=1):
    U, codes, w, Uq, yq = batch
    em = {"n_iter": n_iter, "tau": 0.0, "b": 10.0, "c": (2.0, 1.0)}
    log_proba = head(U, codes, w, Uq, K, detach_responsibilities=False, **em)
    loss = torch.nn.functional.nll_loss(log_proba.reshape(-1, K), yq)
    return (loss, *torch.autograd.grad(loss, (U, Uq)))


@pytest.mark.skipif(
    not any(shutil.which(cxx) for cxx in ("g++", "clang++", "c++")),
    reason="torch.compile on the CPU needs a C++ compiler",
)
def test_compiled_em_matches_the_eager_em_forward_and_backward():
    from sklearn_metaannot.meta._episodic import episode_log_proba
    from sklearn_metaannot.meta._throughput import CompiledOrEager

    compiled = CompiledOrEager(episode_log_proba)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback to eager
        got = _loss_and_grads(compiled, _episode_batch())
    assert compiled.compiled is not None and not compiled.failed
    for ours, ref in zip(got, _loss_and_grads(episode_log_proba, _episode_batch())):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_compile_em_falls_back_to_eager_with_a_warning(monkeypatch):
    from sklearn_metaannot.meta._episodic import episode_log_proba
    from sklearn_metaannot.meta._throughput import CompiledOrEager

    def broken_compile(fn, **kwargs):
        def fail(*args, **kw):
            raise RuntimeError("no C++ compiler")

        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    compiled = CompiledOrEager(episode_log_proba)
    with pytest.warns(RuntimeWarning, match="compile_em=True: torch.compile failed"):
        got = _loss_and_grads(compiled, _episode_batch())
    assert compiled.failed
    for ours, ref in zip(got, _loss_and_grads(episode_log_proba, _episode_batch())):
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def test_compile_em_reports_an_error_of_the_em_itself_and_keeps_compiling(
    monkeypatch,
):
    from sklearn_metaannot.meta._throughput import CompiledOrEager

    compiled_calls = []

    def tracing_compile(fn, **kwargs):  # a compiler that works: it runs fn
        def run(*args, **kw):
            compiled_calls.append(args)
            return fn(*args, **kw)

        return run

    def em(x):
        if x.shape[-1] != 3:
            raise ValueError("expected 3 classes")
        return x.log_softmax(-1)

    monkeypatch.setattr(torch, "compile", tracing_compile)
    wrapped = CompiledOrEager(em)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "compile failed"
        with pytest.raises(ValueError, match="expected 3 classes"):
            wrapped(torch.zeros(2, 4))
        assert not wrapped.failed
        wrapped(torch.zeros(2, 3))
    assert len(compiled_calls) == 2  # the good batch still went compiled


@pytest.mark.parametrize("compile_em", [False, True])
def test_compile_em_routes_only_the_training_batches_through_the_compiled_em(
    monkeypatch, compile_em
):
    import sklearn_metaannot.meta._episodic as meta

    calls = []

    def counting(*args, **kwargs):
        calls.append(torch.is_grad_enabled())
        return meta.episode_log_proba(*args, **kwargs)

    monkeypatch.setattr(meta, "compiled_episode_log_proba", counting)
    model = _meta_fit(compile_em=compile_em, random_state=0)
    # 24 episodes in batches of 4: 6 training batches; validation stays eager
    assert calls == ([True] * 6 if compile_em else [])
    assert model.meta_encoder_ is not None
