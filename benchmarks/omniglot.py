"""Omniglot few-shot crowd benchmark: our method against the paper's baselines."""
# SPDX-License-Identifier: BSD-3-Clause

# Reproduces the Omniglot experiment of Kumagai et al. (2025), Sec. 5 of the spec,
# on the 242 characters of Omniglot's two small background archives.
#
#   python benchmarks/omniglot.py --quick      # a few minutes on 2 CPU cores
#   python benchmarks/omniglot.py              # the full run (about 27 minutes)
#
# Protocol (all fixed before any result was seen):
# - split by alphabet: meta-train on 5 alphabets with their 90/180/270-degree
#   rotations as extra classes, validate on 1 alphabet, test on 2;
# - meta-train our model (pseudo-annotation) and "w/o PA" (clean episodes, i.e. a
#   prototypical network with our EM) with the same settings, one after the other,
#   and time both; PrMV, PrDS and MCL use the "w/o PA" encoder (same meta-training
#   as a prototypical network); MaMV and MaDS use a MAML meta-trained on the same
#   number of clean episodes (benchmarks/_maml.py);
# - choose J (EM iterations at adaptation) and b (class-prior strength) of our
#   method, and of w/o PA, on validation-alphabet tasks only;
# - evaluate every method on the SAME seeded 4-way test tasks: 1/3/5 shots,
#   R = 3/5/7 simulated annotators, 10 query examples per class, annotators from
#   expert/hammer/spammer mixtures (spammer ratio 0.1-0.4) and from pair-wise
#   flippers and class-wise spammers;
# - report mean accuracy +- standard error and paired t-tests (ours against the
#   best baseline of each cell), accuracy against J and b, and the meta-training
#   wall time of ours against w/o PA.
#
# ``run(config) -> results`` does everything and is what the tests call.

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import harness  # noqa: E402
from _maml import MAML, MAMLAggregateClassifier  # noqa: E402
from harness import (  # noqa: E402
    PrecomputedEncoder,
    Timer,
    fmt_acc,
    index_features,
    markdown_table,
    paired_ttest,
    sample_crowd_tasks,
    stable_seed,
    summarize,
)

from sklearn_metaannot import (  # noqa: E402
    DawidSkene,
    MajorityVote,
    MetaAnnotatorClassifier,
    MetaLearningWarning,
)
from sklearn_metaannot.baselines import (  # noqa: E402
    AggregateThenClassify,
    CrowdLayerClassifier,
    PrototypeClassifier,
)
from sklearn_metaannot.datasets import (  # noqa: E402
    load_omniglot,
    rotate_classes,
    split_omniglot_by_alphabet,
)

REPO = _HERE.parent
DEFAULT_DATA = harness.SHARED_DATA / "omniglot"

#: Fixed alphabet split of the 8 alphabets of images_background_small1/2.zip
#: (242 characters): 5 meta-train alphabets (159 characters, 636 classes with
#: rotations), 1 validation alphabet (24), 2 test alphabets (59 characters).
VAL_ALPHABETS = ("Greek",)
TEST_ALPHABETS = ("Sanskrit", "Tagalog")

OURS, WOPA = "Ours", "w/o PA"
#: The paper's baselines run here (CNAL and MCNAL are omitted).
BASELINES = (
    "LRMV",
    "LRDS",
    "RFMV",
    "RFDS",
    "CL",
    "PrMV",
    "PrDS",
    "MaMV",
    "MaDS",
    "MCL",
)
#: Baselines that need the MAML meta-training.
MAML_METHODS = ("MaMV", "MaDS")
#: Extra rows: our EM without meta-learning (on standardised pixels).
EXTRAS = ("EM, no meta",)
METHODS = (OURS, WOPA, *BASELINES, *EXTRAS)

METHOD_NOTES = {
    OURS: "MetaAnnotatorClassifier meta-trained with pseudo-annotation; EM on the "
    "support (J, b chosen on validation alphabets)",
    WOPA: "the same, meta-trained without pseudo-annotation (a prototypical network "
    "on clean episodes); EM (J, b chosen on validation alphabets)",
    "LRMV": "majority vote, then logistic regression on standardised pixels",
    "LRDS": "Dawid-Skene, then logistic regression on standardised pixels",
    "RFMV": "majority vote, then a random forest (100 trees) on pixels",
    "RFDS": "Dawid-Skene, then a random forest (100 trees) on pixels",
    "CL": "crowd layer (MW) on an MLP (64 hidden units) on standardised pixels, "
    "target support only",
    "PrMV": "prototypes from soft majority-vote labels in the w/o-PA (ProtoNet) space",
    "PrDS": "prototypes from soft Dawid-Skene posteriors in the w/o-PA (ProtoNet) "
    "space",
    "MaMV": "MAML (Conv-4 + linear head) meta-trained on clean episodes, fine-tuned "
    "on soft majority-vote labels (steps chosen on validation alphabets)",
    "MaDS": "MAML (Conv-4 + linear head) meta-trained on clean episodes, fine-tuned "
    "on Dawid-Skene posteriors (steps chosen on validation alphabets)",
    "MCL": "frozen w/o-PA (ProtoNet) encoder + linear head + crowd layer (MW), "
    "trained on the target support",
    "EM, no meta": "our EM on standardised pixels (no meta-learning)",
}

MAIN_MIXTURE = (0.1, 0.7, 0.2)


