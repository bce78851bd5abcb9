"""The class-probability model of a target task: prototypes or a linear head.

Both are fitted jointly with one confusion matrix per annotator by EM on the
task's label triplets, and both predict a new item from its embedding alone.

- ``"prototype"``: the paper's model, isotropic Gaussian classes around the
  prototypes ``mu_k`` with a class prior (spec 3, paper Eqs. 6-8), fitted by
  :func:`~sklearn_metaannot.em._steps.run_em_sparse`.
- ``"linear"``: a softmax head ``p(t = k | u) = softmax_k(w_k . u + b_k)``
  fitted in the M-step on the posterior-weighted items (discriminative EM, as
  in Raykar et al., 2010, "Learning from crowds"). A prototype model *is* such
  a head: ``w_k = mu_k``, ``b_k = log pi_k - |mu_k|^2 / 2`` (unit variance).
  The head starts at the prototype solution of the same task and is pulled
  back to it by the penalty ``head_penalty / 2 * (|W - W0|^2 + |b - b0|^2)``:
  with few items it stays the paper's model, with many the data move it.

Both take a ``feature_weight`` ``beta`` in (0, 1], the temperature of the
features' prediction: ``p_beta(t = k | u)`` is proportional to ``p(t = k |
u) ** beta`` (the same most probable class). Below 1, the posteriors of the
training items are re-estimated with it, Dawid-Skene style with the features'
tempered prediction as each item's prior, while the class-probability model
keeps what the EM fitted. ``fit`` chooses it per task from held-out crowd
labels (:func:`~sklearn_metaannot.adapt._representation.decide_model`): a
unit-variance prototype model of features that are not a good metric is
overconfident, and would overrule the annotators in the posteriors.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._steps import (
    _prior_pseudo_counts,
    add_crowd_log_likelihood_,
    m_step_sparse,
    majority_vote_init_sparse,
    pin_gold,
    predict_log_proba,
    run_em_sparse,
)

#: The class-probability models of ``fit``.
HEADS = ("prototype", "linear", "mlp")
#: Hidden units of the MLP head's residual layer, and the L2 penalty on that
#: layer's weights (per item, as scikit-learn's ``MLPClassifier(alpha=...)``).
MLP_HIDDEN, MLP_ALPHA = 64, 1.0


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
    feature_weight : float
        Temperature of the features' prediction (:func:`head_log_proba`).
    hidden : (Tensor (H, M), Tensor (H,), Tensor (K, H)) or None
        The MLP head's residual layer ``V relu(G u + g)`` added to the linear
        head's logits; None for the other models.
    """

    lam: torch.Tensor
    log_A: torch.Tensor
    log_pi: torch.Tensor
    mu: torch.Tensor
    coef: torch.Tensor | None = None
    intercept: torch.Tensor | None = None
    feature_weight: float = 1.0
    hidden: tuple | None = None

    def log_proba(self, U):
        """Log class probabilities of items from their embeddings, (n, K)."""
        return head_log_proba(
            U,
            self.mu,
            self.log_pi,
            self.coef,
            self.intercept,
            self.feature_weight,
            self.hidden,
        )


def head_log_proba(
    U, mu, log_pi, coef=None, intercept=None, feature_weight=1.0, hidden=None
):
    """Log class probabilities from the features alone (paper Eq. 8, or the
    head), tempered by ``feature_weight``: ``log_softmax(beta * log p)``."""
    if coef is None:
        log_p = predict_log_proba(U[None], mu[None], log_pi[None])[0]
    else:
        log_p = torch.log_softmax(_head_logits(U, coef, intercept, hidden), dim=-1)
    if feature_weight == 1.0:
        return log_p
    return torch.log_softmax(feature_weight * log_p, dim=-1)


def _head_logits(U, coef, intercept, hidden=None):
    """Logits of the linear head, plus the MLP head's residual layer."""
    logits = U @ coef.T + intercept
    if hidden is not None:
        G, g, V = hidden
        logits = logits + torch.relu(U @ G.T + g) @ V.T
    return logits


def prototype_head(mu, log_pi):
    """The linear head equal to the prototype model: ``(W0, b0)``."""
    return mu.clone(), log_pi - 0.5 * (mu * mu).sum(dim=-1)


def _lbfgs(params, max_iter):
    """The L-BFGS optimiser of the heads' M-steps (strong Wolfe line search)."""
    return torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )


