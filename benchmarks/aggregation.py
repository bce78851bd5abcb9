"""Aggregation benchmark: our MajorityVote and DawidSkene against crowd-kit."""
# SPDX-License-Identifier: BSD-3-Clause

# Accuracy against the gold labels and wall time of label aggregation without
# features, on the six truth-inference sets of ``shared/data/truth_inference``
# and on a synthetic crowd of about 500 000 labels (500 annotators, 10 classes):
#
#   python benchmarks/aggregation.py --quick   # about a minute on 2 CPU cores
#   python benchmarks/aggregation.py           # the full run (GLAD and MMSR on
#                                              # every set, 500k synthetic labels)
#
# Protocol:
# - every method gets the same pandas DataFrame (columns task, worker, label);
#   the timed part starts there, so our timings include building the
#   CrowdLabelMatrix from the DataFrame;
# - accuracy is measured on the items that have a gold label (trec,
#   s5_AdultContent and web have gold labels for a subset only);
# - "defaults": every aggregator with its own default settings (our DawidSkene:
#   at most 100 iterations, tol 1e-5 on the log-likelihood per label, smoothing
#   0.01; crowd-kit's DawidSkene: at most 100 iterations, tol 1e-5 on its
#   "ELBO" per label);
# - "matched": both Dawid-Skene implementations run exactly ``matched_iter``
#   EM iterations (crowd-kit with tol=-inf, ours with tol=0, which stops early
#   only once the log-likelihood stops increasing, and reports how many it ran)
#   from the same soft majority-vote initialisation, ours with smoothing=1e-10,
#   the nearest equivalent of crowd-kit's clipping of the confusion counts at
#   1e-10, and ties of the final posteriors broken towards the first class as
#   crowd-kit's idxmax does;
# - speed: wall time (the minimum over repeats for runs under one second), and
#   the ratio crowd-kit / ours; on the synthetic crowd both Dawid-Skene
#   implementations run the matched 50 iterations;
# - "crowd-kit's iterations": crowd-kit's default DawidSkene stops when its
#   "ELBO" per label stops increasing, but that quantity adds the log class
#   prior once per *label* instead of once per item, so it is not the EM
#   objective and falls from the second iteration on many sets; the default run
#   then stops after 2 or 3 iterations. Ours, run for exactly as many
#   iterations as crowd-kit's default made on that set (otherwise as in
#   "matched"), isolates that stopping rule from the implementation.
#
# ``run(config) -> results`` does everything and is what the tests call.

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
if str(_HERE.parent) not in sys.path:  # a source checkout without installation
    sys.path.insert(1, str(_HERE.parent))

import harness  # noqa: E402
from harness import markdown_table, rst_csv_table  # noqa: E402

from sklearn_metaannot import (  # noqa: E402
    CrowdLabelMatrix,
    DawidSkene,
    MajorityVote,
    MetaAnnotatorClassifier,
)
from sklearn_metaannot.datasets import load_truth_inference  # noqa: E402

REPO = _HERE.parent
DEFAULT_DATA = harness.SHARED_DATA / "truth_inference"

#: The six shipped truth-inference sets and their short names.
DATASETS = ("bluebird", "rte", "s4_Dog_data", "web", "trec", "s5_AdultContent")
SHORT = {"s4_Dog_data": "dog", "s5_AdultContent": "adult"}
SYNTHETIC = "synthetic"

#: Methods: key -> (label in the tables, library).
METHODS = {
    "ours_mv": ("MV (ours)", "ours"),
    "ours_ds": ("DS (ours)", "ours"),
    "ours_ds_matched": ("DS (ours, matched)", "ours"),
    "ours_em": ("EM, no features (ours)", "ours"),
    "ck_mv": ("MV (crowd-kit)", "crowd-kit"),
    "ck_ds": ("DS (crowd-kit)", "crowd-kit"),
    "ck_ds_matched": ("DS (crowd-kit, matched)", "crowd-kit"),
    "ours_ds_ck_iter": ("DS (ours, crowd-kit's iterations)", "ours"),
    "ck_glad": ("GLAD (crowd-kit)", "crowd-kit"),
    "ck_mmsr": ("MMSR (crowd-kit)", "crowd-kit"),
}
#: Methods too slow for the synthetic crowd (GLAD, MMSR) or too memory-hungry
#: (the classifier's EM holds a dense (items, annotators, classes) tensor).
SLOW = ("ck_glad", "ck_mmsr")


