"""Episodic meta-training of the encoder through the EM steps, driven by skorch."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import copy
import os
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    GradientNormClipping,
    ProgressBar,
)
from skorch.dataset import unpack_data
from skorch.helper import predefined_split
from skorch.utils import to_tensor
from torch import nn

from ..em._steps import one_hot_annotations, predict_log_proba, run_em
from ..episodes import EpisodeSampler, collate_episodes, pad_episode
from ._checkpoint import CHECKPOINT_NAME, ResumeCheckpoint
from ._throughput import (
    CompiledOrEager,
    GradScalerMixin,
    encoder_autocast,
    episode_iterator,
)


@contextmanager
def torch_threads(n_threads):
    """Run torch with ``n_threads`` intra-op threads, then restore the setting.

    EM on one task is a chain of tiny tensor operations: with several threads,
    synchronisation costs far more than the arithmetic (orders of magnitude on a
    busy 2-core machine), so adaptation and prediction run single-threaded.

    Parameters
    ----------
    n_threads : int
        Torch intra-op threads inside the ``with`` block.

    Examples
    --------
    >>> import torch
    >>> from sklearn_metaannot import torch_threads
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def episode_log_proba(
    U, codes, w, Uq, n_classes, *, n_iter, tau, b, c, detach_responsibilities
):
    """EM on the supports (Algorithm 1) and Eq. 8 on the queries of a task batch.

    ``U`` (T, N, M) support embeddings, ``codes`` (T, N, R) their annotations
    (``-1``: missing), ``w`` (T, N) the sample mask, ``Uq`` (T, Q, M) query
    embeddings; returns the (T, Q, K) log class probabilities of the queries.
    """
    res = support_em(
        U,
        codes,
        w,
        n_classes,
        n_iter=n_iter,
        tau=tau,
        b=b,
        c=c,
        detach_responsibilities=detach_responsibilities,
    )
    return predict_log_proba(Uq, res.mu, res.log_pi)


def support_em(U, codes, w, n_classes, *, n_iter, tau, b, c, detach_responsibilities):
    """EM on the support embeddings of a task batch (Algorithm 1): an ``EMResult``."""
    Y = one_hot_annotations(codes, n_classes).to(U.dtype)
    return run_em(
        U,
        Y,
        n_iter=n_iter,
        tau=tau,
        b=b,
        c=c,
        w=w,
        detach_responsibilities=detach_responsibilities,
    )


#: :func:`episode_log_proba` compiled once per process (``compile_em=True``)
compiled_episode_log_proba = CompiledOrEager(episode_log_proba)


