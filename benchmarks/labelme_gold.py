"""LabelMe: gold labels and annotator history on few-shot tasks with real annotators.

    python -m benchmarks.labelme_gold --quick   # under a minute
    python -m benchmarks.labelme_gold           # the full run (a few minutes)

Protocol (fixed before any result was seen):
- the class splits, target tasks and query sets of ``benchmarks/labelme.py``
  (its ``make_tasks`` draws, seed 0: 4-way tasks on the held-out classes, 1, 3
  or 5 crowd-labelled training images per class with their real Mechanical
  Turk labels, every test image of the target classes as query); every setting
  below sees the same tasks;
- methods: our EM without meta-learning on globally scaled features (the best
  no-meta space of the LabelMe page), and that page's default meta-learned
  model ("Ours"), meta-trained per split exactly as there;
- gold labels: g = 0, 1, 2 support items per class (the first g of each class
  in the support's random order) get ``y_gold`` and keep their crowd labels; a
  class with fewer than g items gives all it has; 2 gold items per class at 1
  shot do not exist (n/a);
- annotator history: a disjoint task A on the same target classes (training
  images not in the support of B, ``history_shot`` per class by gold class, or
  the support size of B for "same"), labelled by its real workers, is fitted
  by the same method with crowd labels only; B is fitted with
  ``annotator_prior=A`` (``history_weight=1``). A worker of B has history when
  it labelled a target-class image of A; the table reports how many of B's
  workers, and which share of B's labels, had history;
- mean query accuracy ± standard error over the tasks of all splits; each row
  is compared with the crowd-only row of the same method and shot by a paired
  t-test over the same tasks.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import warnings

import numpy as np

from sklearn_metaannot import CrowdLabelMatrix
from sklearn_metaannot.datasets import load_labelme

from . import harness, labelme
from .harness import fmt_acc, stable_seed

#: The methods of the LabelMe benchmark studied here (its ``context``).
METHODS = labelme.METHODS.select(["em_global", "ours"])
METHODS["ours"] = METHODS["ours"]._replace(
    label="Ours (meta-learned, representation='auto')"
)


def default_config(quick=False) -> dict:
    """The full run, or the ``--quick`` one (two splits, 5 tasks per split and shot)."""
    base = labelme.default_config(quick=quick)
    cfg = {"name": "labelme_gold", "data": base["data"], "seed": 0}
    cfg |= {"splits": [list(s) for s in labelme.SPLITS], "shots": [1, 3, 5]}
    cfg |= {"n_tasks": base["n_tasks"], "methods": list(METHODS)}
    cfg |= {"gold_per_class": [0, 1, 2], "history_shots": ["same", 20]}
    cfg |= {"history_weight": 1.0}
    # the LabelMe benchmark's configuration (EM settings, meta-training)
    cfg["labelme"] = {k: v for k, v in base.items() if k not in ("name", "methods")}
    cfg |= {"threads": 1, "output_dir": base["output_dir"], "write": True}
    cfg["verbose"] = 1
    if quick:
        splits = [list(labelme.SPLITS[0]), list(labelme.SPLITS[2])]
        cfg.update(name="labelme_gold_quick", splits=splits, n_tasks=5)
    return cfg


def crowd_matrix(data, items, target):
    """Crowd labels of ``items`` on the target classes, with LabelMe worker ids.

    The rows, columns and codes of :func:`labelme.make_tasks` (built as it
    builds them: the order of the labels matters to the held-out folds of
    ``representation="auto"``), each column named by its worker; items without a
    target-class label are dropped. Returns ``(Y, kept items)``.
    """
    codes, _ = labelme.crowd_labels(data.answers[items], target)
    workers = np.flatnonzero(np.isin(data.answers[items], target).any(axis=0))
    keep = (codes >= 0).any(axis=1)
    dense = np.where(codes[keep] >= 0, codes[keep], np.nan)
    Y = CrowdLabelMatrix.from_dense(dense, classes=np.arange(len(target)))
    ids = {"sample_ids": Y.sample_ids, "classes": Y.classes}
    ids["annotator_ids"] = np.asarray(data.annotator_ids)[workers]
    return CrowdLabelMatrix(Y.rows, Y.cols, Y.codes, **ids), np.asarray(items)[keep]


def gold_labels(y, per_class):
    """``y_gold`` with the first ``per_class`` items of each class (NaN elsewhere)."""
    gold = np.full(len(y), np.nan)
    for k in np.unique(y):
        gold[np.flatnonzero(y == k)[:per_class]] = k
    return gold


def history_task(cfg, data, target, Y, items, size, key):
    """The earlier task A of a task (``Y`` on ``items``) and its workers' coverage."""
    rng = np.random.default_rng(stable_seed(cfg["seed"], "labelme-history", *key))
    y = data.y_train
    pool = np.setdiff1d(np.flatnonzero(np.isin(y, target)), items)
    by_class = [pool[y[pool] == k] for k in target]
    drawn = [rng.choice(p, min(size, len(p)), replace=False) for p in by_class]
    YA, itemsA = crowd_matrix(data, np.concatenate(drawn), target)
    seen = np.isin(Y.annotator_ids, YA.annotator_ids)  # workers with history
    coverage = {
        "workers": int(len(Y.annotator_ids)),
        "with_history": int(seen.sum()),
        "label_share": float(np.mean(seen[Y.cols])),
        "history_labels": int(YA.n_labels),
    }
    return (data.X_train[itemsA], YA), coverage