def default_config(quick=False) -> dict:
    """The configuration of the full run, or of the ``--quick`` run.

    Parameters
    ----------
    quick : bool, default=False
        Fewer repeats, GLAD and MMSR only on the small sets, 100 000 synthetic
        labels.

    Returns
    -------
    dict
        Every knob of the benchmark; ``run`` accepts any subset as overrides.
    """
    cfg = {
        "name": "aggregation",
        "data": str(DEFAULT_DATA),
        "seed": 0,
        "datasets": list(DATASETS),
        "methods": list(METHODS),
        # matched Dawid-Skene runs (accuracy and the synthetic speed test)
        "matched_iter": 50,
        "matched_smoothing": 1e-10,
        # our DawidSkene (defaults otherwise) with these smoothing values, on the
        # real sets: how much of a difference the smoothing alone makes
        "smoothing_grid": [0.0, 1e-10, 1e-6, 1e-3, 1e-2, 0.1, 1.0],
        # our classifier's EM without features: J iterations, its default priors
        "em_iter": 50,
        "em_max_cells": 60_000_000,  # skip it above items x annotators x classes
        # GLAD and MMSR (crowd-kit defaults) only on sets up to this many labels
        "slow_max_labels": None,
        # synthetic crowd
        "synthetic": True,
        "synthetic_labels": 500_000,
        "synthetic_annotators": 500,
        "synthetic_classes": 10,
        "synthetic_labels_per_item": 10,
        "synthetic_mixture": [0.1, 0.7, 0.2],
        "synthetic_methods": [
            "ours_mv",
            "ours_ds",
            "ours_ds_matched",
            "ck_mv",
            "ck_ds",
            "ck_ds_matched",
            "ours_ds_ck_iter",
        ],
        # timing: runs shorter than repeat_below_s are repeated, the minimum kept
        "n_repeats": 5,
        "repeat_below_s": 1.0,
        # torch threads of the classifier's EM (1: no spinning threads when the
        # machine is shared)
        "threads": 1,
        # outputs
        "output_dir": str(REPO / "benchmarks" / "results"),
        "plot_dir": str(REPO / "docs" / "_static" / "benchmarks"),
        "write": True,
        "verbose": 1,
    }
    if quick:
        cfg.update(
            name="aggregation_quick",
            slow_max_labels=20_000,
            em_max_cells=5_000_000,
            synthetic_labels=100_000,
            synthetic_annotators=200,
            n_repeats=2,
        )
    return cfg


def _log(cfg, *args):
    if cfg.get("verbose"):
        print(*args, flush=True)


# -- data ----------------------------------------------------------------------


def synthetic_crowd(
    n_labels=500_000,
    n_annotators=500,
    n_classes=10,
    labels_per_item=10,
    mixture=(0.1, 0.7, 0.2),
    seed=0,
):
    """A synthetic crowd in long format, with the truth of every item.

    Items have a uniform true class and ``labels_per_item`` distinct annotators
    drawn at random. Annotators are experts (accuracy ~ U[0.9, 1]), hammers
    (U[0.5, 0.9]) or spammers (uniform answers) with probabilities ``mixture``,
    the package's default simulator recipe; wrong answers are uniform over the
    other classes.

    Parameters
    ----------
    n_labels : int, default=500_000
        Number of labels (rounded down to a multiple of ``labels_per_item``).
    n_annotators, n_classes, labels_per_item : int
        Crowd size, classes, labels per item.
    mixture : sequence of 3 floats, default=(0.1, 0.7, 0.2)
        Probabilities of expert, hammer and spammer annotators.
    seed : int, default=0
        Seed.

    Returns
    -------
    labels : pandas.DataFrame
        Columns ``task``, ``worker``, ``label`` (int64).
    truth : pandas.Series
        True class of every task, indexed by task.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_items = n_labels // labels_per_item
    if labels_per_item > n_annotators:
        raise ValueError("labels_per_item must not exceed n_annotators")
    truth = rng.integers(n_classes, size=n_items)
    workers = np.empty((n_items, labels_per_item), dtype=np.int64)
    chunk = 4096
    for start in range(0, n_items, chunk):  # distinct annotators per item
        keys = rng.random((min(chunk, n_items - start), n_annotators), dtype=np.float32)
        part = np.argpartition(keys, labels_per_item - 1, axis=1)[:, :labels_per_item]
        workers[start : start + len(keys)] = part
    kind = rng.choice(3, size=n_annotators, p=np.asarray(mixture) / np.sum(mixture))
    accuracy = np.where(
        kind == 0,
        rng.uniform(0.9, 1.0, n_annotators),
        np.where(kind == 1, rng.uniform(0.5, 0.9, n_annotators), 1.0 / n_classes),
    )
    task = np.repeat(np.arange(n_items), labels_per_item)
    worker = workers.ravel()
    true = truth[task]
    correct = rng.random(len(task)) < accuracy[worker]
    wrong = (true + rng.integers(1, n_classes, size=len(task))) % n_classes
    labels = pd.DataFrame(
        {"task": task, "worker": worker, "label": np.where(correct, true, wrong)}
    )
    return labels, pd.Series(
        truth, index=pd.RangeIndex(n_items, name="task"), name="truth"
    )


def load_sets(cfg) -> dict:
    """``name -> (labels DataFrame, truth Series)`` of the configured sets."""
    sets = {}
    root = Path(cfg["data"])
    for name in cfg["datasets"]:
        sets[name] = load_truth_inference(root / name)
    if cfg["synthetic"]:
        sets[SYNTHETIC] = synthetic_crowd(
            cfg["synthetic_labels"],
            cfg["synthetic_annotators"],
            cfg["synthetic_classes"],
            cfg["synthetic_labels_per_item"],
            cfg["synthetic_mixture"],
            seed=cfg["seed"],
        )
    return sets


# -- methods -------------------------------------------------------------------


def _first_argmax(probas):
    """Argmax with ties towards the first column, as pandas' idxmax."""
    return np.argmax(probas, axis=1)


