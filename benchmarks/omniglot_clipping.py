"""Gradient-clipping ablation of meta-training, on the Omniglot validation alphabet.

Meta-trains our model (pseudo-annotation) and w/o PA with the settings of
``benchmarks/omniglot.py`` for each value of ``max_grad_norm`` and reports the
best validation accuracy (100 fixed Greek tasks, pseudo-annotated) and the
gradient norms before clipping. The test alphabets are not touched: this is how
the package default ``max_grad_norm=1.0`` was chosen.

    python benchmarks/omniglot_clipping.py            # 2000 episodes per run
    python benchmarks/omniglot_clipping.py --quick    # 200 episodes per run

Writes ``benchmarks/results/omniglot_clipping{,_quick}.{json,md}`` and
``omniglot_clipping{,_quick}_tables.rst`` (included in the docs).
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch
from sklearn.base import clone

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import harness  # noqa: E402
import omniglot  # noqa: E402
from harness import Timer, markdown_table  # noqa: E402

from sklearn_metaannot import MetaLearningWarning  # noqa: E402


def default_config(quick=False) -> dict:
    """Settings of the ablation; the rest comes from ``omniglot.default_config``.

    Returns
    -------
    dict
        ``clip_values``, ``models``, ``n_episodes`` and the output settings.
    """
    cfg = {
        "name": "omniglot_clipping",
        "clip_values": [None, 3.0, 1.0],
        "models": ["Ours", "w/o PA"],
        "n_episodes": 2000,
        "omniglot": {},
        "write": True,
        "verbose": 1,
    }
    if quick:
        cfg.update(name="omniglot_clipping_quick", n_episodes=200)
        cfg["omniglot"] = {"episodes_per_epoch": 100, "n_val_episodes": 30}
    return cfg


def run(config=None, **overrides) -> dict:
    """Run the ablation; returns (and with ``write`` saves) its results.

    Parameters
    ----------
    config : dict, optional
        Overrides of :func:`default_config` (``quick=True`` selects the quick
        defaults first); ``omniglot`` overrides the Omniglot benchmark's
        configuration (data folder, threads, ...).
    **overrides
        More overrides.

    Returns
    -------
    dict
        ``config``, ``environment``, ``rows`` (one per model and clipping
        value: best and last validation accuracy, best epoch, seconds, gradient
        norm statistics) and ``seconds``.
    """
    cfg = harness.study_config(default_config, config, overrides)
    ocfg = omniglot.default_config()
    ocfg.update(cfg["omniglot"])
    ocfg["n_episodes"] = cfg["n_episodes"]
    pools = omniglot.load_pools(ocfg)["pools"]
    X_train, y_train = pools["train"]
    X_val, y_val = pools["val"]
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(int(ocfg["meta_threads"]))
    try:
        with Timer() as total:
            for name in cfg["models"]:
                for clip in cfg["clip_values"]:
                    model = clone(omniglot.base_estimator(ocfg)).set_params(
                        pseudo_annotation=name != omniglot.WOPA, max_grad_norm=clip
                    )
                    with warnings.catch_warnings(), Timer() as t:
                        warnings.simplefilter("ignore", MetaLearningWarning)
                        model.meta_fit(X_train, y_train, X_val=X_val, y_val=y_val)
                    history = model.meta_history_
                    row = {
                        "model": name,
                        "max_grad_norm": clip,
                        "best_val_accuracy": model.meta_val_accuracy_,
                        "best_epoch": model.meta_best_epoch_,
                        "last_val_accuracy": float(history[-1, "valid_acc"]),
                        "seconds": t.seconds,
                        "grad_norm": omniglot.grad_norm_stats(history, clip),
                    }
                    rows.append(row)
                    if cfg["verbose"]:
                        best, last = row["best_val_accuracy"], row["last_val_accuracy"]
                        print(
                            f"{name:>7} max_grad_norm={clip}: best validation "
                            f"{best:.3f} (epoch {row['best_epoch']}), last {last:.3f}, "
                            f"max gradient norm {row['grad_norm']['max']:.1f}, "
                            f"{t.seconds:.0f} s",
                            flush=True,
                        )
    finally:
        torch.set_num_threads(threads)
    results = {
        "config": {**cfg, "omniglot": ocfg},
        "environment": harness.environment(),
        "rows": rows,
        "seconds": total.seconds,
    }
    if cfg["write"]:
        results["files"] = write_outputs(results)
    return results


def _table(results):
    header = [
        "model",
        "max_grad_norm",
        "best validation accuracy (epoch)",
        "last epoch",
        "gradient norm median / p90 / p99 / max",
        "steps clipped",
        "seconds",
    ]
    rows = []
    for r in results["rows"]:
        g = r["grad_norm"]
        clipped = g["clipped_fraction"]
        rows.append(
            [
                r["model"],
                "none" if r["max_grad_norm"] is None else f"{r['max_grad_norm']:g}",
                f"{r['best_val_accuracy']:.3f} ({r['best_epoch']})",
                f"{r['last_val_accuracy']:.3f}",
                f"{g['median']:.2f} / {g['p90']:.1f} / {g['p99']:.1f} / {g['max']:.0f}",
                "–" if clipped is None else f"{100 * clipped:.0f} %",
                f"{r['seconds']:.0f}",
            ]
        )
    return header, rows


def markdown(results) -> str:
    """The results as a Markdown table."""
    header, rows = _table(results)
    cfg = results["config"]
    return (
        f"# Gradient-clipping ablation ({cfg['name']})\n\n"
        f"`python benchmarks/omniglot_clipping.py` in {results['seconds']:.0f} s; "
        f"{cfg['n_episodes']} meta-training episodes per run; validation on "
        f"{cfg['omniglot']['n_val_episodes']} fixed tasks of the validation "
        "alphabet; gradient norms before clipping.\n\n" + markdown_table(header, rows)
    )


def write_outputs(results) -> dict:
    """JSON, Markdown and reStructuredText results; returns their paths."""
    title = (
        f"Validation accuracy after {results['config']['n_episodes']} episodes "
        "against meta-gradient clipping"
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
        "omniglot_clipping.py",
        "Meta-gradient clipping ablation on the Omniglot validation alphabet.",
        "200 episodes per run",
    )
    parser.add_argument("--n-episodes", type=int, help="episodes per run")
    parser.add_argument(
        "--clip",
        nargs="+",
        type=omniglot.parse_max_grad_norm,
        help="max_grad_norm values ('none': no clipping; default none 3 1)",
    )
    args = parser.parse_args(argv)
    run(
        harness.study_overrides(args, n_episodes=args.n_episodes, clip_values=args.clip)
    )


if __name__ == "__main__":
    main()
