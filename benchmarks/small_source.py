"""Small sources: the default model, as a new user meets it, against no meta-learning.

A user with few source classes calls
``MetaAnnotatorClassifier(meta_learner=MetaLearner(n_way=4),
random_state=...).meta_fit(X_source, y_source)`` with every other setting at
its default, then ``fit`` on crowd-labelled 4-way target tasks. The product
promise checked here: the default (``representation="auto"``) is never clearly
worse than our EM on the input features, which needs no meta-learning.

    python -m benchmarks.small_source --quick   # about a minute
    python -m benchmarks.small_source           # the full run

Protocol (fixed before any result was seen):
- digits (scikit-learn, 10 classes, 64 pixel features): 4 source classes or 6,
  3 random partitions each, the 4 target classes disjoint from the source;
  simulated crowds on the target supports (5 annotators, the paper's
  expert/hammer/spammer mixture 0.1 / 0.7 / 0.2, each labels an item with
  probability 0.6), 10 query images per class;
- digits with rescaled features (the same partitions and tasks): every pixel
  multiplied by its own factor 10**u, u uniform in [-2, 3], and shifted by an
  offset of the same order (a fixed seed), as in tabular data whose columns
  have units of their own;
- LabelMe (real Mechanical Turk labels, 512-d VGG features; when
  ``../shared/data/labelme`` exists): the 4 class splits of the LabelMe
  benchmark, the other 4 classes as the source (train and valid images, gold
  labels, no ``X_val``: the default validation of ``meta_fit``), the tasks of
  that benchmark (real labels, all test images of the target classes);
- 1, 3 and 5 shots; every method sees the same tasks; mean and standard error
  per setting, and the worst partition.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_metaannot import INPUT_SPACES, MajorityVote, MetaAnnotatorClassifier
from sklearn_metaannot.baselines import AggregateThenClassify

from . import harness
from .harness import Timer, stable_seed

_HERE = Path(__file__).resolve().parent

REPO = _HERE.parent

#: The methods; ``context`` is the model meta-fitted on the source classes.
METHODS = harness.Methods()
METHODS.add(
    "auto",
    "Default model (meta_fit, representation='auto')",
    needs_meta=True,
    record=lambda est: {"representation": est.representation_},
)(lambda model, seed: clone(model))
METHODS.add("meta", "Same encoder, always meta", needs_meta=True)(
    lambda model, seed: clone(model).set_params(representation="meta")
)
METHODS.add("input", "EM, no meta (standardised input)")(
    lambda model, seed: MetaAnnotatorClassifier(
        representation="input", random_state=seed
    )
)
METHODS.add("scaled", "EM, no meta (globally scaled input)")(
    lambda model, seed: MetaAnnotatorClassifier(
        representation="scaled", random_state=seed
    )
)
METHODS.add("normalized", "EM, no meta (unit-norm items)")(
    lambda model, seed: MetaAnnotatorClassifier(
        representation="normalized", random_state=seed
    )
)
METHODS.add("auto_nometa", "EM, no meta (auto)")(
    lambda model, seed: MetaAnnotatorClassifier(random_state=seed)
)
METHODS.add("lrmv", "LR on majority vote")(
    lambda model, seed: AggregateThenClassify(
        MajorityVote(random_state=seed),
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        random_state=seed,
    )
)


def default_config(quick=False) -> dict:
    """Every knob of the study; ``quick`` shrinks tasks and partitions."""
    cfg = {
        "name": "small_source",
        "seed": 0,
        "digits_sources": [4, 6],
        "digits_partitions": 3,
        "digits_rescaled": True,
        "labelme": True,
        "labelme_data": str(harness.SHARED_DATA / "labelme"),
        "shots": [1, 3, 5],
        "n_tasks": 30,
        "n_annotators": 5,
        "annotation_rate": 0.6,
        "n_query": 10,
        "estimator": {"n_way": 4, "n_threads": 1},
        "output_dir": str(REPO / "benchmarks" / "results"),
        "write": True,
        "verbose": 1,
    }
    if quick:
        cfg.update(
            name="small_source_quick",
            digits_sources=[6],
            digits_partitions=1,
            labelme=False,
            digits_rescaled=False,
            n_tasks=5,
            estimator={"n_way": 4, "n_threads": 1, "n_episodes": 400},
        )
    return cfg


def _evaluate(model, tasksets):
    """Per shot: per-task accuracy and seconds per method, and what auto chose."""
    out = {}
    for shot, taskset in tasksets.items():
        rows = harness.evaluate(METHODS, taskset, model)
        out[str(shot)] = {
            "accuracy": harness.column(rows),
            "chosen": [r["representation"] for r in rows if r["method"] == "auto"],
            "seconds": harness.column(rows, "seconds"),
        }
    return out


def _meta_fit(cfg, X, y, seed):
    model = harness.meta_model(cfg["estimator"], random_state=seed)
    with Timer() as timer, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.meta_fit(X, y)
    info = {
        "seconds": timer.seconds,
        "meta_selected": model.meta_selected_,
        "val_scores": model.meta_val_scores_,
    }
    return model, info


def _row(data, n_source, partition, source, target, info, shots):
    """The results of one partition (or LabelMe split)."""
    return {
        "data": data,
        "n_source": n_source,
        "partition": partition,
        "source": np.asarray(source).tolist(),
        "target": np.asarray(target).tolist(),
        "meta_fit": info,
        "shots": shots,
    }


def rescale_features(X, seed):
    """``X`` with column j multiplied by ``10**u_j`` (u uniform in [-2, 3]) and
    shifted by ``3 * scale_j * N(0, 1)``: columns with units of their own."""
    rng = np.random.default_rng(stable_seed(seed, "rescaled-features"))
    scale = 10.0 ** rng.uniform(-2, 3, X.shape[1])
    return X * scale + 3 * scale * rng.normal(size=X.shape[1])


def digits_partitions(cfg, rescaled=False):
    """Meta-fit and evaluate on the digits partitions (features rescaled by
    :func:`rescale_features` with ``rescaled``)."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    name = "digits"
    if rescaled:
        X, name = rescale_features(X, cfg["seed"]), "digits, rescaled"
    results = []
    for n_source in cfg["digits_sources"]:
        for p in range(cfg["digits_partitions"]):
            rng = np.random.default_rng(stable_seed(cfg["seed"], "digits", n_source, p))
            order = rng.permutation(10)
            source, target = order[:n_source], order[n_source : n_source + 4]
            is_source = np.isin(y, source)
            model, info = _meta_fit(cfg, X[is_source], y[is_source], int(order[0]) + p)
            pool = np.flatnonzero(np.isin(y, target))
            tasksets = {
                shot: harness.TaskSet.simulated(
                    X[pool],
                    y[pool],
                    n_tasks=cfg["n_tasks"],
                    n_way=4,
                    n_shot=shot,
                    n_query=cfg["n_query"],
                    n_annotators=cfg["n_annotators"],
                    simulator_params={"annotation_rate": cfg["annotation_rate"]},
                    seed=stable_seed(cfg["seed"], "digits-tasks", n_source, p, shot),
                )
                for shot in cfg["shots"]
            }
            res = _evaluate(model, tasksets)
            results.append(_row(name, n_source, p, source, target, info, res))
            _log(cfg, results[-1])
    return results