def logit_spreads(est, X, Y) -> dict:
    """Medians over the support of how far the E-step's two terms move a posterior.

    For each support item, the range over classes (max - min, in nats) of the
    feature term ``-||u_n - mu_k||^2 / 2`` and of the annotator term
    ``sum_r log A^r[k, y_n^r]`` (spec 3.1, paper Eq. 6) at the fitted
    parameters: when the first is much larger, the annotators (and their
    history) hardly move the responsibilities after the majority-vote start.
    """
    U = est.embed(X)
    feature = -0.5 * ((U[:, None, :] - est.prototypes_[None]) ** 2).sum(axis=-1)
    annot = np.zeros_like(feature)
    np.add.at(annot, Y.rows, np.log(est.annotator_confusion_)[Y.cols, :, Y.codes])
    return {
        "feature": float(np.median(np.ptp(feature, axis=1))),
        "annotators": float(np.median(np.ptp(annot, axis=1))),
    }


def settings(cfg) -> list[str]:
    """Row keys of a shot: ``gold<g>`` and ``history_<size>``."""
    rows = [f"gold{g}" for g in cfg["gold_per_class"]]
    return rows + [f"history_{h}" for h in cfg["history_shots"]]


def evaluate_split(cfg, data, target, split_index, models) -> dict:
    """Per-task accuracy of every method and setting on one split."""
    X_query, y_query = labelme.query_set(data, np.asarray(target))
    context = {"cfg": cfg["labelme"], "models": models}
    methods, keys, out = METHODS.select(cfg["methods"]), settings(cfg), {}
    for shot in cfg["shots"]:
        tasks, _ = labelme.make_tasks(
            data, target, shot, cfg["n_tasks"], cfg["seed"], split_index
        )
        acc = {m: {k: [] for k in keys} for m in methods}
        changed = {m: {k: [] for k in keys} for m in methods}
        coverage = {str(h): [] for h in cfg["history_shots"]}
        spreads = []
        for t, task in enumerate(tasks):
            Y, items = crowd_matrix(data, task["support"], target)
            # the benchmark's own matrix, with worker ids as annotator ids
            assert np.array_equal(items, task["support"])
            X, histories = data.X_train[items], {}
            for h in map(str, cfg["history_shots"]):
                size = int(shot) if h == "same" else int(h)
                seed_key = (split_index, shot, t, h)
                task_a = history_task(cfg, data, target, Y, items, size, seed_key)
                histories[h] = task_a[0]
                coverage[h].append(task_a[1])
            for m, method in methods.items():
                for key in keys:
                    est = method.build(context, task["seed"])
                    if key.startswith("gold") and int(key[4:]) > int(shot):
                        acc[m][key].append(float("nan"))
                        continue
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        if key.startswith("gold"):
                            g = int(key[4:])
                            gold = gold_labels(task["y"], g) if g else None
                            est.fit(X, Y, y_gold=gold)
                        else:
                            previous = method.build(context, task["seed"])
                            previous.fit(*histories[key[len("history_") :]])
                            est.set_params(history_weight=cfg["history_weight"])
                            est.fit(X, Y, annotator_prior=previous)
                    pred = np.asarray(est.predict(X_query)).astype(np.int64)
                    acc[m][key].append(float(np.mean(pred == y_query)))
                    if key == "gold0":
                        base = pred
                        if m == "em_global":
                            spreads.append(logit_spreads(est, X, Y))
                    changed[m][key].append(float(np.mean(pred != base)))
        out[str(shot)] = {"accuracy": acc, "history_coverage": coverage}
        out[str(shot)] |= {"changed_predictions": changed, "logit_spreads": spreads}
        means = "; ".join(
            f"{m} "
            + ", ".join(
                f"{k} {np.mean(v):.3f}" for k, v in a.items() if not np.isnan(v).all()
            )
            for m, a in acc.items()
        )
        harness.log(cfg, f"  split {split_index} shot {shot}: {means}")
    return out


