"""LabelMe: gold labels and annotator history on few-shot tasks with real annotators.

    python benchmarks/labelme_gold.py --quick   # under a minute
    python benchmarks/labelme_gold.py           # the full run (a few minutes)

Protocol (fixed before any result was seen):
- the class splits, target tasks and query sets of ``benchmarks/labelme.py``
  (the same ``make_tasks`` draws, seed 0: 4-way tasks on the held-out classes,
  1, 3 or 5 crowd-labelled training images per class with their real
  Mechanical Turk labels, every test image of the target classes as query);
  every setting below sees the same tasks;
- methods: our EM without meta-learning on globally scaled features
  (``representation="scaled"``, the best no-meta space of the LabelMe page),
  and the default meta-learned model of that page ("Ours": residual-MLP
  encoder, clean episodes, ``representation="auto"``), meta-trained per
  split exactly as there;
- gold labels: g = 0, 1, 2 support items per class (the first g of each class
  in the support's random order) get ``y_gold``; they keep their crowd labels.
  A class with fewer than g items in the support gives all it has; 2 gold
  items per class at 1 shot do not exist (n/a);
- annotator history: a disjoint task A on the same target classes (training
  images not in the support of B, ``history_shot`` per class by gold class, or
  the support size of B for "same"), labelled by its real workers, is fitted
  by the same method with crowd labels only; B is fitted with
  ``annotator_prior=A`` (``history_weight=1``). Workers are LabelMe's: a
  worker of B has history when it labelled a target-class image of A; the
  table reports how many of B's workers, and which share of B's labels, had
  history;
- mean query accuracy ± standard error over the tasks of all splits; each row
  is compared with the crowd-only row of the same method and shot by a paired
  t-test over the same tasks.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:  # `import harness` under runpy or importlib
    sys.path.insert(0, str(_HERE))

import harness  # noqa: E402
import labelme  # noqa: E402
from harness import fmt_acc, markdown_table, paired_ttest, stable_seed  # noqa: E402

from sklearn_metaannot import CrowdLabelMatrix  # noqa: E402
from sklearn_metaannot.datasets import load_labelme  # noqa: E402

REPO = _HERE.parent

#: The methods; ``context`` holds the configuration and the meta-trained models.
METHODS = harness.Methods()
METHODS.add("em_global", "EM, no meta (global scaling)")(
    lambda context, seed: labelme._em_global(None, context["cfg"]["labelme"], seed)
)
METHODS.add("ours", "Ours (meta-learned, representation='auto')", needs_meta=True)(
    lambda context, seed: clone(context["models"]["wopa"])
)


def default_config(quick=False) -> dict:
    """The configuration of the full run, or of the ``--quick`` run.

    Parameters
    ----------
    quick : bool, default=False
        Two splits, 5 tasks per split and shot.

    Returns
    -------
    dict
    """
    base = labelme.default_config(quick=quick)
    cfg = {
        "name": "labelme_gold",
        "data": base["data"],
        "seed": 0,
        "splits": [list(s) for s in labelme.SPLITS],
        "shots": [1, 3, 5],
        "n_tasks": base["n_tasks"],
        "methods": list(METHODS),
        "gold_per_class": [0, 1, 2],
        "history_shots": ["same", 20],
        "history_weight": 1.0,
        # the LabelMe benchmark's configuration (EM settings, meta-training)
        "labelme": {k: base[k] for k in base if k not in ("name", "methods")},
        "threads": 1,
        "output_dir": str(REPO / "benchmarks" / "results"),
        "write": True,
        "verbose": 1,
    }
    if quick:
        cfg.update(
            name="labelme_gold_quick",
            splits=[list(labelme.SPLITS[0]), list(labelme.SPLITS[2])],
            n_tasks=5,
        )
    return cfg


def _log(cfg, *args):
    if cfg.get("verbose"):
        print(*args, flush=True)


def crowd_matrix(data, items, target):
    """Crowd labels of ``items`` on the target classes, with LabelMe worker ids.

    The rows, columns and codes of :func:`labelme.crowd_labels` (the task
    matrices of the LabelMe benchmark), with each column named by its worker.
    Items without a target-class label are dropped.

    Returns
    -------
    Y : CrowdLabelMatrix
    items : ndarray
        The items kept.
    """
    codes, _ = labelme.crowd_labels(data.answers[items], target)
    workers = np.flatnonzero(np.isin(data.answers[items], target).any(axis=0))
    keep = (codes >= 0).any(axis=1)
    dense = codes[keep].astype(float)
    dense[dense < 0] = np.nan
    # built as make_tasks builds it (the order of the labels matters to the
    # held-out folds of representation="auto"), then named by worker
    plain = CrowdLabelMatrix.from_dense(dense, classes=np.arange(len(target)))
    Y = CrowdLabelMatrix(
        plain.rows,
        plain.cols,
        plain.codes,
        sample_ids=plain.sample_ids,
        annotator_ids=np.asarray(data.annotator_ids)[workers],
        classes=plain.classes,
    )
    return Y, np.asarray(items)[keep]


def gold_labels(y, per_class):
    """``y_gold`` with the first ``per_class`` items of each class (NaN elsewhere)."""
    gold = np.full(len(y), np.nan)
    for k in np.unique(y):
        gold[np.flatnonzero(y == k)[:per_class]] = k
    return gold


def history_items(data, target, exclude, per_class, rng):
    """Training images of the target classes outside ``exclude``, per gold class."""
    y = data.y_train
    pool = np.setdiff1d(np.flatnonzero(np.isin(y, target)), exclude)
    return np.concatenate(
        [
            rng.choice(
                pool[y[pool] == k],
                min(per_class, int((y[pool] == k).sum())),
                replace=False,
            )
            for k in target
        ]
    )


def logit_spreads(est, X, Y) -> dict:
    """Medians over the support of how far the E-step's two terms move a posterior.

    For each support item, the range over classes (max - min, in nats) of the
    feature term ``-||u_n - mu_k||^2 / 2`` and of the annotator term
    ``sum_r log A^r[k, y_n^r]`` (spec 3.1, paper Eq. 6) at the fitted
    parameters: when the first is much larger, the annotators (and their
    history) hardly move the responsibilities after the majority-vote start.
    """
    U = est._embed(X)
    feature = -0.5 * ((U[:, None, :] - est.prototypes_[None]) ** 2).sum(axis=-1)
    annot = np.zeros_like(feature)
    log_A = np.log(est.annotator_confusion_)
    np.add.at(annot, Y.rows, log_A[Y.cols, :, Y.codes])
    return {
        "feature": float(np.median(np.ptp(feature, axis=1))),
        "annotators": float(np.median(np.ptp(annot, axis=1))),
    }


def _estimator(method, models, cfg, seed):
    return METHODS[method].build({"models": models, "cfg": cfg}, seed)


def settings(cfg, shot) -> list[str]:
    """Row keys of one shot: ``gold<g>`` and ``history_<size>``."""
    rows = [f"gold{g}" for g in cfg["gold_per_class"]]
    return rows + [f"history_{h}" for h in cfg["history_shots"]]


def evaluate_split(cfg, data, target, split_index, models) -> dict:
    """Per-task accuracy of every method and setting on one split."""
    target = np.asarray(target)
    X_query, y_query = labelme.query_set(data, target)
    out = {}
    for shot in cfg["shots"]:
        tasks, _ = labelme.make_tasks(
            data, target, shot, cfg["n_tasks"], cfg["seed"], split_index
        )
        keys = settings(cfg, shot)
        acc = {m: {k: [] for k in keys} for m in cfg["methods"]}
        coverage = {str(h): [] for h in cfg["history_shots"]}
        changed = {m: {k: [] for k in keys} for m in cfg["methods"]}
        spreads = []
        for t, task in enumerate(tasks):
            Y, items = crowd_matrix(data, task["support"], target)
            # the benchmark's own matrix, with worker ids as annotator ids
            assert np.array_equal(items, task["support"])
            X, y = data.X_train[items], task["y"]
            histories = {}
            for h in cfg["history_shots"]:
                rng = np.random.default_rng(
                    stable_seed(
                        cfg["seed"], "labelme-history", split_index, shot, t, str(h)
                    )
                )
                size = int(shot) if h == "same" else int(h)
                YA, itemsA = crowd_matrix(
                    data, history_items(data, target, items, size, rng), target
                )
                histories[str(h)] = (data.X_train[itemsA], YA)
                seen = set(np.asarray(YA.annotator_ids).tolist())
                with_history = np.isin(Y.annotator_ids, list(seen))
                coverage[str(h)].append(
                    {
                        "workers": int(len(Y.annotator_ids)),
                        "with_history": int(with_history.sum()),
                        "label_share": float(np.mean(with_history[Y.cols])),
                        "history_labels": int(YA.n_labels),
                    }
                )
            for method in cfg["methods"]:
                for key in keys:
                    est = _estimator(method, models, cfg, task["seed"])
                    if key.startswith("gold"):
                        g = int(key[4:])
                        if g > int(shot):
                            acc[method][key].append(float("nan"))
                            continue
                        fit_args = {"y_gold": gold_labels(y, g) if g else None}
                    else:
                        XA, YA = histories[key[len("history_") :]]
                        previous = _estimator(method, models, cfg, task["seed"])
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            previous.fit(XA, YA)
                        est.set_params(history_weight=cfg["history_weight"])
                        fit_args = {"annotator_prior": previous}
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        est.fit(X, Y, **fit_args)
                    pred = np.asarray(est.predict(X_query)).astype(np.int64)
                    acc[method][key].append(float(np.mean(pred == y_query)))
                    if key == "gold0":
                        base_pred = pred
                        if method == "em_global":
                            spreads.append(logit_spreads(est, X, Y))
                    changed[method][key].append(float(np.mean(pred != base_pred)))
        out[str(shot)] = {
            "accuracy": acc,
            "history_coverage": coverage,
            "changed_predictions": changed,
            "logit_spreads": spreads,
        }
        _log(
            cfg,
            f"  split {split_index} shot {shot}: "
            + "; ".join(
                f"{m} "
                + ", ".join(
                    f"{k} {np.mean(v):.3f}"
                    for k, v in acc[m].items()
                    if not np.isnan(v).all()
                )
                for m in cfg["methods"]
            ),
        )
    return out


def summarize(cfg, raw) -> dict:
    """Pool the splits: mean, standard error, paired t-test against crowd only."""
    summary = {}
    for shot in map(str, cfg["shots"]):
        per_shot = {}
        for method in cfg["methods"]:
            per_method = {}
            pooled = {
                key: np.concatenate([r[shot]["accuracy"][method][key] for r in raw])
                for key in settings(cfg, shot)
            }
            base = pooled["gold0"]
            for key, values in pooled.items():
                if np.isnan(values).all():
                    per_method[key] = None
                    continue
                per_method[key] = {
                    **harness.summarize(values),
                    "vs_crowd_only": paired_ttest(values, base),
                }
            per_shot[method] = per_method
        coverage = {}
        for h in map(str, cfg["history_shots"]):
            rows = [c for r in raw for c in r[shot]["history_coverage"][h]]
            coverage[h] = {
                "workers": float(np.mean([c["workers"] for c in rows])),
                "with_history": float(np.mean([c["with_history"] for c in rows])),
                "label_share": float(np.mean([c["label_share"] for c in rows])),
                "history_labels": float(np.mean([c["history_labels"] for c in rows])),
            }
        per_shot["history_coverage"] = coverage
        per_shot["changed_predictions"] = {
            method: {
                key: float(
                    np.nanmean(
                        np.concatenate(
                            [r[shot]["changed_predictions"][method][key] for r in raw]
                        )
                    )
                )
                for key in settings(cfg, shot)
                if per_shot[method][key] is not None
            }
            for method in cfg["methods"]
        }
        spreads = [d for r in raw for d in r[shot]["logit_spreads"]]
        if spreads:
            per_shot["logit_spreads"] = {
                k: float(np.median([d[k] for d in spreads]))
                for k in ("feature", "annotators")
            }
        summary[shot] = per_shot
    return summary


def _row_label(key):
    if key.startswith("gold"):
        g = int(key[4:])
        return "crowd only" if g == 0 else f"{g} gold item{'s' * (g > 1)} per class"
    size = key[len("history_") :]
    return (
        "history: disjoint task, same size"
        if size == "same"
        else f"history: disjoint task, {size} per class"
    )


def table(results) -> tuple[list, list]:
    """Header and rows of the summary table (Markdown and reST)."""
    cfg, summary = results["config"], results["summary"]
    shots = [str(s) for s in cfg["shots"]]
    header = ["method", "setting", *(f"{s}-shot" for s in shots)]
    header += [f"{s}-shot vs crowd only" for s in shots]
    header.append("workers with history (of all; share of labels)")
    body = []
    for method in cfg["methods"]:
        for key in settings(cfg, shots[0]):
            cells, diffs = [], []
            for s in shots:
                entry = summary[s][method][key]
                if entry is None:
                    cells.append("n/a")
                    diffs.append("")
                    continue
                cells.append(fmt_acc(entry["mean"], entry["sem"]))
                test = entry["vs_crowd_only"]
                diffs.append(
                    "" if key == "gold0" else f"{test['diff']:+.3f} (p={test['p']:.2g})"
                )
            cov = ""
            if key.startswith("history_"):
                cov = "; ".join(
                    "{}-shot {:.1f}/{:.1f} ({:.0%})".format(
                        s,
                        c["with_history"],
                        c["workers"],
                        c["label_share"],
                    )
                    for s in shots
                    for c in [summary[s]["history_coverage"][key[len("history_") :]]]
                )
            body.append([METHODS[method].label, _row_label(key), *cells, *diffs, cov])
    return header, body


def diagnostics_table(results) -> tuple[list, list]:
    """Per shot: the E-step's feature and annotator terms, and what history changed."""
    cfg, summary = results["config"], results["summary"]
    hist = [f"history_{h}" for h in cfg["history_shots"]]
    header = ["shot", "feature term (nats)", "annotator term (nats)"]
    header += [
        f"predictions changed, {_row_label(h)} ({m})"
        for m in cfg["methods"]
        for h in hist
    ]
    body = []
    for s in map(str, cfg["shots"]):
        spread = summary[s].get("logit_spreads", {})
        row = [
            s,
            f"{spread.get('feature', float('nan')):.1f}",
            f"{spread.get('annotators', float('nan')):.1f}",
        ]
        row += [
            f"{summary[s]['changed_predictions'][m][h]:.2%}"
            for m in cfg["methods"]
            for h in hist
        ]
        body.append(row)
    return header, body


