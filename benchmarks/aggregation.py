"""Aggregation benchmark: our MajorityVote and DawidSkene against crowd-kit.

Accuracy against the gold labels and wall time of label aggregation without
features, on the six truth-inference sets of ``shared/data/truth_inference``
and a synthetic crowd of 500 000 labels (500 annotators, 10 classes)::

    python -m benchmarks.aggregation --quick   # 1-3 minutes on 2 CPU cores
    python -m benchmarks.aggregation           # GLAD and MMSR everywhere, 500k

Protocol (details on the docs page "Label aggregation"):
- every method gets the same DataFrame (task, worker, label), where the clock
  starts (ours build their CrowdLabelMatrix on the clock); accuracy on the
  items with a gold label; wall time: the minimum over repeats of runs under
  ``repeat_below_s``;
- "defaults": each aggregator with its defaults; "matched": both Dawid-Skene
  run ``matched_iter`` iterations (crowd-kit tol=-inf, ours tol=0, smoothing
  1e-10 as crowd-kit's clipping, ties to the first class as its idxmax);
  "crowd-kit's iterations": ours, matched, for as many iterations as crowd-kit's
  default run made on the set (its stopping rule, not the implementation);
- the synthetic crowd (see :func:`synthetic_crowd`) runs ``synthetic_methods``.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import importlib
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from sklearn_metaannot import (
    CrowdLabelMatrix,
    DawidSkene,
    MajorityVote,
    MetaAnnotatorClassifier,
)
from sklearn_metaannot.datasets import load_truth_inference

from . import harness

_HERE = Path(__file__).resolve().parent

REPO = _HERE.parent
DEFAULT_DATA = harness.SHARED_DATA / "truth_inference"
DATASETS = ("bluebird", "rte", "s4_Dog_data", "web", "trec", "s5_AdultContent")
SHORT = {"s4_Dog_data": "dog", "s5_AdultContent": "adult"}
SYNTHETIC = "synthetic"
#: Ours against crowd-kit's: (ours, theirs, tag in the comparison).
PAIRS = (
    ("ours_ds", "ck_ds", "defaults"),
    ("ours_ds_matched", "ck_ds_matched", "matched"),
    ("ours_ds_ck_iter", "ck_ds", "ck_iterations"),
    ("ours_mv", "ck_mv", "mv"),
)
SLOW = ("ck_glad", "ck_mmsr")  # only on sets up to slow_max_labels labels


def _ck(name, **params):
    """A crowd-kit aggregator (an optional dependency, imported when needed)."""
    return getattr(importlib.import_module("crowdkit.aggregation"), name)(**params)


def _fixed(n_iter, c):
    """Our DawidSkene run for ``n_iter`` iterations as crowd-kit's (matched)."""
    smoothing = c["matched_smoothing"]
    return DawidSkene(n_iter=n_iter, tol=0.0, smoothing=smoothing, tie_break="first")


#: ``build(context, seed)``; context: the configuration and ``ck_iter`` (the
#: iterations of crowd-kit's default DawidSkene on the set). ``ck_*``: crowd-kit.
METHODS = harness.Methods()
for _key, _label, _build in (
    ("ours_mv", "MV (ours)", lambda c, s: MajorityVote(random_state=s)),
    ("ours_ds", "DS (ours)", lambda c, s: DawidSkene(random_state=s)),
    ("ours_ds_matched", "DS (ours, matched)",
     lambda c, s: _fixed(c["matched_iter"], c)),
    ("ours_em", "EM, no features (ours)",
     lambda c, s: MetaAnnotatorClassifier(
         representation="input", n_em_iter=c["em_iter"], random_state=s)),
    ("ck_mv", "MV (crowd-kit)", lambda c, s: _ck("MajorityVote")),
    ("ck_ds", "DS (crowd-kit)", lambda c, s: _ck("DawidSkene")),
    ("ck_ds_matched", "DS (crowd-kit, matched)",
     lambda c, s: _ck("DawidSkene", n_iter=c["matched_iter"], tol=-np.inf)),
    ("ours_ds_ck_iter", "DS (ours, crowd-kit's iterations)",
     lambda c, s: _fixed(c["ck_iter"], c)),
    ("ck_glad", "GLAD (crowd-kit)", lambda c, s: _ck("GLAD")),
    ("ck_mmsr", "MMSR (crowd-kit)", lambda c, s: _ck("MMSR", random_state=s)),
):  # fmt: skip
    METHODS.add(_key, _label)(_build)