def labelme_splits(cfg):
    """Meta-fit with the defaults on 4 LabelMe classes; real crowds on the others."""
    import labelme

    from sklearn_metaannot.datasets import load_labelme

    data = load_labelme(cfg["labelme_data"])
    X = np.vstack([data.X_train, data.X_valid])
    y = np.concatenate([data.y_train, data.y_valid])
    results = []
    for si, target in enumerate(labelme.SPLITS):
        target = np.asarray(target)
        source = np.setdiff1d(np.arange(8), target)
        keep = np.isin(y, source)
        model, info = _meta_fit(cfg, X[keep], y[keep], si)
        Xq, yq = labelme.query_set(data, target)

        def read(t, Xq=Xq, yq=yq):
            return data.X_train[t["support"]], t["Y"], Xq, yq, t["seed"]

        tasksets = {
            shot: harness.TaskSet(
                labelme.make_tasks(data, target, shot, cfg["n_tasks"], 0, si)[0], read
            )
            for shot in cfg["shots"]
        }
        res = _evaluate(model, tasksets)
        results.append(_row("labelme", 4, si, source, target, info, res))
        _log(cfg, results[-1])
    return results


def _log(cfg, r):
    """Print one partition's means per shot and method (``cfg["verbose"]``)."""
    means = {
        shot: " ".join(f"{m} {np.mean(v):.3f}" for m, v in s["accuracy"].items())
        for shot, s in r["shots"].items()
    }
    harness.log(
        cfg,
        f"{r['data']} n_source={r['n_source']} partition {r['partition']} "
        f"(meta_fit {r['meta_fit']['seconds']:.0f} s, validation chose "
        f"{r['meta_fit']['meta_selected']}): {means}",
    )


