"""Tests of the meta-training machinery that the estimator tests do not reach."""
# SPDX-License-Identifier: BSD-3-Clause

import pytest
import torch
from skorch.history import History

from sklearn_metaannot._meta import _GradientNorm


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
