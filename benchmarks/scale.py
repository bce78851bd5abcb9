"""Scale benchmark: time and peak memory of fit and aggregation on large crowds."""
# SPDX-License-Identifier: BSD-3-Clause

# Time and peak memory of ``MetaAnnotatorClassifier.fit`` (representation="input",
# no meta-learning), of our DawidSkene and MajorityVote, and of crowd-kit's
# DawidSkene, on synthetic crowds of 100 000, 1 million and 10 million labels:
#
#   python benchmarks/scale.py --quick   # 100k labels only (about a minute)
#   python benchmarks/scale.py           # 100k, 1M and 10M labels (tens of minutes)
#
# Protocol:
# - synthetic crowd: K = 10 classes, 16 features (class centres drawn from a
#   standard normal, unit noise), every item labelled by ``labels_per_item``
#   distinct annotators drawn uniformly; annotator accuracies are uniform in
#   [0.3, 0.9], a wrong label is uniform over the other classes. Configurations:
#   "100k": 20 000 items x 5 labels, 4 000 annotators; "1M": 200 000 items x 5
#   labels, 10 000 annotators; "10M": 1 000 000 items x 10 labels, 10 000
#   annotators (the "1 million items, 10 000 workers");
# - every (configuration, method) runs in its own child process (a fresh
#   Python, torch threads 1), which builds the crowd from a fixed seed and then
#   times the method; the labels reach our estimators as a CrowdLabelMatrix and
#   crowd-kit as a DataFrame (task, worker, label), built before the clock
#   starts;
# - time: wall-clock seconds of the call (``fit`` or ``fit_predict``), the
#   minimum over ``repeats`` calls in the same process;
# - memory: the child's peak resident set size (``getrusage(RUSAGE_SELF)
#   .ru_maxrss``, i.e. the whole process: Python, numpy, torch, the crowd
#   and the method), read once after building the crowd ("data") and once
#   after the timed calls ("peak"); "peak - data" is an upper bound of what the
#   method itself added on top of its input;
# - accuracy: agreement of the posterior argmax with the true classes (every
#   item has labels);
# - crowd-kit's DawidSkene runs with its defaults (at most 100 iterations); it is
#   skipped at configurations listed in ``crowdkit_skip``.
#
# ``run(config) -> results`` does everything and is what the tests call.

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
if str(_HERE.parent) not in sys.path:  # a source checkout without installation
    sys.path.insert(1, str(_HERE.parent))

import harness  # noqa: E402
from harness import markdown_table, rst_csv_table  # noqa: E402

REPO = _HERE.parent

#: name -> (items, annotators, labels per item)
CROWDS = {
    "100k": (20_000, 4_000, 5),
    "1M": (200_000, 10_000, 5),
    "10M": (1_000_000, 10_000, 10),
}

#: method -> label in the tables
METHODS = {
    "fit": "MetaAnnotatorClassifier.fit (input)",
    "ours_ds": "DawidSkene (ours)",
    "ours_mv": "MajorityVote (ours)",
    "crowdkit_ds": "DawidSkene (crowd-kit)",
}

DEFAULT_CONFIG = {
    "name": "scale",
    "crowds": ["100k", "1M", "10M"],
    "methods": list(METHODS),
    "n_classes": 10,
    "n_features": 16,
    "seed": 0,
    "repeats": {"100k": 3, "1M": 1, "10M": 1},
    "crowdkit_skip": [],
    "timeout_s": 3600,
    # extra crowds: name -> [items, annotators, labels per item] (tests)
    "sizes": {},
}

QUICK = {"name": "scale_quick", "crowds": ["100k"]}


