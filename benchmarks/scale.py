"""Scale benchmark: time and peak memory of fit and aggregation on large crowds.

``MetaAnnotatorClassifier.fit`` (representation="input", no meta-learning), our
DawidSkene and MajorityVote, and crowd-kit's DawidSkene (its defaults; skipped at
the crowds of ``crowdkit_skip``) on synthetic crowds of 100k, 1M and 10M labels::

    python -m benchmarks.scale --quick   # 100k labels only (about a minute)
    python -m benchmarks.scale           # 100k, 1M and 10M labels (tens of minutes)
    python -m benchmarks.scale --quick --no-write   # print the tables, write nothing

Protocol (details on the docs page "Crowds at scale"): the crowds of
:func:`make_crowd` (``CROWDS``: items, annotators, labels per item); every
(crowd, method) in its own child process (one thread), which builds the crowd
from a fixed seed, then its input (a CrowdLabelMatrix, crowd-kit a DataFrame)
before the clock starts; time: the minimum over ``repeats`` calls; memory: the
child's peak RSS after building the crowd ("data") and after the calls
("peak"); accuracy: the predicted classes against the true ones.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sklearn_metaannot import (
    CrowdLabelMatrix,
    DawidSkene,
    MajorityVote,
    MetaAnnotatorClassifier,
)

from . import harness

_HERE = Path(__file__).resolve().parent

CROWDS = {  # name -> (items, annotators, labels per item)
    "100k": (20_000, 4_000, 5),
    "1M": (200_000, 10_000, 5),
    "10M": (1_000_000, 10_000, 10),
}


def default_config(quick=False) -> dict:
    """Every knob; ``quick``: the 100k crowd only."""
    return {
        "name": "scale_quick" if quick else "scale",
        "crowds": ["100k"] if quick else ["100k", "1M", "10M"],
        "methods": list(METHODS),
        "n_classes": 10,
        "n_features": 16,
        "seed": 0,
        "repeats": {"100k": 3, "1M": 1, "10M": 1},
        "crowdkit_skip": [],
        "timeout_s": 3600,
        "sizes": {},  # more crowds: name -> [items, annotators, labels per item]
    }


def make_crowd(n_items, n_annotators, labels_per_item, *, n_classes, n_features, seed):
    """Synthetic crowd: features X, true classes y and label triplets.

    Class centres from a standard normal, unit noise; ``labels_per_item``
    distinct uniform annotators per item, of accuracy ~ U[0.3, 0.9], wrong
    labels uniform over the other classes. Returns ``X, y, rows, cols, codes``,
    the triplets sorted by row then column.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_items)
    centres = rng.normal(size=(n_classes, n_features))
    X = centres[y] + rng.normal(size=(n_items, n_features))
    cols = rng.integers(0, n_annotators, (n_items, labels_per_item))
    cols.sort(axis=1)
    while (bad := np.flatnonzero((cols[:, 1:] == cols[:, :-1]).any(axis=1))).size:
        redraw = rng.integers(0, n_annotators, (bad.size, labels_per_item))
        redraw.sort(axis=1)
        cols[bad] = redraw  # until every item has distinct annotators
    rows = np.repeat(np.arange(n_items), labels_per_item)
    cols = cols.ravel()
    accuracy = rng.uniform(0.3, 0.9, n_annotators)
    correct = rng.random(rows.size) < accuracy[cols]
    wrong = (y[rows] + rng.integers(1, n_classes, rows.size)) % n_classes
    return X, y, rows, cols, np.where(correct, y[rows], wrong)


#: ``build(context, seed)``: an unfitted estimator (``context`` is unused).
METHODS = harness.Methods()
METHODS.add("fit", "MetaAnnotatorClassifier.fit (input)")(
    lambda context, seed: MetaAnnotatorClassifier(representation="input")
)
METHODS.add("fit_linear", "MetaAnnotatorClassifier.fit (input, head='linear')")(
    lambda context, seed: MetaAnnotatorClassifier(representation="input", head="linear")
)
METHODS.add("ours_ds", "DawidSkene (ours)")(
    lambda context, seed: DawidSkene(random_state=seed)
)
METHODS.add("ours_mv", "MajorityVote (ours)")(
    lambda context, seed: MajorityVote(random_state=seed)
)
METHODS.add("crowdkit_ds", "DawidSkene (crowd-kit)")(
    lambda context, seed: importlib.import_module("crowdkit.aggregation").DawidSkene()
)


