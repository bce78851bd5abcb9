"""Crash-safe meta-training: a checkpoint at every epoch end, and resuming from it.

The checkpoint (``meta_fit_resume.pt`` in ``checkpoint_dir``) holds everything
that the next epoch depends on: the module and optimizer states, the history,
the state of every callback (the best encoder kept so far, early stopping's
counters, the best losses), the torch random state, and a fingerprint of the
configuration (parameters and data). Episodes are seeded by (seed, epoch,
index), so resuming at epoch e draws the same episodes as an uninterrupted run.
Files are written to a temporary name and renamed, so a crash while writing
leaves the previous checkpoint intact.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import hashlib
import json
import os
import pathlib

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.history import History

CHECKPOINT_NAME = "meta_fit_resume.pt"
_FORMAT = "sklearn-metaannot-meta-fit-checkpoint-1"


def config_fingerprint(params, arrays):
    """SHA-256 of the meta-training parameters and the data arrays.

    ``params`` is a dict of parameters (compared through their ``repr``);
    ``arrays`` a sequence of arrays or ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot.meta._checkpoint import config_fingerprint
    >>> a = config_fingerprint({"lr": 0.1}, [np.zeros(3), None])
    >>> a == config_fingerprint({"lr": 0.1}, [np.zeros(3), None])
    True
    >>> a == config_fingerprint({"lr": 0.2}, [np.zeros(3), None])
    False
    """
    digest = hashlib.sha256()
    digest.update(repr(sorted(params.items())).encode())
    for array in arrays:
        if array is None:
            digest.update(b"none")
            continue
        array = np.asarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        if array.dtype.kind == "O":
            digest.update(repr(array.tolist()).encode())
        else:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _plain(value):
    """``value`` as a type that ``torch.load(weights_only=True)`` accepts, or None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return True, value
    if isinstance(value, torch.Tensor):
        return True, value.detach().cpu().clone()
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    ):
        return True, {k: v.detach().cpu().clone() for k, v in value.items()}
    return False, None


def _callback_states(net, skip):
    """Trailing-underscore attributes of the callbacks that can be stored."""
    states = {}
    for name, callback in net.callbacks_:
        if callback is skip:
            continue
        state = {}
        for key, value in vars(callback).items():
            if key.endswith("_") and not key.startswith("_"):
                ok, plain = _plain(value)
                if ok:
                    state[key] = plain
        states[name] = state
    return states


def _history_json(history):
    return json.dumps(
        list(history),
        default=lambda o: o.item() if isinstance(o, np.generic) else str(o),
    )


class ResumeCheckpoint(Callback):
    """Writes the full training state at every epoch end and at the end of training.

    Parameters
    ----------
    path : path-like
        The checkpoint file.
    fingerprint : str
        Identifies the configuration; a checkpoint with another one is not resumed.
    max_epochs : int
        Epochs of the whole run (to tell a finished run from an interrupted one).
    write : bool, default=True
        False only reads the checkpoint (when resuming) and writes nothing:
        the processes of data-parallel meta-training other than rank 0.
    """

    def __init__(self, path, fingerprint, max_epochs, write=True):
        self.path = path
        self.fingerprint = fingerprint
        self.max_epochs = max_epochs
        self.write = write
        self.pending = None

    def _save(self, net, finished):
        if not self.write:
            return
        path = pathlib.Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "format": _FORMAT,
            "fingerprint": self.fingerprint,
            "finished": bool(finished),
            "epochs": len(net.history),
            "module": {
                k: v.detach().cpu().clone() for k, v in net.module_.state_dict().items()
            },
            "optimizer": net.optimizer_.state_dict(),
            "history": _history_json(net.history),
            "callbacks": _callback_states(net, skip=self),
            "torch_rng": torch.get_rng_state(),
        }
        if hasattr(net, "grad_scaler_"):  # mixed_precision="fp16": the loss scale
            state["grad_scaler"] = net.grad_scaler_.state_dict()
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic: a crash never leaves half a checkpoint

    def on_epoch_end(self, net, **kwargs):
        self._save(net, finished=len(net.history) >= self.max_epochs)

    def on_train_end(self, net, **kwargs):
        stopped = any(
            getattr(cb, "misses_", 0) >= getattr(cb, "patience", np.inf)
            for _, cb in net.callbacks_
        )
        self._save(net, finished=stopped or len(net.history) >= self.max_epochs)

    def on_train_begin(self, net, **kwargs):
        # runs after the other callbacks' on_train_begin (this one is last),
        # which reset their counters: put the saved ones back
        if self.pending is not None:
            _restore_callbacks(net, self.pending["callbacks"])
            torch.set_rng_state(self.pending["torch_rng"])
            self.pending = None


def _restore_callbacks(net, states):
    callbacks = dict(net.callbacks_)
    for name, state in states.items():
        if name in callbacks:
            for key, value in state.items():
                setattr(callbacks[name], key, value)


def load_checkpoint(path):
    """Read a checkpoint written by :class:`ResumeCheckpoint`.

    Raises a ValueError naming the file when it is truncated or corrupted.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from sklearn_metaannot.meta._checkpoint import load_checkpoint
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "meta_fit_resume.pt"
    >>> _ = path.write_bytes(b"garbage")
    >>> try:
    ...     load_checkpoint(path)
    ... except ValueError as exc:
    ...     print(str(path) in str(exc), "truncated or corrupted" in str(exc))
    True True
    """
    problem = None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle opcodes, ...
        state, problem = None, f"{type(exc).__name__}: {str(exc)[:200]}"
    keys = {"format", "fingerprint", "finished", "module", "optimizer", "history"}
    if problem is None and not (
        isinstance(state, dict) and keys <= set(state) and state["format"] == _FORMAT
    ):
        problem = "it does not hold a meta_fit checkpoint"
    if problem is None:
        try:
            state["history"] = History(json.loads(state["history"]))
        except (TypeError, ValueError) as exc:
            problem = f"its history is not valid JSON ({exc})"
    if problem is not None:
        raise ValueError(
            f"the meta_fit checkpoint {path} is truncated or corrupted ({problem}); "
            "delete it to start meta-training afresh, or restore a good copy"
        )
    return state


def fit_or_resume(net, dataset, checkpoint):
    """``net.fit(dataset)``, or resume it from ``checkpoint``'s file if there is one.

    ``checkpoint`` is the :class:`ResumeCheckpoint` among the net's callbacks,
    or None (then this is ``net.fit``).
    """
    path = None if checkpoint is None else pathlib.Path(checkpoint.path)
    if path is None or not path.exists():
        return net.fit(dataset, y=None)
    state = load_checkpoint(path)
    if state["fingerprint"] != checkpoint.fingerprint:
        raise ValueError(
            f"the meta_fit checkpoint {path} was written by a meta_fit with other "
            "parameters or data (with random_state=None every call differs), so "
            "it cannot be resumed; delete it or choose another checkpoint_dir"
        )
    net.initialize()
    try:
        net.module_.load_state_dict(state["module"])
        net.optimizer_.load_state_dict(state["optimizer"])
        if "grad_scaler" in state and hasattr(net, "grad_scaler_"):
            net.grad_scaler_.load_state_dict(state["grad_scaler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ValueError(
            f"the meta_fit checkpoint {path} does not match the encoder: {exc}"
        ) from None
    net.history = state["history"]
    _restore_callbacks(net, state["callbacks"])
    if state["finished"]:
        return net
    checkpoint.pending = state
    remaining = checkpoint.max_epochs - len(net.history)
    return net.partial_fit(dataset, y=None, epochs=remaining)
