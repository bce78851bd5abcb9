"""Data-parallel meta-training over the processes of a launcher (``accelerate launch``).

A script that calls ``meta_fit``, started by ``accelerate launch --num_processes N``
(or any launcher that sets ``WORLD_SIZE``), meta-trains with N processes: each
draws its share of every meta-batch, the gradients are averaged over the
processes before clipping and the optimizer step, and rank 0's validation
counts decide early stopping. The processes therefore take the same decisions,
and at the end they all adopt rank 0's encoder and history.

The global meta-batch (``meta_batch_size`` episodes) is split evenly over the
processes, and the share of rank r of the global batch k holds the episodes
that a one-process run would put in batch k at positions ``r * share`` to
``(r + 1) * share - 1``: N processes draw the same episodes as one process, in
the same meta-batches. With an encoder without batch normalisation, the mean
gradient of a meta-batch is then the one-process gradient (up to the order of
floating-point sums).

The optional ``accelerate`` package (extra ``[distributed]``) sets up the
process group (gloo on CPUs, NCCL on GPUs); it is imported only when a launcher
started several processes.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import os

import torch
from skorch.callbacks import Callback

from ._episodic import EpisodeDataset

# set to 0 to meta-train independently in every process of a launcher
SWITCH = "SKLEARN_METAANNOT_DISTRIBUTED"


def launched_world_size():
    """Number of processes that a launcher started (``WORLD_SIZE``); 1 without one.

    Returns 1 as well when the environment variable
    ``SKLEARN_METAANNOT_DISTRIBUTED`` is ``0``.

    Examples
    --------
    >>> import os
    >>> from sklearn_metaannot.meta._distributed import launched_world_size
    >>> launched_world_size() == int(os.environ.get("WORLD_SIZE", 1))
    True
    """
    if os.environ.get(SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return 1
    raw = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    try:
        world_size = int(raw)
    except ValueError:
        raise ValueError(
            f"the environment variable WORLD_SIZE={raw!r} is not a number of processes"
        ) from None
    if world_size < 1:
        raise ValueError(f"the environment variable WORLD_SIZE={raw!r} must be >= 1")
    return world_size


class ProcessGroup:
    """The processes of data-parallel meta-training, and their collective operations.

    Parameters
    ----------
    rank : int
        This process's index (0 is the main process).
    world_size : int
        Number of processes.
    device : torch.device
        This process's device (its own GPU under NCCL).
    """

    def __init__(self, rank, world_size, device):
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.device = torch.device(device)

    @property
    def is_main(self):
        """Whether this is rank 0, the process that writes files and prints."""
        return self.rank == 0

    def broadcast(self, obj):
        """Rank 0's ``obj`` (any picklable object), on every process."""
        import torch.distributed as dist

        objects = [obj]
        device = self.device if self.device.type == "cuda" else None
        dist.broadcast_object_list(objects, src=0, device=device)
        return objects[0]

    def mean_(self, tensors):
        """Replace each tensor, in place, by its mean over the processes."""
        import torch.distributed as dist

        tensors = list(tensors)
        if not tensors:
            return
        flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for t in tensors:
            n = t.numel()
            t.detach().copy_(flat[offset : offset + n].view_as(t))
            offset += n

    def copy_from_main_(self, tensors):
        """Replace each tensor, in place, by rank 0's."""
        import torch.distributed as dist

        for t in tensors:
            dist.broadcast(t.detach(), src=0)


def process_group(device):
    """The :class:`ProcessGroup` of the launched processes, or None for one process.

    Parameters
    ----------
    device : str or torch.device
        The estimator's ``device``: "cpu" selects the gloo backend; "cuda"
        NCCL, with one GPU per process (``cuda:<local rank>``).

    Returns
    -------
    ProcessGroup or None
        None without a launcher (``WORLD_SIZE`` unset or 1).

    Raises
    ------
    ImportError
        When several processes were launched but ``accelerate`` is not installed.
    """
    world_size = launched_world_size()
    if world_size == 1:
        return None
    try:
        from accelerate import PartialState
    except ImportError as exc:
        raise ImportError(
            f"meta_fit runs in one of WORLD_SIZE={world_size} launched processes and "
            "would meta-train data-parallel, which needs the accelerate package: "
            "pip install 'sklearn-metaannot[distributed]'. To meta-train "
            f"independently in every process instead, set {SWITCH}=0"
        ) from exc
    device = torch.device(device)
    state = PartialState(cpu=device.type == "cpu")
    if state.num_processes != world_size:
        raise RuntimeError(
            f"WORLD_SIZE={world_size} processes were launched but accelerate set up "
            f"{state.num_processes} ({state.distributed_type}); with device="
            f"{str(device)!r}, launch with `accelerate launch --multi_gpu "
            f"--num_processes {world_size}` or torchrun"
        )
    if device.type != "cpu":
        device = state.device
    return ProcessGroup(state.process_index, state.num_processes, device)