def make_crowd(n_items, n_annotators, labels_per_item, *, n_classes, n_features, seed):
    """Synthetic crowd: features X, true classes y and label triplets.

    Returns
    -------
    X : ndarray of shape (n_items, n_features)
    y : ndarray of shape (n_items,)
    rows, cols, codes : ndarray of int64 of shape (n_items * labels_per_item,)
        Sorted by row then column, one label per (row, column) at most.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_items)
    centres = rng.normal(size=(n_classes, n_features))
    X = centres[y] + rng.normal(size=(n_items, n_features))
    # distinct annotators per item: redraw the rows with a repeated annotator
    cols = rng.integers(0, n_annotators, (n_items, labels_per_item))
    cols.sort(axis=1)
    while True:
        bad = np.flatnonzero((cols[:, 1:] == cols[:, :-1]).any(axis=1))
        if not bad.size:
            break
        redraw = rng.integers(0, n_annotators, (bad.size, labels_per_item))
        redraw.sort(axis=1)
        cols[bad] = redraw
    rows = np.repeat(np.arange(n_items), labels_per_item)
    cols = cols.ravel()
    accuracy = rng.uniform(0.3, 0.9, n_annotators)
    correct = rng.random(rows.size) < accuracy[cols]
    wrong = (y[rows] + rng.integers(1, n_classes, rows.size)) % n_classes
    codes = np.where(correct, y[rows], wrong)
    return X, y, rows, cols, codes


def _peak_rss_mb():
    # ru_maxrss is in kilobytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(crowd, method, config):
    """Build ``crowd`` and time ``method`` in this process (the child's job)."""
    import torch

    torch.set_num_threads(1)
    from sklearn_metaannot import (
        CrowdLabelMatrix,
        DawidSkene,
        MajorityVote,
        MetaAnnotatorClassifier,
    )

    n_items, n_annotators, per_item = {**CROWDS, **config.get("sizes", {})}[crowd]
    K = config["n_classes"]
    X, y, rows, cols, codes = make_crowd(
        n_items,
        n_annotators,
        per_item,
        n_classes=K,
        n_features=config["n_features"],
        seed=config["seed"],
    )
    if method == "crowdkit_ds":
        import pandas as pd
        from crowdkit.aggregation import DawidSkene as CKDawidSkene

        data = pd.DataFrame({"task": rows, "worker": cols, "label": codes})
        del rows, cols, codes

        def call():
            est = CKDawidSkene()
            pred = est.fit_predict(data)
            acc = float((pred.sort_index().to_numpy() == y).mean())
            return acc, len(est.loss_history_)

    else:
        data = CrowdLabelMatrix(
            rows,
            cols,
            codes,
            sample_ids=np.arange(n_items),
            annotator_ids=np.arange(n_annotators),
            classes=np.arange(K),
        )
        del rows, cols, codes

        def call():
            if method == "fit":
                clf = MetaAnnotatorClassifier(representation="input").fit(X, data)
                post, n_iter = clf.sample_posterior_, clf.n_em_iter
            elif method == "ours_ds":
                est = DawidSkene(random_state=0).fit(data)
                post, n_iter = est.probas_, est.n_iter_
            elif method == "ours_mv":
                post = MajorityVote(random_state=0).fit(data).probas_
                n_iter = None
            else:
                raise ValueError(f"unknown method {method!r}")
            return float((post.argmax(axis=1) == y).mean()), n_iter

    data_mb = _peak_rss_mb()
    times = []
    for _ in range(config["repeats"].get(crowd, 1)):
        start = time.perf_counter()
        accuracy, n_iter = call()
        times.append(time.perf_counter() - start)
    return {
        "crowd": crowd,
        "method": method,
        "n_items": n_items,
        "n_annotators": n_annotators,
        "n_labels": n_items * per_item,
        "seconds": min(times),
        "all_seconds": times,
        "data_rss_mb": data_mb,
        "peak_rss_mb": _peak_rss_mb(),
        "accuracy": accuracy,
        "n_iter": n_iter,
    }


def _child(crowd, method, config):
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        crowd,
        method,
        "--config-json",
        json.dumps(config),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=env,
            timeout=config["timeout_s"],
        )
    except subprocess.TimeoutExpired:
        return {"crowd": crowd, "method": method, "error": "timeout"}
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        return {
            "crowd": crowd,
            "method": method,
            "error": f"exit {proc.returncode}: {' | '.join(tail)}",
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(config=None):
    """Measure every (crowd, method) in a child process; return the results."""
    config = {**DEFAULT_CONFIG, **(config or {})}
    rows = []
    for crowd in config["crowds"]:
        for method in config["methods"]:
            if method == "crowdkit_ds" and crowd in config["crowdkit_skip"]:
                rows.append(
                    {"crowd": crowd, "method": method, "error": "skipped (config)"}
                )
                continue
            row = _child(crowd, method, config)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return {
        "config": config,
        "environment": harness.environment(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
    }


def _fmt(row, key, spec):
    return format(row[key], spec) if key in row else row.get("error", "-")


HEADER = [
    "labels",
    "method",
    "time (s)",
    "time / DawidSkene (ours)",
    "peak RSS (MB)",
    "RSS after building the crowd (MB)",
    "accuracy",
    "EM iterations",
]


def table_rows(results) -> list[list]:
    """One row per (crowd, method), in the order of the configuration."""
    by = {(r["crowd"], r["method"]): r for r in results["rows"]}
    table = []
    for crowd in results["config"]["crowds"]:
        ds = by.get((crowd, "ours_ds"), {})
        for method in results["config"]["methods"]:
            r = by.get((crowd, method))
            if r is None:
                continue
            ratio = (
                f"{r['seconds'] / ds['seconds']:.2f}"
                if "seconds" in r and "seconds" in ds
                else "-"
            )
            n_iter = r.get("n_iter") if "seconds" in r else None
            table.append(
                [
                    crowd,
                    METHODS[method],
                    _fmt(r, "seconds", ".3g"),
                    ratio,
                    _fmt(r, "peak_rss_mb", ".0f"),
                    _fmt(r, "data_rss_mb", ".0f"),
                    _fmt(r, "accuracy", ".4f"),
                    "-" if n_iter is None else n_iter,
                ]
            )
    return table


def markdown(results) -> str:
    env = results["environment"]
    return (
        f"# Scale benchmark ({results['date']})\n\n"
        f"`python benchmarks/scale.py` — {env['cpu']}, {env['cpu_count']} cores, "
        f"torch {env['torch']}, one thread per child process.\n\n"
        + markdown_table(HEADER, table_rows(results))
        + "\n\nPeak RSS is the whole child process (Python, torch, the synthetic "
        "crowd and the method); the column after it is the same process before "
        "the timed call.\n"
    )


def write_outputs(results, out) -> None:
    """``<name>.json``, ``<name>.md`` and ``<name>_tables.rst`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = results["config"]["name"]
    harness.write_json(results, out / f"{name}.json")
    (out / f"{name}.md").write_text(markdown(results))
    title = f"Time and peak memory ({results['date']})"
    (out / f"{name}_tables.rst").write_text(
        rst_csv_table(title, HEADER, table_rows(results)) + "\n"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k labels only")
    parser.add_argument("--crowds", nargs="+", choices=list(CROWDS))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS))
    parser.add_argument("--crowdkit-skip", nargs="*", default=None)
    parser.add_argument("--out", default=str(_HERE / "results"))
    parser.add_argument(
        "--render", metavar="JSON", help="rewrite the tables of a results file"
    )
    parser.add_argument("--child", nargs=2, metavar=("CROWD", "METHOD"))
    parser.add_argument("--config-json", default="{}")
    args = parser.parse_args(argv)
    if args.child:
        config = {**DEFAULT_CONFIG, **json.loads(args.config_json)}
        print(json.dumps(measure(*args.child, config)))
        return
    config = dict(QUICK) if args.quick else {}
    if args.crowds:
        config["crowds"] = args.crowds
    if args.methods:
        config["methods"] = args.methods
    if args.crowdkit_skip is not None:
        config["crowdkit_skip"] = args.crowdkit_skip
    results = json.loads(Path(args.render).read_text()) if args.render else run(config)
    write_outputs(results, args.out)
    print(markdown(results))


if __name__ == "__main__":
    main()