def summarize(cfg, raw) -> dict:
    """Pool the splits: mean, standard error, paired t-test against crowd only."""
    summary = {}
    for shot in map(str, cfg["shots"]):

        def pooled(field, m, k, shot=shot):
            return np.concatenate([r[shot][field][m][k] for r in raw])

        cell = {}
        for m in cfg["methods"]:
            cell[m], base = {}, pooled("accuracy", m, "gold0")
            for k in settings(cfg):
                v = pooled("accuracy", m, k)
                if np.isnan(v).all():
                    cell[m][k] = None
                    continue
                test = {"vs_crowd_only": harness.paired_ttest(v, base)}
                cell[m][k] = harness.summarize(v) | test
        cell["history_coverage"] = {
            h: {
                f: float(np.mean([c[f] for c in rows]))
                for f in ("workers", "with_history", "label_share", "history_labels")
            }
            for h in map(str, cfg["history_shots"])
            for rows in [[c for r in raw for c in r[shot]["history_coverage"][h]]]
        }
        cell["changed_predictions"] = {
            m: {
                k: float(np.nanmean(pooled("changed_predictions", m, k)))
                for k in settings(cfg)
                if cell[m][k] is not None
            }
            for m in cfg["methods"]
        }
        spreads = [d for r in raw for d in r[shot]["logit_spreads"]]
        if spreads:
            cell["logit_spreads"] = {
                k: float(np.median([d[k] for d in spreads]))
                for k in ("feature", "annotators")
            }
        summary[shot] = cell
    return summary


def _row_label(key):
    if key.startswith("gold"):
        g = int(key[4:])
        return "crowd only" if g == 0 else f"{g} gold item{'s' * (g > 1)} per class"
    size = key[len("history_") :]
    return "history: disjoint task, " + (
        "same size" if size == "same" else f"{size} per class"
    )