def check_divisible(world_size, **counts):
    """A ValueError unless every count splits evenly over ``world_size`` processes.

    Examples
    --------
    >>> from sklearn_metaannot.meta._distributed import check_divisible
    >>> check_divisible(2, meta_batch_size=4)
    >>> check_divisible(2, meta_batch_size=3)
    Traceback (most recent call last):
    ...
    ValueError: meta_batch_size=3 is the global number of episodes over 2 processes ...
    """
    for name, count in counts.items():
        if count % world_size:
            raise ValueError(
                f"{name}={count} is the global number of episodes over {world_size} "
                f"processes and must be a multiple of it; use e.g. "
                f"{name}={max(world_size, count - count % world_size)}"
            )


class ShardedEpisodeDataset(EpisodeDataset):
    """One process's share of every meta-batch of an :class:`EpisodeDataset`.

    Batch ``k`` of ``batch_size`` (global) episodes, ``k * batch_size`` to
    ``(k + 1) * batch_size - 1``, is split into ``world_size`` consecutive
    shares of equal size (the last batch may be smaller); rank r holds the r-th
    share of every batch. Read in order in batches of ``batch_size //
    world_size``, the dataset gives this process its share of each global batch.

    Parameters
    ----------
    dataset : EpisodeDataset
        The global episodes (``n_episodes`` and ``batch_size`` multiples of
        ``world_size``).
    batch_size : int
        Global meta-batch size.
    rank, world_size : int
        This process and the number of processes.

    Examples
    --------
    >>> from sklearn_metaannot.meta._distributed import ShardedEpisodeDataset
    >>> from sklearn_metaannot.meta._episodic import EpisodeDataset
    >>> episodes = EpisodeDataset(None, 10, seed=0)
    >>> [ShardedEpisodeDataset(episodes, 4, 1, 2).global_index(i) for i in range(5)]
    [2, 3, 6, 7, 9]
    """

    def __init__(self, dataset, batch_size, rank, world_size):
        check_divisible(
            world_size, n_episodes=dataset.n_episodes, meta_batch_size=batch_size
        )
        super().__init__(
            dataset.sampler,
            dataset.n_episodes // world_size,
            dataset.seed,
            fixed=dataset.fixed,
        )
        self.epoch = dataset.epoch
        self.n_global = dataset.n_episodes
        self.batch_size = int(batch_size)
        self.rank = int(rank)
        self.world_size = int(world_size)

    def global_index(self, i):
        """Index, among the global episodes, of this process's episode ``i``."""
        local_batch = self.batch_size // self.world_size
        k, j = divmod(int(i), local_batch)
        start = k * self.batch_size
        share = min(self.batch_size, self.n_global - start) // self.world_size
        return start + self.rank * share + j

    def episode(self, i):
        """The (unpadded) episode ``i`` of this process in the current epoch."""
        return super().episode(self.global_index(i))


def _buffers(net):
    return [b for b in net.module_.buffers() if b.is_floating_point()]


class SynchronizeProcesses(Callback):
    """Keeps the processes of data-parallel meta-training in step.

    It must come first among the net's callbacks: its ``on_grad_computed``
    averages the gradients before gradient clipping, and its ``on_epoch_end``
    hands every process rank 0's validation counts before ``valid_acc`` is
    recorded and early stopping reads it.

    - ``on_train_begin``: rank 0's parameters and buffers on every process;
    - ``on_grad_computed``: the mean gradient over the processes, with the
      mean floating-point buffers (batch-norm running statistics) and the mean
      loss, in one collective operation per step;
    - ``on_batch_end`` (training): the batch's ``train_loss`` and
      ``train_batch_size`` of the global meta-batch in the history;
    - ``on_epoch_end``: rank 0's validation counts.

    Parameters
    ----------
    group : ProcessGroup
        The processes.
    """

    def __init__(self, group):
        self.group = group

    def on_train_begin(self, net, **kwargs):
        self.group.copy_from_main_([*net.module_.parameters(), *_buffers(net)])

    def on_grad_computed(self, net, named_parameters, **kwargs):
        grads = []
        for _, p in named_parameters:
            if p.grad is None:  # every process must send the same tensors
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        loss = net.last_train_loss_.detach().reshape(1).clone()
        self.group.mean_([*grads, *_buffers(net), loss])
        self.loss_ = float(loss)

    def on_batch_end(self, net, training=None, **kwargs):
        if not training:
            return
        # every process has a share of the same size
        batch = net.history[-1, "batches", -1]
        batch_size = int(batch["train_batch_size"]) * self.group.world_size
        net.history.record_batch("train_loss", self.loss_)
        net.history.record_batch("train_batch_size", batch_size)

    def on_epoch_end(self, net, **kwargs):
        net.val_counts_ = list(self.group.broadcast(list(net.val_counts_)))


def adopt_main_result(group, net, keep_best):
    """Rank 0's history, kept encoder and final module state, on every process.

    After training, the processes agree on everything ``meta_fit`` reads from
    the net: ``net.history``, the fields of ``keep_best``
    (:class:`~sklearn_metaannot.meta._episodic._KeepBestEncoder`) and the module's
    parameters and buffers.
    """
    fields = ("best_score_", "best_state_", "best_epoch_", "initial_score_")
    result = group.broadcast(
        {
            "history": net.history,
            "keep_best": {name: getattr(keep_best, name) for name in fields},
        }
    )
    net.history = result["history"]
    for name, value in result["keep_best"].items():
        setattr(keep_best, name, value)
    group.copy_from_main_([*net.module_.parameters(), *net.module_.buffers()])
