"""Do semi-supervised meta-training episodes pay? (issue 25, item 2)

``MetaLearner(n_unlabelled=..., n_distractor_classes=...)`` meta-trains on
episodes whose support also holds unlabelled images of the episode's classes
and of distractor classes (after Ren et al., 2018). It is off by default unless
this validation study says it pays:

    python -m benchmarks.unlabelled_episodes --quick   # about 2 minutes
    python -m benchmarks.unlabelled_episodes           # 1000 episodes each

Protocol: Omniglot's *validation* alphabet (never the test alphabets of
:mod:`benchmarks.omniglot`); two encoders with that benchmark's meta-training
settings (conv4, pseudo-annotated episodes), without and with unlabelled
episodes; 4-way 1-shot tasks with 5 simulated annotators, 10 query images per
class, and a pool of ``n_unlabelled`` more images of each task character
("clean") plus as many of each of ``n_distractor_classes`` other characters
("pool"). Rows: each encoder with no unlabelled items, the pool counted
(``unlabelled_weight=1``), the pool under the guard (the default) and the clean
pool counted. Gains are paired over the same tasks.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import warnings

import numpy as np

from . import harness, omniglot
from .harness import Timer, stable_seed

#: The encoders: "semi" is meta-trained with the configuration's
#: ``n_unlabelled`` and ``n_distractor_classes``, "plain" without.
ENCODERS = ("plain", "semi")
SEMI = ("n_unlabelled", "n_distractor_classes")
#: The rows of one encoder: name -> (pool, unlabelled_weight).
SETTINGS = {
    "none": (None, "auto"),
    "pool counted": ("pool", 1.0),
    "pool, guard": ("pool", "auto"),
    "clean counted": ("clean", 1.0),
}


def default_config(quick=False) -> dict:
    """Every knob; ``quick`` shortens meta-training."""
    cfg = {
        "name": "unlabelled_episodes",
        "data": str(harness.SHARED_DATA / "omniglot"),
        "seed": 12345,
        "n_episodes": 1000,
        "n_tasks": 40,
        "n_unlabelled": 5,
        "n_distractor_classes": 2,
        "output_dir": str(harness.REPO / "benchmarks" / "results"),
        "write": True,
        "verbose": 1,
    }
    if quick:
        cfg.update(name="unlabelled_episodes_quick", n_episodes=300)
    return cfg


def tasks(cfg, y):
    """4-way 1-shot tasks on the pool labels ``y``: ``(support, Y, query,
    query_y, pools, seed)`` with indices into ``y`` and the pools "clean" and
    "pool" (clean plus the distractor characters' images)."""
    for t in harness.sample_crowd_tasks(
        y,
        n_tasks=cfg["n_tasks"],
        n_way=4,
        n_shot=1,
        n_query=10,
        n_annotators=5,
        mixture=omniglot.MAIN_MIXTURE,
        n_unlabelled=cfg["n_unlabelled"],
        n_distractor_classes=cfg["n_distractor_classes"],
        seed=stable_seed(cfg["seed"], "unlabelled-episodes"),
    ):
        pools = {"clean": t.unlabelled[t.unlabelled_y >= 0], "pool": t.unlabelled}
        yield t.support, t.Y, t.query, t.query_y, pools, t.seed


def run(config=None, **overrides) -> dict:
    """Meta-train both encoders, evaluate every row on the same tasks."""
    cfg = harness.configure(default_config, {**(config or {}), **overrides})
    ocfg = omniglot.default_config(quick=True) | {"data": cfg["data"]}
    ocfg |= {"n_episodes": cfg["n_episodes"], "episodes_per_epoch": 100}
    data = omniglot.load_pools(ocfg)["pools"]
    X, y = data["val"]
    results = {"config": cfg, "environment": harness.environment(), "encoders": {}}
    models = {}
    with Timer() as timer:
        for name in ENCODERS:
            extra = {k: cfg[k] for k in SEMI} if name == "semi" else {}
            model, t = omniglot.meta_fit(omniglot.base_estimator(ocfg, **extra), data)
            models[name] = model
            results["encoders"][name] = {
                "params": extra,
                "seconds": t.seconds,
                "val_accuracy": model.meta_val_accuracy_,
            }
            harness.log(cfg, f"{name}: meta-trained in {t.seconds:.0f} s")
        acc = {f"{e} {s}": [] for e in models for s in SETTINGS}
        for support, Y, query, query_y, pools, seed in tasks(cfg, y):
            for e, model in models.items():
                for s, (pool, weight) in SETTINGS.items():
                    kw = {} if pool is None else {"X_unlabelled": X[pools[pool]]}
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model.set_params(unlabelled_weight=weight, random_state=seed)
                        model.fit(X[support], Y, classes=np.arange(4), **kw)
                    acc[f"{e} {s}"].append(float(model.score(X[query], query_y)))
    results["accuracy"] = acc
    results["summary"] = summarize(acc)
    results["wall_seconds"] = timer.seconds
    if cfg["write"]:
        results["files"] = harness.write_page(
            cfg["output_dir"], cfg["name"], results, page(results)
        )
    return results


def summarize(acc) -> dict:
    """Every row's mean and standard error, and the paired gains of interest."""
    out = {"rows": {k: harness.summarize(v) for k, v in acc.items()}, "gains": {}}
    pairs = [(f"{e} {s}", f"{e} none") for e in ENCODERS for s in list(SETTINGS)[1:]]
    pairs += [("semi none", "plain none"), ("semi pool counted", "plain none")]
    for a, b in pairs:
        out["gains"][f"{a} - {b}"] = harness.summarize(np.subtract(acc[a], acc[b]))
    return out


def page(results) -> list:
    summary = results["summary"]
    rows = [
        [name, harness.fmt_acc(s["mean"], s["sem"])]
        for name, s in summary["rows"].items()
    ]
    gains = [
        [name, f"{s['mean']:+.3f} ± {s['sem']:.3f}"]
        for name, s in summary["gains"].items()
    ]
    enc = results["encoders"]
    note = (
        f"Omniglot validation alphabet, {results['config']['n_tasks']} 4-way 1-shot "
        f"tasks; meta-training {results['config']['n_episodes']} episodes "
        f"(plain {enc['plain']['seconds']:.0f} s, semi {enc['semi']['seconds']:.0f} s)."
    )
    return [
        harness.page_header(results, "unlabelled_episodes.py", "Unlabelled episodes"),
        note,
        harness.Table("## Accuracy", "Test accuracy", ["row", "accuracy"], rows),
        harness.Table("## Paired gains", "Paired gains", ["gain", "mean, s.e."], gains),
    ]


def main(argv=None):
    """Command-line entry point."""
    overrides = harness.command_line(
        "unlabelled_episodes.py",
        "Semi-supervised meta-training episodes on Omniglot's validation alphabet.",
        "300 meta-training episodes per encoder",
        argv,
        n_episodes=(int, "meta-training episodes per encoder"),
        n_tasks=(int, "1-shot validation tasks"),
    )
    print(harness.markdown_page(page(run(overrides))))


if __name__ == "__main__":
    main()
