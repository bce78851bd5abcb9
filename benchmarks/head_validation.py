"""Validation tasks for the defaults of ``fit``: head, pull and feature weight.

Issue 29 asks that the default class-probability model of ``fit`` (``head``,
``head_penalty``, and with ``head="auto"`` the features' weight in the
posteriors) be chosen on validation tasks, never on the learning-curve test
tables. This benchmark draws such tasks from data the
learning curve does not use, and compares the candidate defaults on them:

    python -m benchmarks.head_validation --quick   # about a minute
    python -m benchmarks.head_validation           # the full run

Validation sets (none is a set of ``benchmarks/learning_curve.py``):
- ``make_classification`` as in the learning curve (60 features, 6 classes, 3
  clusters per class, ``class_sep=1.5``) but ``random_state`` 1 and 2, and one
  with a single cluster per class (``random_state=3``): 4000 items, first half
  for training with 5 simulated annotators (a new crowd per repetition);
- real crowds of the truth-inference sets (``s4_Dog_data``, 4 classes;
  ``web``, 5 classes) with synthetic features drawn per gold class from a
  mixture of two Gaussians with random full covariances (20 features, a seed
  of their own); test items drawn from the same mixtures;
- LabelMe's 500 *validation* images (VGG features) with 5 simulated annotators,
  half for training and half for testing (the learning curve uses the training
  images' real crowd and the test images).

Sizes: 3, 10 and 50 items per class and all items (3 since the feature
weight's rule was compared at small sizes too). Methods: the candidate
settings of ``MetaAnnotatorClassifier`` and LR on Dawid-Skene labels. Recorded:
test accuracy and the accuracy of the training items' posteriors (truth
inference).
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

from sklearn_metaannot import DawidSkene, MetaAnnotatorClassifier, simulate_annotators
from sklearn_metaannot.baselines import AggregateThenClassify

from . import harness
from .harness import Timer, stable_seed
from .learning_curve import draw_items

_HERE = Path(__file__).resolve().parent
REPO = _HERE.parent

#: The candidates: name -> MetaAnnotatorClassifier parameters.
CANDIDATES = {
    "prototype, weight 1": {"head": "prototype"},
    "linear, penalty 1": {"head": "linear", "head_penalty": 1.0},
    "linear, penalty 10": {"head": "linear", "head_penalty": 10.0},
    "mlp, penalty 10": {"head": "mlp", "head_penalty": 10.0},
    "auto, penalty 1": {"head": "auto", "head_penalty": 1.0},
    "auto, penalty 10": {"head": "auto", "head_penalty": 10.0},
}
LRDS = "LR + DS"
#: The real crowds: data set -> folder of ``truth_inference``.
CROWDS = {"dog_mixture": "s4_Dog_data", "web_mixture": "web"}

DATASETS = (
    "aniso_rs1",
    "aniso_rs2",
    "blobs_rs3",
    "dog_mixture",
    "web_mixture",
    "labelme_valid",
)


def default_config(quick=False) -> dict:
    """Every knob; ``quick`` shrinks sizes and repetitions."""
    cfg = {
        "name": "head_validation",
        "seed": 1,
        "datasets": list(DATASETS),
        "data": str(harness.SHARED_DATA),
        "sizes": [3, 10, 50, "all"],
        "repetitions": [4, 4, 3, 2],
        "candidates": list(CANDIDATES),
        "output_dir": str(REPO / "benchmarks" / "results"),
        "write": True,
        "verbose": 1,
    }
    if quick:
        cfg.update(
            name="head_validation_quick",
            datasets=["aniso_rs1", "dog_mixture", "labelme_valid"],
            sizes=[10, "all"],
            repetitions=[2, 1],
        )
    return cfg


def _mixture_features(y, n_features, seed, n_test_per_class):
    """Features per gold class from a mixture of two Gaussians with random full
    covariances (elongated: one or two directions scaled by 6), and a test set
    drawn from the same mixtures."""
    rng = np.random.default_rng(seed)
    K = int(y.max()) + 1
    means = rng.normal(size=(K, 2, n_features))
    A = rng.normal(size=(K, 2, n_features, n_features)) / np.sqrt(n_features)
    for a in A.reshape(-1, n_features, n_features):
        a[:, rng.choice(n_features, size=rng.integers(1, 3), replace=False)] *= 6.0

    def draw(labels):
        mode = rng.integers(2, size=len(labels))
        z = rng.normal(size=(len(labels), n_features))
        return means[labels, mode] + np.einsum("nij,nj->ni", A[labels, mode], z)

    y_test = np.repeat(np.arange(K), n_test_per_class)
    return draw(y), draw(y_test), y_test


def load(cfg, name):
    """``(X_train, y_train, crowds, X_test, y_test)``, or None without its data."""
    data = Path(cfg["data"])
    if name.startswith(("aniso", "blobs")):
        rs = int(name[-1])
        X, y = make_classification(
            n_samples=4000,
            n_features=60,
            n_informative=12,
            n_redundant=12,
            n_classes=6,
            n_clusters_per_class=1 if name.startswith("blobs") else 3,
            class_sep=1.5,
            random_state=rs,
        )
        X_train, y_train, X_test, y_test = X[:2000], y[:2000], X[2000:], y[2000:]
    elif name == "labelme_valid":
        if not (data / "labelme").is_dir():
            return None
        from sklearn_metaannot.datasets import load_labelme

        lm = load_labelme(data / "labelme")
        perm = np.random.default_rng(stable_seed(cfg["seed"], name)).permutation(
            len(lm.y_valid)
        )
        train, test = perm[:250], perm[250:]
        X_train, y_train = lm.X_valid[train], lm.y_valid[train]
        X_test, y_test = lm.X_valid[test], lm.y_valid[test]
    else:  # a real crowd of the truth-inference sets with synthetic features
        folder = data / "truth_inference" / CROWDS[name]
        if not folder.is_dir():
            return None
        labels = pd.read_csv(folder / "label.csv")
        truth = pd.read_csv(folder / "truth.csv").set_index("item")["truth"]
        items = np.intersect1d(labels["item"].unique(), truth.index)
        labels = labels[labels["item"].isin(items)]
        y_codes, y_train = np.unique(truth.loc[items].to_numpy(), return_inverse=True)
        row = {v: i for i, v in enumerate(items)}
        workers = {w: j for j, w in enumerate(labels["worker"].unique())}
        lab_codes = {v: i for i, v in enumerate(y_codes)}
        Y = np.full((len(items), len(workers)), np.nan)
        for it, w, lab in labels[["item", "worker", "label"]].itertuples(index=False):
            if lab in lab_codes:
                Y[row[it], workers[w]] = lab_codes[lab]
        X_train, X_test, y_test = _mixture_features(
            y_train, 20, stable_seed(cfg["seed"], name, "features"), 300
        )
        return X_train, y_train, lambda rep: Y, X_test, y_test

    def crowds(rep):
        rs = stable_seed(cfg["seed"], name, "crowd", rep)
        rs = int(np.random.default_rng(rs).integers(2**31 - 1))
        return simulate_annotators(y_train, 5, random_state=rs)[0]

    return X_train, y_train, crowds, X_test, y_test


def run_task(cfg, X, Y, gold, X_test, y_test, seed) -> dict:
    """Every candidate and LR + DS on one task: test accuracy, truth inference,
    and the choices the candidates made."""
    keep = ~np.all(np.isnan(Y), axis=0)
    Y = Y[:, keep]
    labelled = ~np.all(np.isnan(Y), axis=1)
    X, Y, gold = X[labelled], Y[labelled], gold[labelled]
    out = {}
    for name in cfg["candidates"]:
        with Timer() as timer:
            clf = MetaAnnotatorClassifier(random_state=seed, **CANDIDATES[name])
            clf.fit(X, Y)
        inferred = clf.classes_[clf.sample_posterior_.argmax(axis=1)]
        out[name] = {
            "accuracy": float(clf.score(X_test, y_test)),
            "truth": float(np.mean(inferred == gold)),
            "head": clf.head_,
            "weight": float(clf.feature_weight_),
            "space": clf.representation_,
            "seconds": timer.seconds,
        }
    with Timer() as timer:
        lrds = AggregateThenClassify(DawidSkene(random_state=seed), random_state=seed)
        lrds.fit(X, Y)
    out[LRDS] = {
        "accuracy": float(lrds.score(X_test, y_test)),
        "truth": float(np.mean(np.asarray(lrds.labels_) == gold)),
        "seconds": timer.seconds,
    }
    return out


def run(config=None, **overrides) -> dict:
    """Every data set, size and repetition; the raw rows and their means."""
    cfg = harness.configure(default_config, {**(config or {}), **overrides})
    results = {"config": cfg, "datasets": {}, "environment": harness.environment()}
    started = time.perf_counter()
    for name in cfg["datasets"]:
        loaded = load(cfg, name)
        if loaded is None:
            harness.log(cfg, f"{name}: skipped (no data)")
            continue
        X_train, y_train, crowds, X_test, y_test = loaded
        per_size = {}
        for size, n_rep in zip(cfg["sizes"], cfg["repetitions"]):
            rows = []
            with Timer() as timer:
                for rep in range(n_rep):
                    key = stable_seed(cfg["seed"], name, str(size), rep)
                    items = draw_items(y_train, size, key)
                    seed = int(np.random.default_rng(key).integers(2**31 - 1))
                    rows.append(
                        run_task(
                            cfg,
                            X_train[items],
                            crowds(rep)[items],
                            y_train[items],
                            X_test,
                            y_test,
                            seed,
                        )
                    )
            per_size[str(size)] = rows
            harness.log(
                cfg,
                f"{name} size {size} ({n_rep} reps, {timer.seconds:.0f} s): "
                + ", ".join(
                    f"{m} {np.mean([r[m]['accuracy'] for r in rows]):.3f}/"
                    f"{np.mean([r[m]['truth'] for r in rows]):.3f}"
                    for m in rows[0]
                ),
            )
        results["datasets"][name] = per_size
    results["wall_seconds"] = time.perf_counter() - started
    return results


def summary_table(results, key) -> tuple[list, list]:
    """Rows: methods; columns: (data set, size); cells: mean of ``key``."""
    columns = [
        (name, size) for name, sizes in results["datasets"].items() for size in sizes
    ]
    methods = [*results["config"]["candidates"], LRDS]
    header = ["method", *[f"{n} {s}" for n, s in columns], "mean"]
    rows = []
    for m in methods:
        cells = [
            np.mean([r[m][key] for r in results["datasets"][n][s]]) for n, s in columns
        ]
        rows.append([m, *[f"{c:.3f}" for c in cells], f"{np.mean(cells):.3f}"])
    return header, rows


def choices_table(results) -> tuple[list, list]:
    """What the automatic candidates chose: head and feature weight per cell."""
    header = ["data", "size", "method", "heads", "weights (mean)"]
    rows = []
    for name, sizes in results["datasets"].items():
        for size, reps in sizes.items():
            for m in results["config"]["candidates"]:
                heads = [r[m]["head"] for r in reps]
                rows.append(
                    [
                        name,
                        size,
                        m,
                        ", ".join(f"{h} {heads.count(h)}" for h in sorted(set(heads))),
                        f"{np.mean([r[m]['weight'] for r in reps]):.3f}",
                    ]
                )
    return header, rows


def markdown(results) -> str:
    parts = [
        harness.page_header(results, "head_validation", "Validation of the head"),
        "Test accuracy (mean over repetitions):\n",
        harness.markdown_table(*summary_table(results, "accuracy")),
        "\nTruth inference (accuracy of the training items' posteriors):\n",
        harness.markdown_table(*summary_table(results, "truth")),
        "\nChoices of the automatic settings:\n",
        harness.markdown_table(*choices_table(results)),
    ]
    return "\n".join(parts) + "\n"


def main(argv=None):
    opts = harness.parse_options(
        argv,
        "Validation tasks for the head, pull and feature weight of fit.",
        {"quick": {"action": "store_true"}, "no_write": {"action": "store_true"}},
    )
    cfg = default_config(opts.pop("quick", False))
    cfg["write"] = not opts.pop("no_write", False)
    results = run(cfg)
    text = markdown(results)
    print(text)
    if cfg["write"]:
        out = Path(cfg["output_dir"])
        harness.write_json(results, out / f"{cfg['name']}.json")
        (out / f"{cfg['name']}.md").write_text(text)


if __name__ == "__main__":
    main()