def default_config(quick=False) -> dict:
    """Every knob; ``quick``: fewer repeats, GLAD/MMSR on small sets, 100k labels."""
    cfg = {
        "name": "aggregation",
        "data": str(DEFAULT_DATA),
        "seed": 0,
        "datasets": list(DATASETS),
        "methods": list(METHODS),
        "matched_iter": 50,
        "matched_smoothing": 1e-10,
        # our DawidSkene with these smoothing values (defaults otherwise)
        "smoothing_grid": [0.0, 1e-10, 1e-6, 1e-3, 1e-2, 0.1, 1.0],
        "em_iter": 50,  # the classifier's EM without features: its iterations,
        "em_max_cells": 60_000_000,  # at most items x annotators x classes
        "slow_max_labels": None,
        "synthetic": True,
        "synthetic_labels": 500_000,
        "synthetic_annotators": 500,
        "synthetic_classes": 10,
        "synthetic_labels_per_item": 10,
        "synthetic_mixture": [0.1, 0.7, 0.2],
        "synthetic_methods": [k for k in METHODS if k not in (*SLOW, "ours_em")],
        "n_repeats": 5,
        "repeat_below_s": 1.0,
        "threads": 1,  # torch threads of the classifier's EM
        "output_dir": str(REPO / "benchmarks" / "results"),
        "plot_dir": str(REPO / "docs" / "_static" / "benchmarks"),
        "write": True,
        "verbose": 1,
    }
    if quick:
        cfg.update(name="aggregation_quick", slow_max_labels=20_000, n_repeats=2)
        cfg.update(em_max_cells=5_000_000, synthetic_labels=100_000)
        cfg.update(synthetic_annotators=200)
    return cfg


def synthetic_crowd(
    n_labels=500_000,
    n_annotators=500,
    n_classes=10,
    labels_per_item=10,
    mixture=(0.1, 0.7, 0.2),
    seed=0,
):
    """A synthetic crowd in long format (task, worker, label) and its truth.

    Uniform true classes, ``labels_per_item`` distinct random annotators per
    item; experts (accuracy ~ U[0.9, 1]), hammers (U[0.5, 0.9]) and spammers
    (uniform answers) in proportions ``mixture``; wrong answers uniform over
    the other classes. Returns the labels DataFrame and the truth Series.
    """
    rng = np.random.default_rng(seed)
    n_items = n_labels // labels_per_item
    if labels_per_item > n_annotators:
        raise ValueError("labels_per_item must not exceed n_annotators")
    truth = rng.integers(n_classes, size=n_items)
    workers = np.empty((n_items, labels_per_item), dtype=np.int64)
    for start in range(0, n_items, 4096):  # distinct annotators per item
        keys = rng.random((min(4096, n_items - start), n_annotators), dtype=np.float32)
        part = np.argpartition(keys, labels_per_item - 1, axis=1)[:, :labels_per_item]
        workers[start : start + len(keys)] = part
    kind = rng.choice(3, size=n_annotators, p=np.asarray(mixture) / np.sum(mixture))
    accuracy = np.where(
        kind == 0,
        rng.uniform(0.9, 1.0, n_annotators),
        np.where(kind == 1, rng.uniform(0.5, 0.9, n_annotators), 1.0 / n_classes),
    )
    task, worker = np.repeat(np.arange(n_items), labels_per_item), workers.ravel()
    correct = rng.random(len(task)) < accuracy[worker]
    wrong = (truth[task] + rng.integers(1, n_classes, size=len(task))) % n_classes
    label = np.where(correct, truth[task], wrong)
    labels = pd.DataFrame({"task": task, "worker": worker, "label": label})
    index = pd.RangeIndex(n_items, name="task")
    return labels, pd.Series(truth, index=index, name="truth")


def load_sets(cfg) -> dict:
    """``name -> (labels DataFrame, truth Series)`` of the configured sets."""
    sets = {n: load_truth_inference(Path(cfg["data"]) / n) for n in cfg["datasets"]}
    if cfg["synthetic"]:
        sets[SYNTHETIC] = synthetic_crowd(
            *(cfg[f"synthetic_{k}"] for k in ("labels", "annotators", "classes")),
            cfg["synthetic_labels_per_item"],
            cfg["synthetic_mixture"],
            seed=cfg["seed"],
        )
    return sets


