"""Differentiable MAP-EM for prototypes and annotator confusion matrices (torch)."""
# SPDX-License-Identifier: BSD-3-Clause

# Shapes used throughout (a leading task dimension ``T`` allows batches of tasks):
#   U      (T, N, M)    embeddings of the support examples
#   Y      (T, N, R, K) one-hot annotations; an all-zero row ``Y[t, n, r]`` means that
#                       annotator r did not label example n (the mask of the spec's I_n)
#   w      (T, N)       sample mask: 1 for real support examples, 0 for padding
#   lam    (T, N, K)    responsibilities lambda_nk = p(t_n = k | u_n, y_n)
#   mu     (T, K, M)    prototypes
#   log_pi (T, K)       log class prior
#   log_A  (T, R, K, K) log confusion matrices,
#                       log_A[t, r, k, l] = log p(y^r = l | t = k)
# Equation numbers refer to the sections of the method specification (paper_spec.md).

from __future__ import annotations

from typing import NamedTuple

import torch

EPS = 1e-10

#: Defaults of the EM of a target task (and of meta-training through it): J
#: iterations, prototype prior precision tau, class-prior concentration b,
#: confusion-row concentration c (diagonal, off-diagonal). The classifier's
#: ``n_em_iter``, ``tau``, ``b`` and ``c`` default to these.
DEFAULT_EM_PARAMS = {"n_iter": 3, "tau": 0.0, "b": 10.0, "c": (2.0, 1.0)}


class EMResult(NamedTuple):
    """Parameters of a task after EM.

    Attributes
    ----------
    mu : Tensor of shape (T, K, M)
        Prototypes.
    log_pi : Tensor of shape (T, K)
        Log class prior.
    log_A : Tensor of shape (T, R, K, K)
        Log confusion matrices, rows indexed by the true class.
    lam : Tensor of shape (T, N, K)
        Posterior of the true labels of the support examples (last E-step).
    """

    mu: torch.Tensor
    log_pi: torch.Tensor
    log_A: torch.Tensor
    lam: torch.Tensor


def one_hot_annotations(codes: torch.Tensor, n_classes: int) -> torch.Tensor:
    """One-hot encode integer label codes, with ``-1`` meaning "not labelled".

    Parameters
    ----------
    codes : LongTensor of shape (..., N, R)
        Label codes in ``[0, n_classes)`` or ``-1`` for a missing annotation.
    n_classes : int
        Number of classes K.

    Returns
    -------
    Y : Tensor of shape (..., N, R, K)
        One-hot annotations (float32); rows of missing annotations are all zero.
    """
    missing = codes < 0
    Y = torch.nn.functional.one_hot(codes.clamp_min(0), n_classes).to(torch.float32)
    return Y.masked_fill(missing.unsqueeze(-1), 0.0)


