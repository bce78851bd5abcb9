"""Throughput of meta-training: data loading, mixed precision, validation batches.

Kept apart from ``_episodic.py`` so that the net itself stays small:

* :func:`check_mixed_precision` and :func:`encoder_autocast`: optional autocast
  of the encoder (bfloat16 or float16, on the CPU and on CUDA); the EM always
  runs in float32 on the embeddings cast back from the autocast dtype;
* :class:`GradScalerMixin`: loss scaling for float16 (bfloat16 needs none);
* :func:`episode_iterator`: skorch's ``iterator_valid``. The validation tasks
  are fixed, so they are sampled, padded, collated (and moved to the device)
  once per ``meta_fit`` and the same batches serve the epoch-0 validation and
  every epoch's; other datasets get a plain ``DataLoader``;
* :func:`validation_batch_size`: validation runs without gradients, so it
  takes several training batches' worth of tasks at once;
* :class:`CompiledOrEager`: the EM of the training episodes through
  ``torch.compile`` (``compile_em=True``), which fuses its many small
  operations; eager, with a warning, where compilation fails.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import contextlib
import warnings

import torch
from skorch.dataset import unpack_data
from torch.utils.data import DataLoader

from ..episodes import collate_episodes

#: accepted values of ``mixed_precision`` and the autocast dtype of each
MIXED_PRECISION = {False: None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_mixed_precision(value):
    """The autocast dtype of a ``mixed_precision`` value (None: full precision).

    Examples
    --------
    >>> from sklearn_metaannot.meta._throughput import check_mixed_precision
    >>> check_mixed_precision("bf16")
    torch.bfloat16
    >>> check_mixed_precision(False) is None
    True
    """
    if value is None or (isinstance(value, bool) and not value):
        return None
    if isinstance(value, str) and value in MIXED_PRECISION:
        return MIXED_PRECISION[value]
    raise ValueError(f"mixed_precision must be False, 'bf16' or 'fp16', got {value!r}")


def encoder_autocast(device_type, dtype):
    """``torch.autocast`` for the encoder call, or a no-op when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


def validation_batch_size(meta_batch_size, n_val_episodes):
    """Tasks per validation batch: four training batches, at most all the tasks.

    Without gradients no activation is kept for back-propagation, so four
    times the training batch needs about the memory of one training batch.
    Tasks are independent and the encoder is in eval mode, so the batch size
    does not change the predictions.
    """
    return max(1, min(int(n_val_episodes), 4 * int(meta_batch_size)))


def episode_iterator(dataset, batch_size, shuffle=False, device=None, **kwargs):
    """skorch ``iterator_valid``: cached batches of fixed episodes, else a DataLoader.

    A fixed :class:`~sklearn_metaannot.meta._episodic.EpisodeDataset` (the validation
    tasks) is collated once, moved to ``device``, and the list of batches is
    kept on the dataset (per batch size and device); other keyword arguments
    (``num_workers``, ``pin_memory``) only apply to the ``DataLoader`` of other
    datasets, since there is nothing left to load.
    """
    if getattr(dataset, "fixed", False) and hasattr(dataset, "episode"):
        cache = dataset.__dict__.setdefault("_batch_cache", {})
        key = (int(batch_size), str(device))
        if key not in cache:
            n = len(dataset)
            batches = []
            for start in range(0, n, batch_size):
                items = [dataset[i] for i in range(start, min(start + batch_size, n))]
                batch = collate_episodes(items)
                if device is not None:
                    batch = _to_device(batch, device)
                batches.append(batch)
            cache[key] = batches
        return cache[key]
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, **kwargs)


def _to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


class GradScalerMixin:
    """skorch net mixin: float16 loss scaling with ``torch.amp.GradScaler``.

    The loss is scaled before ``backward``; the gradients are unscaled before
    ``on_grad_computed``, so that gradient-norm clipping and the recorded
    ``grad_norm`` see the true gradients; the optimiser step is skipped (and
    the scale lowered) when a gradient is not finite.
    """

    def initialize(self):
        super().initialize()
        device_type = torch.device(self.device).type
        self.grad_scaler_ = torch.amp.GradScaler(device_type)
        return self

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.grad_scaler_.scale(loss).backward()
        for name in self._optimizers:
            self.grad_scaler_.unscale_(getattr(self, name + "_"))
        return {"loss": loss, "y_pred": y_pred}

    def _step_optimizer(self, step_fn):
        # GradScaler.step takes no closure: compute the gradients, then step
        step_fn()
        for name in self._optimizers:
            self.grad_scaler_.step(getattr(self, name + "_"))
        self.grad_scaler_.update()


class CompiledOrEager:
    """``fn`` through ``torch.compile``; eager, with a warning, after a failure.

    The EM of an episode batch is some hundred operations on small tensors,
    each of which costs a dispatch (and an autograd node) in eager mode; the
    compiled function runs a few fused kernels forward and backward. Compiling
    takes tens of seconds per new input shape, once per process (the compiled
    graphs are shared by every estimator). Where it cannot (no C++ compiler on
    the CPU, no Triton on CUDA) the eager function runs instead.
    """

    def __init__(self, fn):
        self.fn = fn
        self.compiled = None
        self.failed = False

    def __call__(self, *args, **kwargs):
        if self.failed:
            return self.fn(*args, **kwargs)
        try:
            if self.compiled is None:
                self.compiled = torch.compile(self.fn, dynamic=False)
            return self.compiled(*args, **kwargs)
        except Exception as exc:  # compiler, backend or the function itself
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        # An error of the function itself raises again here, as itself, and
        # leaves compilation on; only a failure that eager mode does not share
        # turns it off (for this wrapper, i.e. the process).
        out = self.fn(*args, **kwargs)
        self.failed = True
        warnings.warn(
            f"compile_em=True: torch.compile failed ({reason}); "
            "the EM of meta-training runs eagerly",
            RuntimeWarning,
            stacklevel=2,
        )
        return out