class EpisodicEM(nn.Module):
    """Encoder + EM adaptation on the support + Eq. 8 on the query, for a task batch.

    The module that meta-training back-propagates through, and the EM-variant
    seam of :class:`MetaLearner` (``episodic_em=``): a subclass is built by
    ``MetaLearner.fit`` with the arguments below and trained as this class
    is. It may override

    - :meth:`adapt`, the EM on the support embeddings (return an object with
      the prototypes ``mu`` (T, K, M) and the log class prior ``log_pi``
      (T, K), as :meth:`adapt` does);
    - :meth:`log_proba`, the class probabilities of the queries given that
      result (paper Eq. 8);
    - :meth:`forward`, the whole step, for variants that change what the
      episodes hold (e.g. an extra column of clean labels in
      ``support_codes``, from a custom :class:`EpisodeDataset`); it must
      return the (T, Q, K) log class probabilities of the queries, which
      meta-training scores against the clean query labels (NLL), and it must
      accept the batches of the episode source in use;
    - :meth:`penalty`, a term added to the training loss.

    ``self.training`` tells training batches (which get a gradient) from the
    validation tasks. ``compile_em=True`` compiles the default EM only: a
    subclass that overrides :meth:`adapt` or :meth:`log_proba` runs eagerly.

    Parameters
    ----------
    encoder : nn.Module
        Maps (B, ...) inputs to (B, M) embeddings.
    n_way : int
        Classes per episode K.
    n_em_iter, tau, b, c
        EM settings: iterations J, precision of the prototypes' Gaussian
        prior, Dirichlet concentration of the class prior and of the
        confusion matrices' rows (as :class:`MetaAnnotatorClassifier`'s).
    encoder_alpha : float, default=0.0
        Weight of the encoder's ``penalty()`` (its distance from the identity
        map, for the encoders that define one) in the training loss.
    autocast_dtype : torch.dtype, default=None
        Run the encoder under ``torch.autocast`` with this dtype (bfloat16 or
        float16); its embeddings are cast to float32 for the EM.
    detach_responsibilities : bool, default=False
        No gradient through the E-step responsibilities (an ablation, see
        :func:`~sklearn_metaannot.em._steps.run_em`).
    compile_em : bool, default=False
        Run the EM of the training batches through ``torch.compile``
        (:data:`compiled_episode_log_proba`); validation batches, which have
        no backward pass and other shapes, stay eager.

    See Also
    --------
    MetaLearner : Its ``episodic_em`` parameter takes a subclass.
    EpisodeDataset : The episode source, the other seam of meta-training.

    Examples
    --------
    >>> import torch
    >>> from sklearn_metaannot import EpisodicEM
    >>> # no gradient through the E-step responsibilities
    >>> class StopGradientEM(EpisodicEM):
    ...     def __init__(self, *args, **kwargs):
    ...         super().__init__(*args, detach_responsibilities=True, **kwargs)
    >>> em = StopGradientEM(torch.nn.Identity(), n_way=2)
    >>> # one 2-way task: 3 support items, 2 annotators
    >>> U = torch.tensor([[[0.0, 0.0], [0.1, 0.0], [3.0, 3.0]]])
    >>> codes = torch.tensor([[[0, 0], [0, 1], [1, 1]]])
    >>> result = em.adapt(U, codes)
    >>> result.mu.shape, result.lam.shape
    (torch.Size([1, 2, 2]), torch.Size([1, 3, 2]))
    >>> em.log_proba(U, result).argmax(-1).tolist()
    [[0, 0, 1]]
    """

    def __init__(
        self,
        encoder,
        n_way,
        n_em_iter=3,
        tau=0.0,
        b=10.0,
        c=(2.0, 1.0),
        encoder_alpha=0.0,
        autocast_dtype=None,
        detach_responsibilities=False,
        compile_em=False,
    ):
        super().__init__()
        self.encoder = encoder
        self.n_way = n_way
        self.n_em_iter = n_em_iter
        self.tau, self.b, self.c = tau, b, c
        self.encoder_alpha = encoder_alpha
        self.autocast_dtype = autocast_dtype
        self.detach_responsibilities = detach_responsibilities
        self.compile_em = compile_em

    def penalty(self):
        """``encoder_alpha`` times the encoder's distance from the identity (or 0).

        Added to the training loss of every meta-batch.

        Examples
        --------
        >>> import torch
        >>> from sklearn_metaannot import EpisodicEM
        >>> EpisodicEM(torch.nn.Identity(), n_way=2).penalty()
        0.0
        """
        if self.encoder_alpha and hasattr(self.encoder, "penalty"):
            return self.encoder_alpha * self.encoder.penalty()
        return 0.0

    def adapt(self, U, codes, mask=None, n_classes=None):
        """EM on the support embeddings of a task batch (Algorithm 1).

        Parameters
        ----------
        U : Tensor of shape (T, N, M)
            Support embeddings.
        codes : LongTensor of shape (T, N, R)
            Their annotations, ``-1`` where missing.
        mask : Tensor of shape (T, N), default=None
            0 for padding rows (None: every row is an item).
        n_classes : int, default=None
            Classes K of the batch's episodes (None: ``n_way``).

        Returns
        -------
        EMResult
            Named tuple of the prototypes ``mu`` (T, K, M), the log class
            prior ``log_pi`` (T, K), the log confusion matrices ``log_A``
            (T, R, K, K) and the support posteriors ``lam`` (T, N, K).

        Examples
        --------
        >>> import torch
        >>> from sklearn_metaannot import EpisodicEM
        >>> U = torch.tensor([[[0.0], [0.2], [4.0], [4.2]]])
        >>> codes = torch.tensor([[[0], [0], [1], [-1]]])  # the last: unlabelled
        >>> lam = EpisodicEM(torch.nn.Identity(), n_way=2).adapt(U, codes).lam
        >>> lam[0].argmax(-1).tolist()
        [0, 0, 1, 1]
        """
        return support_em(
            U,
            codes,
            mask,
            self.n_way if n_classes is None else n_classes,
            n_iter=self.n_em_iter,
            tau=self.tau,
            b=self.b,
            c=self.c,
            detach_responsibilities=self.detach_responsibilities,
        )

    def log_proba(self, Uq, result):
        """Log class probabilities (T, Q, K) of query embeddings (Eq. 8).

        ``Uq`` (T, Q, M) are the query embeddings, ``result`` what
        :meth:`adapt` returned for the support.

        Examples
        --------
        >>> import torch
        >>> from sklearn_metaannot import EpisodicEM
        >>> em = EpisodicEM(torch.nn.Identity(), n_way=2)
        >>> U = torch.tensor([[[0.0], [4.0]]])
        >>> result = em.adapt(U, torch.tensor([[[0], [1]]]))
        >>> em.log_proba(torch.tensor([[[0.5], [3.0]]]), result).argmax(-1).tolist()
        [[0, 1]]
        """
        return predict_log_proba(Uq, result.mu, result.log_pi)

    def forward(self, support_X, support_codes, support_mask, query_X, n_classes=None):
        """Log class probabilities (T, Q, K) of the query examples.

        ``support_X`` (T, N, ...), ``support_codes`` (T, N, R) with ``-1`` for
        missing labels, ``support_mask`` (T, N) with 0 for padding rows,
        ``query_X`` (T, Q, ...), ``n_classes`` (T,) the number of classes K of
        the batch's episodes (all equal; ``n_way`` when not given: validation
        episodes may have fewer classes than training ones). Support and query
        items go through the encoder together, then :meth:`adapt` and
        :meth:`log_proba`.

        Examples
        --------
        >>> import numpy as np
        >>> import torch
        >>> from sklearn_metaannot import EpisodeDataset, EpisodeSampler, EpisodicEM
        >>> from sklearn_metaannot.episodes import collate_episodes
        >>> X = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
        >>> y = np.repeat([0, 1, 2], 20)
        >>> sampler = EpisodeSampler(X, y, n_way=2, n_shot=2,
        ...                          n_query=4, n_annotators=3)
        >>> dataset = EpisodeDataset(sampler, n_episodes=2, seed=0)
        >>> batch, query_y = collate_episodes([dataset[0], dataset[1]])
        >>> em = EpisodicEM(torch.nn.Linear(3, 4), n_way=2)
        >>> em(**{k: torch.as_tensor(v) for k, v in batch.items()}).shape
        torch.Size([2, 8, 2])
        """
        K = self.n_way if n_classes is None else int(n_classes.reshape(-1)[0])
        T, N = support_codes.shape[:2]
        Q = query_X.shape[1]
        real = support_mask.reshape(-1) > 0
        xs = support_X.reshape(T * N, *support_X.shape[2:])[real]
        xq = query_X.reshape(T * Q, *query_X.shape[2:])
        # support and query go through the encoder together (one batch-norm batch);
        # padding rows are never embedded.
        X_all = torch.cat([xs, xq])
        if self.autocast_dtype is None:
            Z = self.encoder(X_all)
        else:  # the EM stays in float32 (log space)
            with encoder_autocast(X_all.device.type, self.autocast_dtype):
                Z = self.encoder(X_all)
            Z = Z.float()
        n_real = xs.shape[0]
        U = Z.new_zeros(T * N, Z.shape[1]).index_put(
            (real.nonzero().squeeze(1),), Z[:n_real]
        )
        U = U.view(T, N, -1)
        Uq = Z[n_real:].view(T, Q, -1)
        compiled = self.compile_em and self.training and torch.is_grad_enabled()
        default_em = (
            type(self).adapt is EpisodicEM.adapt
            and type(self).log_proba is EpisodicEM.log_proba
        )
        if compiled and default_em:
            return compiled_episode_log_proba(
                U,
                support_codes,
                support_mask,
                Uq,
                K,
                n_iter=self.n_em_iter,
                tau=self.tau,
                b=self.b,
                c=self.c,
                detach_responsibilities=self.detach_responsibilities,
            )
        return self.log_proba(Uq, self.adapt(U, support_codes, support_mask, K))


