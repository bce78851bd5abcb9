"""Meta-training variants of our model, on the Omniglot validation alphabet.

Why does pseudo-annotation (PA) not beat clean meta-training ("w/o PA") on our
Omniglot subset? This script meta-trains our model with the settings of
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
the per-episode meta-gradient norm relates to that.

    python benchmarks/omniglot_variants.py            # about 20 min on 2 CPU cores
    python benchmarks/omniglot_variants.py --quick    # 200 episodes per variant

The ``stop-gradient`` and ``clean + PA loss`` variants are not package options:
the script swaps the EM step or the episode module for the duration of the run.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import harness  # noqa: E402
import omniglot  # noqa: E402
from harness import Timer, markdown_table  # noqa: E402

import sklearn_metaannot._em as em  # noqa: E402
import sklearn_metaannot._meta as meta  # noqa: E402
from sklearn_metaannot import EpisodeSampler, MetaLearningWarning  # noqa: E402

VARIANTS = (
    "Ours",
    "w/o PA",
    "tau=0.1",
    "stop-gradient",
    "curriculum",
    "clean + PA loss",
)


def default_config(quick=False) -> dict:
    """Settings; the rest comes from ``omniglot.default_config``.

    Returns
    -------
    dict
    """
    cfg = {
        "name": "omniglot_variants",
        "variants": list(VARIANTS),
        "n_episodes": 4000,
        "n_val_tasks": 30,
        "n_gradient_episodes": 300,
        "omniglot": {},
        "write": True,
        "verbose": 1,
    }
    if quick:
        cfg.update(
            name="omniglot_variants_quick",
            n_episodes=200,
            n_val_tasks=4,
            n_gradient_episodes=20,
        )
        cfg["omniglot"] = {"episodes_per_epoch": 100, "n_val_episodes": 30}
    return cfg


@contextmanager
def _stop_gradient_through_responsibilities():
    e_step = em.e_step
    em.e_step = lambda *a, **k: e_step(*a, **k).detach()
    try:
        yield
    finally:
        em.e_step = e_step


def _pad_with_clean_labels(episode, n_support, n_annotators):
    out = _pad_episode(episode, n_support, n_annotators)
    clean = np.full((n_support, 1), -1, dtype=np.int64)
    clean[: len(episode.support_y), 0] = episode.support_y
    out["support_codes"] = np.concatenate([out["support_codes"], clean], axis=1)
    return out


def _forward_clean_and_noisy(
    self, support_X, support_codes, support_mask, query_X, n_classes=None
):
    # the last annotator column holds the clean labels (see _pad_with_clean_labels)
    noisy = _forward(
        self, support_X, support_codes[..., :-1], support_mask, query_X, n_classes
    )
    if not self.training:
        return noisy
    clean = _forward(
        self, support_X, support_codes[..., -1:], support_mask, query_X, n_classes
    )
    # the NLL loss is linear in the log-probabilities: this averages the two losses
    return 0.5 * (noisy + clean)


_pad_episode = meta.pad_episode
_forward = meta.EpisodicEM.forward


@contextmanager
def _clean_and_noisy_loss():
    meta.pad_episode = _pad_with_clean_labels
    meta.EpisodicEM.forward = _forward_clean_and_noisy
    try:
        yield
    finally:
        meta.pad_episode = _pad_episode
        meta.EpisodicEM.forward = _forward


def _fit(ocfg, pools, n_episodes, **params):
    X_train, y_train = pools["train"]
    X_val, y_val = pools["val"]
    cfg = {**ocfg, "n_episodes": n_episodes}
    model = clone(omniglot.base_estimator(cfg)).set_params(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        model.meta_fit(X_train, y_train, X_val=X_val, y_val=y_val)
    return model


def meta_train_variant(name, ocfg, pools, n_episodes):
    """Meta-train one variant; returns the fitted MetaAnnotatorClassifier."""
    if name == "Ours":
        return _fit(ocfg, pools, n_episodes)
    if name == "w/o PA":
        return _fit(ocfg, pools, n_episodes, pseudo_annotation=False)
    if name == "tau=0.1":
        return _fit(ocfg, pools, n_episodes, tau=0.1)
    if name == "stop-gradient":
        with _stop_gradient_through_responsibilities():
            return _fit(ocfg, pools, n_episodes)
    if name == "curriculum":
        clean = _fit(ocfg, pools, n_episodes // 2, pseudo_annotation=False)
        encoder = clean.meta_encoder_.module
        for p in encoder.parameters():
            p.requires_grad_(True)
        return _fit(ocfg, pools, n_episodes - n_episodes // 2, encoder=encoder)
    if name == "clean + PA loss":
        with _clean_and_noisy_loss():
            return _fit(ocfg, pools, n_episodes)
    raise ValueError(f"unknown variant {name!r}")


def _run_em(model, U, codes):
    """EM of ``model``'s adaptation settings on embeddings U (1, N, M), codes (N, R)."""
    Y = em.one_hot_annotations(torch.as_tensor(codes)[None], model.n_way).to(U.dtype)
    return em.run_em(
        U,
        Y,
        n_iter=model.n_em_iter,
        tau=model.tau,
        b=model.b,
        c=model._em_prior_c(),
    )


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
            tasks = harness.sample_crowd_tasks(
                y_val,
                n_tasks=n_tasks,
                n_way=ocfg["n_way"],
                n_shot=shot,
                n_query=ocfg["n_query"],
                n_annotators=R,
                mixture=omniglot.MAIN_MIXTURE,
                seed=harness.stable_seed(ocfg["seed"], "validation", shot, R),
            )
            for task in tasks:
                codes = np.nan_to_num(task.Y, nan=-1).astype(np.int64)
                empty.append(_empty_class(_run_em(model, Z[task.support][None], codes)))
        out[f"{shot}-shot"] = float(np.mean(empty))
    return out