def default_config(quick=False) -> dict:
    """The configuration of the full run, or of the ``--quick`` run.

    Returns
    -------
    dict
        Every knob of the benchmark; ``run`` accepts any subset as overrides.
    """
    cfg = {
        "name": "omniglot",
        "data": str(DEFAULT_DATA),
        "seed": 0,
        # seed of meta-training (both models); None: ``seed``. The test and
        # validation tasks always follow ``seed``.
        "meta_seed": None,
        "val_alphabets": list(VAL_ALPHABETS),
        "test_alphabets": list(TEST_ALPHABETS),
        "rotations": [90, 180, 270],
        # meta-training (both models)
        "encoder": "conv4",
        "n_way": 4,
        "meta_n_shot": [1, 5],
        "meta_n_annotators": [3, 7],
        "meta_n_query": 10,
        "meta_mixture": list(MAIN_MIXTURE),
        "meta_em_iter": 3,
        "meta_b": 10.0,
        "n_episodes": 4000,
        "episodes_per_epoch": 250,
        "meta_batch_size": 4,
        "n_val_episodes": 100,
        "lr": 1e-3,
        "max_grad_norm": 1.0,
        # MAML baselines (same episodes, meta-batch, lr and validation as ours)
        "maml_inner_lr": 0.1,
        "maml_inner_steps": 1,
        "maml_first_order": False,
        # fine-tuning steps of MaMV / MaDS, chosen on validation-alphabet tasks
        "maml_steps_grid": [1, 2, 3, 5],
        # paired timing: alternated short meta-training runs (episodes each)
        "timing_rounds": 4,
        "timing_episodes": 200,
        # adaptation hyperparameters, chosen on validation-alphabet tasks
        "em_iter_grid": [1, 2, 3, 4, 5],
        "b_grid": [1.0, 10.0, 100.0],
        "n_val_tasks": 30,
        # test tasks
        "shots": [1, 3, 5],
        "annotators": [3, 5, 7],
        "n_query": 10,
        "n_test_tasks": 100,
        # spammer-ratio sweep and other annotator types (on a sub-grid)
        "spammer_mixtures": [[0.1, 0.8, 0.1], [0.1, 0.6, 0.3], [0.1, 0.5, 0.4]],
        "other_types": ["pairwise_flipper", "classwise_spammer"],
        "sweep_shots": [1, 3, 5],
        "sweep_annotators": [5],
        "n_sweep_tasks": 100,
        "methods": list(METHODS),
        # baselines
        "rf_n_estimators": 100,
        "cl_hidden": [64],
        "cl_epochs": 200,
        "cl_lr": 0.01,
        # torch threads: meta-training (conv nets on batches of episodes) and the
        # evaluation (thousands of tiny fits, fastest on one thread)
        "meta_threads": 2,
        "eval_threads": 1,
        # outputs
        "output_dir": str(REPO / "benchmarks" / "results"),
        "plot_dir": str(REPO / "docs" / "_static" / "benchmarks"),
        "write": True,
        "verbose": 1,
    }
    if quick:
        cfg.update(
            name="omniglot_quick",
            n_episodes=300,
            episodes_per_epoch=100,
            n_val_episodes=30,
            n_val_tasks=4,
            n_test_tasks=8,
            n_sweep_tasks=8,
            rf_n_estimators=50,
            timing_rounds=2,
            timing_episodes=40,
        )
    return cfg


def _log(cfg, *args):
    if cfg.get("verbose"):
        print(*args, flush=True)


# -- data ---------------------------------------------------------------------------


def load_pools(cfg) -> dict:
    """Meta-train (with rotations), validation and test pools of flat images."""
    bunch = load_omniglot(cfg["data"])
    train, val, test = split_omniglot_by_alphabet(
        bunch, val_alphabets=cfg["val_alphabets"], test_alphabets=cfg["test_alphabets"]
    )
    images, target = bunch.images, bunch.target
    if cfg["rotations"]:
        train_images, train_y = rotate_classes(
            images[train], target[train], rotations=tuple(cfg["rotations"])
        )
    else:
        train_images, train_y = images[train], target[train]
    flat = lambda a: np.ascontiguousarray(a.reshape(len(a), -1), dtype=np.float32)  # noqa: E731
    pools = {
        "train": (flat(train_images), train_y),
        "val": (flat(images[val]), target[val]),
        "test": (flat(images[test]), target[test]),
    }
    info = {
        split: {
            "alphabets": sorted(set(bunch.alphabet[mask].tolist())),
            "characters": int(len(np.unique(target[mask]))),
            "images": int(mask.sum()),
        }
        for split, mask in (("train", train), ("val", val), ("test", test))
    }
    info["train"]["classes_with_rotations"] = int(len(np.unique(train_y)))
    info["train"]["images_with_rotations"] = int(len(train_y))
    return {"pools": pools, "info": info}


# -- meta-training --------------------------------------------------------------------


def grad_norm_stats(history, max_grad_norm) -> dict:
    """Quantiles of the meta-gradient norms (before clipping) over all steps."""
    norms = np.array(
        [b["grad_norm"] for row in history for b in row["batches"] if "grad_norm" in b]
    )
    return {
        "steps": int(len(norms)),
        "median": float(np.median(norms)),
        "p90": float(np.quantile(norms, 0.9)),
        "p99": float(np.quantile(norms, 0.99)),
        "max": float(norms.max()),
        "clipped_fraction": (
            None if max_grad_norm is None else float(np.mean(norms > max_grad_norm))
        ),
    }


def _episode_settings(cfg) -> dict:
    """Episodes, optimiser and seed shared by every meta-learned method."""
    return {
        "n_way": cfg["n_way"],
        "n_shot": tuple(cfg["meta_n_shot"]),
        "n_query": cfg["meta_n_query"],
        "n_annotators": tuple(cfg["meta_n_annotators"]),
        "n_episodes": cfg["n_episodes"],
        "episodes_per_epoch": cfg["episodes_per_epoch"],
        "meta_batch_size": cfg["meta_batch_size"],
        "n_val_episodes": cfg["n_val_episodes"],
        "lr": cfg["lr"],
        "random_state": cfg["seed"] if cfg["meta_seed"] is None else cfg["meta_seed"],
    }


def base_estimator(cfg) -> MetaAnnotatorClassifier:
    """Our model with the benchmark's meta-training settings (not yet fitted).

    "Ours" is the paper's method, with pseudo-annotation (no longer the package
    default); w/o PA sets ``pseudo_annotation=False``.
    """
    return MetaAnnotatorClassifier(
        pseudo_annotation=True,
        encoder=cfg["encoder"],
        image_shape=(1, 28, 28),
        annotator_mixture=tuple(cfg["meta_mixture"]),
        max_grad_norm=cfg["max_grad_norm"],
        n_em_iter=cfg["meta_em_iter"],
        b=cfg["meta_b"],
        representation="meta",
        **_episode_settings(cfg),
    )