def summarize_groups(results, shots) -> list:
    """Rows per (data, n_source, shot): means, standard errors, worst partition."""
    rows = []
    groups = sorted({(r["data"], r["n_source"]) for r in results})
    for data, n_source in groups:
        part = [r for r in results if (r["data"], r["n_source"]) == (data, n_source)]
        for shot in map(str, shots):
            pooled = {
                m: sum((r["shots"][shot]["accuracy"][m] for r in part), [])
                for m in METHODS
            }
            # the best input space of the group (pooled), as a user who tried
            # all three without meta-learning would pick it in hindsight
            best = max(INPUT_SPACES, key=lambda m: np.mean(pooled[m]))
            diffs = [
                np.mean(r["shots"][shot]["accuracy"]["auto"])
                - np.mean(r["shots"][shot]["accuracy"][best])
                for r in part
            ]
            chosen = sum((r["shots"][shot]["chosen"] for r in part), [])
            rows.append(
                {
                    "data": data,
                    "n_source": n_source,
                    "shot": shot,
                    **{m: harness.summarize(v) for m, v in pooled.items()},
                    "auto_minus_input": float(
                        np.mean(pooled["auto"]) - np.mean(pooled["input"])
                    ),
                    "best_input_space": best,
                    "auto_minus_best": float(
                        np.mean(pooled["auto"]) - np.mean(pooled[best])
                    ),
                    "worst_partition_auto_minus_best": float(min(diffs)),
                    "chosen": {c: chosen.count(c) / len(chosen) for c in set(chosen)},
                }
            )
    return rows


def table(rows) -> harness.Table:
    """The summary table (on the page and in the reST file)."""
    header = ["data", "source classes", "shot", *METHODS.labels().values()]
    header += ["auto - input", "auto - best EM", "worst partition", "auto chose"]
    body = [
        [
            r["data"],
            r["n_source"],
            r["shot"],
            *(harness.fmt_acc(r[m]["mean"], r[m]["sem"]) for m in METHODS),
            f"{r['auto_minus_input']:+.3f}",
            f"{r['auto_minus_best']:+.3f} ({r['best_input_space']})",
            f"{r['worst_partition_auto_minus_best']:+.3f}",
            ", ".join(f"{k} {v:.0%}" for k, v in sorted(r["chosen"].items())),
        ]
        for r in rows
    ]
    title = (
        "Mean query accuracy ± standard error (4-way target tasks); best EM: the "
        "input space with the highest mean in the row, worst partition: auto "
        "minus that space in the worst partition"
    )
    return harness.Table(None, title, header, body)


def page(results) -> list:
    """The Markdown page: the command, the machine and the table."""
    return [
        harness.page_header(results, "small_source.py", "Small sources, default model"),
        "Mean query accuracy ± standard error over the tasks of all partitions "
        "(4-way target tasks).",
        table(results["summary"]),
    ]


def run(config=None, **overrides) -> dict:
    """Run the study; with ``write=True`` write ``<name>.json`` and ``<name>.md``."""
    cfg = harness.configure(default_config, {**(config or {}), **overrides})
    with Timer() as timer:
        raw = digits_partitions(cfg)
        if cfg["digits_rescaled"]:
            raw += digits_partitions(cfg, rescaled=True)
        if cfg["labelme"] and Path(cfg["labelme_data"]).is_dir():
            raw += labelme_splits(cfg)
    results = {
        "config": cfg,
        "environment": harness.environment(),
        "raw": raw,
        "summary": summarize_groups(raw, cfg["shots"]),
        "wall_seconds": timer.seconds,
    }
    if cfg["write"]:
        results["files"] = harness.write_page(
            cfg["output_dir"], cfg["name"], results, page(results)
        )
    return results


def main(argv=None):
    """Command-line entry point."""
    overrides = harness.command_line(
        "small_source.py",
        "The default model meta-fitted on few source classes, against EM on the "
        "input features.",
        "one partition, 5 tasks",
        argv,
    )
    print(harness.markdown_page(page(run(overrides))))


if __name__ == "__main__":
    main()