def gradient_spikes(model, pools, n_episodes, seed=1) -> dict:
    """Per-episode meta-gradient norms of ``model`` on pseudo-annotated episodes.

    Returns the median norm, the share of episodes in which EM empties a class,
    and that share among the 1 % largest norms.
    """
    encoder = model.meta_encoder_
    module = encoder.module
    for p in module.parameters():
        p.requires_grad_(True)
    module.train()
    X_train, y_train = pools["train"]
    sampler = EpisodeSampler(
        encoder.scale_inputs(X_train),
        y_train,
        n_way=model.n_way,
        n_shot=model.n_shot,
        n_query=model.n_query,
        n_annotators=model.n_annotators,
        random_state=seed,
    )
    norms, empty = [], []
    for _ in range(n_episodes):
        ep = sampler.sample()
        # the steps of EpisodicEM.forward for one unpadded episode, keeping the
        # EM result: support and query embedded together (one batch-norm batch)
        xs = torch.as_tensor(ep.support_X, dtype=torch.float32)
        Z = module(torch.cat([xs, torch.as_tensor(ep.query_X, dtype=torch.float32)]))
        res = _run_em(model, Z[None, : len(xs)], ep.support_codes)
        log_proba = em.predict_log_proba(Z[None, len(xs) :], res.mu, res.log_pi)
        module.zero_grad()
        loss = torch.nn.functional.nll_loss(log_proba[0], torch.from_numpy(ep.query_y))
        loss.backward()
        norms.append(
            float(torch.sqrt(sum((p.grad**2).sum() for p in module.parameters())))
        )
        empty.append(_empty_class(res))
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    norms, empty = np.array(norms), np.array(empty)
    top = norms >= np.quantile(norms, 0.99)
    return {
        "n_episodes": int(n_episodes),
        "median": float(np.median(norms)),
        "p99": float(np.quantile(norms, 0.99)),
        "max": float(norms.max()),
        "empty_class_share": float(empty.mean()),
        "empty_class_share_top1pct": float(empty[top].mean()),
        "median_when_empty": float(np.median(norms[empty > 0]))
        if empty.any()
        else None,
    }