def meta_train(cfg, pools) -> tuple[dict, dict]:
    """Meta-train our model and w/o PA (the ProtoNet encoder), timing both."""
    X_train, y_train = pools["train"]
    X_val, y_val = pools["val"]
    base = base_estimator(cfg)
    models, timing = {}, {}
    torch.set_num_threads(int(cfg["meta_threads"]))
    # warm-up (one-off costs of the first run in a process would bias the timing
    # against whichever model is trained first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        clone(base).set_params(
            n_episodes=2 * cfg["meta_batch_size"],
            episodes_per_epoch=2 * cfg["meta_batch_size"],
            validation_classes=0.0,
        ).meta_fit(X_train, y_train)
    for name, pa in ((OURS, True), (WOPA, False)):
        _log(cfg, f"meta-training {name!r} ({cfg['n_episodes']} episodes)")
        model = clone(base).set_params(pseudo_annotation=pa)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MetaLearningWarning)
            with Timer() as t:
                model.meta_fit(X_train, y_train, X_val=X_val, y_val=y_val)
        models[name] = model
        history = model.meta_history_
        timing[name] = {
            "wall_seconds": t.seconds,
            "cpu_seconds": t.cpu,
            "epoch_seconds": [float(row["dur"]) for row in history],
            "best_epoch": model.meta_best_epoch_,
            "val_accuracy": model.meta_val_accuracy_,
            "val_accuracy_input_em": model.no_meta_val_accuracy_,
            "valid_acc_curve": [float(row.get("valid_acc", np.nan)) for row in history],
            "train_loss_curve": [float(row["train_loss"]) for row in history],
            "grad_norm_max_curve": [float(row["grad_norm_max"]) for row in history],
            "grad_norm": grad_norm_stats(history, cfg["max_grad_norm"]),
        }
        _log(
            cfg,
            f"  {t.seconds:.0f} s; best validation accuracy "
            f"{model.meta_val_accuracy_:.3f} at epoch {model.meta_best_epoch_} "
            f"(EM on pixels {model.no_meta_val_accuracy_:.3f})",
        )
    timing["ratio_ours_over_wopa"] = (
        timing[OURS]["wall_seconds"] / timing[WOPA]["wall_seconds"]
    )
    # The two long runs above are minutes apart, and on a shared machine the load
    # may change in between. Short runs alternated ABBA give a paired estimate.
    rounds = []
    for r in range(int(cfg["timing_rounds"])):
        order = ((OURS, True), (WOPA, False))
        seconds = {}
        for name, pa in order if r % 2 == 0 else order[::-1]:
            short = clone(base).set_params(
                pseudo_annotation=pa,
                n_episodes=cfg["timing_episodes"],
                episodes_per_epoch=cfg["timing_episodes"],
                validation_classes=0.0,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MetaLearningWarning)
                with Timer() as t:
                    short.meta_fit(X_train, y_train)
            seconds[name] = t.seconds
        rounds.append(seconds)
    if rounds:
        ratios = [r[OURS] / r[WOPA] for r in rounds]
        timing["paired_rounds"] = rounds
        timing["paired_ratio_median"] = float(np.median(ratios))
        _log(cfg, f"  paired timing rounds: ours / w/o PA = {np.round(ratios, 3)}")
    timing["epoch_ratio_ours_over_wopa"] = float(
        np.sum(timing[OURS]["epoch_seconds"]) / np.sum(timing[WOPA]["epoch_seconds"])
    )
    if any(m in cfg["methods"] for m in MAML_METHODS):
        models[MAML_KEY], timing[MAML_KEY] = meta_train_maml(cfg, pools)
        timing["ratio_maml_over_wopa"] = (
            timing[MAML_KEY]["wall_seconds"] / timing[WOPA]["wall_seconds"]
        )
    return models, timing


MAML_KEY = "MAML"


def meta_train_maml(cfg, pools) -> tuple[MAML, dict]:
    """Meta-train the MAML of MaMV and MaDS on clean episodes, timed."""
    X_train, y_train = pools["train"]
    X_val, y_val = pools["val"]
    maml = MAML(
        inner_lr=cfg["maml_inner_lr"],
        inner_steps=cfg["maml_inner_steps"],
        test_inner_steps=cfg["maml_inner_steps"],
        first_order=cfg["maml_first_order"],
        **_episode_settings(cfg),
    )
    _log(cfg, f"meta-training MAML ({cfg['n_episodes']} episodes)")
    with Timer() as t:
        maml.meta_fit(X_train, y_train, X_val, y_val)
    _log(
        cfg,
        f"  {t.seconds:.0f} s; best validation accuracy {maml.val_accuracy_:.3f} "
        f"at epoch {maml.best_epoch_}",
    )
    timing = {
        "wall_seconds": t.seconds,
        "cpu_seconds": t.cpu,
        "best_epoch": maml.best_epoch_,
        "val_accuracy": maml.val_accuracy_,
        "valid_acc_curve": [float(r["valid_acc"]) for r in maml.history_],
        "train_loss_curve": [float(r["train_loss"]) for r in maml.history_],
    }
    return maml, timing


def _embed_all(model, X, batch_size=500):
    return model.meta_encoder_.transform(X, batch_size=batch_size)


class _Context:
    """What the methods need on one pool: pixels, embeddings, fitted templates."""

    def __init__(self, cfg, models, X, y):
        self.cfg = cfg
        self.X = X
        self.y = y
        self.idx = index_features(np.arange(len(y)))
        self.encoders = {}
        self.templates = {}
        self.maml = models.get(MAML_KEY)
        for name, model in models.items():
            if name == MAML_KEY:
                continue
            enc = PrecomputedEncoder(_embed_all(model, X))
            template = clone(model)
            template.meta_encoder_ = enc  # embeddings computed once for the pool
            self.encoders[name] = enc
            self.templates[name] = template


