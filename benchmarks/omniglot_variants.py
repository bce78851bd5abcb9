"""Meta-training variants of our model, on the Omniglot validation alphabet.

Why does pseudo-annotation (PA) not beat clean meta-training ("w/o PA") on our
Omniglot subset? This study meta-trains our model with the settings of
``benchmarks/omniglot.py`` (4000 episodes, gradient clipping at 1) and one
change at a time, and reports the best validation accuracy (100 fixed,
pseudo-annotated Greek episodes; the test alphabets are not touched):

* ``Ours``, ``w/o PA``: the two models of the benchmark, for reference;
* ``tau=0.1``: a zero-mean Gaussian prior on the prototypes (precision 0.1) in
  meta-training and adaptation;
* ``stop-gradient``: no gradient through the E-step responsibilities (the
  meta-gradient flows through the embeddings in the prototypes and the query
  only);
* ``curriculum``: 2000 clean episodes (w/o PA), then 2000 pseudo-annotated
  ones starting from that encoder;
* ``clean + PA loss``: every episode gives two query losses, after EM on the
  pseudo-annotated support and after EM on the clean support (same embeddings),
  averaged.

For every model it also counts how often EM empties a class (less than half an
example of responsibility left) on 270 validation tasks, and, for ``Ours``, how
the per-episode meta-gradient norm relates to that::

    python -m benchmarks.omniglot_variants            # about 20 min on 2 CPU cores
    python -m benchmarks.omniglot_variants --quick    # 200 episodes per variant

The ``stop-gradient`` and ``clean + PA loss`` variants go through
``MetaLearner``'s public ablation seams: ``episodic_em=`` (a subclass of
``EpisodicEM``, the EM that meta-training back-propagates through) and
``episodes=`` (a subclass of ``EpisodeDataset``, the episode source); nothing
is patched.
"""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import torch

from sklearn_metaannot import EpisodeDataset, EpisodeSampler, EpisodicEM
from sklearn_metaannot.episodes import pad_episode

from . import harness, omniglot


class _StopGradientEM(EpisodicEM):
    """No gradient through the E-step responsibilities in meta-training."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, detach_responsibilities=True, **kwargs)


class WithCleanLabels(EpisodeDataset):
    """Episodes whose support codes end with a column of the clean labels."""

    def __getitem__(self, i):
        ep, s = self.episode(i), self.sampler
        out = pad_episode(ep, s.max_support_size, s.max_annotators)
        clean = np.full((s.max_support_size, 1), -1, dtype=np.int64)
        clean[: len(ep.support_y), 0] = ep.support_y
        out["support_codes"] = np.concatenate([out["support_codes"], clean], axis=1)
        return out, ep.query_y


class _CleanAndNoisyEM(EpisodicEM):
    """In training, the mean of the query log-probabilities (so of the NLL losses)
    after EM on the noisy and on the clean support labels (the last column)."""

    def forward(self, support_X, support_codes, support_mask, query_X, n_classes=None):
        args = support_mask, query_X, n_classes
        noisy = super().forward(support_X, support_codes[..., :-1], *args)
        if not self.training:
            return noisy
        clean = super().forward(support_X, support_codes[..., -1:], *args)
        return 0.5 * (noisy + clean)


#: Variant -> parameters of its model (the ablation seams ``episodic_em`` and
#: ``episodes`` go to its MetaLearner); ``curriculum`` is two runs. "Ours" and
#: the others keep ``omniglot.base_estimator``'s ``pseudo_annotation=True``.
VARIANTS = {
    "Ours": {},
    "w/o PA": {"pseudo_annotation": False},
    "tau=0.1": {"tau": 0.1},
    "stop-gradient": {"episodic_em": _StopGradientEM},
    "curriculum": None,
    "clean + PA loss": {"episodic_em": _CleanAndNoisyEM, "episodes": WithCleanLabels},
}


def default_config(quick=False) -> dict:
    """Settings of the study; ``omniglot`` overrides the benchmark's own."""
    cfg = {"name": "omniglot_variants", "variants": list(VARIANTS), "n_episodes": 4000}
    cfg.update(n_val_tasks=30, n_gradient_episodes=300, omniglot={})
    cfg.update(write=True, verbose=1)
    if quick:
        cfg.update(name="omniglot_variants_quick", n_episodes=200, n_val_tasks=4)
        meta = {"episodes_per_epoch": 100, "n_val_episodes": 30}
        cfg.update(n_gradient_episodes=20, omniglot=meta)
    return cfg


