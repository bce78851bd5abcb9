"""The class-probability model of a target task: prototypes or a linear head.

Both are fitted jointly with one confusion matrix per annotator by EM on the
task's label triplets, and both predict a new item from its embedding alone.

- ``"prototype"``: the paper's model, isotropic Gaussian classes around the
  prototypes ``mu_k`` with a class prior (spec 3, paper Eqs. 6-8), fitted by
  :func:`~sklearn_metaannot._em.run_em_sparse`.
- ``"linear"``: a softmax head ``p(t = k | u) = softmax_k(w_k . u + b_k)``
  fitted in the M-step on the posterior-weighted items (discriminative EM, as
  in Raykar et al., 2010, "Learning from crowds"). A prototype model *is* such
  a head: ``w_k = mu_k``, ``b_k = log pi_k - |mu_k|^2 / 2`` (unit variance).
  The head starts at the prototype solution of the same task and is pulled
  back to it by the penalty ``head_penalty / 2 * (|W - W0|^2 + |b - b0|^2)``:
  with few items it stays the paper's model, with many the data move it.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._em import (
    add_crowd_log_likelihood_,
    m_step_sparse,
    pin_gold,
    predict_log_proba,
    run_em_sparse,
)

#: The class-probability models of ``fit``.
HEADS = ("prototype", "linear")


@dataclass
class TaskFit:
    """A fitted task: posteriors, annotators, and the class-probability model.

    Attributes
    ----------
    lam : Tensor of shape (N, K)
        Posterior of the true class of every item.
    log_A : Tensor of shape (R, K, K)
        Log confusion matrices.
    log_pi : Tensor of shape (K,)
        Log class prior (the M-step's, from ``lam``).
    mu : Tensor of shape (K, M)
        Prototypes (of the prototype EM that the head starts from).
    coef, intercept : Tensor of shape (K, M) and (K,), or None
        The linear head; None for the prototype model.
    """

    lam: torch.Tensor
    log_A: torch.Tensor
    log_pi: torch.Tensor
    mu: torch.Tensor
    coef: torch.Tensor | None = None
    intercept: torch.Tensor | None = None

    def log_proba(self, U):
        """Log class probabilities of items from their embeddings, (n, K)."""
        return head_log_proba(U, self.mu, self.log_pi, self.coef, self.intercept)


def head_log_proba(U, mu, log_pi, coef=None, intercept=None):
    """Log class probabilities from the features alone (paper Eq. 8, or the head)."""
    if coef is None:
        return predict_log_proba(U[None], mu[None], log_pi[None])[0]
    return torch.log_softmax(U @ coef.T + intercept, dim=-1)


def prototype_head(mu, log_pi):
    """The linear head equal to the prototype model: ``(W0, b0)``."""
    return mu.clone(), log_pi - 0.5 * (mu * mu).sum(dim=-1)


def _fit_head(U, lam, coef, intercept, coef0, intercept0, penalty, max_iter=30):
    """M-step of the head: penalised softmax regression on soft labels ``lam``.

    Minimises ``-sum_n sum_k lam_nk log softmax(W u_n + b)_k + penalty / 2 *
    (|W - W0|^2 + |b - b0|^2)`` (convex) by L-BFGS from ``(coef, intercept)``.
    """
    W = coef.detach().clone().requires_grad_(True)
    bias = intercept.detach().clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [W, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    n = max(len(U), 1)

    def closure():
        optimizer.zero_grad()
        log_p = torch.log_softmax(U @ W.T + bias, dim=-1)
        # divided by the number of items: the same minimum, and L-BFGS's
        # tolerances become relative to the task's size
        loss = -(lam * log_p).sum() + 0.5 * penalty * (
            (W - coef0).square().sum() + (bias - intercept0).square().sum()
        )
        loss = loss / n
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return W.detach(), bias.detach()


def fit_task(
    U,
    item,
    annotator,
    label,
    n_classes,
    n_annotators,
    *,
    head="prototype",
    head_penalty=1.0,
    n_iter=3,
    tau=0.0,
    b=1.0,
    c=1.0,
    gold=None,
    prior_counts=None,
    weight=None,
):
    """EM of a task with the class-probability model ``head``.

    Parameters
    ----------
    U : Tensor of shape (N, M)
        Embeddings of the items (float64).
    item, annotator, label : int Tensors of shape (n_labels,)
        The label triplets.
    n_classes, n_annotators : int
    head : {"prototype", "linear"}, default="prototype"
    head_penalty : float, default=1.0
        Pull of the linear head towards the task's prototype solution.
    n_iter, tau, b, c, gold, prior_counts, weight
        As :func:`~sklearn_metaannot._em.run_em_sparse` (``weight`` also weighs
        the items in the head's M-step); the linear head runs
        ``n_iter`` rounds (head and confusion M-steps, E-step) after the
        prototype EM, then a final M-step.

    Returns
    -------
    TaskFit
    """
    res = run_em_sparse(
        U,
        item,
        annotator,
        label,
        n_classes,
        n_annotators,
        n_iter=n_iter,
        tau=tau,
        b=b,
        c=c,
        gold=gold,
        prior_counts=prior_counts,
        weight=weight,
    )
    if head == "prototype":
        return TaskFit(res.lam, res.log_A, res.log_pi, res.mu)
    if head != "linear":
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    item, annotator, label = (torch.as_tensor(t) for t in (item, annotator, label))
    weight = None if weight is None else torch.as_tensor(weight).to(U)
    em = {"tau": tau, "b": b, "c": c, "prior_counts": prior_counts, "weight": weight}
    w = 1.0 if weight is None else weight.unsqueeze(-1)
    coef0, intercept0 = prototype_head(res.mu, res.log_pi)
    coef, intercept, lam = coef0, intercept0, res.lam
    for _ in range(n_iter):
        coef, intercept = _fit_head(
            U, w * lam, coef, intercept, coef0, intercept0, head_penalty
        )
        _, _, log_A = m_step_sparse(U, item, annotator, label, lam, n_annotators, **em)
        logits = torch.log_softmax(U @ coef.T + intercept, dim=-1)
        logits = add_crowd_log_likelihood_(logits, item, annotator, label, log_A)
        lam = pin_gold(torch.softmax(logits, dim=-1), gold)
    coef, intercept = _fit_head(
        U, w * lam, coef, intercept, coef0, intercept0, head_penalty
    )
    _, log_pi, log_A = m_step_sparse(U, item, annotator, label, lam, n_annotators, **em)
    return TaskFit(lam, log_A, log_pi, res.mu, coef, intercept)