# -- methods ------------------------------------------------------------------------


def _logistic():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def _make_method(name, ctx, selection, task_seed):
    """``(estimator, X_kind)`` of a method; X_kind is "pixels" or "index"."""
    cfg = ctx.cfg
    agg = {"MV": MajorityVote(random_state=task_seed), "DS": DawidSkene()}
    if name in (OURS, WOPA):
        sel = selection[name]
        est = clone(ctx.templates[name]).set_params(n_em_iter=sel["J"], b=sel["b"])
        return est, "index"
    if name.startswith(f"{OURS} [") or name.startswith(f"{WOPA} ["):
        # sensitivity variants, e.g. "Ours [J=2]" or "Ours [b=100]"
        base, _, spec = name.partition(" [")
        key, _, value = spec.rstrip("]").partition("=")
        params = {"n_em_iter": selection[base]["J"], "b": selection[base]["b"]}
        params["n_em_iter" if key == "J" else "b"] = (
            int(value) if key == "J" else float(value)
        )
        return clone(ctx.templates[base]).set_params(**params), "index"
    if name in ("LRMV", "LRDS"):
        return AggregateThenClassify(
            agg[name[2:]], _logistic(), random_state=task_seed
        ), ("pixels")
    if name in ("RFMV", "RFDS"):
        rf = RandomForestClassifier(n_estimators=cfg["rf_n_estimators"])
        return AggregateThenClassify(
            agg[name[2:]], rf, random_state=task_seed
        ), "pixels"
    if name in ("PrMV", "PrDS"):
        return PrototypeClassifier(ctx.encoders[WOPA], agg[name[2:]]), "index"
    if name == "CL":
        est = CrowdLayerClassifier(
            hidden_layer_sizes=tuple(cfg["cl_hidden"]),
            n_epochs=cfg["cl_epochs"],
            lr=cfg["cl_lr"],
            random_state=task_seed,
        )
        return est, "pixels"
    if name in MAML_METHODS:
        steps = selection.get(name, {}).get("steps")
        est = MAMLAggregateClassifier(
            ctx.maml, agg[name[2:]], images=ctx.X, steps=steps
        )
        return est, "index"
    if name == "MCL":
        est = CrowdLayerClassifier(
            ctx.encoders[WOPA],
            hidden_layer_sizes=(),
            n_epochs=cfg["cl_epochs"],
            lr=cfg["cl_lr"],
            random_state=task_seed,
        )
        return est, "index"
    if name == "EM, no meta":
        sel = selection[OURS]
        est = MetaAnnotatorClassifier(
            n_em_iter=sel["J"], b=sel["b"], representation="input"
        )
        return est, "pixels"
    raise ValueError(f"unknown method {name!r}")


def evaluate_tasks(tasks, ctx, selection, methods, timings=None) -> dict:
    """Query accuracy of every method on every task: ``{method: [acc, ...]}``."""
    out = {m: [] for m in methods}
    for task in tasks:
        observed = np.unique(task.Y[~np.isnan(task.Y)]).astype(int)
        for name in methods:
            if len(observed) < 2:
                # every annotation names one class: every method predicts it
                out[name].append(float(np.mean(task.query_y == observed[0])))
                continue
            with Timer() as t:
                est, kind = _make_method(name, ctx, selection, task.seed)
                feats = ctx.X if kind == "pixels" else ctx.idx
                est.fit(feats[task.support], task.Y)
                pred = est.predict(feats[task.query])
            out[name].append(float(np.mean(pred == task.query_y)))
            if timings is not None:
                timings[name] = timings.get(name, 0.0) + t.seconds
    return out


# -- protocol -----------------------------------------------------------------------


def _cells(shots, annotators):
    return [(int(s), int(r)) for s in shots for r in annotators]


def select_hyperparameters(cfg, models, pools) -> dict:
    """Choose J, b (ours, w/o PA) and MAML fine-tuning steps on validation tasks."""
    X_val, y_val = pools["val"]
    ctx = _Context(cfg, models, X_val, y_val)
    tasks = []
    for shot, R in _cells(cfg["shots"], cfg["annotators"]):
        tasks += sample_crowd_tasks(
            y_val,
            n_tasks=cfg["n_val_tasks"],
            n_way=cfg["n_way"],
            n_shot=shot,
            n_query=cfg["n_query"],
            n_annotators=R,
            mixture=MAIN_MIXTURE,
            seed=stable_seed(cfg["seed"], "validation", shot, R),
        )
    selection, grid = {}, {}
    for base in (OURS, WOPA):
        scores = {}
        for J in cfg["em_iter_grid"]:
            for b in cfg["b_grid"]:
                sel = {base: {"J": int(J), "b": float(b)}}
                acc = evaluate_tasks(tasks, ctx, sel, [base])[base]
                scores[(int(J), float(b))] = float(np.mean(acc))
        best = max(scores, key=lambda k: (scores[k], -abs(k[0] - cfg["meta_em_iter"])))
        selection[base] = {"J": best[0], "b": best[1], "val_accuracy": scores[best]}
        grid[base] = [
            {"J": J, "b": b, "val_accuracy": v} for (J, b), v in scores.items()
        ]
        _log(
            cfg,
            f"validation choice for {base!r}: J={best[0]}, b={best[1]:g} "
            f"(accuracy {scores[best]:.3f} on {len(tasks)} validation tasks)",
        )
    for name in MAML_METHODS:
        if name not in cfg["methods"] or ctx.maml is None:
            continue
        scores = {}
        for steps in cfg["maml_steps_grid"]:
            sel = {name: {"steps": int(steps)}}
            scores[int(steps)] = float(
                np.mean(evaluate_tasks(tasks, ctx, sel, [name])[name])
            )
        best = max(scores, key=lambda k: (scores[k], -k))  # ties: fewer steps
        selection[name] = {"steps": best, "val_accuracy": scores[best]}
        grid[name] = [{"steps": k, "val_accuracy": v} for k, v in scores.items()]
        _log(
            cfg,
            f"validation choice for {name!r}: {best} fine-tuning steps "
            f"(accuracy {scores[best]:.3f})",
        )
    return {"selection": selection, "grid": grid, "n_tasks": len(tasks)}