def run(config=None, **overrides) -> dict:
    """Run the variants; returns (and with ``write`` saves) the results.

    Parameters
    ----------
    config : dict, optional
        Overrides of :func:`default_config` (``quick=True`` selects the quick
        defaults first); ``omniglot`` overrides the Omniglot benchmark's
        configuration.
    **overrides
        More overrides.

    Returns
    -------
    dict
        ``config``, ``environment``, ``rows`` (per variant: best validation
        accuracy and epoch, empty-class rates, seconds), ``gradient_spikes`` and
        ``seconds``.
    """
    cfg = harness.study_config(default_config, config, overrides)
    bad = set(cfg["variants"]) - set(VARIANTS)
    if bad:
        raise ValueError(f"unknown variants {sorted(bad)}; choose from {VARIANTS}")
    ocfg = omniglot.default_config()
    ocfg.update(cfg["omniglot"])
    pools = omniglot.load_pools(ocfg)["pools"]
    rows, spikes = [], None
    threads = torch.get_num_threads()
    torch.set_num_threads(int(ocfg["meta_threads"]))
    try:
        with Timer() as total:
            for name in cfg["variants"]:
                with Timer() as t:
                    model = meta_train_variant(name, ocfg, pools, cfg["n_episodes"])
                row = {
                    "variant": name,
                    "best_val_accuracy": model.meta_val_accuracy_,
                    "best_epoch": model.meta_best_epoch_,
                    "empty_class_rate": empty_class_rate(
                        model, ocfg, pools, cfg["n_val_tasks"]
                    ),
                    "seconds": t.seconds,
                }
                rows.append(row)
                if name == "Ours" and cfg["n_gradient_episodes"]:
                    spikes = gradient_spikes(model, pools, cfg["n_gradient_episodes"])
                if cfg["verbose"]:
                    rates = ", ".join(
                        f"{k} {100 * v:.0f} %"
                        for k, v in row["empty_class_rate"].items()
                    )
                    print(
                        f"{name}: best validation accuracy "
                        f"{row['best_val_accuracy']:.3f} (epoch {row['best_epoch']}); "
                        f"EM empties a class in {rates} of the validation tasks; "
                        f"{t.seconds:.0f} s",
                        flush=True,
                    )
    finally:
        torch.set_num_threads(threads)
    results = {
        "config": {**cfg, "omniglot": ocfg},
        "environment": harness.environment(),
        "rows": rows,
        "gradient_spikes": spikes,
        "seconds": total.seconds,
    }
    if cfg["write"]:
        results["files"] = write_outputs(results)
    return results


def _table(results):
    shots = results["config"]["omniglot"]["shots"]
    header = [
        "variant",
        "best validation accuracy (epoch)",
        *[f"EM empties a class, {s}-shot" for s in shots],
        "seconds",
    ]
    rows = [
        [
            r["variant"],
            f"{r['best_val_accuracy']:.3f} ({r['best_epoch']})",
            *[f"{100 * r['empty_class_rate'][f'{s}-shot']:.0f} %" for s in shots],
            f"{r['seconds']:.0f}",
        ]
        for r in results["rows"]
    ]
    return header, rows


def markdown(results) -> str:
    """The results as Markdown."""
    cfg = results["config"]
    text = (
        f"# Meta-training variants ({cfg['name']})\n\n"
        f"`python benchmarks/omniglot_variants.py` in {results['seconds']:.0f} s; "
        f"{cfg['n_episodes']} meta-training episodes per variant; validation on "
        f"{cfg['omniglot']['n_val_episodes']} fixed pseudo-annotated episodes of the "
        "validation alphabet; empty classes counted on "
        f"{cfg['n_val_tasks']} validation tasks per cell.\n\n"
        + markdown_table(*_table(results))
    )
    g = results["gradient_spikes"]
    if g:
        text += (
            f"\n\nPer-episode meta-gradient norms of `Ours` ({g['n_episodes']} "
            f"pseudo-annotated training episodes): median {g['median']:.2f}, 99th "
            f"percentile {g['p99']:.1f}, max {g['max']:.0f}; EM empties a class in "
            f"{100 * g['empty_class_share']:.0f} % of the episodes and in "
            f"{100 * g['empty_class_share_top1pct']:.0f} % of the 1 % with the "
            "largest norms."
        )
    return text


def write_outputs(results) -> dict:
    """JSON, Markdown and reStructuredText results; returns their paths."""
    title = (
        f"Best validation accuracy after {results['config']['n_episodes']} "
        "episodes, one meta-training change at a time"
    )
    return harness.write_study_outputs(
        results,
        results["config"]["omniglot"]["output_dir"],
        markdown(results),
        title,
        _table(results),
    )


def main(argv=None):
    """Command-line entry point."""
    parser = harness.study_parser(
        "omniglot_variants.py",
        "Meta-training variants on the Omniglot validation alphabet.",
        "200 episodes per variant",
    )
    parser.add_argument("--variants", nargs="+", help=f"subset of {VARIANTS}")
    args = parser.parse_args(argv)
    run(harness.study_overrides(args, variants=args.variants))


if __name__ == "__main__":
    main()
