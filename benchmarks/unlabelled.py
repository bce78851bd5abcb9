"""Unlabelled items in fit: do they help where they can, and never hurt?

Issue 25: passing unlabelled items to ``fit`` raised the default model by 9.5
points on LabelMe when they were the target classes' images, and cost 9 points
when half of them were of other classes. ``unlabelled_weight="auto"`` (the
default) decides per task, from the crowd labels alone, whether they count.

    python -m benchmarks.unlabelled --quick   # about a minute on 2 CPU cores
    python -m benchmarks.unlabelled           # the full run

Protocol (fixed before any result was seen):
- rows: no unlabelled items (``fit(X, Y)``); unlabelled items counted like any
  item (``unlabelled_weight=1``, the behaviour before the guard); the default
  (``unlabelled_weight="auto"``, the guard). Every row sees the same tasks,
  labels and pools (``fit(X, Y, X_unlabelled=pool)``);
- pools: "clean", the other training items of the task's classes; "mixed",
  those and the training items of the other classes; "other", only the other
  classes' training items;
- LabelMe (when ``../shared/data/labelme`` exists): the splits and tasks of
  :mod:`benchmarks.labelme` (4-way, 1 / 3 / 5 crowd-labelled images per class
  with their real labels, every test image of the target classes as the query),
  the default model meta-trained on each split's source classes;
- the anisotropic sets of :mod:`benchmarks.learning_curve` ("anisotropic",
  ``make_classification``, and "gaussian", mixtures with random full
  covariances; 6 classes): 4-way tasks on 4 classes drawn per task, the other
  2 classes as the other-class pool, 5 simulated annotators per task
  (``simulate_annotators``), the test items of the task's classes as the query;
  the default ``MetaAnnotatorClassifier`` (no meta-training);
- Omniglot (when ``../shared/data/omniglot`` exists): the alphabets and the
  meta-training settings of :mod:`benchmarks.omniglot` (conv4 encoder,
  episodes of the package default: clean supports), 4-way tasks of the test
  alphabets at 1 / 3 / 5 shots with 5 simulated annotators (the benchmark's
  main mixture) and 10 query images per class; "clean", 5 more images of each
  task character; "other", 5 images of each of 4 distractor characters;
  "mixed", both (the issue's "unlabelled items plus distractors");
- mean ± standard error over tasks; differences to "no unlabelled items" are
  paired (the same tasks).

The guard's rule (the package's held-out check, ``MIN_Z`` and two labelled items
per class) was chosen on validation tasks: LabelMe tasks of another seed
(``--seed 1``) and the synthetic tasks of ``tests/test_unlabelled.py``.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from sklearn.base import clone

from sklearn_metaannot import MetaAnnotatorClassifier, simulate_annotators

from . import harness, labelme, learning_curve, omniglot
from .harness import Timer, stable_seed

_HERE = Path(__file__).resolve().parent

#: The data sets: name -> title in the tables.
DATASETS = {
    "labelme": "LabelMe (real crowd, 4-way)",
    "anisotropic": "Anisotropic (make_classification, 4-way of 6 classes)",
    "gaussian": "Gaussian mixtures, full covariances (4-way of 6 classes)",
    "omniglot": "Omniglot (test alphabets, 4-way, distractor characters)",
}
POOLS = {
    "clean": "clean pool (the task's classes)",
    "mixed": "mixed pool (plus other classes)",
    "other": "other classes only",
}


class WithPool:
    """``estimator`` fitted with the unlabelled items ``pool``
    (``fit(X, Y, X_unlabelled=pool)``)."""

    def __init__(self, estimator, pool):
        self.estimator, self.pool = estimator, pool

    def fit(self, X, Y):
        self.estimator.fit(X, Y, X_unlabelled=self.pool)
        return self

    def predict(self, X):
        return self.estimator.predict(X)


def _model(context, seed, **params):
    """The default model of the data set (meta-trained for LabelMe) with ``params``."""
    base = context.get("model")
    if base is None:
        return MetaAnnotatorClassifier(random_state=seed, **params)
    return clone(base).set_params(random_state=seed, **params)


def _weight(est) -> dict:
    choice = est.estimator.unlabelled_choice_
    return {"weight": choice.weight, "reason": choice.reason}


#: The rows; ``build(context, seed)``: ``context`` has ``model`` (the data set's
#: meta-trained default, or None) and ``pool``.
METHODS = harness.Methods()
METHODS.add("none", "No unlabelled items")(lambda c, s: _model(c, s))
METHODS.add(
    "forced",
    "Unlabelled items counted (unlabelled_weight=1, as before)",
    record=_weight,
)(lambda c, s: WithPool(_model(c, s, unlabelled_weight=1.0), c["pool"]))
METHODS.add("guarded", "Default (unlabelled_weight='auto', the guard)", record=_weight)(
    lambda c, s: WithPool(_model(c, s), c["pool"])
)


def default_config(quick=False) -> dict:
    """Every knob of the benchmark; ``quick`` shrinks splits, tasks and data."""
    cfg = {
        "name": "unlabelled",
        "seed": 0,
        "datasets": list(DATASETS),
        "pools": list(POOLS),
        "labelme_data": str(harness.SHARED_DATA / "labelme"),
        "labelme_splits": [list(s) for s in labelme.SPLITS],
        "labelme_shots": [1, 3, 5],
        "synthetic_shots": [1, 5, 20],
        "omniglot_data": str(harness.SHARED_DATA / "omniglot"),
        "omniglot_shots": [1, 3, 5],
        "omniglot_unlabelled": 5,
        "omniglot_distractors": 4,
        "n_tasks": 20,
        "n_samples": 4000,
        "n_annotators": 5,
        "meta": {"n_episodes": 2000, "n_val_episodes": 100},
        "output_dir": str(_HERE / "results"),
        "write": True,
        "verbose": 1,
        "threads": 1,
    }
    if quick:
        cfg.update(
            name="unlabelled_quick",
            labelme_splits=[list(labelme.SPLITS[0]), list(labelme.SPLITS[2])],
            n_tasks=3,
            n_samples=1200,
            meta={"n_episodes": 600, "n_val_episodes": 30},
        )
    return cfg


# -- tasks --------------------------------------------------------------------------


def _evaluate(cfg, X, Y, X_query, y_query, seed, pools, model):
    """Every row on one task: "none" once, the others once per pool."""
    rows = {}
    task = harness.TaskSet([0], lambda _: (X, Y, X_query, y_query, seed))
    context = {"model": model}
    (none,) = harness.evaluate(METHODS.select(["none"]), task, context)
    for name in cfg["pools"]:
        context["pool"] = pools[name]
        with_pool = harness.evaluate(
            METHODS.select(["forced", "guarded"]), task, context
        )
        rows[name] = [none, *with_pool]
    return rows


def labelme_tasks(cfg):
    """Per split, shot and task of :mod:`benchmarks.labelme`: the three pools."""
    if not Path(cfg["labelme_data"]).is_dir():
        return None
    from sklearn_metaannot.datasets import load_labelme

    data = load_labelme(cfg["labelme_data"])
    lm = labelme.default_config() | {"methods": ["ours"], "seed": cfg["seed"]}
    lm |= cfg["meta"] | {"verbose": cfg["verbose"]}
    for i, target in enumerate(cfg["labelme_splits"]):
        harness.log(cfg, f"labelme split {i}: target classes {target}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models, _ = labelme.meta_train(lm, data, target, i)
        X_query, y_query = labelme.query_set(data, np.asarray(target))
        in_target = np.flatnonzero(np.isin(data.y_train, target))
        other = data.X_train[~np.isin(data.y_train, target)]
        for shot in cfg["labelme_shots"]:
            tasks, _ = labelme.make_tasks(
                data, target, shot, cfg["n_tasks"], cfg["seed"], i
            )
            for t in tasks:
                clean = data.X_train[np.setdiff1d(in_target, t["support"])]
                pools = {"clean": clean, "mixed": np.vstack([clean, other])}
                pools["other"] = other
                yield (
                    {"split": i, "shot": shot},
                    (data.X_train[t["support"]], t["Y"], X_query, y_query, t["seed"]),
                    pools,
                    models["wopa"],
                )


def synthetic_tasks(cfg, name):
    """4-way tasks on 4 of the 6 classes of a learning-curve set, per shot."""
    lc = learning_curve.default_config() | {"n_samples": cfg["n_samples"]}
    X_train, y_train, _, X_test, y_test = learning_curve.load(lc, name)
    for shot in cfg["synthetic_shots"]:
        for t in range(cfg["n_tasks"]):
            key = stable_seed(cfg["seed"], "unlabelled", name, shot, t)
            rng = np.random.default_rng(key)
            target = np.sort(rng.choice(6, 4, replace=False))
            support = learning_curve.draw_items(
                np.where(np.isin(y_train, target), y_train, -1), shot, key
            )
            support = support[np.isin(y_train[support], target)]
            y = np.searchsorted(target, y_train[support])
            rs = int(rng.integers(2**31 - 1))
            Y = simulate_annotators(y, cfg["n_annotators"], random_state=rs)[0]
            rest = np.setdiff1d(np.flatnonzero(np.isin(y_train, target)), support)
            clean, other = X_train[rest], X_train[~np.isin(y_train, target)]
            pools = {"clean": clean, "mixed": np.vstack([clean, other]), "other": other}
            query = np.isin(y_test, target)
            X_query, y_query = X_test[query], np.searchsorted(target, y_test[query])
            yield (
                {"shot": shot, "target": target.tolist()},
                (X_train[support], Y, X_query, y_query, rs),
                pools,
                None,
            )


def omniglot_tasks(cfg):
    """4-way tasks of Omniglot's test alphabets with their three pools, and the
    default model meta-trained on the background alphabets."""
    ocfg = omniglot.default_config() | {"data": cfg["omniglot_data"]}
    if not Path(ocfg["data"]).is_dir():
        return None
    ocfg |= {"seed": cfg["seed"], "n_episodes": cfg["meta"]["n_episodes"]}
    ocfg |= {"n_val_episodes": cfg["meta"]["n_val_episodes"]}
    data = omniglot.load_pools(ocfg)["pools"]
    # the package default: clean episodes, the latent space chosen per task
    model = omniglot.base_estimator(
        ocfg, pseudo_annotation=False, representation="auto"
    )
    harness.log(cfg, f"omniglot: meta-training ({ocfg['n_episodes']} episodes)")
    model, _ = omniglot.meta_fit(model, data)
    X_test, y_test = data["test"]
    for shot in cfg["omniglot_shots"]:
        tasks = harness.sample_crowd_tasks(
            y_test,
            n_tasks=cfg["n_tasks"],
            n_way=4,
            n_shot=shot,
            n_query=ocfg["n_query"],
            n_annotators=5,
            mixture=omniglot.MAIN_MIXTURE,
            n_unlabelled=cfg["omniglot_unlabelled"],
            n_distractor_classes=cfg["omniglot_distractors"],
            seed=stable_seed(cfg["seed"], "unlabelled-omniglot", shot),
        )
        for t in tasks:
            clean = X_test[t.unlabelled[t.unlabelled_y >= 0]]
            other = X_test[t.unlabelled[t.unlabelled_y < 0]]
            pools = {"clean": clean, "mixed": np.vstack([clean, other]), "other": other}
            task = (X_test[t.support], t.Y, X_test[t.query], t.query_y, t.seed)
            yield {"shot": shot}, task, pools, model


def evaluate_dataset(cfg, name) -> list | None:
    """Per-task rows of one data set (None: no data)."""
    if name in ("labelme", "omniglot"):
        tasks = labelme_tasks(cfg) if name == "labelme" else omniglot_tasks(cfg)
    else:
        tasks = synthetic_tasks(cfg, name)
    if tasks is None:
        harness.log(cfg, f"{name}: skipped, no data in {cfg[name + '_data']}")
        return None
    out = []
    for about, (X, Y, X_query, y_query, seed), pools, model in tasks:
        rows = _evaluate(cfg, X, Y, X_query, y_query, seed, pools, model)
        for pool, methods in rows.items():
            record = {**about, "pool": pool, "n_unlabelled": len(pools[pool])}
            for row in methods:
                record[row["method"]] = row["accuracy"]
                if "weight" in row:
                    record[f"{row['method']}_weight"] = row["weight"]
                    record[f"{row['method']}_reason"] = row["reason"]
            out.append(record)
        harness.log(
            cfg,
            f"{name} shot {about['shot']}: "
            + ", ".join(
                f"{p} {r[0]['accuracy']:.3f}/{r[1]['accuracy']:.3f}/"
                f"{r[2]['accuracy']:.3f}"
                for p, r in rows.items()
            ),
        )
    return out


# -- summaries and pages --------------------------------------------------------


def _stat(values):
    return harness.summarize(values)


def summarize(cfg, raw) -> dict:
    """Per data set, pool and shot: each row's accuracy, its paired difference
    to "no unlabelled items", and how often the guard let the items in."""
    summary = {}
    for name, rows in raw.items():
        shots = sorted({r["shot"] for r in rows})
        summary[name] = {}
        for pool in cfg["pools"]:
            per = {}
            for shot in shots:
                rr = [r for r in rows if r["pool"] == pool and r["shot"] == shot]
                acc = {m: [r[m] for r in rr] for m in METHODS}
                per[str(shot)] = {
                    "accuracy": {m: _stat(v) for m, v in acc.items()},
                    "gain": {
                        m: _stat(np.subtract(acc[m], acc["none"]))
                        for m in ("forced", "guarded")
                    },
                    "used": float(np.mean([r["guarded_weight"] > 0 for r in rr])),
                }
            summary[name][pool] = per
    return summary


#: The issue's targets: minimum mean gain over "no unlabelled items" (averaged
#: over the shots, or at the one shot given) per data set and pool.
TARGETS = {("labelme", "clean"): 0.08, ("omniglot", "mixed"): (0.02, "1")}
DEFAULT_TARGET = -0.005


def targets(summary) -> list:
    """The guard's mean gain over the shots against the issue's targets."""
    rows = []
    for name, pools in summary.items():
        for pool, per in pools.items():
            target = TARGETS.get((name, pool), DEFAULT_TARGET)
            target, shot = target if isinstance(target, tuple) else (target, None)
            cells = per if shot is None else {shot: per[shot]}
            gains = [d["gain"]["guarded"]["mean"] for d in cells.values()]
            forced = [d["gain"]["forced"]["mean"] for d in cells.values()]
            rows.append(
                {
                    "data": name,
                    "pool": pool,
                    "shots": "mean" if shot is None else f"{shot}-shot",
                    "gain": float(np.mean(gains)),
                    "worst": float(min(gains)),
                    "forced": float(np.mean(forced)),
                    "target": target,
                    "ok": bool(np.mean(gains) >= target),
                }
            )
    return rows


def tables(results) -> list:
    parts = []
    labels = METHODS.labels()
    for name, pools in results["summary"].items():
        shots = list(next(iter(pools.values())))
        header = ["pool", "row", *(f"{s}-shot" for s in shots), "avg"]
        body = []
        for pool, per in pools.items():
            for m, label in labels.items():
                cells = [
                    harness.fmt_acc(
                        per[s]["accuracy"][m]["mean"], per[s]["accuracy"][m]["sem"]
                    )
                    for s in shots
                ]
                avg = np.mean([per[s]["accuracy"][m]["mean"] for s in shots])
                body.append([POOLS[pool], label, *cells, f"{avg:.3f}"])
            for m in ("forced", "guarded"):
                cells = [
                    f"{per[s]['gain'][m]['mean']:+.3f} ± {per[s]['gain'][m]['sem']:.3f}"
                    for s in shots
                ]
                avg = np.mean([per[s]["gain"][m]["mean"] for s in shots])
                body.append(
                    [POOLS[pool], f"gain of '{m}' (paired)", *cells, f"{avg:+.3f}"]
                )
            cells = [f"{per[s]['used']:.0%}" for s in shots]
            body.append([POOLS[pool], "tasks where the guard used them", *cells, ""])
        title = f"{DATASETS[name]}: test accuracy (mean ± s.e. over tasks)"
        parts.append(harness.Table(f"## {DATASETS[name]}", title, header, body))
    header, body = harness.columns_table(
        {
            "data": "{data}",
            "pool": lambda r: POOLS[r["pool"]],
            "shots": "{shots}",
            "guard's gain (target)": lambda r: (
                f"{r['gain']:+.3f} ({r['target']:+.3f}) " + ("yes" if r["ok"] else "NO")
            ),
            "worst shot": "{worst:+.3f}",
            "counted (weight 1)": "{forced:+.3f}",
        },
        results["targets"],
    )
    parts.append(
        harness.Table(
            "## The issue's targets (gain: accuracy minus that without unlabelled "
            "items)",
            "The issue's targets: the guard's gain over no unlabelled items (mean "
            "over the shots, or at the target's shot) against its target; and "
            "that of counting them",
            header,
            body,
        )
    )
    return parts


def page(results) -> list:
    note = (
        "Test accuracy, mean ± standard error over tasks; gains are paired "
        "differences to the row without unlabelled items on the same tasks."
    )
    if results.get("skipped"):
        note += " Skipped (no data): " + ", ".join(results["skipped"]) + "."
    return [
        harness.page_header(results, "unlabelled.py", "Unlabelled items"),
        note,
        *tables(results),
    ]


def run(config=None, **overrides) -> dict:
    """Run the benchmark; with ``write=True`` write its files."""
    cfg = harness.configure(
        default_config, {**(config or {}), **overrides}, nested=("meta",)
    )
    raw, skipped = {}, []
    with Timer() as timer, harness.torch_threads(cfg["threads"]):
        for name in cfg["datasets"]:
            rows = evaluate_dataset(cfg, name)
            if rows is None:
                skipped.append(name)
            else:
                raw[name] = rows
    summary = summarize(cfg, raw)
    results = {
        "config": cfg,
        "environment": harness.environment(),
        "raw": raw,
        "skipped": skipped,
        "summary": summary,
        "targets": targets(summary),
        "wall_seconds": timer.seconds,
    }
    if cfg["write"]:
        out = Path(cfg["output_dir"])
        results["files"] = harness.write_page(
            out, cfg["name"], results, page(results), rst_bold=False
        )
    return results


def main(argv=None):
    """Command-line entry point."""
    overrides = harness.command_line(
        "unlabelled.py",
        "Unlabelled items in fit: none, counted, and the guard.",
        "about a minute: 2 LabelMe splits, 3 tasks per setting, small synthetic sets",
        argv,
        datasets={"nargs": "+", "choices": list(DATASETS), "help": "data sets to run"},
        labelme_data=(str, "folder with the LabelMe files"),
        omniglot_data=(str, "folder with the Omniglot archives"),
        name=(str, "name of the result files (default: unlabelled)"),
        seed=(int, "seed of the tasks (1: the validation tasks)"),
        n_tasks=(int, "tasks per split (LabelMe) or per data set, and shot"),
    )
    print(harness.markdown_page(page(run(overrides))))


if __name__ == "__main__":
    main()