def meta_train_variant(name, ocfg, pools, n_episodes):
    """Meta-train one variant; returns the fitted MetaAnnotatorClassifier."""
    cfg = {**ocfg, "n_episodes": n_episodes}
    if name == "curriculum":
        clean = meta_train_variant("w/o PA", ocfg, pools, n_episodes // 2)
        encoder = clean.meta_encoder_.module
        for p in encoder.parameters():
            p.requires_grad_(True)
        cfg["n_episodes"] = n_episodes - n_episodes // 2
        model = omniglot.base_estimator(cfg, encoder=encoder)
    else:
        model = omniglot.base_estimator(cfg, **VARIANTS[name])
    return omniglot.meta_fit(model, pools)[0]


def _episodic_em(model, module=None):
    """The EM of ``model``'s adaptation settings, around ``module``."""
    return EpisodicEM(
        module,
        model.meta_learner.n_way,
        n_em_iter=model.n_em_iter,
        tau=model.tau,
        b=model.b,
        c=model.c,
    )


def _run_em(model, U, codes):
    """EM of ``model``'s adaptation settings on embeddings U (1, N, M), codes (N, R)."""
    return _episodic_em(model).adapt(U, torch.as_tensor(codes)[None])


def _empty_class(res) -> float:
    """1.0 when EM left a class with less than half an example of responsibility."""
    return float(res.lam[0].sum(0).min() < 0.5)


def empty_class_rate(model, ocfg, pools, n_tasks) -> dict:
    """Share of validation tasks (per shot) in which EM empties a class."""
    X_val, y_val = pools["val"]
    Z = torch.from_numpy(model.meta_encoder_.transform(X_val))
    out = {}
    for shot in ocfg["shots"]:
        empty = []
        for R in ocfg["annotators"]:
            keys = (n_tasks, "validation", shot, R)
            for task in omniglot.crowd_tasks(ocfg, y_val, shot, R, *keys):
                codes = np.nan_to_num(task.Y, nan=-1).astype(np.int64)
                empty.append(_empty_class(_run_em(model, Z[task.support][None], codes)))
        out[f"{shot}-shot"] = float(np.mean(empty))
    return out


def gradient_spikes(model, pools, n_episodes, seed=1) -> dict:
    """Per-episode meta-gradient norms of ``model`` on pseudo-annotated episodes:
    their median and top, the share of episodes in which EM empties a class and
    that share among the 1 % largest norms."""
    encoder = model.meta_encoder_
    module = encoder.module
    for p in module.parameters():
        p.requires_grad_(True)
    module.train()
    X_train, y_train = pools["train"]
    shots = ("n_way", "n_shot", "n_query", "n_annotators")
    kw = {k: getattr(model.meta_learner, k) for k in shots}
    X = encoder.scale_inputs(X_train)
    sampler = EpisodeSampler(X, y_train, random_state=seed, **kw)
    norms, empty = [], []
    for _ in range(n_episodes):
        ep = sampler.sample()
        # EpisodicEM.forward on one unpadded episode, keeping the EM result:
        # support and query embedded together (one batch-norm batch)
        xs = torch.as_tensor(ep.support_X, dtype=torch.float32)
        Z = module(torch.cat([xs, torch.as_tensor(ep.query_X, dtype=torch.float32)]))
        res = _run_em(model, Z[None, : len(xs)], ep.support_codes)
        log_proba = _episodic_em(model).log_proba(Z[None, len(xs) :], res)
        module.zero_grad()
        loss = torch.nn.functional.nll_loss(log_proba[0], torch.from_numpy(ep.query_y))
        loss.backward()
        squares = sum((p.grad**2).sum() for p in module.parameters())
        norms.append(float(torch.sqrt(squares)))
        empty.append(_empty_class(res))
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    norms, empty = np.array(norms), np.array(empty)
    top = norms >= np.quantile(norms, 0.99)
    out = {"n_episodes": int(n_episodes), "median": float(np.median(norms))}
    out.update(p99=float(np.quantile(norms, 0.99)), max=float(norms.max()))
    out["empty_class_share"] = float(empty.mean())
    out["empty_class_share_top1pct"] = float(empty[top].mean())
    when_empty = float(np.median(norms[empty > 0])) if empty.any() else None
    return {**out, "median_when_empty": when_empty}


def run(config=None, **overrides) -> dict:
    """Meta-train the variants; ``config`` and ``overrides`` override
    :func:`default_config` (``quick=True`` first selects its quick one)."""
    cfg = omniglot.study_config(default_config, config, overrides)
    if bad := sorted(set(cfg["variants"]) - set(VARIANTS)):
        raise ValueError(f"unknown variants {bad}; choose from {tuple(VARIANTS)}")
    ocfg = {**omniglot.default_config(), **cfg["omniglot"]}

    def rows(pools):
        out, spikes = [], None
        for name in cfg["variants"]:
            with harness.Timer() as t:
                model = meta_train_variant(name, ocfg, pools, cfg["n_episodes"])
            row = {"variant": name, "best_val_accuracy": model.meta_val_accuracy_}
            row["best_epoch"] = model.meta_best_epoch_
            rate = empty_class_rate(model, ocfg, pools, cfg["n_val_tasks"])
            row["empty_class_rate"] = rate
            out.append({**row, "seconds": t.seconds})
            if name == "Ours" and cfg["n_gradient_episodes"]:
                spikes = gradient_spikes(model, pools, cfg["n_gradient_episodes"])
            harness.log(cfg, harness.columns_table(_columns(ocfg), [out[-1]])[1][0])
        return {"rows": out, "gradient_spikes": spikes}

    results = omniglot.meta_study(cfg, ocfg, rows)
    if cfg["write"]:
        results["files"] = write_outputs(results)
    return results


def _percent(shot):
    return lambda row: f"{100 * row['empty_class_rate'][f'{shot}-shot']:.0f} %"


def _columns(ocfg) -> dict:
    """The table's columns: header -> format of a row."""
    columns = {"variant": "{variant}"}
    columns["best validation accuracy (epoch)"] = (
        "{best_val_accuracy:.3f} ({best_epoch})"
    )
    for s in ocfg["shots"]:
        columns[f"EM empties a class, {s}-shot"] = _percent(s)
    return {**columns, "seconds": "{seconds:.0f}"}


def write_outputs(results) -> dict:
    """JSON, Markdown and reStructuredText results; returns their paths."""
    cfg, g, spikes = results["config"], results["gradient_spikes"], None
    text = (
        f"{cfg['n_episodes']} meta-training episodes per variant; validation on "
        f"{cfg['omniglot']['n_val_episodes']} fixed pseudo-annotated episodes of the "
        f"validation alphabet; empty classes counted on {cfg['n_val_tasks']} "
        "validation tasks per cell."
    )
    if g:
        spikes = (
            f"Per-episode meta-gradient norms of `Ours` ({g['n_episodes']} "
            f"pseudo-annotated training episodes): median {g['median']:.2f}, 99th "
            f"percentile {g['p99']:.1f}, max {g['max']:.0f}; EM empties a class in "
            f"{100 * g['empty_class_share']:.0f} % of the episodes and in "
            f"{100 * g['empty_class_share_top1pct']:.0f} % of the 1 % with the "
            "largest norms."
        )
    title = f"Best validation accuracy after {cfg['n_episodes']} episodes, one "
    title += "meta-training change at a time"
    table = harness.columns_table(_columns(cfg["omniglot"]), results["rows"])
    args = ("omniglot_variants.py", "Meta-training variants", text, title, table)
    return omniglot.write_study(results, *args, footer=spikes)


def main(argv=None):
    """Command-line entry point."""
    variants = {"nargs": "+", "help": f"subset of {tuple(VARIANTS)}"}
    run(
        omniglot.study_command_line(
            "omniglot_variants.py",
            "Meta-training variants on the Omniglot validation alphabet.",
            "200 episodes per variant",
            argv,
            variants=variants,
        )
    )


if __name__ == "__main__":
    main()