def _settings(cfg):
    """(key, mixture, cells, n_tasks) of every test setting."""
    out = [
        (
            "main",
            list(MAIN_MIXTURE),
            _cells(cfg["shots"], cfg["annotators"]),
            cfg["n_test_tasks"],
        )
    ]
    sweep = _cells(cfg["sweep_shots"], cfg["sweep_annotators"])
    for mix in cfg["spammer_mixtures"]:
        out.append((f"spammer_{mix[2]:g}", list(mix), sweep, cfg["n_sweep_tasks"]))
    for kind in cfg["other_types"]:
        out.append((kind, {kind: 1.0}, sweep, cfg["n_sweep_tasks"]))
    return out


def _cell_key(shot, R):
    return f"{shot}-shot, R={R}"


def evaluate(cfg, models, pools, selection) -> tuple[dict, dict]:
    """Every setting, cell and method on the test alphabets."""
    X_test, y_test = pools["test"]
    ctx = _Context(cfg, models, X_test, y_test)
    methods = [m for m in cfg["methods"] if m in METHODS]
    sensitivity = [f"{OURS} [J={J}]" for J in cfg["em_iter_grid"]]
    sensitivity += [f"{WOPA} [J={J}]" for J in cfg["em_iter_grid"]]
    sensitivity += [f"{OURS} [b={b:g}]" for b in cfg["b_grid"]]
    results, timings = {}, {}
    for key, mixture, cells, n_tasks in _settings(cfg):
        results[key] = {"mixture": mixture, "cells": {}}
        for shot, R in cells:
            tasks = sample_crowd_tasks(
                y_test,
                n_tasks=n_tasks,
                n_way=cfg["n_way"],
                n_shot=shot,
                n_query=cfg["n_query"],
                n_annotators=R,
                mixture=mixture,
                seed=stable_seed(cfg["seed"], "test", key, shot, R),
            )
            names = methods + (sensitivity if key == "main" else [])
            with Timer() as t:
                acc = evaluate_tasks(tasks, ctx, selection, names, timings)
            results[key]["cells"][_cell_key(shot, R)] = {
                "n_shot": shot,
                "n_annotators": R,
                "accuracies": acc,
            }
            _log(
                cfg,
                f"[{key}] {_cell_key(shot, R)}: {n_tasks} tasks in {t.seconds:.1f} s; "
                + ", ".join(f"{m} {np.mean(acc[m]):.3f}" for m in methods[:4]),
            )
    return results, timings


def _best_baseline(cell, baselines):
    means = {
        m: np.mean(cell["accuracies"][m]) for m in baselines if m in cell["accuracies"]
    }
    return max(means, key=means.get) if means else None


def summarize_results(cfg, raw) -> dict:
    """Per cell: mean +- s.e. of every method, best baseline, paired t-tests."""
    summary = {}
    for key, setting in raw.items():
        cells = {}
        for ck, cell in setting["cells"].items():
            stats = {m: summarize(a) for m, a in cell["accuracies"].items()}
            entry = {
                "n_shot": cell["n_shot"],
                "n_annotators": cell["n_annotators"],
                "methods": stats,
            }
            if OURS in cell["accuracies"]:
                ours = cell["accuracies"][OURS]
                best = _best_baseline(cell, BASELINES)
                if best is not None:
                    entry["best_baseline"] = best
                    entry["ours_vs_best_baseline"] = paired_ttest(
                        ours, cell["accuracies"][best]
                    )
                if WOPA in cell["accuracies"]:
                    entry["ours_vs_wopa"] = paired_ttest(ours, cell["accuracies"][WOPA])
                others = [m for m in METHODS if m != OURS and m in cell["accuracies"]]
                best_other = _best_baseline(cell, others)
                if best_other is not None:
                    test = paired_ttest(ours, cell["accuracies"][best_other])
                    entry["best_other"] = best_other
                    entry["ours_best_or_tied"] = test["verdict"] != "loss"
            cells[ck] = entry
        methods = list(next(iter(setting["cells"].values()))["accuracies"])
        average = {
            m: float(np.mean([c["methods"][m]["mean"] for c in cells.values()]))
            for m in methods
        }
        summary[key] = {
            "mixture": setting["mixture"],
            "cells": cells,
            "average": average,
        }
        baselines = [m for m in BASELINES if m in average]
        if OURS in average and baselines:
            best_avg = max(baselines, key=average.get)
            summary[key]["headline"] = {
                "ours": average[OURS],
                "best_baseline": best_avg,
                "best_baseline_accuracy": average[best_avg],
                "wopa": average.get(WOPA),
                "ours_minus_best_baseline": average[OURS] - average[best_avg],
                "ours_minus_wopa": (
                    average[OURS] - average[WOPA] if WOPA in average else None
                ),
                "cells_won": sum(
                    c.get("ours_vs_best_baseline", {}).get("verdict") == "win"
                    for c in cells.values()
                ),
                "cells_tied": sum(
                    c.get("ours_vs_best_baseline", {}).get("verdict") == "tie"
                    for c in cells.values()
                ),
                "cells_lost": sum(
                    c.get("ours_vs_best_baseline", {}).get("verdict") == "loss"
                    for c in cells.values()
                ),
                "cells_best_or_tied_vs_all": sum(
                    bool(c.get("ours_best_or_tied")) for c in cells.values()
                ),
                "n_cells": len(cells),
            }
    return summary