def _ours(estimator):
    def fit(df):
        labels = CrowdLabelMatrix.from_long(df)
        est = estimator.fit(labels)
        info = {"n_iter": getattr(est, "n_iter_", None)}
        return labels.sample_ids, np.asarray(est.labels_), info

    return fit


def _ours_em(n_iter, seed):
    """Our classifier's MAP-EM on constant features: Dawid-Skene with its priors."""

    def fit(df):
        labels = CrowdLabelMatrix.from_long(df)
        clf = MetaAnnotatorClassifier(
            representation="input", n_em_iter=n_iter, random_state=seed
        )
        clf.fit(np.zeros((labels.n_samples, 1)), labels)
        codes = _first_argmax(clf.sample_posterior_)
        return labels.sample_ids, clf.classes_[codes], {"n_iter": n_iter}

    return fit


def _crowdkit(estimator):
    def fit(df):
        est = estimator
        pred = est.fit_predict(df)
        history = getattr(est, "loss_history_", None)
        info = {"n_iter": len(history) if history is not None else None}
        return pred.index.to_numpy(), pred.to_numpy(), info

    return fit


def make_method(key, cfg, ck_iter=None):
    """The fitting function of method ``key``: DataFrame -> (tasks, labels, info).

    ``ck_iter`` is the number of iterations crowd-kit's default DawidSkene made
    on the set (needed by ``"ours_ds_ck_iter"`` only).
    """
    seed = cfg["seed"]
    if key == "ours_mv":
        return _ours(MajorityVote(tie_break="random", random_state=seed))
    if key == "ours_ds":
        return _ours(DawidSkene(random_state=seed))
    if key == "ours_ds_matched":
        return _ours(
            DawidSkene(
                n_iter=cfg["matched_iter"],
                tol=0.0,
                smoothing=cfg["matched_smoothing"],
                tie_break="first",
            )
        )
    if key == "ours_ds_ck_iter":
        return _ours(
            DawidSkene(
                n_iter=ck_iter,
                tol=0.0,
                smoothing=cfg["matched_smoothing"],
                tie_break="first",
            )
        )
    if key == "ours_em":
        return _ours_em(cfg["em_iter"], seed)
    import crowdkit.aggregation as ck

    if key == "ck_mv":
        return _crowdkit(ck.MajorityVote())
    if key == "ck_ds":
        return _crowdkit(ck.DawidSkene())
    if key == "ck_ds_matched":
        return _crowdkit(ck.DawidSkene(n_iter=cfg["matched_iter"], tol=-np.inf))
    if key == "ck_glad":
        return _crowdkit(ck.GLAD())
    if key == "ck_mmsr":
        return _crowdkit(ck.MMSR(random_state=seed))
    raise ValueError(f"unknown method {key!r}; known: {list(METHODS)}")