class EpisodeDataset(torch.utils.data.Dataset):
    """``n_episodes`` padded episodes; episode i of epoch e is seeded by (seed, e, i).

    With ``fixed=True`` the same episodes come back every epoch (validation);
    they are sampled once and kept.

    The episode source of meta-training, and its seam (:class:`MetaLearner`'s
    ``episodes=``): ``MetaLearner.fit`` builds the training episodes as
    ``episodes(sampler, episodes_per_epoch, seed)`` and the validation tasks
    as ``episodes(sampler, n_val_episodes, seed, fixed=True)``, and sets
    ``epoch`` at the start of every epoch. A subclass may override
    :meth:`episode` (which episode ``i`` is) or ``__getitem__`` (what a
    training item holds: a ``(padded episode, query_y)`` pair as
    :func:`~sklearn_metaannot.episodes.pad_episode` makes it, which
    :func:`~sklearn_metaannot.episodes.collate_episodes` stacks and
    :class:`EpisodicEM` reads). Extra arrays in the padded episode, or extra
    columns in ``support_codes``, need an :class:`EpisodicEM` variant that
    reads them.

    Parameters
    ----------
    sampler : EpisodeSampler
        Draws the episodes.
    n_episodes : int
        Episodes per epoch.
    seed : int
        Seed of the episodes.
    fixed : bool, default=False
        The same episodes every epoch.

    See Also
    --------
    MetaLearner : Its ``episodes`` parameter takes a subclass.
    EpisodicEM : The EM variant, the other seam of meta-training.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import EpisodeDataset, EpisodeSampler
    >>> X, y = np.zeros((60, 2), dtype=np.float32), np.repeat([0, 1, 2], 20)
    >>> sampler = EpisodeSampler(X, y, n_way=2, n_shot=1, n_query=3, n_annotators=2)
    >>> dataset = EpisodeDataset(sampler, n_episodes=5, seed=0)
    >>> padded, query_y = dataset[0]
    >>> len(dataset), padded["support_codes"].shape, query_y.shape
    (5, (2, 2), (6,))
    """

    def __init__(self, sampler: EpisodeSampler, n_episodes, seed, *, fixed=False):
        self.sampler = sampler
        self.n_episodes = int(n_episodes)
        self.seed = int(seed)
        self.fixed = fixed
        self.epoch = 0
        self._episodes = {}

    def __len__(self):
        return self.n_episodes

    def episode(self, i):
        """The (unpadded) episode ``i`` of the current epoch.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_metaannot import EpisodeDataset, EpisodeSampler
        >>> X, y = np.zeros((60, 2), dtype=np.float32), np.repeat([0, 1, 2], 20)
        >>> sampler = EpisodeSampler(X, y, n_way=2, n_shot=1, n_annotators=2)
        >>> dataset = EpisodeDataset(sampler, n_episodes=5, seed=0, fixed=True)
        >>> dataset.episode(3) is dataset.episode(3)  # fixed: kept
        True
        """
        if self.fixed and i in self._episodes:
            return self._episodes[i]
        epoch = 0 if self.fixed else self.epoch
        rng = np.random.default_rng([self.seed, epoch, i])
        ep = self.sampler.sample(rng)
        if self.fixed:
            self._episodes[i] = ep
        return ep

    def __getitem__(self, i):
        ep = self.episode(i)
        s = self.sampler
        return pad_episode(ep, s.max_support_size, s.max_annotators), ep.query_y