def tables(results) -> list:
    """The summary and the E-step terms (:class:`harness.Table`)."""
    cfg, summary = results["config"], results["summary"]
    shots = [str(s) for s in cfg["shots"]]
    hist = [f"history_{h}" for h in cfg["history_shots"]]
    header = ["method", "setting", *(f"{s}-shot" for s in shots)]
    header += [f"{s}-shot vs crowd only" for s in shots]
    header.append("workers with history (of all; share of labels)")
    body = []
    for m in cfg["methods"]:
        for key in settings(cfg):
            cells, diffs = [], []
            for entry in (summary[s][m][key] for s in shots):
                test = (entry or {}).get("vs_crowd_only")
                cells.append(fmt_acc(entry["mean"], entry["sem"]) if entry else "n/a")
                diff = f"{test['diff']:+.3f} (p={test['p']:.2g})" if test else ""
                diffs.append("" if key == "gold0" else diff)
            cov = ""
            if key in hist:
                covs = [(s, summary[s]["history_coverage"][key[8:]]) for s in shots]
                cov = "; ".join(
                    f"{s}-shot {c['with_history']:.1f}/{c['workers']:.1f} "
                    f"({c['label_share']:.0%})"
                    for s, c in covs
                )
            body.append([METHODS[m].label, _row_label(key), *cells, *diffs, cov])
    diag = ["shot", "feature term (nats)", "annotator term (nats)"]
    diag += [
        f"predictions changed, {_row_label(h)} ({m})"
        for m in cfg["methods"]
        for h in hist
    ]
    rows = []
    for s in shots:
        spread = summary[s].get("logit_spreads", {})
        terms = [f"{spread.get(k, np.nan):.1f}" for k in ("feature", "annotators")]
        changed = summary[s]["changed_predictions"]
        changed = [f"{changed[m][h]:.2%}" for m in cfg["methods"] for h in hist]
        rows.append([s, *terms, *changed])
    n = summary[shots[0]][cfg["methods"][0]]["gold0"]["n"]
    return [
        harness.Table(
            f"Mean query accuracy ± standard error over {n} 4-way tasks "
            f"({len(cfg['splits'])} splits); differences: paired t-test against the "
            "crowd-only row of the same method over the same tasks.",
            "Mean query accuracy ± standard error, 4-way LabelMe tasks with real "
            "annotators: gold labels and annotator history",
            header,
            body,
        ),
        harness.Table(
            "Why history changes little: median over tasks of the median, over "
            "the support items, of the range over classes of the two terms of "
            "the E-step (spec 3.1) at the fitted parameters of the crowd-only EM "
            "(no meta), and the share of query predictions that the history "
            "changed.",
            "E-step terms (median range over classes, nats) and query predictions "
            "changed by the history",
            diag,
            rows,
        ),
    ]


def page(results) -> list:
    """The Markdown page of the results."""
    title = "LabelMe: gold labels and annotator history"
    return [harness.page_header(results, "labelme_gold.py", title), *tables(results)]


def run(config=None, **overrides) -> dict:
    """Run the study; with ``write=True`` write its JSON, Markdown and reST files.

    ``config`` and ``overrides`` override :func:`default_config` (``"quick":
    True`` starts from the quick configuration; ``labelme`` is merged key by
    key). The results: ``config``, ``environment``, ``meta_training``, ``raw``
    (per split and shot: per-task accuracies, history coverage), ``summary``,
    ``wall_seconds`` and, when written, ``files``.
    """
    config = {**(config or {}), **overrides}
    cfg = harness.configure(default_config, config, nested=["labelme"])
    methods = METHODS.select(cfg["methods"])
    meta_cfg = {**cfg["labelme"], "methods": ["ours"], "verbose": cfg["verbose"]}
    with harness.Timer() as timer, harness.torch_threads(cfg["threads"]):
        data = load_labelme(cfg["data"])
        results = {"config": cfg, "environment": harness.environment()}
        results["meta_training"], raw = [], []
        # split i of the configuration, as in labelme.py: the same tasks and models
        for i, target in enumerate(cfg["splits"]):
            harness.log(cfg, f"split {i}: target classes {target}")
            models = {}
            if any(m.needs_meta for m in methods.values()):
                models, info = labelme.meta_train(meta_cfg, data, target, i)
                results["meta_training"].append(info)
            raw.append(evaluate_split(cfg, data, target, i, models))
        results["raw"], results["summary"] = raw, summarize(cfg, raw)
    results["wall_seconds"] = timer.seconds
    if cfg["write"]:
        results["files"] = harness.write_page(
            cfg["output_dir"], cfg["name"], results, page(results)
        )
    return results


def main(argv=None):
    """Command-line entry point."""
    overrides = harness.command_line(
        "labelme_gold.py",
        "Gold labels and annotator history on LabelMe few-shot tasks.",
        "two splits, 5 tasks",
        argv,
        n_tasks=(int, "tasks per split and shot"),
    )
    print(harness.markdown_page(page(run(**overrides))))


if __name__ == "__main__":
    main()