def aggregate(key, est, df) -> tuple[pd.Series, int | None]:
    """Fit method ``key``'s ``est`` on ``df``: labels by task, and iterations."""
    if key.startswith("ck_"):
        pred, history = est.fit_predict(df), getattr(est, "loss_history_", None)
        return pred, None if history is None else len(history)
    labels = CrowdLabelMatrix.from_long(df)
    if key == "ours_em":  # constant features: Dawid-Skene with the paper's priors
        est.fit(np.zeros((labels.n_samples, 1)), labels)
        got = est.classes_[np.argmax(est.sample_posterior_, axis=1)]
        return pd.Series(got, index=labels.sample_ids), est.n_em_iter
    est.fit(labels)
    got = pd.Series(np.asarray(est.labels_), index=labels.sample_ids)
    return got, getattr(est, "n_iter_", None)


def _skip_reason(key, name, df, cfg, ck_iter):
    """Why method ``key`` is not run on set ``name``, or None."""
    if key.startswith("ck_") or key == "ours_ds_ck_iter":
        if importlib.util.find_spec("crowdkit") is None:
            return "crowd-kit is not installed"
    if name == SYNTHETIC and key not in cfg["synthetic_methods"]:
        return "not run on the synthetic crowd (see synthetic_methods)"
    limit = cfg["slow_max_labels"]
    if key in SLOW and limit is not None and len(df) > limit:
        return f"more than slow_max_labels={limit} labels"
    if key == "ours_em":
        cells = np.prod([df[c].nunique() for c in ("task", "worker", "label")])
        if cells > cfg["em_max_cells"]:
            return f"dense EM tensor of {cells} cells > em_max_cells"
    if key == "ours_ds_ck_iter" and not ck_iter:
        return "needs ck_ds (run before it)"
    return None


def _accuracy(pred, truth):
    """Accuracy on the tasks with a gold label, and their number."""
    common = truth.index.intersection(pred.index)
    gold, got = truth.loc[common].to_numpy(), pred.loc[common].to_numpy()
    try:
        got = got.astype(gold.dtype)
    except (TypeError, ValueError):
        pass
    return float(np.mean(got == gold)) if len(common) else float("nan"), len(common)


def _versus(ours, theirs, agreement):
    """Accuracy difference (points) and speed-up of ``ours`` against ``theirs``."""
    diff = 100 * (ours["accuracy"] - theirs["accuracy"])
    out = {
        "accuracy_diff_points": diff,
        "within_0.5_points": bool(abs(diff) <= 0.5),
        "speedup": theirs["seconds"] / ours["seconds"] if ours["seconds"] else np.nan,
        "agreement": agreement,
    }
    if ours["n_iter"] and theirs["n_iter"]:
        per_iter = ours["seconds"] / ours["n_iter"]
        out["speedup_per_iteration"] = theirs["seconds"] / theirs["n_iter"] / per_iter
    return out


def evaluate_set(name, df, truth, cfg) -> tuple[dict, dict]:
    """One set: its sizes and every method's results; ours against crowd-kit."""
    votes = df.groupby(["task", "label"]).size().unstack(fill_value=0).to_numpy()
    ties = (votes == votes.max(axis=1, keepdims=True)).sum(axis=1) > 1
    entry = {
        "n_labels": len(df),
        "n_items": int(df["task"].nunique()),
        "n_workers": int(df["worker"].nunique()),
        "n_classes": int(df["label"].nunique()),
        "n_gold": int(truth.index.isin(df["task"].unique()).sum()),
        "mv_ties": int(ties.sum()),
        "methods": {},
    }
    done, preds = entry["methods"], {}
    for key in cfg["methods"]:
        ck_iter = done.get("ck_ds", {}).get("n_iter")
        reason = _skip_reason(key, name, df, cfg, ck_iter)
        if reason is not None:
            done[key] = {"skipped": reason}
            continue
        est = METHODS[key].build({**cfg, "ck_iter": ck_iter}, cfg["seed"])
        (preds[key], n_iter), times = harness.repeat_timed(
            lambda: aggregate(key, est, df), cfg["n_repeats"], cfg["repeat_below_s"]
        )
        acc, n_eval = _accuracy(preds[key], truth)
        done[key] = {"accuracy": acc, "n_evaluated": n_eval, "seconds": min(times)}
        done[key].update(n_runs=len(times), n_iter=n_iter)
        line = f"{name:>16} {METHODS[key].label:<26} acc {acc:.4f}  "
        harness.log(cfg, line + f"{min(times):8.3f} s  iter {n_iter}")
    comparison = {}
    for ours, theirs, tag in PAIRS:
        if ours in preds and theirs in preds:
            a, b = preds[ours], preds[theirs]
            common = a.index.intersection(b.index)
            agree = float(np.mean(a.loc[common].to_numpy() == b.loc[common].to_numpy()))
            entry.setdefault("agreement", {})[f"{ours}|{theirs}"] = agree
            comparison[tag] = _versus(done[ours], done[theirs], agree)
    if name != SYNTHETIC and cfg["smoothing_grid"]:
        entry["smoothing_sweep"] = smoothing_sweep(df, truth, cfg)
    return entry, comparison


