"""Validation of the per-task check of ``representation="auto"``: unit and threshold.

    python -m benchmarks.selection_check --quick   # a few minutes
    python -m benchmarks.selection_check           # the run on the docs

Protocol (validation data only, no test alphabet): the default model
(``pseudo_annotation=False``, the Omniglot benchmark's Conv-4 settings) is
meta-fitted on the background alphabets; tasks are 4-way, 3 and 5 shots (the
check needs 2 items per class), R = 3/5/7 simulated annotators of the main
mixture, on the validation alphabet (Greek); and sparse crowds like real ones
(10 annotators each labelling an item with probability 0.3, or 30 with 0.1:
about 3 labels per item, few per annotator). Per task: every candidate space's
held-out agreement (per annotation and per item, scoring the probability of
each hidden annotation or its match with the predicted class; the folds of
``fit``) and its accuracy when forced. The rule of ``fit`` is then replayed
for each threshold ``min_z`` and unit, from each possible default: the right
one (what ``meta_fit`` chose) and the wrong ones (what a failed validation
would give).
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state

from sklearn_metaannot import (
    INPUT_SPACES,
    CrowdLabelMatrix,
    choose_representation,
    held_out_agreement,
)

from . import harness, omniglot

_HERE = Path(__file__).resolve().parent

SPACES = ("meta", *INPUT_SPACES)
#: Unit of the paired test -> how the check scores: per annotation or per item,
#: the probability of each hidden annotation or its match with the argmax.
UNITS = {
    "annotations": {"by_item": False},
    "items": {"by_item": True},
    "annotations, match": {"by_item": False, "score": "match"},
    "items, match": {"by_item": True, "score": "match"},
}


def default_config(quick=False) -> dict:
    """Every knob; ``quick``: 300 episodes, 4 tasks per cell."""
    cfg = {
        "name": "selection_check",
        "data": str(omniglot.DEFAULT_DATA),
        "n_episodes": 2000,
        "n_tasks": 30,
        "shots": [3, 5],
        "annotators": [3, 5, 7],
        "sparse_crowds": [[10, 0.3], [30, 0.1]],  # (annotators, annotation rate)
        "thresholds": [0.5, 1.0, 1.25, 1.5, 2.0, 3.0],
        "seed": 7,
        "threads": 2,
        "output_dir": str(_HERE / "results"),
        "write": True,
        "verbose": 1,
    }
    if quick:
        cfg.update(name="selection_check_quick", n_episodes=300, n_tasks=4)
    return cfg


def task_record(model, X, Y, query_y, Xq) -> dict:
    """Held-out scores (both units) and forced accuracy of every space on a task."""
    labels = CrowdLabelMatrix.from_dense(Y, classes=np.arange(4))
    seed = fold_seed(model)  # the folds of fit
    record = {"scores": {u: {} for u in UNITS}, "accuracy": {}}
    for space in SPACES:
        fitted = clone(model).set_params(representation=space)
        fitted.fit(X, labels, classes=np.arange(4))
        record["accuracy"][space] = float(np.mean(fitted.predict(Xq) == query_y))
        U = fitted.embed(X)  # in ``space``, forced
        for unit, kwargs in UNITS.items():
            scores = held_out_scores(fitted, U, labels, 4, seed, **kwargs)
            record["scores"][unit][space] = scores
    return record


def fold_seed(model):
    """The seed of the held-out folds of ``model.fit`` (``representation="auto"``):
    one draw from its ``random_state``; None (folds in turn) without one."""
    if model.random_state is None:
        return None
    return check_random_state(model.random_state).randint(2**31 - 1)


def held_out_scores(model, U, labels, n_classes, seed, **kwargs):
    """Held-out agreement of the crowd ``labels`` in the space ``U``, with the
    folds of ``seed`` and ``model``'s EM settings, as ``fit`` scores a space
    (its default 5 folds); ``kwargs``: ``by_item`` (default True) and ``score``."""
    em = {"n_iter": model.n_em_iter, "tau": model.tau, "b": model.b, "c": model.c}
    return held_out_agreement(
        U,
        (labels.rows, labels.cols, labels.codes),
        n_classes,
        random_state=seed,
        **{"by_item": True, **kwargs},
        **em,
    )


#: Replayed rules: name -> (scores of that unit, chance floor of the candidate,
#: whether only meta_fit's plausible input spaces are candidates).
RULES = {u: (u, None, False) for u in UNITS}
RULES["items, above chance"] = ("items", 0.25, False)
RULES["items, above chance, plausible"] = ("items", 0.25, True)


def replay(records, thresholds, plausible=SPACES) -> list[dict]:
    """Mean accuracy of the rule per crowd (dense, sparse), default, rule and
    threshold; ``plausible``: the input spaces meta_fit left as candidates."""
    rows = []
    for crowd in sorted({r["crowd"] for r in records}):
        part = [r for r in records if r["crowd"] == crowd]
        rows += [
            {**row, "crowd": crowd} for row in _replay(part, thresholds, plausible)
        ]
    return rows


def _replay(records, thresholds, plausible) -> list[dict]:
    rows = []
    for default in SPACES:
        for rule, (unit, chance, restrict) in RULES.items():
            row = {"default": default, "unit": rule}
            keep = {default, "meta", *plausible} if restrict else set(SPACES)
            for z in thresholds:
                choice = [
                    choose_representation(
                        {s: v for s, v in r["scores"][unit].items() if s in keep},
                        default,
                        min_z=z,
                        chance=chance,
                    )
                    for r in records
                ]
                picks = [r["accuracy"][c] for r, c in zip(records, choice)]
                row[f"z={z:g}"] = float(np.mean(picks))
            row["never"] = float(np.mean([r["accuracy"][default] for r in records]))
            rows.append(row)
    return rows


def run(config=None) -> dict:
    """Meta-fit, score every task, replay the rule; the results."""
    cfg = harness.configure(default_config, config)
    with warnings.catch_warnings(), harness.torch_threads(cfg["threads"]):
        warnings.simplefilter("ignore")
        with harness.Timer() as timer:
            results = _run(cfg)
    return {**results, "wall_seconds": timer.seconds}


def _run(cfg) -> dict:
    pools = omniglot.load_pools({**omniglot.default_config(), "data": cfg["data"]})
    (X_train, y_train), (X_val, y_val) = pools["pools"]["train"], pools["pools"]["val"]
    settings = {**omniglot.default_config(), "n_episodes": cfg["n_episodes"]}
    model = omniglot.base_estimator(
        settings,
        pseudo_annotation=False,
        representation="auto",
        n_threads=cfg["threads"],
    )
    with harness.Timer() as timer:
        model.meta_fit(X_train, y_train, X_val=X_val, y_val=y_val)
    harness.log(cfg, f"meta_fit {timer.seconds:.0f} s, chose {model.meta_selected_}")
    records = []
    crowds = [("dense", R, 1.0) for R in cfg["annotators"]]
    crowds += [("sparse", R, rate) for R, rate in cfg["sparse_crowds"]]
    for shot in cfg["shots"]:
        for crowd, R, rate in crowds:
            key = [cfg["seed"], shot, R] + (
                [] if crowd == "dense" else [int(rate * 100)]
            )
            tasks = harness.sample_crowd_tasks(
                y_val, n_tasks=cfg["n_tasks"], n_way=4, n_shot=shot, n_query=10,
                n_annotators=R, simulator_params={"annotation_rate": rate}, seed=key,
            )  # fmt: skip
            for t in tasks:
                Xs, Xq = X_val[t.support], X_val[t.query]
                record = task_record(model, Xs, t.Y, t.query_y, Xq)
                records.append({**record, "crowd": crowd})
    best = {
        crowd: float(np.mean([max(r["accuracy"].values()) for r in part]))
        for crowd in ("dense", "sparse")
        if (part := [r for r in records if r["crowd"] == crowd])
    }
    return {
        "config": cfg,
        "environment": harness.environment(),
        "meta_selected": model.meta_selected_,
        "meta_val_scores": model.meta_val_scores_,
        "n_tasks": len(records),
        "best_space_per_task": best,
        "meta_input_candidates": list(model.meta_input_candidates_),
        "rows": replay(records, cfg["thresholds"], model.meta_input_candidates_),
        "meta_fit_seconds": timer.seconds,
    }


def page(results) -> list:
    """The Markdown page; its table, the replay, is also the reST file's."""
    keys = [f"z={z:g}" for z in results["config"]["thresholds"]] + ["never"]
    chosen = results["meta_selected"]
    rows = [
        [r["crowd"],
         r["default"] + (" (meta_fit's)" if r["default"] == chosen else ""),
         r["unit"], *(f"{r[k]:.4f}" for k in keys)]
        for r in results["rows"]
    ]  # fmt: skip
    title = (
        f"Mean accuracy of representation='auto' on {results['n_tasks']} validation "
        "tasks, by crowd, default space, unit of the paired test and threshold min_z"
    )
    best = "; ".join(f"{k} {v:.4f}" for k, v in results["best_space_per_task"].items())
    plausible = ", ".join(results["meta_input_candidates"])
    best = (
        f"Best space per task in hindsight: {best}. "
        f"Input spaces meta_fit left plausible: {plausible}."
    )
    header = ["crowd", "default", "unit", *keys]
    return [
        harness.page_header(results, "selection_check.py", "Per-task check"),
        harness.Table(f"{title}. {best}", title, header, rows),
    ]


def main(argv=None):
    """Command-line entry point."""
    overrides = harness.command_line(
        "selection_check.py", __doc__.splitlines()[0], "300 episodes, 4 tasks per cell",
        argv, data=(str, "folder with the Omniglot zip archives"),
    )  # fmt: skip
    results = run(overrides)
    print(harness.markdown_page(page(results)))
    cfg = results["config"]
    if cfg["write"]:
        harness.write_page(cfg["output_dir"], cfg["name"], results, page(results))


if __name__ == "__main__":
    main()