def measure(crowd, method, config):
    """Build ``crowd`` and time ``method`` in this process (the child's job)."""
    torch.set_num_threads(1)
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
    if method == "crowdkit_ds":  # its input: a DataFrame (task, worker, label)
        data = pd.DataFrame({"task": rows, "worker": cols, "label": codes})
    else:
        ids = {"sample_ids": np.arange(n_items), "classes": np.arange(K)}
        data = CrowdLabelMatrix(
            rows, cols, codes, annotator_ids=np.arange(n_annotators), **ids
        )
    del rows, cols, codes

    def call():
        est = METHODS[method].build(None, 0)
        if method == "crowdkit_ds":
            pred = est.fit_predict(data).sort_index().to_numpy()
            return pred, len(est.loss_history_)
        if method in ("fit", "fit_linear"):
            return est.fit(X, data).sample_posterior_.argmax(axis=1), est.n_em_iter
        return est.fit(data).probas_.argmax(axis=1), getattr(est, "n_iter_", None)

    data_mb = harness.peak_rss_mb()
    (pred, n_iter), times = harness.repeat_timed(call, config["repeats"].get(crowd, 1))
    return {
        "crowd": crowd,
        "method": method,
        "n_items": n_items,
        "n_annotators": n_annotators,
        "n_labels": n_items * per_item,
        "seconds": min(times),
        "all_seconds": times,
        "data_rss_mb": data_mb,
        "peak_rss_mb": harness.peak_rss_mb(),
        "accuracy": float((pred == y).mean()),
        "n_iter": n_iter,
    }


def run(config=None, **overrides) -> dict:
    """Measure every (crowd, method) in a child process; return the results."""
    config = harness.configure(default_config, {**(config or {}), **overrides})
    rows = []
    for crowd in config["crowds"]:
        for method in config["methods"]:
            row = {"crowd": crowd, "method": method}
            if method == "crowdkit_ds" and crowd in config["crowdkit_skip"]:
                row["error"] = "skipped (config)"
            else:
                child = [
                    "-m",
                    "benchmarks.scale",
                    "--child",
                    crowd,
                    method,
                    "--config-json",
                ]
                child.append(json.dumps(config))
                row.update(harness.run_child(child, timeout_s=config["timeout_s"]))
                print(json.dumps(row), flush=True)
            rows.append(row)
    return {
        "config": config,
        "environment": harness.environment(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
    }


HEADER = ["labels", "method", "time (s)", "time / DawidSkene (ours)", "peak RSS (MB)",
          "RSS after building the crowd (MB)", "accuracy", "EM iterations"]  # fmt: skip


def table_rows(results) -> list[list]:
    """One row per (crowd, method), in the order of the configuration."""
    cfg, by = results["config"], {(r["crowd"], r["method"]): r for r in results["rows"]}
    table = []
    for crowd, method in ((c, m) for c in cfg["crowds"] for m in cfg["methods"]):
        if (r := by.get((crowd, method))) is None:
            continue
        label, error = METHODS[method].label, r.get("error", "-")
        if "seconds" not in r:  # failed or skipped: why, in the measured cells
            table.append([crowd, label, error, "-", error, error, error, "-"])
            continue
        ds = by.get((crowd, "ours_ds"), {})
        ratio = f"{r['seconds'] / ds['seconds']:.2f}" if "seconds" in ds else "-"
        table.append(
            [crowd, label, f"{r['seconds']:.3g}", ratio]
            + [f"{r['peak_rss_mb']:.0f}", f"{r['data_rss_mb']:.0f}"]
            + [f"{r['accuracy']:.4f}", "-" if r["n_iter"] is None else r["n_iter"]]
        )
    return table


def page(results) -> list:
    """The Markdown page: the machine and the table (also in the reST file)."""
    env = results["environment"]
    return [
        f"# Scale benchmark ({results['date']})",
        f"`python -m benchmarks.scale` — {env['cpu']}, {env['cpu_count']} cores, "
        f"torch {env['torch']}, one thread per child process.",
        harness.Table(
            None,
            f"Time and peak memory ({results['date']})",
            HEADER,
            table_rows(results),
        ),
        "Peak RSS is the whole child process (Python, torch, the synthetic crowd and "
        "the method); the column after it is the same process before the timed call.",
    ]


def write_outputs(results, out) -> dict:
    """``<name>.json``, ``<name>.md`` and ``<name>_tables.rst`` in ``out``."""
    return harness.write_page(out, results["config"]["name"], results, page(results))


def main(argv=None):
    """Command-line entry point."""
    options = harness.command_line(
        "scale.py",
        __doc__.splitlines()[0],
        "100k labels only",
        argv,
        crowds={"nargs": "+", "choices": list(CROWDS)},
        methods={"nargs": "+", "choices": list(METHODS)},
        crowdkit_skip={"nargs": "*"},
        out={},
        render={"metavar": "JSON", "help": "rewrite the tables of a results file"},
        child={"nargs": 2, "metavar": ("CROWD", "METHOD")},
        config_json={"default": "{}"},
    )
    if "child" in options:
        config = harness.configure(default_config, json.loads(options["config_json"]))
        print(json.dumps(measure(*options["child"], config)))
        return
    out = options.pop("out", str(_HERE / "results"))
    if "render" in options:
        results = json.loads(Path(options["render"]).read_text())
    else:
        keys = ("crowds", "methods", "crowdkit_skip")
        results = run(
            {k: options[k] for k in keys if k in options}, quick=options["quick"]
        )
    if options["write"]:
        write_outputs(results, out)
    print(harness.markdown_page(page(results)))


if __name__ == "__main__":
    main()