def run(config=None, **overrides) -> dict:
    """Run the benchmark and return (and, with ``write``, save) its results.

    Parameters
    ----------
    config : dict, optional
        Overrides of :func:`default_config` (``quick=True`` in it selects the
        quick defaults first).
    **overrides
        More overrides.

    Returns
    -------
    dict
        ``config``, ``environment``, ``data``, ``meta_training`` (timing and
        validation curves), ``hyperparameters`` (validation choice of J and b),
        ``summary`` (per setting and cell: mean, s.e., paired tests, averages),
        ``raw`` (per-task accuracies), ``method_seconds``, ``seconds`` and,
        when written, ``files``.
    """
    config = dict(config or {})
    config.update(overrides)
    cfg = default_config(quick=bool(config.pop("quick", False)))
    unknown = set(config) - set(cfg)
    if unknown:
        raise ValueError(f"unknown configuration keys {sorted(unknown)}")
    cfg.update(config)
    if not Path(cfg["data"]).is_dir():
        raise FileNotFoundError(
            f"Omniglot folder {cfg['data']!r} not found; pass --data DIR (it holds "
            "images_background_small1.zip and images_background_small2.zip)"
        )
    with Timer() as total:
        torch.manual_seed(cfg["seed"])
        data = load_pools(cfg)
        pools = data["pools"]
        _log(cfg, f"data: {data['info']}")
        threads = torch.get_num_threads()
        try:
            models, timing = meta_train(cfg, pools)
            torch.set_num_threads(int(cfg["eval_threads"]))
            with warnings.catch_warnings(), threadpool_limits(int(cfg["eval_threads"])):
                warnings.simplefilter("ignore", ConvergenceWarning)
                with Timer() as t_sel:
                    hyper = select_hyperparameters(cfg, models, pools)
                with Timer() as t_eval:
                    raw, method_seconds = evaluate(
                        cfg, models, pools, hyper["selection"]
                    )
        finally:
            torch.set_num_threads(threads)
        summary = summarize_results(cfg, raw)
    results = {
        "config": cfg,
        "environment": harness.environment(),
        "data": data["info"],
        "meta_training": timing,
        "hyperparameters": hyper,
        "summary": summary,
        "raw": raw,
        "method_seconds": method_seconds,
        "seconds": {
            "total": total.seconds,
            "selection": t_sel.seconds,
            "evaluation": t_eval.seconds,
        },
    }
    if cfg["write"]:
        results["files"] = write_outputs(results)
    h = summary["main"].get("headline")
    if h:
        _log(
            cfg,
            f"\nmain grid average: ours {h['ours']:.3f}, best baseline "
            f"{h['best_baseline']} {h['best_baseline_accuracy']:.3f}, w/o PA "
            f"{h['wopa']:.3f}; cells won/tied/lost vs best baseline "
            f"{h['cells_won']}/{h['cells_tied']}/{h['cells_lost']}; meta-training time "
            f"ratio ours / w/o PA {timing['ratio_ours_over_wopa']:.3f}; total "
            f"{total.seconds:.0f} s",
        )
    return results


# -- outputs ------------------------------------------------------------------------


def _main_methods(summary_setting):
    avg = summary_setting["average"]
    return [m for m in METHODS if m in avg]


def tables(results) -> dict:
    """The result tables as (header, rows) pairs, keyed by name."""
    summary = results["summary"]
    out = {}
    # main grid
    main = summary["main"]
    cells = list(main["cells"])
    methods = _main_methods(main)
    header = ["method", *cells, "average"]
    rows = []
    for m in methods:
        row = [m]
        for ck in cells:
            st = main["cells"][ck]["methods"][m]
            means = [main["cells"][ck]["methods"][o]["mean"] for o in methods]
            row.append(fmt_acc(st["mean"], st["sem"], bold=st["mean"] == max(means)))
        avg = main["average"][m]
        row.append(fmt_acc(avg, bold=avg == max(main["average"][o] for o in methods)))
        rows.append(row)
    out["main"] = (header, rows)
    # paired tests
    header = [
        "cell",
        "ours",
        "best baseline",
        "difference",
        "t",
        "p",
        "verdict",
        "w/o PA",
        "ours - w/o PA",
        "p (vs w/o PA)",
    ]
    rows = []
    for ck, c in main["cells"].items():
        b, t, w = c["best_baseline"], c["ours_vs_best_baseline"], c["ours_vs_wopa"]
        rows.append(
            [
                ck,
                f"{c['methods'][OURS]['mean']:.3f}",
                f"{b} {c['methods'][b]['mean']:.3f}",
                f"{t['diff']:+.3f}",
                f"{t['t']:.2f}",
                f"{t['p']:.3g}",
                t["verdict"],
                f"{c['methods'][WOPA]['mean']:.3f}",
                f"{w['diff']:+.3f}",
                f"{w['p']:.3g}",
            ]
        )
    out["paired"] = (header, rows)
    # spammer-ratio sweep: average over the sweep cells; the 0.2 column is the
    # main setting restricted to the same cells
    sweep_keys = [(k, s) for k, s in summary.items() if k.startswith("spammer_")]
    sweep_cells = list(sweep_keys[0][1]["cells"]) if sweep_keys else []
    columns = [(s["mixture"][2], s) for _, s in sweep_keys]
    columns.append((MAIN_MIXTURE[2], main))
    columns.sort(key=lambda c: c[0])
    if sweep_keys:
        header = ["method", *[f"spammers {r:g}" for r, _ in columns]]
        rows, series = [], {}
        for m in methods:
            means, sems = [], []
            for _, s in columns:
                vals = [s["cells"][ck]["methods"][m] for ck in sweep_cells]
                means.append(float(np.mean([v["mean"] for v in vals])))
                sems.append(
                    float(np.sqrt(np.sum([v["sem"] ** 2 for v in vals])) / len(vals))
                )
            series[m] = (means, sems)
            rows.append([m, *[fmt_acc(a, e) for a, e in zip(means, sems)]])
        out["spammer_ratio"] = (header, rows)
        out["_spammer_series"] = ([r for r, _ in columns], series, sweep_cells)
    # other annotator types
    kinds = [k for k in summary if k in ("pairwise_flipper", "classwise_spammer")]
    if kinds:
        header = [
            "method",
            *[f"{k} ({ck})" for k in kinds for ck in summary[k]["cells"]],
            *[f"{k} average" for k in kinds],
        ]
        rows = []
        for m in _main_methods(summary[kinds[0]]):
            row = [m]
            for k in kinds:
                for ck, c in summary[k]["cells"].items():
                    st = c["methods"][m]
                    row.append(fmt_acc(st["mean"], st["sem"]))
            row += [fmt_acc(summary[k]["average"][m]) for k in kinds]
            rows.append(row)
        out["other_types"] = (header, rows)
    # sensitivity to J and b (main grid average)
    avg = main["average"]
    Js = results["config"]["em_iter_grid"]
    header = ["J", *[str(J) for J in Js]]
    rows = [
        [base, *[f"{avg[f'{base} [J={J}]']:.3f}" for J in Js]] for base in (OURS, WOPA)
    ]
    out["em_iterations"] = (header, rows)
    bs = results["config"]["b_grid"]
    header = ["b", *[f"{b:g}" for b in bs]]
    rows = [[OURS, *[f"{avg[f'{OURS} [b={b:g}]']:.3f}" for b in bs]]]
    out["class_prior"] = (header, rows)
    # timing
    tm = results["meta_training"]
    header = [
        "model",
        "meta-training wall time (s)",
        "CPU time (s)",
        "best validation accuracy",
        "best epoch",
    ]
    rows = [
        [
            m,
            f"{tm[m]['wall_seconds']:.0f}",
            f"{tm[m]['cpu_seconds']:.0f}",
            f"{tm[m]['val_accuracy']:.3f}",
            tm[m]["best_epoch"],
        ]
        for m in (OURS, WOPA, MAML_KEY)
        if m in tm
    ]
    rows.append(
        [
            "ratio ours / w/o PA",
            f"{tm['ratio_ours_over_wopa']:.3f}",
            f"{tm[OURS]['cpu_seconds'] / tm[WOPA]['cpu_seconds']:.3f}",
            "",
            "",
        ]
    )
    if "paired_ratio_median" in tm:
        rows.append(
            [
                f"ratio, median of {len(tm['paired_rounds'])} alternated runs of "
                f"{results['config']['timing_episodes']} episodes",
                f"{tm['paired_ratio_median']:.3f}",
                "",
                "",
                "",
            ]
        )
    if MAML_KEY in tm:
        rows.append(
            [
                "ratio MAML / w/o PA",
                f"{tm['ratio_maml_over_wopa']:.3f}",
                f"{tm[MAML_KEY]['cpu_seconds'] / tm[WOPA]['cpu_seconds']:.3f}",
                "",
                "",
            ]
        )
    out["timing"] = (header, rows)
    # hyperparameter choice
    sel = results["hyperparameters"]["selection"]
    header = ["model", "choice", "validation accuracy"]
    rows = [
        [m, f"J={sel[m]['J']}, b={sel[m]['b']:g}", f"{sel[m]['val_accuracy']:.3f}"]
        for m in (OURS, WOPA)
    ]
    rows += [
        [m, f"fine-tuning steps: {sel[m]['steps']}", f"{sel[m]['val_accuracy']:.3f}"]
        for m in MAML_METHODS
        if m in sel
    ]
    out["selection"] = (header, rows)
    return out