def _sample_mask(U: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    if w is None:
        return U.new_ones(U.shape[:-1])
    return w.to(U.dtype)


def majority_vote_init(Y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """Soft majority-vote responsibilities (Algorithm 1, line 7; spec 3.3).

    ``lam[n, k]`` is the fraction of the annotators of example n who said k; an
    example nobody labelled gets the uniform distribution.

    Parameters
    ----------
    Y : Tensor of shape (T, N, R, K)
        One-hot annotations.
    w : Tensor of shape (T, N), optional
        Sample mask (0 for padding rows, which get zero responsibilities).

    Returns
    -------
    lam : Tensor of shape (T, N, K)
    """
    votes = Y.sum(dim=-2)
    total = votes.sum(dim=-1, keepdim=True)
    K = Y.shape[-1]
    lam = torch.where(
        total > 0, votes / total.clamp_min(EPS), votes.new_full((), 1 / K)
    )
    if w is not None:
        lam = lam * w.to(lam.dtype).unsqueeze(-1)
    return lam


def _concentrations(c, K: int, like: torch.Tensor) -> torch.Tensor:
    """Dirichlet concentrations ``c_kl`` as a (K, K) tensor (rows: true class)."""
    if isinstance(c, torch.Tensor) and c.dim() == 2:
        return c.to(like)
    if isinstance(c, tuple | list):
        c_diag, c_off = float(c[0]), float(c[1])
        eye = torch.eye(K, dtype=like.dtype, device=like.device)
        return c_diag * eye + c_off * (1 - eye)
    return torch.full((K, K), float(c), dtype=like.dtype, device=like.device)


def _prior_pseudo_counts(c, K: int, like: torch.Tensor) -> torch.Tensor:
    """Dirichlet pseudo-counts ``c_kl - 1`` as a (K, K) tensor (rows: true class)."""
    return _concentrations(c, K, like) - 1.0


def m_step(
    U: torch.Tensor,
    Y: torch.Tensor,
    lam: torch.Tensor,
    *,
    tau: float = 0.0,
    b: float = 1.0,
    c=1.0,
    w: torch.Tensor | None = None,
    prior_counts: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form MAP M-step (spec 3.2, paper Eq. 7).

    Parameters
    ----------
    U : Tensor of shape (T, N, M)
    Y : Tensor of shape (T, N, R, K)
    lam : Tensor of shape (T, N, K)
    tau : float, default=0.0
        Precision of the zero-mean Gaussian prior on the prototypes.
    b : float, default=1.0
        Dirichlet concentration of the class prior (``b >= 1``).
    c : float, (float, float) or Tensor of shape (K, K), default=1.0
        Dirichlet concentration of each row of the confusion matrices: a scalar, a
        ``(c_diag, c_off)`` pair, or a full matrix (rows: true class). ``c >= 1``.
    w : Tensor of shape (T, N), optional
        Sample mask for padded support sets.
    prior_counts : Tensor of shape (R, K, K) or (T, R, K, K), optional
        Extra Dirichlet pseudo-counts per annotator (annotator history, rows:
        true class), added to ``c - 1``: annotator r's rows have the
        concentration ``c + prior_counts[r]``. None adds nothing.

    Returns
    -------
    mu : Tensor of shape (T, K, M)
    log_pi : Tensor of shape (T, K)
    log_A : Tensor of shape (T, R, K, K)
    """
    K = lam.shape[-1]
    w = _sample_mask(U, w)
    lam = lam * w.unsqueeze(-1)
    Nk = lam.sum(dim=-2)  # (T, K)
    # mu_k = sum_n lam_nk u_n / (tau + sum_n lam_nk); the floor keeps an empty
    # class with tau = 0 at the origin instead of 0/0.
    mu = torch.einsum("tnk,tnm->tkm", lam, U) / (tau + Nk).clamp_min(EPS).unsqueeze(-1)
    # pi_k = (N_k + b - 1) / (N + K (b - 1))
    n_total = w.sum(dim=-1, keepdim=True)
    pi = (Nk + (b - 1.0)) / (n_total + K * (b - 1.0)).clamp_min(EPS)
    log_pi = torch.log(pi.clamp_min(EPS))
    # alpha^r_{kl} = (sum_n lam_nk [y_n^r = l] + c_kl - 1) / (sum over l of the same);
    # a row with no mass (c = 1, annotator never labelled class k) falls back to
    # the uniform distribution.
    counts = torch.einsum("tnk,tnrl->trkl", lam, Y) + _prior_pseudo_counts(c, K, U)
    if prior_counts is not None:  # history: concentration c + prior_counts[r]
        counts = counts + prior_counts.to(counts)
    row = counts.sum(dim=-1, keepdim=True)
    A = torch.where(row > EPS, counts / row.clamp_min(EPS), counts.new_full((), 1 / K))
    log_A = torch.log(A.clamp_min(EPS))
    return mu, log_pi, log_A


def sq_distances(U: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``||u_n - mu_k||^2`` of shape (T, N, K)."""
    diff = U.unsqueeze(-2) - mu.unsqueeze(-3)
    # square() rather than diff * diff: the same values and gradients (bit for
    # bit), one backward node instead of two
    return diff.square().sum(dim=-1)


def e_step(
    U: torch.Tensor,
    Y: torch.Tensor,
    mu: torch.Tensor,
    log_pi: torch.Tensor,
    log_A: torch.Tensor,
    *,
    w: torch.Tensor | None = None,
) -> torch.Tensor:
    """Posterior of the true labels (spec 3.1, paper Eq. 6), in log space.

    ``lam_n = softmax_k(log pi_k - ||u_n - mu_k||^2 / 2 + sum_r log A^r[k, y_n^r])``.

    Returns
    -------
    lam : Tensor of shape (T, N, K)
    """
    logits = log_pi.unsqueeze(-2) - 0.5 * sq_distances(U, mu)
    logits = logits + torch.einsum("tnrl,trkl->tnk", Y, log_A)
    lam = torch.softmax(logits, dim=-1)
    if w is not None:
        lam = lam * w.to(lam.dtype).unsqueeze(-1)
    return lam


def pin_gold(lam, gold):
    """Responsibilities with those of the gold examples fixed to their labels."""
    if gold is None:
        return lam
    mask, lam_gold = gold
    return torch.where(mask.unsqueeze(-1), lam_gold.to(lam.dtype), lam)


def run_em(
    U: torch.Tensor,
    Y: torch.Tensor,
    *,
    n_iter: int = 3,
    tau: float = 0.0,
    b: float = 1.0,
    c=1.0,
    w: torch.Tensor | None = None,
    lam_init: torch.Tensor | None = None,
    gold: tuple[torch.Tensor, torch.Tensor] | None = None,
    prior_counts: torch.Tensor | None = None,
    detach_responsibilities: bool = False,
) -> EMResult:
    """Majority-vote initialisation, ``n_iter`` (M-step, E-step) rounds, final M-step.

    This is the inner loop of Algorithm 1 (spec 3.3). Every operation is
    differentiable with respect to ``U``.

    Parameters
    ----------
    U : Tensor of shape (T, N, M)
    Y : Tensor of shape (T, N, R, K)
    n_iter : int, default=3
        Number J of EM iterations. ``n_iter=0`` gives the prototypes of the
        majority-vote responsibilities.
    tau, b, c : see :func:`m_step`.
    w : Tensor of shape (T, N), optional
        Sample mask.
    lam_init : Tensor of shape (T, N, K), optional
        Initial responsibilities; soft majority vote by default.
    gold : (Tensor of shape (T, N), Tensor of shape (T, N, K)), optional
        ``(mask, lam_gold)``: the responsibilities of the examples where the
        boolean ``mask`` is true are fixed to ``lam_gold`` (one-hot true labels)
        at the initialisation and after every E-step.
    prior_counts : Tensor of shape (R, K, K) or (T, R, K, K), optional
        Per-annotator Dirichlet pseudo-counts added to ``c - 1`` (annotator
        history), see :func:`m_step`.
    detach_responsibilities : bool, default=False
        Stop the gradient through the E-step responsibilities (an ablation: it
        then flows through the embeddings of the prototypes and the query only).

    Returns
    -------
    EMResult
    """

    lam = pin_gold(majority_vote_init(Y, w) if lam_init is None else lam_init, gold)
    prior = {} if prior_counts is None else {"prior_counts": prior_counts}
    # the (K, K) Dirichlet concentrations, built once for all the M-steps
    c = _concentrations(c, Y.shape[-1], U)
    for _ in range(n_iter):
        mu, log_pi, log_A = m_step(U, Y, lam, tau=tau, b=b, c=c, w=w, **prior)
        lam = e_step(U, Y, mu, log_pi, log_A, w=w)
        lam = pin_gold(lam.detach() if detach_responsibilities else lam, gold)
    mu, log_pi, log_A = m_step(U, Y, lam, tau=tau, b=b, c=c, w=w, **prior)
    return EMResult(mu, log_pi, log_A, lam)


def predict_log_proba(
    U_query: torch.Tensor, mu: torch.Tensor, log_pi: torch.Tensor
) -> torch.Tensor:
    """Log class probabilities of query points (spec 3.4, paper Eq. 8).

    Only the prototypes and the class prior are used; the confusion matrices
    describe the annotators, not the examples.

    Parameters
    ----------
    U_query : Tensor of shape (T, Q, M)
    mu : Tensor of shape (T, K, M)
    log_pi : Tensor of shape (T, K)

    Returns
    -------
    log_proba : Tensor of shape (T, Q, K)
    """
    logits = log_pi.unsqueeze(-2) - 0.5 * sq_distances(U_query, mu)
    return torch.log_softmax(logits, dim=-1)


def _log_dirichlet(log_p: torch.Tensor, conc: torch.Tensor) -> torch.Tensor:
    """Unnormalised log Dirichlet density summed over the last axis."""
    return ((conc - 1.0) * log_p).sum(dim=-1)


def map_objective(
    U: torch.Tensor,
    Y: torch.Tensor,
    mu: torch.Tensor,
    log_pi: torch.Tensor,
    log_A: torch.Tensor,
    *,
    tau: float = 0.0,
    b: float = 1.0,
    c=1.0,
    w: torch.Tensor | None = None,
) -> torch.Tensor:
    """Log posterior of the task parameters up to a constant (spec 2.4).

    ``log p(U, Y | mu, pi, A) + log p(mu) + log p(pi) + log p(A)``; EM never
    decreases it.

    Returns
    -------
    objective : Tensor of shape (T,)
    """
    K = log_pi.shape[-1]
    w = _sample_mask(U, w)
    M = U.shape[-1]
    log_joint = (
        log_pi.unsqueeze(-2)
        - 0.5 * sq_distances(U, mu)
        - 0.5 * M * torch.log(torch.tensor(2 * torch.pi, dtype=U.dtype))
        + torch.einsum("tnrl,trkl->tnk", Y, log_A)
    )
    loglik = (torch.logsumexp(log_joint, dim=-1) * w).sum(dim=-1)
    log_prior_mu = -0.5 * tau * (mu * mu).sum(dim=(-1, -2))
    log_prior_pi = _log_dirichlet(log_pi, torch.full_like(log_pi, b))
    conc = _prior_pseudo_counts(c, K, U) + 1.0
    log_prior_A = _log_dirichlet(log_A, conc).sum(dim=(-1, -2))
    return loglik + log_prior_mu + log_prior_pi + log_prior_A


# -- EM on the list of observed labels ------------------------------------------
# The functions below work on one task given as label triplets: label j says that
# annotator ``annotator[j]`` gave label ``label[j]`` to item ``item[j]``. Every sum
# over annotations is an ``index_add_`` over the labels, so time and memory grow
# with the number of labels (and items x classes), not with items x annotators.
# Shapes: U (N, M), lam (N, K), mu (K, M), log_pi (K,), log_A (R, K, K).

#: Labels handled at once: bounds the (chunk, K) temporaries of the sparse EM.
_CHUNK = 1 << 16


def _check_triplets(item, annotator, label, n_items, n_classes, n_annotators):
    """The three index vectors as int64 tensors of one length, values in range."""
    out = []
    for name, values, bound in (
        ("item", item, n_items),
        ("annotator", annotator, n_annotators),
        ("label", label, n_classes),
    ):
        t = torch.as_tensor(values)
        if t.dim() != 1 or (t.numel() and t.dtype.is_floating_point):
            raise ValueError(f"{name} must be a 1-D integer tensor, got {t.dtype}")
        t = t.to(torch.int64)
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= bound):
            raise ValueError(
                f"{name} indices must lie in [0, {bound}), got values in "
                f"[{int(t.min())}, {int(t.max())}]"
            )
        out.append(t)
    if not out[0].numel() == out[1].numel() == out[2].numel():
        raise ValueError(
            "item, annotator and label must have the same length, got "
            f"{out[0].numel()}, {out[1].numel()} and {out[2].numel()}"
        )
    return out


def majority_vote_init_sparse(
    item: torch.Tensor, label: torch.Tensor, n_items: int, n_classes: int, *, like
) -> torch.Tensor:
    """Soft majority vote (as :func:`majority_vote_init`) from label triplets.

    Returns
    -------
    lam : Tensor of shape (N, K), dtype and device of ``like``
    """
    votes = like.new_zeros(n_items * n_classes)
    votes.index_add_(0, item * n_classes + label, like.new_ones(item.numel()))
    votes = votes.view(n_items, n_classes)
    total = votes.sum(dim=-1, keepdim=True)
    return torch.where(
        total > 0, votes / total.clamp_min(EPS), votes.new_full((), 1 / n_classes)
    )


def _normalise_counts(
    counts: torch.Tensor, c, K: int, like, prior_counts=None
) -> torch.Tensor:
    """Log confusion matrices from soft counts (R, K, K) plus the Dirichlet prior."""
    counts = counts + _prior_pseudo_counts(c, K, like)
    if prior_counts is not None:  # history: concentration c + prior_counts[r]
        counts = counts + prior_counts.to(counts)
    row = counts.sum(dim=-1, keepdim=True)
    A = torch.where(row > EPS, counts / row.clamp_min(EPS), counts.new_full((), 1 / K))
    return torch.log(A.clamp_min(EPS))


def m_step_sparse(
    U: torch.Tensor,
    item: torch.Tensor,
    annotator: torch.Tensor,
    label: torch.Tensor,
    lam: torch.Tensor,
    n_annotators: int,
    *,
    tau: float = 0.0,
    b: float = 1.0,
    c=1.0,
    prior_counts: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The MAP M-step of :func:`m_step` on label triplets (one task, no padding).

    ``prior_counts`` (R, K, K), optional: per-annotator pseudo-counts added to
    ``c - 1``, as in :func:`m_step`. ``weight`` (N,), optional: how much each
    item counts in the prototypes and the class prior (1 each by default; 0
    leaves an item out of them; the confusion counts come from the labels).

    Returns
    -------
    mu : Tensor of shape (K, M)
    log_pi : Tensor of shape (K,)
    log_A : Tensor of shape (R, K, K)
    """
    N, K = lam.shape
    lam_w = lam if weight is None else lam * weight.to(lam).unsqueeze(-1)
    if weight is not None:
        N = float(weight.sum())
    Nk = lam_w.sum(dim=0)
    mu = (lam_w.T @ U) / (tau + Nk).clamp_min(EPS).unsqueeze(-1)
    pi = (Nk + (b - 1.0)) / U.new_tensor(N + K * (b - 1.0)).clamp_min(EPS)
    log_pi = torch.log(pi.clamp_min(EPS))
    # counts[r, l, k] = sum over the labels (n, r, l) of lam[n, k]
    counts = lam.new_zeros(n_annotators * K, K)
    slot = annotator * K + label
    for start in range(0, item.numel(), _CHUNK):
        stop = start + _CHUNK
        counts.index_add_(0, slot[start:stop], lam[item[start:stop]])
    counts = counts.view(n_annotators, K, K).transpose(1, 2)
    return mu, log_pi, _normalise_counts(counts, c, K, U, prior_counts)


def e_step_sparse(
    U: torch.Tensor,
    item: torch.Tensor,
    annotator: torch.Tensor,
    label: torch.Tensor,
    mu: torch.Tensor,
    log_pi: torch.Tensor,
    log_A: torch.Tensor,
) -> torch.Tensor:
    """The E-step of :func:`e_step` on label triplets.

    Returns
    -------
    lam : Tensor of shape (N, K)
    """
    # ||u - mu||^2 = ||u||^2 - 2 u.mu + ||mu||^2: a matrix product instead of the
    # (N, K, M) differences of sq_distances (float64, standardised or embedded
    # inputs: the cancellation error is far below the tests' 1e-10)
    sq_u = (U * U).sum(dim=-1, keepdim=True)
    logits = sq_u - 2.0 * (U @ mu.T) + (mu * mu).sum(dim=-1)
    logits = log_pi - 0.5 * logits.clamp_min(0.0)
    logits = add_crowd_log_likelihood_(logits, item, annotator, label, log_A)
    return torch.softmax(logits, dim=-1)


def add_crowd_log_likelihood_(logits, item, annotator, label, log_A):
    """Add ``sum_r log A^r[k, y_n^r]`` over the observed labels to ``logits``
    of shape (N, K), in place, and return it.

    The annotators' term of the E-step (spec 3.1, paper Eq. 6), whatever model
    gives the class log-probabilities from the features.
    """
    R, K, _ = log_A.shape
    # row (r, l) of log_At holds log p(y^r = l | t = k) for every k
    log_At = log_A.transpose(1, 2).reshape(R * K, K)
    slot = annotator * K + label
    for start in range(0, item.numel(), _CHUNK):
        stop = start + _CHUNK
        logits.index_add_(0, item[start:stop], log_At[slot[start:stop]])
    return logits


def run_em_sparse(
    U: torch.Tensor,
    item,
    annotator,
    label,
    n_classes: int,
    n_annotators: int,
    *,
    n_iter: int = 3,
    tau: float = 0.0,
    b: float = 1.0,
    c=1.0,
    gold: tuple[torch.Tensor, torch.Tensor] | None = None,
    prior_counts: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> EMResult:
    """:func:`run_em` for one task given as label triplets.

    Same initialisation (soft majority vote), ``n_iter`` (M-step, E-step)
    rounds and final M-step as :func:`run_em`, but every sum over annotations
    runs over the observed labels, so time and memory are
    O(n_labels * K + N * K * M + R * K * K) instead of O(N * R * K).

    Parameters
    ----------
    U : Tensor of shape (N, M)
        Embeddings of the items (float64 for fitting).
    item, annotator, label : int tensors or arrays of shape (n_labels,)
        Item index, annotator index and label code of each annotation.
    n_classes : int
        Number of classes K.
    n_annotators : int
        Number of annotators R.
    n_iter, tau, b, c : see :func:`run_em`.
    gold : (Tensor of shape (N,), Tensor of shape (N, K)), optional
        ``(mask, lam_gold)``, as in :func:`run_em` without the task dimension.
    prior_counts : Tensor of shape (R, K, K), optional
        Per-annotator Dirichlet pseudo-counts added to ``c - 1`` (annotator
        history: annotator r's rows have the concentration
        ``c + prior_counts[r]``, spec 3.2, M-step of the confusion matrices).
    weight : Tensor of shape (N,), optional
        Weight of each item in the prototypes and the class prior
        (:func:`m_step_sparse`): e.g. 0 for unlabelled items that should not
        count. Every item still gets a posterior.

    Returns
    -------
    EMResult
        Without the task dimension: ``mu`` (K, M), ``log_pi`` (K,), ``log_A``
        (R, K, K) and ``lam`` (N, K).
    """
    if U.dim() != 2:
        raise ValueError(f"U must have shape (N, M), got {tuple(U.shape)}")
    N = U.shape[0]
    item, annotator, label = (
        t.to(U.device)
        for t in _check_triplets(item, annotator, label, N, n_classes, n_annotators)
    )
    if prior_counts is not None:
        prior_counts = torch.as_tensor(prior_counts).to(U)
        if prior_counts.shape != (n_annotators, n_classes, n_classes):
            raise ValueError(
                f"prior_counts must have shape {(n_annotators, n_classes, n_classes)}"
                f", got {tuple(prior_counts.shape)}"
            )
    if weight is not None:
        weight = torch.as_tensor(weight).to(U)
        if weight.shape != (N,):
            raise ValueError(
                f"weight must have shape ({N},), got {tuple(weight.shape)}"
            )
    em = {"tau": tau, "b": b, "c": c, "prior_counts": prior_counts, "weight": weight}
    lam = pin_gold(majority_vote_init_sparse(item, label, N, n_classes, like=U), gold)
    for _ in range(n_iter):
        mu, log_pi, log_A = m_step_sparse(
            U, item, annotator, label, lam, n_annotators, **em
        )
        lam = pin_gold(
            e_step_sparse(U, item, annotator, label, mu, log_pi, log_A), gold
        )
    mu, log_pi, log_A = m_step_sparse(
        U, item, annotator, label, lam, n_annotators, **em
    )
    return EMResult(mu, log_pi, log_A, lam)
