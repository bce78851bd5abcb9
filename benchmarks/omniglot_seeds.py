"""Omniglot: how much of the result is the meta-training seed?

Repeats the main grid of ``benchmarks/omniglot.py`` (4-way, 1/3/5 shots x
R = 3/5/7, mixture (0.1, 0.7, 0.2), the same seeded test tasks) for several
meta-training seeds of our model and of w/o PA. PrMV and PrDS use the w/o-PA
(ProtoNet) encoder of the same seed; they were the best baselines of the full
run, every other baseline is at least 3 points lower there and does not depend
on meta-training. J and b are chosen on the validation alphabet for every seed,
as in the full run.

    python benchmarks/omniglot_seeds.py               # seeds 0 1 2 (about 25 min)
    python benchmarks/omniglot_seeds.py --quick       # 2 seeds, a few tasks

Writes ``benchmarks/results/omniglot_seeds{,_quick}.{json,md}`` and
``omniglot_seeds{,_quick}_tables.rst`` (included in the docs).
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import harness  # noqa: E402
import omniglot  # noqa: E402
from harness import Timer, markdown_table  # noqa: E402

#: Methods that depend on meta-training (every other baseline does not).
METHODS = [omniglot.OURS, omniglot.WOPA, "PrMV", "PrDS"]


def default_config(quick=False) -> dict:
    """Seeds and overrides of the Omniglot benchmark's configuration.

    Returns
    -------
    dict
        ``seeds``, ``omniglot`` (overrides of ``omniglot.default_config``) and the
        output settings.
    """
    cfg = {
        "name": "omniglot_seeds",
        "seeds": [0, 1, 2],
        "omniglot": {},
        "write": True,
        "verbose": 1,
    }
    if quick:
        cfg.update(name="omniglot_seeds_quick", seeds=[0, 1])
        cfg["omniglot"] = {"quick": True}
    return cfg


def run(config=None, **overrides) -> dict:
    """Run the main grid once per meta-training seed.

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
        ``config``, ``environment``, ``runs`` (per seed: validation choice,
        validation accuracy of meta-training, per-cell means and averages, the
        headline) and ``seconds``.
    """
    cfg = harness.study_config(default_config, config, overrides)
    runs = []
    with Timer() as total:
        for seed in cfg["seeds"]:
            res = omniglot.run(
                {
                    **cfg["omniglot"],
                    "meta_seed": int(seed),
                    "methods": METHODS,
                    "spammer_mixtures": [],
                    "other_types": [],
                    "timing_rounds": 0,
                    "write": False,
                    "verbose": cfg["verbose"],
                }
            )
            main = res["summary"]["main"]
            runs.append(
                {
                    "meta_seed": int(seed),
                    "val_accuracy": {
                        m: res["meta_training"][m]["val_accuracy"]
                        for m in (omniglot.OURS, omniglot.WOPA)
                    },
                    "selection": res["hyperparameters"]["selection"],
                    "average": {m: main["average"][m] for m in METHODS},
                    "cells": {
                        ck: {m: c["methods"][m]["mean"] for m in METHODS}
                        for ck, c in main["cells"].items()
                    },
                    "headline": main["headline"],
                    "seconds": res["seconds"]["total"],
                }
            )
            if cfg["verbose"]:
                avg = runs[-1]["average"]
                print(
                    f"meta seed {seed}: "
                    + ", ".join(f"{m} {avg[m]:.3f}" for m in METHODS),
                    flush=True,
                )
    averages = {m: [r["average"][m] for r in runs] for m in METHODS}
    results = {
        "config": cfg,
        "environment": harness.environment(),
        "runs": runs,
        "mean_over_seeds": {m: float(np.mean(v)) for m, v in averages.items()},
        "std_over_seeds": {m: float(np.std(v, ddof=1)) for m, v in averages.items()}
        if len(runs) > 1
        else None,
        "seconds": total.seconds,
    }
    if cfg["write"]:
        results["files"] = write_outputs(results)
    return results


def _table(results):
    header = [
        "meta seed",
        *METHODS,
        "ours - best of PrMV/PrDS",
        "ours - w/o PA",
        "validation: ours / w/o PA",
        "J, b: ours / w/o PA",
    ]
    rows = []
    for r in results["runs"]:
        a, sel, val = r["average"], r["selection"], r["val_accuracy"]
        best = max(a["PrMV"], a["PrDS"])
        rows.append(
            [
                r["meta_seed"],
                *[f"{a[m]:.3f}" for m in METHODS],
                f"{a[omniglot.OURS] - best:+.3f}",
                f"{a[omniglot.OURS] - a[omniglot.WOPA]:+.3f}",
                f"{val[omniglot.OURS]:.3f} / {val[omniglot.WOPA]:.3f}",
                f"{sel[omniglot.OURS]['J']}, {sel[omniglot.OURS]['b']:g} / "
                f"{sel[omniglot.WOPA]['J']}, {sel[omniglot.WOPA]['b']:g}",
            ]
        )
    mean, std = results["mean_over_seeds"], results["std_over_seeds"]
    if std is not None:
        rows.append(
            ["mean ± sd", *[f"{mean[m]:.3f} ± {std[m]:.3f}" for m in METHODS]]
            + [""] * 4
        )
    return header, rows


def markdown(results) -> str:
    """The results as a Markdown table."""
    cfg = results["config"]
    return (
        f"# Omniglot main grid against the meta-training seed ({cfg['name']})\n\n"
        f"`python benchmarks/omniglot_seeds.py` in {results['seconds']:.0f} s; "
        "average accuracy over the 9 cells (1/3/5 shots x R = 3/5/7) at mixture "
        "(0.1, 0.7, 0.2), the same test tasks for every seed.\n\n"
        + markdown_table(*_table(results))
    )


def write_outputs(results) -> dict:
    """JSON, Markdown and reStructuredText results; returns their paths."""
    out = results["config"]["omniglot"].get(
        "output_dir", omniglot.default_config()["output_dir"]
    )
    return harness.write_study_outputs(
        results,
        out,
        markdown(results),
        "Average test accuracy of the main grid for each meta-training seed",
        _table(results),
    )


def main(argv=None):
    """Command-line entry point."""
    parser = harness.study_parser(
        "omniglot_seeds.py",
        "The Omniglot main grid for several meta-training seeds.",
        "2 seeds, few tasks",
    )
    parser.add_argument("--seeds", nargs="+", type=int, help="meta-training seeds")
    args = parser.parse_args(argv)
    run(harness.study_overrides(args, seeds=args.seeds))


if __name__ == "__main__":
    main()