def _fit_head(U, lam, coef, intercept, coef0, intercept0, penalty, max_iter=30):
    """M-step of the head: penalised softmax regression on soft labels ``lam``.

    Minimises ``-sum_n sum_k lam_nk log softmax(W u_n + b)_k + penalty / 2 *
    (|W - W0|^2 + |b - b0|^2)`` (convex) by L-BFGS from ``(coef, intercept)``,
    with its gradient written out (``(softmax - lam)^T [U, 1]`` plus the pull):
    two matrix products per evaluation and no autograd graph.
    """
    ones = U.new_ones(len(U), 1)
    Ua = torch.cat([U, ones], dim=1)  # the bias as a last feature
    theta0 = torch.cat([coef0, intercept0[:, None]], dim=1)
    theta = torch.cat([coef, intercept[:, None]], dim=1).detach().clone()
    theta.requires_grad_(True)
    optimizer = _lbfgs([theta], max_iter)
    # divided by the number of items: the same minimum, and L-BFGS's
    # tolerances become relative to the task's size
    n = max(len(U), 1)
    mass = lam.sum(dim=1, keepdim=True)

    def closure():
        with torch.no_grad():
            diff = theta - theta0
            log_p = torch.log_softmax(Ua @ theta.T, dim=-1)
            loss = (-(lam * log_p).sum() + 0.5 * penalty * diff.square().sum()) / n
            theta.grad = ((log_p.exp() * mass - lam).T @ Ua + penalty * diff) / n
        return loss

    optimizer.step(closure)
    theta = theta.detach()
    return theta[:, :-1].contiguous(), theta[:, -1].contiguous()


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
    feature_weight=1.0,
    held_out_log_proba=None,
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
        As :func:`~sklearn_metaannot.em._steps.run_em_sparse` (``weight`` also weighs
        the items in the head's M-step); the linear head runs
        ``n_iter`` rounds (head and confusion M-steps, E-step) after the
        prototype EM, then a final M-step.
    feature_weight : float, default=1.0
        Temperature of the features' prediction. Below 1, after the EM, the
        posteriors and the confusion matrices are re-estimated until they
        settle, with the class-probability model fixed:
        ``lam_n ~ p(t | u_n) ** feature_weight * prod_r A^r[t, y_n^r]``.
    held_out_log_proba : array of shape (n, K) with n <= N, or None
        ``log p(t | u_n)`` of the first ``n`` items from fits that did not see
        them (NaN rows: none), used for those items instead of the fitted
        model's own prediction in the posteriors at a ``feature_weight`` below 1.

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
    item, annotator, label = (torch.as_tensor(t) for t in (item, annotator, label))
    weight = None if weight is None else torch.as_tensor(weight).to(U)
    em = {"tau": tau, "b": b, "c": c, "prior_counts": prior_counts, "weight": weight}
    oof = held_out_log_proba
    w = 1.0 if weight is None else weight.unsqueeze(-1)
    if head == "prototype":
        fit = TaskFit(res.lam, res.log_A, res.log_pi, res.mu)
        return _temper(fit, U, item, annotator, label, feature_weight, gold, em, oof)
    if head == "mlp":
        fit = _fit_mlp_task(
            U, item, annotator, label, res, head_penalty, n_iter, gold, em, w
        )
        return _temper(fit, U, item, annotator, label, feature_weight, gold, em, oof)
    if head != "linear":
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
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
    fit = TaskFit(lam, log_A, log_pi, res.mu, coef, intercept)
    return _temper(fit, U, item, annotator, label, feature_weight, gold, em, oof)


def _mlp_loss_and_grad(U, lam, params, theta0, penalty, alpha=MLP_ALPHA):
    """The MLP head's M-step objective (divided by the number of items) and its
    gradient with respect to ``params = [W, b, G, g, V]``, written out
    (back-propagation through the one hidden layer, as :func:`_fit_head` does
    for the linear head): no autograd graph, which on small tasks costs more
    than the arithmetic."""
    W, b, G, g, V = params
    W0, b0 = theta0
    n = max(len(U), 1)
    pre = U @ G.T + g
    H = torch.relu(pre)
    log_p = torch.log_softmax(U @ W.T + b + H @ V.T, dim=-1)
    dW, db = W - W0, b - b0
    loss = -(lam * log_p).sum()
    loss = loss + 0.5 * penalty * (dW.square().sum() + db.square().sum())
    loss = loss + 0.5 * alpha * (G.square().sum() + V.square().sum())
    dZ = log_p.exp() * lam.sum(dim=1, keepdim=True) - lam  # d loss / d logits
    dA = (dZ @ V) * (pre > 0)  # back through the hidden layer
    grads = (
        dZ.T @ U + penalty * dW,
        dZ.sum(dim=0) + penalty * db,
        dA.T @ U + alpha * G,
        dA.sum(dim=0),
        dZ.T @ H + alpha * V,
    )
    return loss / n, [d / n for d in grads]


def _fit_mlp(U, lam, params, theta0, penalty, alpha=MLP_ALPHA, max_iter=50):
    """M-step of the MLP head: ``params = [W, b, G, g, V]``, logits ``W u + b +
    V relu(G u + g)``; minimises the soft cross-entropy plus ``penalty / 2``
    times the squared distance of ``(W, b)`` from the prototype solution
    ``theta0`` and ``alpha / 2`` times the squared hidden weights, by L-BFGS
    (:func:`_mlp_loss_and_grad`)."""
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    theta = torch.cat([p.detach().reshape(-1) for p in params]).clone()
    theta.requires_grad_(True)
    optimizer = _lbfgs([theta], max_iter)

    def unpack(flat):
        return [t.view(shape) for t, shape in zip(flat.split(sizes), shapes)]

    def closure():
        with torch.no_grad():
            loss, grads = _mlp_loss_and_grad(
                U, lam, unpack(theta), theta0, penalty, alpha
            )
            theta.grad = torch.cat([d.reshape(-1) for d in grads])
        return loss

    optimizer.step(closure)
    return unpack(theta.detach())


def _fit_mlp_task(U, item, annotator, label, res, penalty, n_iter, gold, em, w=1.0):
    """The discriminative EM of the MLP head: the linear head plus a residual
    hidden layer whose output weights start at zero, so that it starts at the
    prototype solution of the task, as the linear head (hidden weights drawn
    from a fixed seed: ``fit`` stays deterministic); ``w`` weighs the items in
    the head's M-step."""
    K, M = res.mu.shape
    coef0, intercept0 = prototype_head(res.mu, res.log_pi)
    generator = torch.Generator().manual_seed(0)
    G = torch.randn(MLP_HIDDEN, M, generator=generator, dtype=U.dtype) / M**0.5
    params = [coef0, intercept0, G, U.new_zeros(MLP_HIDDEN), U.new_zeros(K, MLP_HIDDEN)]
    lam, n_annotators = res.lam, res.log_A.shape[0]
    for _ in range(n_iter):
        params = _fit_mlp(U, w * lam, params, (coef0, intercept0), penalty)
        _, _, log_A = m_step_sparse(U, item, annotator, label, lam, n_annotators, **em)
        logits = torch.log_softmax(
            _head_logits(U, params[0], params[1], params[2:]), dim=-1
        )
        logits = add_crowd_log_likelihood_(logits, item, annotator, label, log_A)
        lam = pin_gold(torch.softmax(logits, dim=-1), gold)
    params = _fit_mlp(U, w * lam, params, (coef0, intercept0), penalty)
    _, log_pi, log_A = m_step_sparse(U, item, annotator, label, lam, n_annotators, **em)
    W, b, G, g, V = params
    return TaskFit(lam, log_A, log_pi, res.mu, W, b, hidden=(G, g, V))


#: Rounds of the posteriors' re-estimation at a feature weight below 1: at most
#: this many, until no posterior moves by more than ``TEMPER_TOL`` (the largest
#: change: items without labels, which only take the prior, do not dilute it;
#: the features' term is fixed, so a round costs one pass over the labels).
TEMPER_ROUNDS, TEMPER_TOL = 50, 1e-5


def _temper(fit, U, item, annotator, label, feature_weight, gold, em, oof=None):
    """``fit`` with the features' prediction tempered by ``feature_weight``: the
    posteriors and confusion matrices re-estimated by Dawid-Skene whose item
    priors are the tempered predictions (the out-of-fold ones ``oof`` where
    given), until they settle (``fit``'s model of the classes unchanged);
    ``fit`` itself at 1.

    The re-estimation is an EM with local optima: it runs from the soft
    majority vote (as Dawid-Skene) and from ``fit``'s posteriors, and keeps the
    end with the higher objective (the log-likelihood of the labels under the
    tempered priors plus the log prior of the confusion matrices).
    """
    if feature_weight == 1.0:
        return fit
    fit.feature_weight = feature_weight
    prior = fit.log_proba(U)
    if oof is not None:
        oof = torch.as_tensor(oof).to(prior)
        rows = torch.nonzero(~oof.isnan().any(dim=1)).squeeze(1)
        prior[rows] = torch.log_softmax(feature_weight * oof[rows], dim=-1)
    K = fit.lam.shape[1]
    vote = majority_vote_init_sparse(item, label, len(U), K, like=fit.lam)
    ends = [
        _settle(start, prior, U, item, annotator, label, fit.log_A.shape[0], gold, em)
        for start in (vote, fit.lam)
    ]
    fit.lam, fit.log_A, _ = max(ends, key=lambda end: end[2])
    return fit


def _settle(lam, prior, U, item, annotator, label, n_annotators, gold, em):
    """Dawid-Skene rounds with the item priors ``prior`` from the posteriors
    ``lam`` until they settle: ``(lam, log_A, objective)``."""
    K = lam.shape[1]
    lam = pin_gold(lam, gold)
    for _ in range(TEMPER_ROUNDS):
        _, _, log_A = m_step_sparse(U, item, annotator, label, lam, n_annotators, **em)
        logits = add_crowd_log_likelihood_(prior.clone(), item, annotator, label, log_A)
        lam, previous = pin_gold(torch.softmax(logits, dim=-1), gold), lam
        if (lam - previous).abs().max() <= TEMPER_TOL:
            break
    _, _, log_A = m_step_sparse(U, item, annotator, label, lam, n_annotators, **em)
    logits = add_crowd_log_likelihood_(prior.clone(), item, annotator, label, log_A)
    pseudo = _prior_pseudo_counts(em["c"], K, log_A)
    if em["prior_counts"] is not None:
        pseudo = pseudo + em["prior_counts"]
    objective = torch.logsumexp(logits, dim=-1).sum() + (pseudo * log_A).sum()
    return lam, log_A, float(objective)
