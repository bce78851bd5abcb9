"""Tests of the meta-training machinery that the estimator tests do not reach."""
# SPDX-License-Identifier: BSD-3-Clause

import pytest
import torch
from skorch.history import History

from sklearn_metaannot.meta._episodic import _GradientNorm


class _Net:
    """The part of a skorch net that the callback uses."""

    def __init__(self):
        self.history = History()
        self.history.new_epoch()
        self.history.new_batch()


def _module_with_gradient(norm):
    module = torch.nn.Linear(3, 2)
    for p in module.parameters():
        p.grad = torch.ones_like(p)
    total = torch.sqrt(sum((p.grad**2).sum() for p in module.parameters()))
    for p in module.parameters():
        p.grad *= norm / total
    return module


def _grad_norm(module):
    return float(torch.sqrt(sum((p.grad**2).sum() for p in module.parameters())))


@pytest.mark.parametrize("max_norm, expected", [(1.0, 1.0), (10.0, 5.0), (None, 5.0)])
def test_gradient_norm_is_clipped_and_recorded_before_clipping(max_norm, expected):
    module = _module_with_gradient(5.0)
    net = _Net()
    callback = _GradientNorm(gradient_clip_value=max_norm)
    callback.on_grad_computed(net, module.named_parameters())
    assert _grad_norm(module) == pytest.approx(expected, rel=1e-5)
    assert net.history[-1, "batches", -1, "grad_norm"] == pytest.approx(5.0, rel=1e-5)
    callback.on_epoch_end(net)
    assert net.history[-1, "grad_norm_max"] == pytest.approx(5.0, rel=1e-5)


def test_run_em_can_stop_the_gradient_through_the_responsibilities():
    from sklearn_metaannot.em._steps import one_hot_annotations, run_em

    torch.manual_seed(0)
    U = torch.randn(1, 6, 3, dtype=torch.float64, requires_grad=True)
    codes = torch.tensor([[[0, 0], [1, 1], [0, 1], [1, 0], [0, 0], [1, -1]]])
    Y = one_hot_annotations(codes, 2).double()
    full = run_em(U, Y, n_iter=2)
    stop = run_em(U, Y, n_iter=2, detach_responsibilities=True)
    torch.testing.assert_close(stop.mu, full.mu, rtol=0, atol=0)  # same values
    assert full.lam.requires_grad and not stop.lam.requires_grad
    (g_full,) = torch.autograd.grad(full.mu.sum(), U)
    (g_stop,) = torch.autograd.grad(stop.mu.sum(), U)
    assert not torch.allclose(g_full, g_stop)
    # with the responsibilities held fixed, mu_k is their weighted mean of U
    lam = stop.lam[0]
    torch.testing.assert_close(
        g_stop[0],
        (lam / lam.sum(0)).sum(1, keepdim=True) * torch.ones(6, 3, dtype=torch.float64),
    )


def test_the_ablation_seams_build_meta_trainings_module_and_episodes():
    import numpy as np

    from sklearn_metaannot import (
        EpisodeDataset,
        EpisodicEM,
        MetaAnnotatorClassifier,
        MetaLearner,
    )

    calls = set()

    class Episodes(EpisodeDataset):
        def __getitem__(self, i):
            calls.add(("episodes", self.fixed))
            return super().__getitem__(i)

    class Module(EpisodicEM):
        def forward(self, *args, **kwargs):
            calls.add(("forward", self.training))
            return super().forward(*args, **kwargs)

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(9), 10)
    X = rng.normal(size=(90, 4)) + np.eye(9, 4)[y]
    model = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=3,
            n_shot=1,
            n_query=2,
            n_episodes=4,
            episodes_per_epoch=4,
            n_val_episodes=2,
            episodes=Episodes,
            episodic_em=Module,
        )
    )
    model.meta_fit(X, y)  # through a fresh learner with the same parameters
    assert calls == {
        ("episodes", False),
        ("episodes", True),
        ("forward", True),
        ("forward", False),
    }


@pytest.mark.filterwarnings("ignore:meta-learning did not help")
def test_semi_supervised_episodes_carry_unlabelled_examples_into_meta_training():
    # issue 25, item 2: meta-training episodes with unlabelled examples of the
    # episode's classes and of distractor classes (as many as the classes allow)
    import numpy as np

    from sklearn_metaannot import EpisodeDataset, MetaAnnotatorClassifier, MetaLearner

    seen = []

    class Episodes(EpisodeDataset):
        def __getitem__(self, i):
            padded, query_y = super().__getitem__(i)
            seen.append((self.fixed, padded["support_codes"], padded["support_mask"]))
            return padded, query_y

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(9), 12)
    X = rng.normal(size=(108, 4)) + 2.0 * np.eye(9, 4)[y]
    learner = MetaLearner(
        n_way=3,
        n_shot=1,
        n_query=2,
        n_unlabelled=2,
        n_distractor_classes=10,  # more than the classes allow: clipped
        n_episodes=4,
        episodes_per_epoch=4,
        n_val_episodes=2,
        validation_classes=1 / 3,  # 6 training classes, 3 validation classes
        episodes=Episodes,
        random_state=0,
    )
    model = MetaAnnotatorClassifier(meta_learner=learner).meta_fit(X, y)
    assert len(model.meta_history_) >= 1
    for fixed, codes, mask in seen:
        # training: 3 labelled, (3 + 3 distractor classes) x 2 unlabelled;
        # validation: 3 classes, no room for a distractor: (3 + 0) x 2
        n_unlabelled = 6 if fixed else 12
        assert mask.sum() == 3 + n_unlabelled
        assert (codes[:3] >= 0).any(axis=1).all()
        assert (codes[3 : 3 + n_unlabelled] == -1).all()
    assert {fixed for fixed, _, _ in seen} == {False, True}


def test_episodes_without_unlabelled_examples_keep_the_recipe_of_earlier_versions():
    # the recipe identifies checkpoints and saved models: the semi-supervised
    # parameters, off, leave it as it was before they existed (the value of
    # the version before them, commit c0fb744)
    from sklearn_metaannot import MetaLearner

    before = "b079a8c9fdd7f0244003361e3263e78031e7e1490095df455d4839f3fe5262b7"
    assert MetaLearner().recipe() == before
    assert MetaLearner(n_unlabelled=3).recipe() != before
    assert (
        MetaLearner(n_unlabelled=3, n_distractor_classes=1).recipe()
        != MetaLearner(n_unlabelled=3).recipe()
    )