def _skip_reason(key, name, df, cfg):
    """Why method ``key`` is not run on set ``name``, or None."""
    if key.startswith("ck_") or key == "ours_ds_ck_iter":
        try:
            import crowdkit  # noqa: F401
        except ImportError:
            return "crowd-kit is not installed"
    if name == SYNTHETIC and key not in cfg["synthetic_methods"]:
        return "not run on the synthetic crowd (see synthetic_methods)"
    if (
        key in SLOW
        and cfg["slow_max_labels"] is not None
        and (len(df) > cfg["slow_max_labels"])
    ):
        return f"more than slow_max_labels={cfg['slow_max_labels']} labels"
    if key == "ours_em":
        cells = df["task"].nunique() * df["worker"].nunique() * df["label"].nunique()
        if cells > cfg["em_max_cells"]:
            return f"dense EM tensor of {cells} cells > em_max_cells"
    return None


def _timed(fit, df, cfg):
    """Run ``fit(df)``; repeat short runs, keep the fastest time."""
    times, out = [], None
    for _ in range(max(1, cfg["n_repeats"])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            out = fit(df)
            times.append(time.perf_counter() - start)
        if times[-1] >= cfg["repeat_below_s"]:
            break
    return out, min(times), len(times)


def _accuracy(tasks, labels, truth):
    """Accuracy on the tasks that have a gold label, and their number."""
    import pandas as pd

    pred = pd.Series(labels, index=tasks)
    common = truth.index.intersection(pred.index)
    gold = truth.loc[common].to_numpy()
    got = pred.loc[common].to_numpy()
    try:
        got = got.astype(gold.dtype)
    except (TypeError, ValueError):
        pass
    return float(np.mean(got == gold)) if len(common) else float("nan"), len(common)


def _agreement(a, b):
    """Fraction of tasks on which two (tasks, labels) predictions agree."""
    import pandas as pd

    sa, sb = pd.Series(a[1], index=a[0]), pd.Series(b[1], index=b[0])
    common = sa.index.intersection(sb.index)
    return float(np.mean(sa.loc[common].to_numpy() == sb.loc[common].to_numpy()))


def _tied_items(df):
    """Items whose majority vote is a tie."""
    counts = df.groupby(["task", "label"]).size().unstack(fill_value=0).to_numpy()
    top = counts.max(axis=1, keepdims=True)
    return int(((counts == top).sum(axis=1) > 1).sum())


# -- the benchmark -------------------------------------------------------------


def run(config=None, **overrides) -> dict:
    """Run the benchmark and, with ``write=True``, write its result files.

    Parameters
    ----------
    config : dict, optional
        Overrides of :func:`default_config` (a key ``"quick": True`` starts from
        the quick configuration).
    **overrides
        More overrides.

    Returns
    -------
    dict
        ``config``, ``environment``, ``sets`` (per set: sizes, per method
        accuracy, time, iterations, skip reasons), ``comparison`` (ours against
        crowd-kit per set), ``wall_seconds`` and, when written, ``files``.
    """
    config = {**(config or {}), **overrides}
    cfg = default_config(quick=bool(config.pop("quick", False)))
    unknown = set(config) - set(cfg)
    if unknown:
        raise ValueError(f"unknown configuration keys {sorted(unknown)}")
    cfg.update(config)
    t_start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(int(cfg["threads"]))
    try:
        results = _run(cfg)
    finally:
        torch.set_num_threads(threads)
    results["wall_seconds"] = time.perf_counter() - t_start
    if cfg["write"]:
        results["files"] = write_outputs(results)
    return results


def _run(cfg) -> dict:
    sets = load_sets(cfg)
    results = {"config": cfg, "environment": harness.environment(), "sets": {}}
    for name, (df, truth) in sets.items():
        entry = {
            "n_labels": len(df),
            "n_items": int(df["task"].nunique()),
            "n_workers": int(df["worker"].nunique()),
            "n_classes": int(df["label"].nunique()),
            "n_gold": int(truth.index.isin(df["task"].unique()).sum()),
            "mv_ties": _tied_items(df),
            "methods": {},
        }
        preds = {}
        for key in cfg["methods"]:
            reason = _skip_reason(key, name, df, cfg)
            if reason is not None:
                entry["methods"][key] = {"skipped": reason}
                continue
            ck_iter = entry["methods"].get("ck_ds", {}).get("n_iter")
            if key == "ours_ds_ck_iter" and not ck_iter:
                entry["methods"][key] = {"skipped": "needs ck_ds (run before it)"}
                continue
            fit = make_method(key, cfg, ck_iter=ck_iter)
            (tasks, labels, info), seconds, n_runs = _timed(fit, df, cfg)
            acc, n_eval = _accuracy(tasks, labels, truth)
            preds[key] = (tasks, labels)
            entry["methods"][key] = {
                "accuracy": acc,
                "n_evaluated": n_eval,
                "seconds": seconds,
                "n_runs": n_runs,
                **info,
            }
            _log(
                cfg,
                f"{name:>16} {METHODS[key][0]:<26} acc {acc:.4f}  "
                f"{seconds:8.3f} s  iter {info.get('n_iter')}",
            )
        for ours, theirs in (
            ("ours_ds", "ck_ds"),
            ("ours_ds_matched", "ck_ds_matched"),
            ("ours_ds_ck_iter", "ck_ds"),
            ("ours_mv", "ck_mv"),
        ):
            if ours in preds and theirs in preds:
                entry.setdefault("agreement", {})[f"{ours}|{theirs}"] = _agreement(
                    preds[ours], preds[theirs]
                )
        if name != SYNTHETIC and cfg["smoothing_grid"]:
            entry["smoothing_sweep"] = smoothing_sweep(df, truth, cfg)
        results["sets"][name] = entry
    results["comparison"] = compare(results)
    return results


def smoothing_sweep(df, truth, cfg) -> list:
    """Accuracy and iterations of our DawidSkene for each smoothing value."""
    labels = CrowdLabelMatrix.from_long(df)
    out = []
    for smoothing in cfg["smoothing_grid"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = DawidSkene(smoothing=smoothing, random_state=cfg["seed"]).fit(labels)
        acc, _ = _accuracy(labels.sample_ids, ds.labels_, truth)
        out.append({"smoothing": smoothing, "accuracy": acc, "n_iter": ds.n_iter_})
    return out


def compare(results) -> dict:
    """Ours against crowd-kit per set: accuracy differences and speed ratios."""
    out = {}
    for name, entry in results["sets"].items():
        m = entry["methods"]

        def get(key, field):
            return m.get(key, {}).get(field)

        row = {}
        for ours, theirs, tag in (
            ("ours_ds", "ck_ds", "defaults"),
            ("ours_ds_matched", "ck_ds_matched", "matched"),
            ("ours_ds_ck_iter", "ck_ds", "ck_iterations"),
            ("ours_mv", "ck_mv", "mv"),
        ):
            a, b = get(ours, "accuracy"), get(theirs, "accuracy")
            ta, tb = get(ours, "seconds"), get(theirs, "seconds")
            if a is None or b is None:
                continue
            row[tag] = {
                "accuracy_diff_points": 100 * (a - b),
                "within_0.5_points": bool(abs(100 * (a - b)) <= 0.5),
                "speedup": tb / ta if ta else float("nan"),
                "agreement": entry.get("agreement", {}).get(f"{ours}|{theirs}"),
            }
            ia, ib = get(ours, "n_iter"), get(theirs, "n_iter")
            if ia and ib:
                row[tag]["speedup_per_iteration"] = (tb / ib) / (ta / ia)
        out[name] = row
    return out


# -- outputs -------------------------------------------------------------------


def _short(name):
    return SHORT.get(name, name)


def tables(results) -> dict:
    """Markdown and reStructuredText tables of accuracy, time and speed-up."""
    cfg = results["config"]
    names = list(results["sets"])
    keys = [k for k in cfg["methods"] if k in METHODS]

    def cell(name, key, field):
        m = results["sets"][name]["methods"].get(key, {})
        if "skipped" in m or field not in m:
            return "–"
        v = m[field]
        if field == "accuracy":
            return f"{100 * v:.2f}"
        if field == "seconds":
            return f"{v:.3g}"
        return str(v)

    header = ["method"] + [_short(n) for n in names]
    acc_rows = [[METHODS[k][0]] + [cell(n, k, "accuracy") for n in names] for k in keys]
    time_rows = [[METHODS[k][0]] + [cell(n, k, "seconds") for n in names] for k in keys]
    info_rows = []
    for label, field in (
        ("labels", "n_labels"),
        ("items", "n_items"),
        ("annotators", "n_workers"),
        ("classes", "n_classes"),
        ("items with gold", "n_gold"),
        ("tied MV items", "mv_ties"),
    ):
        info_rows.append([label] + [str(results["sets"][n][field]) for n in names])
    cmp_header = [
        "set",
        "DS acc. diff (defaults)",
        "DS acc. diff (matched)",
        "agreement (matched)",
        "DS acc. diff (crowd-kit's iterations)",
        "agreement (crowd-kit's iterations)",
        "DS speed-up (defaults)",
        "DS speed-up (matched)",
        "MV speed-up",
    ]
    cmp_rows = []
    for n in names:
        c = results["comparison"].get(n, {})

        def fmt(tag, field, spec):
            v = c.get(tag, {}).get(field)
            return "–" if v is None else format(v, spec)

        cmp_rows.append(
            [
                _short(n),
                fmt("defaults", "accuracy_diff_points", "+.2f"),
                fmt("matched", "accuracy_diff_points", "+.2f"),
                fmt("matched", "agreement", ".4f"),
                fmt("ck_iterations", "accuracy_diff_points", "+.2f"),
                fmt("ck_iterations", "agreement", ".4f"),
                fmt("defaults", "speedup", ".1f"),
                fmt("matched", "speedup", ".1f"),
                fmt("mv", "speedup", ".1f"),
            ]
        )
    sweep_names = [n for n in names if "smoothing_sweep" in results["sets"][n]]
    sweep_rows = []
    for j, point in enumerate(
        results["sets"][sweep_names[0]]["smoothing_sweep"] if sweep_names else []
    ):
        sweep_rows.append(
            [f"{point['smoothing']:g}"]
            + [
                "{:.2f} ({})".format(
                    100 * results["sets"][n]["smoothing_sweep"][j]["accuracy"],
                    results["sets"][n]["smoothing_sweep"][j]["n_iter"],
                )
                for n in sweep_names
            ]
        )
    sweep_header = ["smoothing"] + [_short(n) for n in sweep_names]
    md = "\n\n".join(
        [
            "### Data sets\n\n" + markdown_table(["", *header[1:]], info_rows),
            "### Accuracy on the items with gold labels (%)\n\n"
            + markdown_table(header, acc_rows),
            "### Wall time (s)\n\n" + markdown_table(header, time_rows),
            "### Ours against crowd-kit (accuracy difference in points, speed-up = "
            "crowd-kit time / our time)\n\n" + markdown_table(cmp_header, cmp_rows),
            "### Our DawidSkene (100 iterations at most, tol 1e-5) against its "
            "smoothing: accuracy (%) and iterations\n\n"
            + markdown_table(sweep_header, sweep_rows),
        ]
    )
    rst = "\n\n".join(
        [
            rst_csv_table("Data sets", ["", *header[1:]], info_rows),
            rst_csv_table(
                "Accuracy on the items with gold labels (%)", header, acc_rows
            ),
            rst_csv_table("Wall time (s)", header, time_rows),
            rst_csv_table("Ours against crowd-kit", cmp_header, cmp_rows),
            rst_csv_table(
                "Our DawidSkene against its smoothing: accuracy (%) and iterations",
                sweep_header,
                sweep_rows,
            ),
        ]
    )
    return {"markdown": md, "rst": rst}


def csv_rows(results) -> list:
    """One row per (set, method)."""
    rows = []
    for name, entry in results["sets"].items():
        for key, m in entry["methods"].items():
            rows.append(
                {
                    "set": name,
                    "method": key,
                    "label": METHODS[key][0],
                    "library": METHODS[key][1],
                    "accuracy": m.get("accuracy"),
                    "n_evaluated": m.get("n_evaluated"),
                    "seconds": m.get("seconds"),
                    "n_iter": m.get("n_iter"),
                    "skipped": m.get("skipped", ""),
                    "n_labels": entry["n_labels"],
                }
            )
    return rows


def _get(results, name, key, field):
    return results["sets"][name]["methods"].get(key, {}).get(field)


def plots(results, plot_dir, prefix) -> list:
    """Accuracy and wall-time bar charts; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    names = list(results["sets"])
    keys = [
        k
        for k in (
            "ours_mv",
            "ck_mv",
            "ours_ds",
            "ck_ds",
            "ours_em",
            "ck_glad",
            "ck_mmsr",
        )
        if k in results["config"]["methods"]
    ]
    colours = {
        "ours_mv": "#9ecae1",
        "ck_mv": "#bdbdbd",
        "ours_ds": "#08519c",
        "ck_ds": "#636363",
        "ours_em": "#6baed6",
        "ck_glad": "#fdae6b",
        "ck_mmsr": "#a1d99b",
        "ours_ds_matched": "#08519c",
        "ck_ds_matched": "#636363",
    }
    paths = []

    fig, ax = plt.subplots(figsize=(8.5, 4.6), dpi=110)
    width = 0.8 / max(len(keys), 1)
    for j, key in enumerate(keys):
        vals = [_get(results, n, key, "accuracy") for n in names]
        xs = [i + (j - (len(keys) - 1) / 2) * width for i in range(len(names))]
        ax.bar(
            [x for x, v in zip(xs, vals) if v is not None],
            [100 * v for v in vals if v is not None],
            width,
            label=METHODS[key][0],
            color=colours.get(key),
        )
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([_short(n) for n in names])
    ax.set_ylabel("accuracy on gold items (%)")
    ax.set_ylim(50, 100)
    ax.set_title("Label aggregation: accuracy against the gold labels", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    path = plot_dir / f"{prefix}_accuracy.png"
    fig.savefig(path)
    plt.close(fig)
    paths.append(path)

    tkeys = [
        k
        for k in (
            "ours_mv",
            "ck_mv",
            "ours_ds_matched",
            "ck_ds_matched",
            "ck_glad",
            "ck_mmsr",
        )
        if k in results["config"]["methods"]
    ]
    fig, ax = plt.subplots(figsize=(8.5, 4.8), dpi=110)
    width = 0.8 / max(len(tkeys), 1)
    for j, key in enumerate(tkeys):
        vals = [_get(results, n, key, "seconds") for n in names]
        xs = [i + (j - (len(tkeys) - 1) / 2) * width for i in range(len(names))]
        hatch = "//" if key.endswith("matched") else None
        ax.bar(
            [x for x, v in zip(xs, vals) if v is not None],
            [v for v in vals if v is not None],
            width,
            label=METHODS[key][0],
            color=colours.get(key),
            hatch=hatch,
        )
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(
        [f"{_short(n)}\n{results['sets'][n]['n_labels']:,} labels" for n in names],
        fontsize=7,
    )
    ax.set_ylabel("wall time (s, log scale)")
    ax.set_title(
        "Label aggregation: wall time (matched Dawid-Skene: "
        f"{results['config']['matched_iter']} iterations each)",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    path = plot_dir / f"{prefix}_speed.png"
    fig.savefig(path)
    plt.close(fig)
    paths.append(path)
    return paths


def write_outputs(results) -> dict:
    """JSON, CSV, Markdown and rst tables, and the plots."""
    cfg = results["config"]
    out = Path(cfg["output_dir"])
    name = cfg["name"]
    tab = tables(results)
    files = {
        "json": harness.write_json(results, out / f"{name}.json"),
        "csv": harness.write_csv(csv_rows(results), out / f"{name}.csv"),
    }
    md = out / f"{name}.md"
    env = results["environment"]
    quick = " --quick" if "quick" in name else ""
    md.write_text(
        f"# Label aggregation benchmark ({name})\n\n"
        f"Command: `python benchmarks/aggregation.py{quick}`"
        f"; {env['cpu']} ({env['cpu_count']} CPUs), Python {env['python']}; "
        f"wall time {results['wall_seconds']:.0f} s.\n\n" + tab["markdown"] + "\n"
    )
    files["markdown"] = md
    rst = out / f"{name}_tables.rst"
    rst.write_text(tab["rst"] + "\n")
    files["rst"] = rst
    files["plots"] = plots(results, cfg["plot_dir"], name)
    return {
        k: [str(p) for p in v] if isinstance(v, list) else str(v)
        for k, v in files.items()
    }


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/aggregation.py",
        description="Label aggregation: our MajorityVote/DawidSkene vs crowd-kit.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="about a minute: GLAD/MMSR on small sets, 100k synthetic",
    )
    parser.add_argument(
        "--data", default=str(DEFAULT_DATA), help="folder with the truth-inference sets"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-synthetic", action="store_true", help="skip the synthetic crowd"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write files")
    args = parser.parse_args(argv)
    results = run(
        {
            "quick": args.quick,
            "data": args.data,
            "seed": args.seed,
            "synthetic": not args.no_synthetic,
            "write": not args.no_write,
        }
    )
    print(tables(results)["markdown"])
    print(f"wall time {results['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
