"""Omniglot: how much of the result is the meta-training seed?

The main grid of ``omniglot.py`` (4-way, 1/3/5 shots x R = 3/5/7, mixture
(0.1, 0.7, 0.2), the same seeded test tasks) for several meta-training seeds of
our model and of w/o PA. PrMV and PrDS use the w/o-PA (ProtoNet) encoder of the
same seed; they were the best baselines of the full run, every other baseline
is at least 3 points lower there and does not depend on meta-training. J and b
are chosen on the validation alphabet for every seed, as in the full run::

    python -m benchmarks.omniglot_seeds               # seeds 0 1 2 (about 25 min)
    python -m benchmarks.omniglot_seeds --quick       # 2 seeds, a few tasks

Writes ``benchmarks/results/omniglot_seeds{,_quick}.{json,md}`` and
``omniglot_seeds{,_quick}_tables.rst`` (included in the docs).
"""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from . import harness, omniglot
from .omniglot import OURS, WOPA

METHODS = [OURS, WOPA, "PrMV", "PrDS"]
#: The benchmark's overrides for every seed: the main grid of these methods.
MAIN_GRID = {"methods": METHODS, "spammer_mixtures": [], "other_types": []}
MAIN_GRID.update(timing_rounds=0, write=False)


def _ours_minus(run, *others):
    a = run["average"]
    return f"{a[OURS] - max(a[m] for m in others):+.3f}"


TABLE = {
    "meta seed": "{meta_seed}",
    **{m: f"{{average[{m}]:.3f}}" for m in METHODS},
    "ours - best of PrMV/PrDS": lambda r: _ours_minus(r, "PrMV", "PrDS"),
    "ours - w/o PA": lambda r: _ours_minus(r, WOPA),
    "validation: ours / w/o PA": "{val_accuracy[Ours]:.3f} / "
    "{val_accuracy[w/o PA]:.3f}",
    "J, b: ours / w/o PA": "{selection[Ours][J]}, {selection[Ours][b]:g} / "
    "{selection[w/o PA][J]}, {selection[w/o PA][b]:g}",
}


def default_config(quick=False) -> dict:
    """Seeds, and ``omniglot``: overrides of :func:`omniglot.default_config`."""
    cfg = {"name": "omniglot_seeds", "seeds": [0, 1, 2], "omniglot": {}}
    cfg.update(write=True, verbose=1)
    if quick:
        cfg.update(name="omniglot_seeds_quick", seeds=[0, 1], omniglot={"quick": True})
    return cfg


def _run_row(seed, res) -> dict:
    main, fitted = res["summary"]["main"], res["meta_training"]
    cells = {
        k: {m: c["methods"][m]["mean"] for m in METHODS}
        for k, c in main["cells"].items()
    }
    row = {
        "meta_seed": seed,
        "val_accuracy": {m: fitted[m]["val_accuracy"] for m in (OURS, WOPA)},
    }
    row.update(selection=res["hyperparameters"]["selection"])
    row.update(average={m: main["average"][m] for m in METHODS}, cells=cells)
    return {**row, "headline": main["headline"], "seconds": res["seconds"]["total"]}


def run(config=None, **overrides) -> dict:
    """The main grid once per meta-training seed; ``config`` and ``overrides``
    override :func:`default_config` (``quick=True`` first selects its quick one)."""
    cfg = omniglot.study_config(default_config, config, overrides)
    runs = []
    with harness.Timer() as total:
        for seed in map(int, cfg["seeds"]):
            grid = {**cfg["omniglot"], "meta_seed": seed, **MAIN_GRID}
            runs.append(_run_row(seed, omniglot.run(grid, verbose=cfg["verbose"])))
            harness.log(cfg, f"meta seed {seed}: {runs[-1]['average']}")
    scores = {m: [r["average"][m] for r in runs] for m in METHODS}
    results = {"config": cfg, "environment": harness.environment(), "runs": runs}
    results["mean_over_seeds"] = {m: float(np.mean(v)) for m, v in scores.items()}
    std = {m: float(np.std(v, ddof=1)) for m, v in scores.items()}
    results.update(std_over_seeds=std if len(runs) > 1 else None, seconds=total.seconds)
    if cfg["write"]:
        text = "average accuracy over the 9 cells (1/3/5 shots x R = 3/5/7) at mixture "
        text += "(0.1, 0.7, 0.2), the same test tasks for every seed."
        heading = "Omniglot main grid against the meta-training seed"
        title = "Average test accuracy of the main grid for each meta-training seed"
        table = _table(results)
        args = ("omniglot_seeds.py", heading, text, title, table)
        results["files"] = omniglot.write_study(results, *args)
    return results


def _table(results):
    """One row per seed, then the mean ± sd over the seeds."""
    header, rows = harness.columns_table(TABLE, results["runs"])
    mean, std = results["mean_over_seeds"], results["std_over_seeds"]
    if std is not None:
        rows.append(["mean ± sd", *[f"{mean[m]:.3f} ± {std[m]:.3f}" for m in METHODS]])
        rows[-1] += [""] * 4
    return header, rows


def main(argv=None):
    """Command-line entry point."""
    seeds = {"nargs": "+", "type": int, "help": "meta-training seeds"}
    run(
        omniglot.study_command_line(
            "omniglot_seeds.py",
            "The Omniglot main grid for several meta-training seeds.",
            "2 seeds, few tasks",
            argv,
            seeds=seeds,
        )
    )


if __name__ == "__main__":
    main()