def markdown(results) -> str:
    cfg = results["config"]
    env = results["environment"]
    command = "python benchmarks/labelme_gold.py" + (
        " --quick" if "quick" in cfg["name"] else ""
    )
    n = results["summary"][str(cfg["shots"][0])][cfg["methods"][0]]["gold0"]["n"]
    return "\n\n".join(
        [
            f"# LabelMe: gold labels and annotator history ({cfg['name']})",
            f"Command: `{command}`; {env['cpu']} ({env['cpu_count']} CPUs), torch "
            f"{env['torch']}; wall time {results['wall_seconds']:.0f} s.",
            f"Mean query accuracy ± standard error over {n} 4-way tasks "
            f"({len(cfg['splits'])} splits); differences: paired t-test against the "
            "crowd-only row of the same method over the same tasks.",
            markdown_table(*table(results)),
            "Why history changes little: median over tasks of the median, over "
            "the support items, of the range over classes of the two terms of "
            "the E-step (spec 3.1) at the fitted parameters of the crowd-only EM "
            "(no meta), and the share of query predictions that the history "
            "changed.",
            markdown_table(*diagnostics_table(results)),
        ]
    )


def run(config=None, **overrides) -> dict:
    """Run the study; with ``write=True`` write its JSON, Markdown and rst files.

    Parameters
    ----------
    config : dict, optional
        Overrides of :func:`default_config` (``"quick": True`` starts from the
        quick configuration; ``labelme`` is merged key by key).
    **overrides
        More overrides.

    Returns
    -------
    dict
        ``config``, ``environment``, ``meta_training``, ``raw`` (per split and
        shot: per-task accuracies, history coverage), ``summary``,
        ``wall_seconds`` and, when written, ``files``.
    """
    config = {**(config or {}), **overrides}
    cfg = harness.configure(default_config, config, nested=["labelme"])
    methods = METHODS.select(cfg["methods"])
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(int(cfg["threads"]))
    try:
        data = load_labelme(cfg["data"])
        meta_cfg = {**cfg["labelme"], "methods": ["ours"], "verbose": cfg["verbose"]}
        results = {"config": cfg, "environment": harness.environment()}
        results["meta_training"], raw = [], []
        # split i of the configuration, as in labelme.py: the same tasks and models
        for i, target in enumerate(cfg["splits"]):
            _log(cfg, f"split {i}: target classes {target}")
            models = {}
            if any(m.needs_meta for m in methods.values()):
                models, info = labelme.meta_train(meta_cfg, data, target, i)
                results["meta_training"].append(info)
            raw.append(evaluate_split(cfg, data, target, i, models))
        results["raw"] = raw
        results["summary"] = summarize(cfg, raw)
    finally:
        torch.set_num_threads(threads)
    results["wall_seconds"] = time.perf_counter() - t0
    if cfg["write"]:
        title = (
            "Mean query accuracy ± standard error, 4-way LabelMe tasks with real "
            "annotators: gold labels and annotator history"
        )
        second = (
            "E-step terms (median range over classes, nats) and query predictions "
            "changed by the history"
        )
        results["files"] = harness.write_outputs(
            cfg["output_dir"],
            cfg["name"],
            results,
            markdown=markdown(results),
            rst=[(title, *table(results)), (second, *diagnostics_table(results))],
        )
    return results


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/labelme_gold.py",
        description="Gold labels and annotator history on LabelMe few-shot tasks.",
    )
    parser.add_argument("--quick", action="store_true", help="two splits, 5 tasks")
    parser.add_argument("--n-tasks", type=int, help="tasks per split and shot")
    parser.add_argument("--no-write", action="store_true", help="do not write files")
    args = parser.parse_args(argv)
    overrides = {"quick": args.quick, "write": not args.no_write}
    if args.n_tasks:
        overrides["n_tasks"] = args.n_tasks
    results = run(**overrides)
    print(markdown(results))


if __name__ == "__main__":
    main()