def write_outputs(results) -> dict:
    """JSON, CSV and Markdown results and the PNG plots; returns their paths."""
    cfg = results["config"]
    out_dir, plot_dir, name = (
        Path(cfg["output_dir"]),
        Path(cfg["plot_dir"]),
        cfg["name"],
    )
    files = {}
    files["json"] = str(harness.write_json(results, out_dir / f"{name}.json"))
    rows = []
    for key, s in results["summary"].items():
        mix = s["mixture"]
        for ck, c in s["cells"].items():
            for m, st in c["methods"].items():
                rows.append(
                    {
                        "setting": key,
                        "mixture": mix
                        if isinstance(mix, dict)
                        else "/".join(f"{v:g}" for v in mix),
                        "n_shot": c["n_shot"],
                        "n_annotators": c["n_annotators"],
                        "method": m,
                        "mean": st["mean"],
                        "sem": st["sem"],
                        "n_tasks": st["n"],
                    }
                )
    files["csv"] = str(harness.write_csv(rows, out_dir / f"{name}.csv"))

    tab = tables(results)
    h = results["summary"]["main"]["headline"]
    tm = results["meta_training"]
    md = [
        f"# Omniglot few-shot crowd benchmark ({name})",
        "",
        "Generated by `python benchmarks/omniglot.py"
        f"{' --quick' if 'quick' in name else ''}`"
        f" in {results['seconds']['total']:.0f} s "
        f"(torch {results['environment']['torch']}, "
        f"{results['environment']['cpu_count']} CPUs: "
        f"{results['environment']['cpu']}).",
        "",
        f"Data: {results['data']}.",
        "",
        f"**Headline** (average over the {h['n_cells']} cells at mixture "
        f"{MAIN_MIXTURE}): ours {h['ours']:.3f}, best baseline {h['best_baseline']} "
        f"{h['best_baseline_accuracy']:.3f} ({h['ours_minus_best_baseline']:+.3f}), "
        f"w/o PA {h['wopa']:.3f} ({h['ours_minus_wopa']:+.3f}). Ours vs the best "
        f"baseline of each cell (paired t-test, p < 0.05): {h['cells_won']} wins, "
        f"{h['cells_tied']} ties, {h['cells_lost']} losses; best or tied with every "
        f"method in {h['cells_best_or_tied_vs_all']} of {h['n_cells']} cells. "
        f"Meta-training wall time ours / w/o PA: {tm['ratio_ours_over_wopa']:.3f} "
        "(median of alternated short runs: "
        f"{tm.get('paired_ratio_median', np.nan):.3f}).",
        "",
        "## Test accuracy, 4-way, mixture (expert, hammer, spammer) = (0.1, 0.7, 0.2)",
        "",
        "Mean ± standard error over the test tasks of each cell; bold: highest mean.",
        "",
        markdown_table(*tab["main"]),
        "",
        "## Ours against the best baseline of each cell (paired t-test)",
        "",
        markdown_table(*tab["paired"]),
        "",
    ]
    if "spammer_ratio" in tab:
        md += [
            "## Accuracy against the spammer ratio",
            "",
            f"Average over the cells {tab['_spammer_series'][2]}; mixtures "
            "(0.1, 0.9 - s, s).",
            "",
            markdown_table(*tab["spammer_ratio"]),
            "",
        ]
    if "other_types" in tab:
        md += [
            "## Other annotator types (every annotator of that type)",
            "",
            markdown_table(*tab["other_types"]),
            "",
        ]
    md += [
        "## Sensitivity (test, main grid average; J and b were chosen on validation)",
        "",
        markdown_table(*tab["em_iterations"]),
        "",
        markdown_table(*tab["class_prior"]),
        "",
        "## Hyperparameters chosen on the validation alphabet",
        "",
        markdown_table(*tab["selection"]),
        "",
        "## Meta-training time",
        "",
        markdown_table(*tab["timing"]),
        "",
        "## Methods",
        "",
        *[f"- **{m}**: {METHOD_NOTES[m]}" for m in METHODS if m in cfg["methods"]],
        "",
    ]
    md_path = out_dir / f"{name}.md"
    md_path.write_text("\n".join(md))
    files["markdown"] = str(md_path)
    rst_path = out_dir / f"{name}_tables.rst"
    rst_path.write_text(rst_tables(results))
    files["rst"] = str(rst_path)

    # plots
    plot_methods = [
        m
        for m in (OURS, WOPA, "PrDS", "PrMV", "MaDS", "MCL", "LRDS", "RFDS", "CL")
        if m in results["summary"]["main"]["average"]
    ]
    if "_spammer_series" in tab:
        ratios, series, sweep_cells = tab["_spammer_series"]
        files["plot_spammer_ratio"] = str(
            harness.line_plot(
                plot_dir / f"{name}_spammer_ratio.png",
                ratios,
                {m: series[m] for m in plot_methods},
                xlabel="spammer ratio of the target annotators",
                ylabel="test accuracy",
                title=f"Omniglot, 4-way, average over {', '.join(sweep_cells)}",
                xticks=ratios,
            )
        )
    main = results["summary"]["main"]
    Js = cfg["em_iter_grid"]
    series = {}
    for base in (OURS, WOPA):
        means, sems = [], []
        for J in Js:
            vals = [c["methods"][f"{base} [J={J}]"] for c in main["cells"].values()]
            means.append(float(np.mean([v["mean"] for v in vals])))
            sems.append(
                float(np.sqrt(np.sum([v["sem"] ** 2 for v in vals])) / len(vals))
            )
        series[base] = (means, sems)
    best = main["headline"]["best_baseline"]
    series[f"{best} (best baseline)"] = (
        [main["average"][best]] * len(Js),
        [0.0] * len(Js),
    )
    files["plot_em_iterations"] = str(
        harness.line_plot(
            plot_dir / f"{name}_em_iterations.png",
            Js,
            series,
            xlabel="EM iterations J at adaptation (meta-trained with J = "
            f"{cfg['meta_em_iter']})",
            ylabel="test accuracy (average over the 9 cells)",
            title="Omniglot, 4-way, mixture (0.1, 0.7, 0.2)",
            xticks=Js,
        )
    )
    return files