class EpisodicNet(NeuralNet):
    """skorch net whose batches are tasks; counts query accuracy on validation."""

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Cross-entropy of the clean query labels (spec 4.1), averaged over tasks.

        In training, plus the encoder's penalty toward the identity map; the
        value is kept as ``last_train_loss_`` for the callbacks.
        """
        y_true = to_tensor(y_true, device=self.device)
        loss = self.criterion_(y_pred.reshape(-1, y_pred.shape[-1]), y_true.reshape(-1))
        if training:
            loss = loss + self.module_.penalty()
            self.last_train_loss_ = loss.detach()
        return loss

    def validation_step(self, batch, **fit_params):
        """Validation loss, plus the number of correct query predictions."""
        out = super().validation_step(batch, **fit_params)
        _, yi = unpack_data(batch)
        yi = to_tensor(yi, device=self.device)
        correct = (out["y_pred"].argmax(-1) == yi).sum().item()
        self.val_counts_[0] += correct
        self.val_counts_[1] += yi.numel()
        return out


class _ScaledEpisodicNet(GradScalerMixin, EpisodicNet):
    """EpisodicNet with float16 loss scaling (``mixed_precision="fp16"``)."""


class _EpisodeCounter(Callback):
    """New training episodes every epoch, fresh validation counts."""

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        if isinstance(dataset_train, EpisodeDataset):
            dataset_train.epoch = len(net.history)
        net.val_counts_ = [0, 0]


class _ValidationAccuracy(Callback):
    """Records ``valid_acc`` (mean query accuracy over the validation tasks)."""

    def on_epoch_end(self, net, **kwargs):
        correct, total = net.val_counts_
        if total:
            net.history.record("valid_acc", correct / total)


class _GradientNorm(GradientNormClipping):
    """skorch's gradient-norm clipping that also records the norm before clipping.

    Every training batch records ``grad_norm``; every epoch ``grad_norm_max``.
    Back-propagation through the unrolled EM steps (Eqs. 3-7) on noisy
    supports gives rare gradients orders of magnitude above the typical one;
    clipping them keeps one bad episode from undoing many good ones.
    """

    def on_grad_computed(self, net, named_parameters, **kwargs):
        params = [p for _, p in named_parameters if p.grad is not None]
        if not params:
            return
        if self.gradient_clip_value is None:
            order = float(self.gradient_clip_norm_type)  # skorch allows "inf"
            norms = [torch.linalg.vector_norm(p.grad, ord=order) for p in params]
            norm = torch.linalg.vector_norm(torch.stack(norms), ord=order)
        else:
            norm = torch.nn.utils.clip_grad_norm_(
                params,
                max_norm=self.gradient_clip_value,
                norm_type=self.gradient_clip_norm_type,
            )
        net.history.record_batch("grad_norm", float(norm))

    def on_epoch_end(self, net, **kwargs):
        norms = [b["grad_norm"] for b in net.history[-1]["batches"] if "grad_norm" in b]
        if norms:
            net.history.record("grad_norm_max", max(norms))


def _encoder_state(net):
    return copy.deepcopy(
        {k: v.detach().cpu() for k, v in net.module_.encoder.state_dict().items()}
    )


def episode_accuracy(net, dataset) -> float:
    """Query accuracy of ``net`` (in eval mode) over the episodes of ``dataset``."""
    correct = total = 0
    for batch in net.get_iterator(dataset, training=False):
        _, yi = unpack_data(batch)
        y_pred = net.evaluation_step(batch, training=False)
        yi = to_tensor(yi, device=net.device)
        correct += (y_pred.argmax(-1) == yi).sum().item()
        total += yi.numel()
    return correct / total


class EpisodeProgressBar(Callback):
    """One tqdm bar over all meta-training episodes, validation accuracy in the postfix.

    The quiet alternative to skorch's per-batch ``ProgressBar`` and epoch table
    (``verbose=1`` of :meth:`MetaAnnotatorClassifier.meta_fit`). The bar is
    written to standard error and closed at the end of training.

    Parameters
    ----------
    total : int
        Number of training episodes (the bar's length).
    desc : str, default="meta-training"
        Text before the bar.
    """

    def __init__(self, total, desc="meta-training"):
        self.total = total
        self.desc = desc

    def initialize(self):
        self.bar_ = None
        return self

    def on_train_begin(self, net, **kwargs):
        from tqdm.auto import tqdm

        self.bar_ = tqdm(total=self.total, desc=self.desc, unit="episode")

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if training and self.bar_ is not None:
            self.bar_.update(int(net.history[-1, "batches", -1]["train_batch_size"]))

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        postfix = {"loss": f"{row['train_loss']:.3f}"} if "train_loss" in row else {}
        if row.get("valid_acc") is not None:
            postfix["valid_acc"] = f"{row['valid_acc']:.3f}"
        if self.bar_ is not None:
            self.bar_.set_postfix(postfix, refresh=True)

    def on_train_end(self, net, **kwargs):
        if self.bar_ is not None:
            self.bar_.close()
            self.bar_ = None


class _KeepBestEncoder(Callback):
    """Keeps, in memory, the encoder weights of the best ``valid_acc`` epoch.

    The encoder before training ("epoch 0") is a candidate too: its validation
    accuracy is recorded as ``valid_acc_initial``.
    """

    def __init__(self, valid_dataset=None):
        self.valid_dataset = valid_dataset

    def initialize(self):
        self.best_score_ = -np.inf
        self.best_state_ = None
        self.best_epoch_ = None
        self.initial_score_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if self.valid_dataset is not None and self.best_state_ is None:
            self.initial_score_ = episode_accuracy(net, self.valid_dataset)
            self.best_score_ = self.initial_score_
            self.best_epoch_ = 0
            self.best_state_ = _encoder_state(net)

    def on_epoch_end(self, net, **kwargs):
        score = net.history[-1].get("valid_acc")
        is_best = score is not None and score > self.best_score_
        if is_best:
            self.best_score_ = score
            self.best_epoch_ = len(net.history)
            self.best_state_ = _encoder_state(net)
        if score is not None:
            net.history.record("valid_acc_best", bool(is_best))
            net.history.record("valid_acc_initial", self.initial_score_)


@dataclass(frozen=True)
class TrainingConfig:
    """The settings of meta-training's loop (what :func:`make_net` builds).

    Attributes
    ----------
    lr, max_epochs, batch_size : float, int, int
        Adam's learning rate, epochs, episodes per gradient step (per process).
    patience : int or None
        Early stopping on the validation accuracy.
    checkpoint_dir : path-like or None
        Where skorch's ``Checkpoint`` and the resume checkpoint go.
    device : str or torch.device
    verbose : int
        0 nothing, 1 one progress bar over ``n_train_episodes``, 2 skorch's.
    max_grad_norm : float or None
        Clipping of each meta-gradient's L2 norm.
    fingerprint : str or None
        Identifies the run for the resume checkpoint.
    n_train_episodes : int or None
        Episodes of the whole run (for the progress bar).
    extra_callbacks, first_callbacks : sequence of (name, callback)
        The user's callbacks (after the package's), and callbacks that run
        before them (synchronisation of data-parallel training).
    main_process : bool
        False for every process but rank 0: no file is written.
    num_workers, pin_memory : int, bool
        The training ``DataLoader``'s workers and page-locked memory (CUDA).
    valid_batch_size : int or None
        Validation tasks per batch (``batch_size`` by default).
    grad_scaling : bool
        float16 loss scaling.
    """

    lr: float
    max_epochs: int
    batch_size: int
    patience: int | None = None
    checkpoint_dir: object = None
    device: object = "cpu"
    verbose: int = 0
    max_grad_norm: float | None = None
    fingerprint: str | None = None
    n_train_episodes: int | None = None
    extra_callbacks: tuple = ()
    first_callbacks: tuple = ()
    main_process: bool = True
    num_workers: int = 0
    pin_memory: bool = False
    valid_batch_size: int | None = None
    grad_scaling: bool = False


def make_net(module, valid_dataset, config):
    """The skorch net that meta-trains ``module`` (an :class:`EpisodicEM`).

    ``valid_dataset`` holds the fixed validation episodes (or None); ``config`` is a
    :class:`TrainingConfig`. With ``checkpoint_dir``, a :class:`ResumeCheckpoint`
    (the net's ``"resume"`` callback) saves the whole state at every epoch end under
    the configuration ``fingerprint``. ``verbose=1`` shows one
    :class:`EpisodeProgressBar` over the ``n_train_episodes`` episodes;
    ``verbose>=2`` skorch's per-batch ``ProgressBar`` and epoch table.
    ``extra_callbacks`` (checked by :func:`check_callbacks`) run after the package's
    own, so they see the ``valid_acc`` and ``grad_norm_max`` of the epoch.
    ``first_callbacks`` run before the package's own (the synchronisation of
    data-parallel meta-training); with ``main_process=False`` (every process but
    rank 0 of a data-parallel run) no file is written. Training episodes are loaded
    by ``num_workers`` ``DataLoader`` workers (``pin_memory`` on CUDA only); the
    fixed validation episodes are collated once
    (:func:`~sklearn_metaannot.meta._throughput.episode_iterator`) in batches of
    ``valid_batch_size`` tasks (``batch_size`` by default).
    ``grad_scaling`` adds float16 loss scaling.
    """
    keep_best = _KeepBestEncoder(valid_dataset)
    callbacks = [
        *config.first_callbacks,
        ("episodes", _EpisodeCounter()),
        ("grad_norm", _GradientNorm(gradient_clip_value=config.max_grad_norm)),
        ("valid_acc", _ValidationAccuracy()),
        ("keep_best", keep_best),
    ]
    if valid_dataset is not None and config.patience is not None:
        callbacks.append(
            (
                "early_stopping",
                EarlyStopping(
                    monitor="valid_acc", lower_is_better=False, patience=config.patience
                ),
            )
        )
    if (
        valid_dataset is not None
        and config.checkpoint_dir is not None
        and config.main_process
    ):
        callbacks.append(
            (
                "checkpoint",
                Checkpoint(
                    monitor="valid_acc_best",
                    dirname=str(config.checkpoint_dir),
                    f_params="params.pt",
                    f_optimizer="optimizer.pt",
                    f_history="history.json",
                    f_criterion=None,
                    load_best=False,
                ),
            )
        )
    if config.checkpoint_dir is not None:
        # after early stopping: its on_train_begin resets what this one restores
        resume = ResumeCheckpoint(
            os.path.join(config.checkpoint_dir, CHECKPOINT_NAME),
            config.fingerprint,
            config.max_epochs,
            write=config.main_process,
        )
        callbacks.append(("resume", resume))
    callbacks.extend(config.extra_callbacks)
    if config.verbose >= 2:
        callbacks.append(("progress_bar", ProgressBar()))
    elif config.verbose == 1 and config.n_train_episodes:
        callbacks.append(("episode_bar", EpisodeProgressBar(config.n_train_episodes)))
    net_class = _ScaledEpisodicNet if config.grad_scaling else EpisodicNet
    net = net_class(
        module,
        criterion=nn.NLLLoss,
        optimizer=torch.optim.Adam,
        lr=config.lr,
        max_epochs=config.max_epochs,
        batch_size=config.batch_size,
        iterator_train__shuffle=False,
        iterator_train__num_workers=config.num_workers,
        iterator_train__collate_fn=collate_episodes,
        iterator_train__pin_memory=config.pin_memory
        and torch.device(config.device).type == "cuda",
        iterator_valid=episode_iterator,
        iterator_valid__device=config.device,
        iterator_valid__batch_size=config.valid_batch_size or config.batch_size,
        train_split=None if valid_dataset is None else predefined_split(valid_dataset),
        callbacks=callbacks,
        device=config.device,
        verbose=int(config.verbose >= 2),  # skorch's epoch table (PrintLog)
    )
    return net, keep_best


# names of the callbacks make_net adds itself (and skorch's defaults)
RESERVED_CALLBACK_NAMES = frozenset(
    {
        "distributed",
        "episodes",
        "grad_norm",
        "valid_acc",
        "keep_best",
        "early_stopping",
        "checkpoint",
        "progress_bar",
        "episode_bar",
        "epoch_timer",
        "train_loss",
        "valid_loss",
        "print_log",
    }
)


def check_callbacks(callbacks, name="callbacks"):
    """Validate user skorch callbacks; return them as a list of (name, callback).

    Parameters
    ----------
    callbacks : list of Callback or (str, Callback), or None
        Unnamed callbacks are named after their class, as skorch does.
    name : str, default="callbacks"
        Argument name used in error messages.

    Returns
    -------
    list of (str, Callback)
        The same callback objects (not copies).

    Examples
    --------
    >>> from skorch.callbacks import EpochScoring
    >>> from sklearn_metaannot.meta._episodic import check_callbacks
    >>> check_callbacks([("acc", EpochScoring("accuracy"))])[0][0]
    'acc'
    >>> check_callbacks(None)
    []
    """
    if callbacks is None:
        return []
    if isinstance(callbacks, (Callback, tuple, str)) or not hasattr(
        callbacks, "__iter__"
    ):
        raise TypeError(
            f"{name} must be a list of skorch callbacks or (name, callback) pairs, "
            f"got {type(callbacks).__name__}"
        )
    named = []
    for item in callbacks:
        if isinstance(item, Callback):
            named.append((type(item).__name__, item))
        elif (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], Callback)
        ):
            named.append(item)
        else:
            raise TypeError(
                f"{name} must hold skorch.callbacks.Callback instances or "
                f"(name, Callback) pairs, got {item!r}"
            )
    names = [n for n, _ in named]
    clash = sorted(set(names) & RESERVED_CALLBACK_NAMES)
    if clash:
        raise ValueError(
            f"{name}: the names {clash} are used by meta_fit's own callbacks; give "
            "yours other names with (name, callback) pairs"
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"{name}: several callbacks are named {duplicates}; name them with "
            "(name, callback) pairs"
        )
    return named


class FittedEncoder:
    """A meta-learned encoder with its input scaling, ready to embed arrays.

    :class:`MetaEncoder`, what :meth:`MetaLearner.fit` produces, is one. The
    module lives on the CPU so that a model trained on a GPU loads anywhere.

    Parameters
    ----------
    module : nn.Module
        The encoder, in eval mode.
    offset, scale : ndarray
        Inputs are embedded as ``module((X - offset) / scale)``.
    n_features_in : int
        Number of (flattened) input features.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot import MetaLearner
    >>> rng = np.random.default_rng(0)
    >>> y_source = np.repeat(np.arange(12), 20)
    >>> X_source = rng.normal(size=(240, 6))
    >>> learner = MetaLearner(
    ...     n_way=3, embedding_dim=8, n_episodes=10, episodes_per_epoch=10,
    ...     n_val_episodes=5, random_state=0).fit(X_source, y_source)
    >>> encoder = learner.meta_encoder_  # a MetaEncoder, hence a FittedEncoder
    >>> encoder.n_features_in, encoder.transform(X_source[:5]).shape
    (6, (5, 8))

    It can be built from any torch module, too:

    >>> import torch
    >>> from sklearn_metaannot import FittedEncoder
    >>> encoder = FittedEncoder(torch.nn.Linear(3, 2), offset=0.0, scale=1.0,
    ...                         n_features_in=3)
    >>> encoder.transform(np.ones((4, 3))).dtype
    dtype('float64')
    """

    def __init__(self, module, offset, scale, n_features_in):
        self.module = module.cpu().eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.offset = np.asarray(offset, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        self.n_features_in = int(n_features_in)

    def scale_inputs(self, X):
        """Apply the input scaling to flat float inputs (n, n_features).

        Examples
        --------
        >>> import numpy as np
        >>> import torch
        >>> from sklearn_metaannot import FittedEncoder
        >>> encoder = FittedEncoder(torch.nn.Identity(), offset=1.0, scale=2.0,
        ...                         n_features_in=2)
        >>> encoder.scale_inputs([[1.0, 5.0]])
        array([[0., 2.]], dtype=float32)
        """
        return ((np.asarray(X, dtype=np.float32) - self.offset) / self.scale).astype(
            np.float32
        )

    def transform(self, X, *, batch_size=1024):
        """Embeddings (float64, shape (n, M)) of flat inputs (n, n_features).

        Examples
        --------
        >>> import numpy as np
        >>> import torch
        >>> from sklearn_metaannot import FittedEncoder
        >>> encoder = FittedEncoder(torch.nn.Identity(), offset=1.0, scale=2.0,
        ...                         n_features_in=2)
        >>> encoder.transform([[1.0, 5.0], [3.0, 3.0]])
        array([[0., 2.],
               [1., 1.]])
        """
        from ._encoders import embed

        Z = embed(self.module, self.scale_inputs(X), batch_size=batch_size)
        return Z.double().numpy()