def smoothing_sweep(df, truth, cfg) -> list:
    """Accuracy and iterations of our DawidSkene for each smoothing value."""
    labels, out = CrowdLabelMatrix.from_long(df), []
    for smoothing in cfg["smoothing_grid"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = DawidSkene(smoothing=smoothing, random_state=cfg["seed"]).fit(labels)
        acc = _accuracy(pd.Series(ds.labels_, index=labels.sample_ids), truth)[0]
        out.append({"smoothing": smoothing, "accuracy": acc, "n_iter": ds.n_iter_})
    return out


def _run(cfg) -> dict:
    results = {"config": cfg, "environment": harness.environment(), "sets": {}}
    comparison = {}
    for name, (df, truth) in load_sets(cfg).items():
        results["sets"][name], comparison[name] = evaluate_set(name, df, truth, cfg)
    results["comparison"] = comparison
    return results


def run(config=None, **overrides) -> dict:
    """Run the benchmark; with ``write=True`` write its files (``files``).

    ``config`` and ``overrides`` override :func:`default_config` (``"quick":
    True`` starts from the quick one). Returns ``config``, ``environment``,
    ``sets`` (sizes, per-method results or skip reasons), ``comparison`` (ours
    against crowd-kit per set) and ``wall_seconds``.
    """
    cfg = harness.configure(default_config, {**(config or {}), **overrides})
    with harness.Timer() as timer, harness.torch_threads(cfg["threads"]):
        results = _run(cfg)
    results["wall_seconds"] = timer.seconds
    if cfg["write"]:
        results["files"] = write_outputs(results)
    return results


# -- outputs -------------------------------------------------------------------


def _short(name):
    return SHORT.get(name, name)


def _fmt(value, spec, scale=1):
    return "–" if value is None else format(scale * value, spec)


def _field(results, name, key, field):
    return results["sets"][name]["methods"].get(key, {}).get(field)


#: Rows of the table of the sets: label -> field of a set's entry.
SIZES = {"labels": "n_labels", "items": "n_items", "annotators": "n_workers",
         "classes": "n_classes", "items with gold": "n_gold",
         "tied MV items": "mv_ties"}  # fmt: skip


def tables(results) -> list:
    """The tables (:class:`harness.Table`), each under a ``###`` heading."""
    sets, names = results["sets"], list(results["sets"])
    keys = [k for k in results["config"]["methods"] if k in METHODS]
    header = ["method", *map(_short, names)]

    def grid(field, spec, scale=1):
        return [
            [METHODS[k].label]
            + [_fmt(_field(results, n, k, field), spec, scale) for n in names]
            for k in keys
        ]

    sizes = [[label, *(str(sets[n][f]) for n in names)] for label, f in SIZES.items()]
    columns = [  # of the comparison: (header, tag, field, format)
        ("DS acc. diff (defaults)", "defaults", "accuracy_diff_points", "+.2f"),
        ("DS acc. diff (matched)", "matched", "accuracy_diff_points", "+.2f"),
        ("agreement (matched)", "matched", "agreement", ".4f"),
        ("DS acc. diff (crowd-kit's iterations)", "ck_iterations",
         "accuracy_diff_points", "+.2f"),
        ("agreement (crowd-kit's iterations)", "ck_iterations", "agreement", ".4f"),
        ("DS speed-up (defaults)", "defaults", "speedup", ".1f"),
        ("DS speed-up (matched)", "matched", "speedup", ".1f"),
        ("MV speed-up", "mv", "speedup", ".1f"),
    ]  # fmt: skip
    versus = [
        [_short(n)]
        + [
            _fmt(results["comparison"].get(n, {}).get(tag, {}).get(field), spec)
            for _, tag, field, spec in columns
        ]
        for n in names
    ]
    swept = [n for n in names if "smoothing_sweep" in sets[n]]
    sweep = [
        [f"{point['smoothing']:g}"]
        + [
            "{:.2f} ({})".format(100 * p["accuracy"], p["n_iter"])
            for p in (sets[n]["smoothing_sweep"][j] for n in swept)
        ]
        for j, point in enumerate(sets[swept[0]]["smoothing_sweep"] if swept else [])
    ]
    title = "Our DawidSkene{} against its smoothing: accuracy (%) and iterations"
    versus_title = "Ours against crowd-kit"
    sections = [
        ("Data sets", "Data sets", ["", *header[1:]], sizes),
        (
            None,
            "Accuracy on the items with gold labels (%)",
            header,
            grid("accuracy", ".2f", 100),
        ),
        (None, "Wall time (s)", header, grid("seconds", ".3g")),
        (
            f"{versus_title} (accuracy difference in points, speed-up = crowd-kit "
            "time / our time)",
            versus_title,
            ["set", *(c[0] for c in columns)],
            versus,
        ),
        (
            title.format(" (100 iterations at most, tol 1e-5)"),
            title.format(""),
            ["smoothing", *map(_short, swept)],
            sweep,
        ),
    ]
    return [harness.Table(f"### {text or t}", t, h, r) for text, t, h, r in sections]


def page(results) -> list:
    """The Markdown page: the command, the machine and the tables."""
    title = "Label aggregation benchmark"
    return [harness.page_header(results, "aggregation.py", title), *tables(results)]


def csv_rows(results) -> list:
    """One row per (set, method)."""
    fields = ("accuracy", "n_evaluated", "seconds", "n_iter")
    return [
        {
            "set": name,
            "method": key,
            "label": METHODS[key].label,
            "library": "crowd-kit" if key.startswith("ck_") else "ours",
            **{f: m.get(f) for f in fields},
            "skipped": m.get("skipped", ""),
            "n_labels": entry["n_labels"],
        }
        for name, entry in results["sets"].items()
        for key, m in entry["methods"].items()
    ]


COLOURS = {"ours_mv": "#9ecae1", "ck_mv": "#bdbdbd", "ours_ds": "#08519c",
           "ck_ds": "#636363", "ours_em": "#6baed6", "ck_glad": "#fdae6b",
           "ck_mmsr": "#a1d99b", "ours_ds_matched": "#08519c",
           "ck_ds_matched": "#636363"}  # fmt: skip


def plots(results, plot_dir, prefix) -> list:
    """Accuracy and wall-time bar charts; returns the written paths."""
    cfg, sets = results["config"], results["sets"]

    def series(keys, field, scale=1):
        out = {}
        for k in (k for k in keys if k in cfg["methods"]):
            values = [_field(results, n, k, field) for n in sets]
            style = {"color": COLOURS[k], "hatch": "//" if "matched" in k else None}
            out[METHODS[k].label] = ([v and scale * v for v in values], style)
        return out

    accuracy = ("ours_mv", "ck_mv", "ours_ds", "ck_ds", "ours_em", *SLOW)
    speed = ("ours_mv", "ck_mv", "ours_ds_matched", "ck_ds_matched", *SLOW)
    return [
        harness.bar_plot(
            Path(plot_dir) / f"{prefix}_accuracy.png",
            [_short(n) for n in sets],
            series(accuracy, "accuracy", 100),
            ylabel="accuracy on gold items (%)",
            title="Label aggregation: accuracy against the gold labels",
            ylim=(50, 100),
        ),
        harness.bar_plot(
            Path(plot_dir) / f"{prefix}_speed.png",
            [f"{_short(n)}\n{e['n_labels']:,} labels" for n, e in sets.items()],
            series(speed, "seconds"),
            ylabel="wall time (s, log scale)",
            title="Label aggregation: wall time (matched Dawid-Skene: "
            f"{cfg['matched_iter']} iterations each)",
            logy=True,
            figsize=(8.5, 4.8),
            ncol=3,
            legend_y=-0.16,
            tick_fontsize=7,
        ),
    ]


def write_outputs(results) -> dict:
    """JSON, CSV, Markdown and rst tables, and the plots; returns their paths."""
    cfg = results["config"]
    files = harness.write_page(
        cfg["output_dir"], cfg["name"], results, page(results), csv=csv_rows(results)
    )
    files["plots"] = [str(p) for p in plots(results, cfg["plot_dir"], cfg["name"])]
    return files


def main(argv=None):
    """Command-line entry point."""
    overrides = harness.command_line(
        "aggregation.py",
        "Label aggregation: our MajorityVote/DawidSkene vs crowd-kit.",
        "about a minute: GLAD/MMSR on small sets, 100k synthetic",
        argv,
        data=(str, "folder with the truth-inference sets"),
        seed=(int, None),
        no_synthetic={"action": "store_true", "help": "skip the synthetic crowd"},
    )
    synthetic = not overrides.pop("no_synthetic", False)
    results = run(overrides, synthetic=synthetic)
    print(harness.markdown_page(tables(results)))
    print(f"wall time {results['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