def rst_tables(results) -> str:
    """The result tables as reStructuredText ``csv-table`` directives (for the docs)."""
    tab = tables(results)
    titles = {
        "main": "Test accuracy (mean ± standard error), mixture (0.1, 0.7, 0.2)",
        "paired": "Ours against the best baseline of each cell (paired t-test)",
        "spammer_ratio": "Accuracy against the spammer ratio",
        "other_types": "Other annotator types",
        "em_iterations": "Accuracy against J (main grid average)",
        "class_prior": "Accuracy against b (main grid average)",
        "selection": "Hyperparameters chosen on the validation alphabet",
        "timing": "Meta-training time",
    }
    blocks = []
    for key, title in titles.items():
        if key in tab:
            header, rows = tab[key]
            rows = [[str(c).replace("**", "") for c in row] for row in rows]
            blocks.append(harness.rst_csv_table(title, header, rows))
    return "\n\n".join(blocks) + "\n"


# -- command line -------------------------------------------------------------------


def parse_max_grad_norm(value):
    """A ``max_grad_norm`` from the command line: a float, or ``"none"`` for None."""
    return None if value.lower() == "none" else float(value)


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/omniglot.py",
        description="Omniglot few-shot crowd benchmark: ours vs the paper's baselines.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few minutes: few episodes and tasks"
    )
    parser.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="folder with the Omniglot zip archives",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-episodes", type=int, help="meta-training episodes")
    parser.add_argument("--n-test-tasks", type=int, help="test tasks per main cell")
    parser.add_argument(
        "--max-grad-norm",
        type=parse_max_grad_norm,
        default=argparse.SUPPRESS,
        help="meta-gradient clipping of both models ('none': off; default 1.0)",
    )
    parser.add_argument(
        "--name", help="stem of the output files (default omniglot / omniglot_quick)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write files")
    parser.add_argument(
        "--rst-from",
        metavar="JSON",
        help="print the tables of a results file as reStructuredText and exit",
    )
    parser.add_argument(
        "--replot-from",
        metavar="JSON",
        help="rewrite the tables and plots of a results file and exit",
    )
    args = parser.parse_args(argv)
    if args.replot_from:
        import json

        results = json.loads(Path(args.replot_from).read_text())
        results.pop("files", None)
        print(write_outputs(results))
        return
    if args.rst_from:
        import json

        print(rst_tables(json.loads(Path(args.rst_from).read_text())))
        return
    overrides = {
        "quick": args.quick,
        "data": args.data,
        "seed": args.seed,
        "write": not args.no_write,
    }
    if args.n_episodes is not None:
        overrides["n_episodes"] = args.n_episodes
    if args.n_test_tasks is not None:
        overrides["n_test_tasks"] = args.n_test_tasks
    if hasattr(args, "max_grad_norm"):
        overrides["max_grad_norm"] = args.max_grad_norm
    if args.name:
        overrides["name"] = args.name
    run(overrides)


if __name__ == "__main__":
    main()
