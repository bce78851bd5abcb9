"""Tests of the episode sampler and of the encoders."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest
import torch

from sklearn_metaannot.episodes import EpisodeSampler, pad_episode
from sklearn_metaannot.meta._encoders import (
    Conv4Encoder,
    MLPEncoder,
    ResidualMLPEncoder,
)


@pytest.fixture
def source():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(8), 12)
    return rng.normal(size=(len(y), 5)), y


def test_episode_structure(source):
    X, y = source
    sampler = EpisodeSampler(
        X, y, n_way=3, n_shot=(1, 4), n_query=5, n_annotators=(2, 6), random_state=0
    )
    for _ in range(20):
        ep = sampler.sample()
        n_shot = len(ep.support_y) // 3
        assert 1 <= n_shot <= 4
        assert 2 <= ep.support_codes.shape[1] <= 6
        assert ep.query_X.shape == (15, 5)
        assert len(set(ep.classes)) == 3
        # support and query examples are distinct rows of the right classes
        for k, c in enumerate(ep.classes):
            rows = X[y == c]
            for x in ep.support_X[ep.support_y == k]:
                assert (rows == x).all(axis=1).any()
        assert ((ep.support_codes >= 0) & (ep.support_codes < 3)).all()


def test_without_pseudo_annotation_labels_are_clean(source):
    X, y = source
    ep = EpisodeSampler(
        X, y, n_way=4, n_shot=2, pseudo_annotation=False, n_query=3, random_state=1
    ).sample()
    np.testing.assert_array_equal(ep.support_codes[:, 0], ep.support_y)


def test_same_seed_same_episode(source):
    X, y = source
    kw = {"n_way": 3, "n_shot": 2, "n_query": 4, "n_annotators": 3}
    a = EpisodeSampler(X, y, **kw).sample(np.random.default_rng(5))
    b = EpisodeSampler(X, y, **kw).sample(np.random.default_rng(5))
    np.testing.assert_array_equal(a.support_X, b.support_X)
    np.testing.assert_array_equal(a.support_codes, b.support_codes)


def test_padding(source):
    X, y = source
    sampler = EpisodeSampler(
        X, y, n_way=3, n_shot=(1, 3), n_query=2, n_annotators=(2, 4), random_state=0
    )
    ep = sampler.sample()
    d = pad_episode(ep, sampler.max_support_size, sampler.max_annotators)
    assert d["support_X"].shape == (9, 5) and d["support_codes"].shape == (9, 4)
    n = len(ep.support_y)
    assert d["support_mask"].sum() == n
    assert (d["support_codes"][n:] == -1).all()


def test_sampler_errors(source):
    X, y = source
    with pytest.raises(ValueError, match="n_way=9 must be between 2 and"):
        EpisodeSampler(X, y, n_way=9)
    with pytest.raises(ValueError, match="n_shot \\+ n_query = 13"):
        EpisodeSampler(X, y, n_way=2, n_shot=3, n_query=10)
    with pytest.raises(TypeError, match="n_shot must be an int or a"):
        EpisodeSampler(X, y, n_way=2, n_shot="many")
    with pytest.raises(ValueError, match="X and y have different"):
        EpisodeSampler(X, y[:-1], n_way=2)


def test_unlabelled_support_examples_and_distractor_classes(source):
    X, y = source
    rows_of = {tuple(x): i for i, x in enumerate(X)}
    sampler = EpisodeSampler(
        X, y, n_way=3, n_shot=2, n_query=3, n_annotators=4,
        n_unlabelled=2, n_distractor_classes=2, random_state=0,
    )  # fmt: skip
    for _ in range(10):
        ep = sampler.sample()
        assert ep.support_X.shape == (6 + (3 + 2) * 2, 5)
        assert ep.support_codes.shape == (16, 4)
        # the labelled part is annotated, every column of the unlabelled part empty
        assert (ep.support_codes[:6] >= 0).all() and (ep.support_codes[6:] == -1).all()
        truth = ep.support_y[6:]
        np.testing.assert_array_equal(truth, [0, 0, 1, 1, 2, 2, -1, -1, -1, -1])
        rows = np.array([rows_of[tuple(x)] for x in ep.support_X])
        query = np.array([rows_of[tuple(x)] for x in ep.query_X])
        # every example once; the unlabelled ones of the right classes, the
        # distractors of 2 classes outside the episode's
        assert len(set(rows) | set(query)) == len(rows) + len(query)
        classes = y[rows[6:]]
        np.testing.assert_array_equal(classes[:6], ep.classes[truth[:6]])
        assert not np.isin(classes[6:], ep.classes).any()
        assert len(np.unique(classes[6:])) == 2
    padded = pad_episode(ep, sampler.max_support_size, sampler.max_annotators)
    assert padded["support_mask"].sum() == 16 == sampler.max_support_size


def test_without_unlabelled_examples_the_episodes_stay_those_of_earlier_versions(
    source,
):
    # the draws of the version before n_unlabelled existed (seed 5): saved
    # benchmark runs and meta-trained encoders stay reproducible
    X, y = source
    kw = {"n_way": 3, "n_shot": 2, "n_query": 4, "n_annotators": 3}
    ep = EpisodeSampler(X, y, **kw).sample(np.random.default_rng(5))
    assert ep.classes.tolist() == [5, 4, 0]
    assert ep.support_codes.tolist() == [
        [0, 0, 0], [0, 0, 0], [1, 1, 1], [1, 0, 1], [2, 1, 2], [2, 2, 2],
    ]  # fmt: skip


def test_unlabelled_sampler_errors(source):
    X, y = source
    with pytest.raises(ValueError, match="n_distractor_classes=1 needs n_unlabelled"):
        EpisodeSampler(X, y, n_way=2, n_distractor_classes=1)
    with pytest.raises(ValueError, match="n_way \\+ n_distractor_classes = 5 \\+ 4"):
        EpisodeSampler(X, y, n_way=5, n_unlabelled=1, n_distractor_classes=4)
    with pytest.raises(ValueError, match="n_shot \\+ n_query \\+ n_unlabelled = 13"):
        EpisodeSampler(X, y, n_way=2, n_shot=1, n_query=10, n_unlabelled=2)
    with pytest.raises(ValueError, match="n_unlabelled must be a non-negative int"):
        EpisodeSampler(X, y, n_way=2, n_unlabelled=-1)


@pytest.mark.parametrize("batch", [1, 7])
def test_encoder_shapes(batch):
    x = torch.randn(batch, 1, 28, 28)
    conv = Conv4Encoder((1, 28, 28)).eval()  # eval: batch norm with a batch of 1
    assert conv(x).shape == (batch, 64)  # M = 64 on 28x28, as in the paper
    small = Conv4Encoder((1, 28, 28), embedding_dim=10).eval()
    assert small(x.flatten(1)).shape == (batch, 10)
    assert Conv4Encoder((1, 8, 8)).eval()(torch.randn(batch, 64)).shape == (batch, 64)
    assert MLPEncoder(12, 5, (7,))(torch.randn(batch, 12)).shape == (batch, 5)


def test_residual_encoder_starts_at_identity():
    enc = ResidualMLPEncoder(6, (16,))
    x = torch.randn(4, 6)
    assert torch.equal(enc(x), x)
