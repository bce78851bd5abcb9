"""Omniglot few-shot crowd benchmark: our method against the paper's baselines.

The Omniglot experiment of Kumagai et al. (2025), Sec. 5 of the spec, on the 242
characters of Omniglot's two small background archives::

    python -m benchmarks.omniglot --quick      # a few minutes on 2 CPU cores
    python -m benchmarks.omniglot              # the full run (about 27 minutes)

Protocol (all fixed before any result was seen):

- split by alphabet: meta-train on 5 alphabets with their 90/180/270-degree
  rotations as extra classes, validate on 1 alphabet, test on 2;
- meta-train our model (pseudo-annotation) and "w/o PA" (clean episodes: a
  prototypical network with our EM) with the same settings and time both; PrMV,
  PrDS and MCL use the w/o-PA encoder, MaMV and MaDS a MAML meta-trained on as
  many clean episodes (``_maml.py``);
- choose J (EM iterations at adaptation) and b (class-prior strength) of both
  models, and the fine-tuning steps of MaMV and MaDS, on validation tasks only;
- evaluate every method on the same seeded 4-way test tasks: 1/3/5 shots, R =
  3/5/7 simulated annotators, 10 queries per class, expert/hammer/spammer
  mixtures (spammer ratio 0.1-0.4), pair-wise flippers and class-wise spammers;
- report mean accuracy ± standard error, paired t-tests (ours against the best
  baseline of each cell), accuracy against J and b, and meta-training times.

``run(config) -> results`` does everything; the studies ``omniglot_seeds.py``,
``omniglot_clipping.py`` and ``omniglot_variants.py`` are configurations of it.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import json
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

from sklearn_metaannot import (
    DawidSkene,
    MajorityVote,
    MetaLearner,
    MetaLearningWarning,
    baselines,
    datasets,
    torch_threads,
)
from sklearn_metaannot import MetaAnnotatorClassifier as Model

from . import harness
from ._maml import MAML, MAMLAggregateClassifier
from .harness import Timer, index_features

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = harness.SHARED_DATA / "omniglot"
OURS, WOPA, MAML_KEY = "Ours", "w/o PA", "MAML"
#: How the tables name the two meta-trained models: the results keep the
#: paper's names ("Ours" is its method), the pages say what each one is now.
DISPLAY = {
    OURS: "paper's method (with PA)",
    WOPA: "default (w/o PA, clean episodes)",
}
#: Our two models: meta-trained with and without pseudo-annotation.
PSEUDO_ANNOTATION = {OURS: True, WOPA: False}
#: The paper's baselines run here (CNAL and MCNAL are omitted).
BASELINES = tuple("LRMV LRDS RFMV RFDS CL PrMV PrDS MaMV MaDS MCL".split())
MAML_METHODS = ("MaMV", "MaDS")
METHODS = (OURS, WOPA, *BASELINES, "EM, no meta")
MAIN_MIXTURE = (0.1, 0.7, 0.2)
_MA = "MAML (Conv-4 + linear head) meta-trained on clean episodes, fine-tuned on "
_JB = "(J, b chosen on validation alphabets)"
METHOD_NOTES = {
    OURS: f"MetaAnnotatorClassifier meta-trained with pseudo-annotation; EM on the "
    f"support {_JB}",
    WOPA: "the same, meta-trained without pseudo-annotation (a prototypical network "
    f"on clean episodes); EM {_JB}",
    "LRMV": "majority vote, then logistic regression on standardised pixels",
    "LRDS": "Dawid-Skene, then logistic regression on standardised pixels",
    "RFMV": "majority vote, then a random forest (100 trees) on pixels",
    "RFDS": "Dawid-Skene, then a random forest (100 trees) on pixels",
    "CL": "crowd layer (MW) on an MLP (64 hidden units) on standardised pixels, "
    "target support only",
    "PrMV": "prototypes from soft majority-vote labels in the w/o-PA (ProtoNet) space",
    "PrDS": "prototypes from soft Dawid-Skene posteriors in the w/o-PA (ProtoNet) "
    "space",
    "MaMV": f"{_MA}soft majority-vote labels (steps chosen on validation alphabets)",
    "MaDS": f"{_MA}Dawid-Skene posteriors (steps chosen on validation alphabets)",
    "MCL": "frozen w/o-PA (ProtoNet) encoder + linear head + crowd layer (MW), "
    "trained on the target support",
    "EM, no meta": "our EM on standardised pixels (no meta-learning)",
}


def default_config(quick=False) -> dict:
    """Every knob of the benchmark (of the ``--quick`` run with ``quick``)."""
    # seed: of the tasks, and of meta-training unless meta_seed is given
    cfg = {"name": "omniglot", "data": str(DEFAULT_DATA), "seed": 0, "meta_seed": None}
    cfg.update(val_alphabets=["Greek"], test_alphabets=["Sanskrit", "Tagalog"])
    # meta-training of every meta-learned model, MAML's inner loop
    cfg.update(rotations=[90, 180, 270], encoder="conv4", n_way=4, meta_n_shot=[1, 5])
    cfg.update(meta_n_annotators=[3, 7], meta_n_query=10, meta_mixture=[0.1, 0.7, 0.2])
    cfg.update(meta_em_iter=3, meta_b=10.0, n_episodes=4000, episodes_per_epoch=250)
    cfg.update(meta_batch_size=4, n_val_episodes=100, lr=1e-3, max_grad_norm=1.0)
    cfg.update(maml_inner_lr=0.1, maml_inner_steps=1, maml_first_order=False)
    # chosen on validation tasks: MAML fine-tuning steps, J and b; paired timing:
    # alternated short meta-training runs (of timing_episodes episodes)
    cfg.update(maml_steps_grid=[1, 2, 3, 5], timing_rounds=4, timing_episodes=200)
    cfg.update(em_iter_grid=[1, 2, 3, 4, 5], b_grid=[1.0, 10.0, 100.0], n_val_tasks=30)
    # test tasks: the main grid, the spammer-ratio sweep and other annotator types
    cfg.update(shots=[1, 3, 5], annotators=[3, 5, 7], n_query=10, n_test_tasks=100)
    cfg.update(spammer_mixtures=[[0.1, 0.8, 0.1], [0.1, 0.6, 0.3], [0.1, 0.5, 0.4]])
    cfg.update(other_types=["pairwise_flipper", "classwise_spammer"])
    cfg.update(sweep_shots=[1, 3, 5], sweep_annotators=[5], n_sweep_tasks=100)
    cfg.update(methods=list(METHODS), rf_n_estimators=100, cl_hidden=[64])
    # torch threads of meta-training and of the evaluation (thousands of tiny fits)
    cfg.update(cl_epochs=200, cl_lr=0.01, meta_threads=2, eval_threads=1)
    cfg.update(output_dir=str(REPO / "benchmarks" / "results"))
    cfg.update(plot_dir=str(REPO / "docs" / "_static" / "benchmarks"))
    cfg.update(write=True, verbose=1)
    if quick:
        cfg.update(name="omniglot_quick", n_episodes=300, episodes_per_epoch=100)
        cfg.update(n_val_episodes=30, n_val_tasks=4, n_test_tasks=8, n_sweep_tasks=8)
        cfg.update(rf_n_estimators=50, timing_rounds=2, timing_episodes=40)
    return cfg


def load_pools(cfg) -> dict:
    """Meta-train (with rotations), validation and test pools of flat images."""
    bunch = datasets.load_omniglot(cfg["data"])
    alphabets = {"val_alphabets": cfg["val_alphabets"]}
    alphabets["test_alphabets"] = cfg["test_alphabets"]
    masks = datasets.split_omniglot_by_alphabet(bunch, **alphabets)
    images, target = bunch.images, bunch.target
    train = images[masks[0]], target[masks[0]]
    if cfg["rotations"]:
        train = datasets.rotate_classes(*train, rotations=tuple(cfg["rotations"]))
    flat = lambda a: np.ascontiguousarray(a.reshape(len(a), -1), dtype=np.float32)  # noqa: E731
    pools, info = {"train": (flat(train[0]), train[1])}, {}
    for split, mask in zip(("train", "val", "test"), masks):
        pools.setdefault(split, (flat(images[mask]), target[mask]))
        info[split] = {"alphabets": sorted(set(bunch.alphabet[mask].tolist()))}
        info[split]["characters"] = len(np.unique(target[mask]))
        info[split]["images"] = int(mask.sum())
    info["train"]["classes_with_rotations"] = len(np.unique(train[1]))
    info["train"]["images_with_rotations"] = len(train[1])
    return {"pools": pools, "info": info}


# -- meta-training ------------------------------------------------------------------


def grad_norm_stats(history, max_grad_norm) -> dict:
    """Quantiles of the meta-gradient norms (before clipping) over all steps."""
    norms = [b.get("grad_norm") for row in history for b in row["batches"]]
    norms = np.array([n for n in norms if n is not None])
    out = {"steps": len(norms), "median": float(np.median(norms))}
    out.update({f"p{q}": float(np.quantile(norms, q / 100)) for q in (90, 99)})
    out["max"] = float(norms.max())
    clip = max_grad_norm
    out["clipped_fraction"] = None if clip is None else float(np.mean(norms > clip))
    return out


def _episode_settings(cfg) -> dict:
    """Episodes, optimiser and seed shared by every meta-learned method."""
    keys = ("n_way", "n_episodes", "episodes_per_epoch", "meta_batch_size", "lr")
    out = {k: cfg[k] for k in (*keys, "n_val_episodes")}
    out.update(n_shot=tuple(cfg["meta_n_shot"]), n_query=cfg["meta_n_query"])
    out["n_annotators"] = tuple(cfg["meta_n_annotators"])
    out["random_state"] = cfg["seed"] if cfg["meta_seed"] is None else cfg["meta_seed"]
    return out


def base_estimator(cfg, learner=MetaLearner, **params) -> Model:
    """Our model with the benchmark's meta-training settings; its
    :class:`MetaLearner` (or the subclass ``learner``) gets the meta-training
    parameters of ``params``, the classifier the others
    (:func:`harness.split_params`).

    "Ours" is the paper's method, with pseudo-annotation (no longer the package
    default); w/o PA sets ``pseudo_annotation=False``.
    """
    settings = {
        "pseudo_annotation": True,
        "encoder": cfg["encoder"],
        "image_shape": (1, 28, 28),
        "annotator_mixture": tuple(cfg["meta_mixture"]),
        "max_grad_norm": cfg["max_grad_norm"],
        "representation": "meta",
        "n_em_iter": cfg["meta_em_iter"],
        "b": cfg["meta_b"],
        **_episode_settings(cfg),
    }
    return harness.meta_model({**settings, **params}, learner=learner)


def meta_fit(model, pools, validate=True):
    """``model`` meta-trained on the train pool (validated on the validation pool)
    and the :class:`harness.Timer` of its meta-training."""
    val = dict(zip(("X_val", "y_val"), pools["val"])) if validate else {}
    with warnings.catch_warnings(), Timer() as timer:
        warnings.simplefilter("ignore", MetaLearningWarning)
        model.meta_fit(*pools["train"], **val)
    return model, timer


def meta_record(model, timer, max_grad_norm) -> dict:
    """Times, best epoch, validation curves and gradient norms of a meta-training."""
    history = model.meta_history_
    curve = lambda key, *nan: [float(r.get(key, *nan)) for r in history]  # noqa: E731
    return {
        "wall_seconds": timer.seconds,
        "cpu_seconds": timer.cpu,
        "epoch_seconds": curve("dur"),
        "best_epoch": model.meta_best_epoch_,
        "val_accuracy": model.meta_val_accuracy_,
        "val_accuracy_input_em": model.no_meta_val_accuracy_,
        "valid_acc_curve": curve("valid_acc", np.nan),
        "train_loss_curve": curve("train_loss"),
        "grad_norm_max_curve": curve("grad_norm_max"),
        "grad_norm": grad_norm_stats(history, max_grad_norm),
    }


def meta_train(cfg, pools) -> tuple[dict, dict]:
    """Our model and w/o PA meta-trained and timed (also in alternated short runs),
    and the MAML of MaMV and MaDS."""
    # a warm-up: one-off costs of the first run would bias the first model's time
    n = 2 * cfg["meta_batch_size"]
    short = {"n_episodes": n, "episodes_per_epoch": n, "validation_classes": 0.0}
    meta_fit(base_estimator(cfg, **short), pools, validate=False)
    models, timing = {}, {}
    for name, pa in PSEUDO_ANNOTATION.items():
        harness.log(cfg, f"meta-training {name!r} ({cfg['n_episodes']} episodes)")
        models[name], t = meta_fit(base_estimator(cfg, pseudo_annotation=pa), pools)
        timing[name] = meta_record(models[name], t, cfg["max_grad_norm"])
        val = models[name].meta_val_accuracy_
        harness.log(cfg, f"  {t.seconds:.0f} s; validation {val}")
    wall = {m: timing[m]["wall_seconds"] for m in PSEUDO_ANNOTATION}
    timing["ratio_ours_over_wopa"] = wall[OURS] / wall[WOPA]
    # the load of a shared machine may change between the two long runs: ABBA
    short.update(n_episodes=cfg["timing_episodes"])
    short.update(episodes_per_epoch=cfg["timing_episodes"])
    rounds = [{} for _ in range(int(cfg["timing_rounds"]))]
    for r, seconds in enumerate(rounds):
        for name in list(PSEUDO_ANNOTATION)[:: -1 if r % 2 else 1]:
            model = base_estimator(cfg, pseudo_annotation=PSEUDO_ANNOTATION[name])
            model = harness.set_model_params(model, **short)
            seconds[name] = meta_fit(model, pools, False)[1].seconds
    if rounds:
        timing["paired_rounds"] = rounds
        ratios = [r[OURS] / r[WOPA] for r in rounds]
        timing["paired_ratio_median"] = float(np.median(ratios))
    epochs = {m: np.sum(timing[m]["epoch_seconds"]) for m in PSEUDO_ANNOTATION}
    timing["epoch_ratio_ours_over_wopa"] = float(epochs[OURS] / epochs[WOPA])
    if any(m in cfg["methods"] for m in MAML_METHODS):
        models[MAML_KEY], timing[MAML_KEY] = meta_train_maml(cfg, pools)
        timing["ratio_maml_over_wopa"] = timing[MAML_KEY]["wall_seconds"] / wall[WOPA]
    return models, timing


def meta_train_maml(cfg, pools) -> tuple[MAML, dict]:
    """The MAML of MaMV and MaDS meta-trained on clean episodes, and its record."""
    steps, first_order = cfg["maml_inner_steps"], cfg["maml_first_order"]
    kw = {"inner_steps": steps, "test_inner_steps": steps, "first_order": first_order}
    maml = MAML(inner_lr=cfg["maml_inner_lr"], **kw, **_episode_settings(cfg))
    harness.log(cfg, f"meta-training MAML ({cfg['n_episodes']} episodes)")
    with Timer() as t:
        maml.meta_fit(*pools["train"], *pools["val"])
    curve = lambda key: [float(r[key]) for r in maml.history_]  # noqa: E731
    rec = {"wall_seconds": t.seconds, "cpu_seconds": t.cpu}
    rec.update(best_epoch=maml.best_epoch_, val_accuracy=maml.val_accuracy_)
    rec.update(valid_acc_curve=curve("valid_acc"), train_loss_curve=curve("train_loss"))
    return maml, rec


# -- methods ------------------------------------------------------------------------


class _Context:
    """What the methods need on one pool: its pixels, our models' embeddings of it
    (and templates on them), the MAML and the chosen hyperparameters."""

    def __init__(self, cfg, models, X, selection=None):
        self.cfg, self.X, self.selection = cfg, X, selection
        self.maml = models.get(MAML_KEY)
        self.encoders, self.templates = {}, {}
        for name in [m for m in models if m != MAML_KEY]:  # embedded once per pool
            Z = models[name].meta_encoder_.transform(X, batch_size=500)
            encoder = harness.PrecomputedEncoder(Z, models[name].meta_encoder)
            self.encoders[name] = encoder
            self.templates[name] = clone(models[name]).set_params(meta_encoder=encoder)


#: The methods: ``build(context, seed)`` of a :class:`harness.TaskModel`.
REGISTRY = harness.Methods()


def method(name, *, pixels=False, meta=True, registry=REGISTRY):
    """Register ``build(ctx, seed) -> estimator`` as method ``name``, fitted on
    pool indices (on the pixels with ``pixels``) by a :class:`harness.TaskModel`."""

    def register(build):
        def task_model(ctx, seed):
            return harness.TaskModel(build(ctx, seed), ctx.X if pixels else None)

        registry.add(name, name, needs_meta=meta)(task_model)
        return build

    return register


def _em(base, **fixed):
    """Our EM in ``base``'s space; J and b chosen on validation unless ``fixed``."""

    def build(ctx, seed):
        params = {"n_em_iter": ctx.selection[base]["J"], "b": ctx.selection[base]["b"]}
        return clone(ctx.templates[base]).set_params(**{**params, **fixed})

    return build


def _agg(kind, seed):
    return MajorityVote(random_state=seed) if kind == "MV" else DawidSkene()


def _register_aggregating(k):
    """LR, RF, Pr and Ma on majority vote (``k="MV"``) or Dawid-Skene (``"DS"``)."""

    @method(f"LR{k}", pixels=True, meta=False)
    def _lr(ctx, seed):
        lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        return baselines.AggregateThenClassify(_agg(k, seed), lr, random_state=seed)

    @method(f"RF{k}", pixels=True, meta=False)
    def _rf(ctx, seed):
        rf = RandomForestClassifier(n_estimators=ctx.cfg["rf_n_estimators"])
        return baselines.AggregateThenClassify(_agg(k, seed), rf, random_state=seed)

    @method(f"Pr{k}")
    def _pr(ctx, seed):
        return baselines.PrototypeClassifier(ctx.encoders[WOPA], _agg(k, seed))

    @method(f"Ma{k}")
    def _ma(ctx, seed):
        steps = ctx.selection.get(f"Ma{k}", {}).get("steps")
        return MAMLAggregateClassifier(ctx.maml, _agg(k, seed), ctx.X, steps)


def _crowd_layer(ctx, seed, encoder=None, hidden=()):
    kw = {
        "n_epochs": ctx.cfg["cl_epochs"],
        "lr": ctx.cfg["cl_lr"],
        "random_state": seed,
    }
    return baselines.CrowdLayerClassifier(encoder, hidden_layer_sizes=hidden, **kw)


for _name in PSEUDO_ANNOTATION:
    method(_name)(_em(_name))
for _k in ("MV", "DS"):
    _register_aggregating(_k)
method("CL", pixels=True, meta=False)(
    lambda ctx, seed: _crowd_layer(ctx, seed, hidden=tuple(ctx.cfg["cl_hidden"]))
)
method("MCL")(lambda ctx, seed: _crowd_layer(ctx, seed, ctx.encoders[WOPA]))


@method("EM, no meta", pixels=True, meta=False)
def _em_input(ctx, seed):
    sel = ctx.selection[OURS]
    return Model(n_em_iter=sel["J"], b=sel["b"], representation="input")


def sensitivity(cfg) -> harness.Methods:
    """Our models with J (or b) fixed instead of chosen on validation."""
    out = harness.Methods()
    for base in PSEUDO_ANNOTATION:
        for J in cfg["em_iter_grid"]:
            method(f"{base} [J={J}]", registry=out)(_em(base, n_em_iter=int(J)))
    for b in cfg["b_grid"]:
        method(f"{OURS} [b={b:g}]", registry=out)(_em(OURS, b=float(f"{b:g}")))
    return out


# -- protocol -----------------------------------------------------------------------


def crowd_tasks(cfg, y, shot, R, n_tasks, *keys, mixture=MAIN_MIXTURE) -> list:
    """Seeded tasks of one cell on the pool labels ``y`` (seeded by ``keys``)."""
    kw = {"n_way": cfg["n_way"], "n_query": cfg["n_query"], "mixture": mixture}
    kw.update(n_tasks=n_tasks, n_shot=shot, n_annotators=R)
    return harness.sample_crowd_tasks(
        y, seed=harness.stable_seed(cfg["seed"], *keys), **kw
    )


def _read(task):
    support, query = index_features(task.support), index_features(task.query)
    return support, task.Y, query, task.query_y, task.seed


def accuracies(methods, tasks, ctx, seconds=None) -> dict:
    """Query accuracy of every method on every task, ``{method: [acc, ...]}``; the
    times of fit and predict are added up in ``seconds``."""
    rows = harness.evaluate(methods, harness.TaskSet(tasks, _read), ctx)
    for name, times in harness.column(rows, "seconds").items():
        if seconds is not None:
            seconds[name] = seconds.get(name, 0.0) + float(np.sum(times))
    return harness.column(rows)


def _cells(shots, annotators):
    return [(int(s), int(r)) for s in shots for r in annotators]


def select_hyperparameters(cfg, models, pools) -> dict:
    """Choose J, b (ours, w/o PA) and MAML fine-tuning steps on validation tasks."""
    ctx, tasks, y_val = _Context(cfg, models, pools["val"][0]), [], pools["val"][1]
    for shot, R in _cells(cfg["shots"], cfg["annotators"]):
        tasks += crowd_tasks(
            cfg, y_val, shot, R, cfg["n_val_tasks"], "validation", shot, R
        )
    em = [(int(J), float(b)) for J in cfg["em_iter_grid"] for b in cfg["b_grid"]]
    grid = {m: [{"J": J, "b": b} for J, b in em] for m in PSEUDO_ANNOTATION}
    for m in [m for m in MAML_METHODS if m in cfg["methods"] and ctx.maml]:
        grid[m] = [{"steps": int(s)} for s in cfg["maml_steps_grid"]]
    selection, J = {}, cfg["meta_em_iter"]
    for name, choices in grid.items():
        for choice in choices:
            ctx.selection = {name: choice}
            acc = accuracies(REGISTRY.select([name]), tasks, ctx)[name]
            choice["val_accuracy"] = float(np.mean(acc))
        # ties: the J of meta-training, or fewer fine-tuning steps
        prefer = lambda c: -abs(c["J"] - J) if "J" in c else -c["steps"]  # noqa: E731
        selection[name] = max(choices, key=lambda c: (c["val_accuracy"], prefer(c)))
        harness.log(cfg, f"validation choice for {name!r}: {selection[name]}")
    return {"selection": selection, "grid": grid, "n_tasks": len(tasks)}


def _settings(cfg):
    """(key, mixture, cells, n_tasks) of every test setting."""
    sweep, n = _cells(cfg["sweep_shots"], cfg["sweep_annotators"]), cfg["n_sweep_tasks"]
    out = [("main", list(MAIN_MIXTURE), _cells(cfg["shots"], cfg["annotators"]))]
    out[0] += (cfg["n_test_tasks"],)
    out += [(f"spammer_{m[2]:g}", list(m), sweep, n) for m in cfg["spammer_mixtures"]]
    return out + [(k, {k: 1.0}, sweep, n) for k in cfg["other_types"]]


def evaluate(cfg, models, pools, selection) -> tuple[dict, dict]:
    """Every setting, cell and method on the test alphabets (and seconds per method)."""
    X_test, y_test = pools["test"]
    ctx, extra = _Context(cfg, models, X_test, selection), sensitivity(cfg)
    registry = harness.Methods({**REGISTRY, **extra})
    methods = [m for m in cfg["methods"] if m in METHODS]
    raw, seconds = {}, {}
    for key, mixture, cells, n_tasks in _settings(cfg):
        raw[key] = {"mixture": mixture, "cells": {}}
        names = registry.select(methods + (list(extra) if key == "main" else []))
        for shot, R in cells:
            keys = ("test", key, shot, R)
            tasks = crowd_tasks(cfg, y_test, shot, R, n_tasks, *keys, mixture=mixture)
            with Timer() as t:
                acc = accuracies(names, tasks, ctx, seconds)
            ck = f"{shot}-shot, R={R}"
            raw[key]["cells"][ck] = {
                "n_shot": shot,
                "n_annotators": R,
                "accuracies": acc,
            }
            means = ", ".join(f"{m} {np.mean(acc[m]):.3f}" for m in methods[:4])
            done = f"{n_tasks} tasks in {t.seconds:.1f} s"
            harness.log(cfg, f"[{key}] {ck}: {done}; {means}")
    return raw, seconds


def _best(acc, names):
    means = {m: np.mean(acc[m]) for m in names if m in acc}
    return max(means, key=means.get) if means else None


def _cell_summary(cell) -> dict:
    """Mean ± s.e. of every method; ours against the best baseline and w/o PA."""
    acc, test = cell["accuracies"], harness.paired_ttest
    out = {k: cell[k] for k in ("n_shot", "n_annotators")}
    out["methods"] = {m: harness.summarize(a) for m, a in acc.items()}
    if OURS in acc:
        if (best := _best(acc, BASELINES)) is not None:
            out["best_baseline"] = best
            out["ours_vs_best_baseline"] = test(acc[OURS], acc[best])
        if WOPA in acc:
            out["ours_vs_wopa"] = test(acc[OURS], acc[WOPA])
        if (other := _best(acc, [m for m in METHODS if m != OURS])) is not None:
            out["best_other"] = other
            out["ours_best_or_tied"] = test(acc[OURS], acc[other])["verdict"] != "loss"
    return out


def summarize_results(cfg, raw) -> dict:
    """Per setting: the cell summaries, method averages and ours' headline."""
    summary = {}
    for key, setting in raw.items():
        cells = {ck: _cell_summary(c) for ck, c in setting["cells"].items()}
        cl = list(cells.values())
        avg = {
            m: float(np.mean([c["methods"][m]["mean"] for c in cl]))
            for m in cl[0]["methods"]
        }
        summary[key] = {"mixture": setting["mixture"], "cells": cells, "average": avg}
        if OURS not in avg or not (base := [m for m in BASELINES if m in avg]):
            continue
        best = max(base, key=avg.get)
        verdicts = [c.get("ours_vs_best_baseline", {}).get("verdict") for c in cl]
        h = {
            "ours": avg[OURS],
            "best_baseline": best,
            "best_baseline_accuracy": avg[best],
        }
        h.update(wopa=avg.get(WOPA), ours_minus_best_baseline=avg[OURS] - avg[best])
        h["ours_minus_wopa"] = avg[OURS] - avg[WOPA] if WOPA in avg else None
        for verdict, count in (("win", "won"), ("tie", "tied"), ("loss", "lost")):
            h[f"cells_{count}"] = verdicts.count(verdict)
        h["cells_best_or_tied_vs_all"] = sum(
            bool(c.get("ours_best_or_tied")) for c in cl
        )
        summary[key]["headline"] = {**h, "n_cells": len(cells)}
    return summary


def run(config=None, **overrides) -> dict:
    """Run the benchmark; return (and, with ``write``, save) its results.

    ``config`` and ``overrides`` override :func:`default_config` (``quick=True``
    selects the quick defaults first). The results hold ``config``,
    ``environment``, ``data``, ``meta_training`` (times, validation curves,
    gradient norms), ``hyperparameters`` (the validation choices), ``summary``
    (per setting and cell: mean, s.e., paired tests; averages, headline), ``raw``
    (per-task accuracies), ``method_seconds``, ``seconds`` and maybe ``files``.
    """
    cfg = harness.configure(default_config, {**(config or {}), **overrides})
    if not Path(cfg["data"]).is_dir():
        raise FileNotFoundError(
            f"Omniglot folder {cfg['data']!r} not found; pass --data DIR (it holds "
            "images_background_small1.zip and images_background_small2.zip)"
        )
    with Timer() as total:
        torch.manual_seed(cfg["seed"])
        data = load_pools(cfg)
        pools = data["pools"]
        harness.log(cfg, f"data: {data['info']}")
        with torch_threads(int(cfg["meta_threads"])):
            models, timing = meta_train(cfg, pools)
        n = int(cfg["eval_threads"])
        with torch_threads(n), threadpool_limits(n), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            with Timer() as t_sel:
                hyper = select_hyperparameters(cfg, models, pools)
            with Timer() as t_eval:
                raw, seconds = evaluate(cfg, models, pools, hyper["selection"])
        summary = summarize_results(cfg, raw)
    results = {"config": cfg, "environment": harness.environment()}
    results.update(data=data["info"], meta_training=timing, hyperparameters=hyper)
    results.update(summary=summary, raw=raw, method_seconds=seconds)
    times = {"total": total.seconds, "selection": t_sel.seconds}
    results["seconds"] = {**times, "evaluation": t_eval.seconds}
    if cfg["write"]:
        results["files"] = write_outputs(results)
    headline = summary["main"].get("headline")
    harness.log(cfg, f"main grid: {headline}; {total.seconds:.0f} s")
    return results


# -- outputs ------------------------------------------------------------------------


def _columns(setting, methods):
    """{method: (mean, sem)} of every cell of a setting, then of their averages."""
    stats = [c["methods"] for c in setting["cells"].values()]
    cols = [{m: (s[m]["mean"], s[m]["sem"]) for m in methods} for s in stats]
    return cols + [{m: (setting["average"][m], None) for m in methods}]


def _spammer_sweep(summary, methods):
    """Spammer ratios, ``{method: (mean, sem)}`` per ratio (over the sweep cells)
    and those cells; the main setting is the ratio 0.2. None without a sweep."""
    sweep = [(s["mixture"][2], s) for k, s in summary.items() if k[:8] == "spammer_"]
    if not sweep:
        return None
    cells = list(sweep[0][1]["cells"])
    sweep = sorted([*sweep, (MAIN_MIXTURE[2], summary["main"])], key=lambda c: c[0])
    pool = lambda s, m: harness.pooled([s["cells"][c]["methods"][m] for c in cells])  # noqa: E731
    return (
        [r for r, _ in sweep],
        [{m: pool(s, m) for m in methods} for _, s in sweep],
        cells,
    )


PAIRED = {
    "cell": "{cell}",
    "ours": "{methods[Ours][mean]:.3f}",
    "best baseline": lambda c: f"{c['best_baseline']} {c['baseline_mean']:.3f}",
    "difference": "{ours_vs_best_baseline[diff]:+.3f}",
    "t": "{ours_vs_best_baseline[t]:.2f}",
    "p": "{ours_vs_best_baseline[p]:.3g}",
    "verdict": "{ours_vs_best_baseline[verdict]}",
    "w/o PA": "{methods[w/o PA][mean]:.3f}",
    "ours - w/o PA": "{ours_vs_wopa[diff]:+.3f}",
    "p (vs w/o PA)": "{ours_vs_wopa[p]:.3g}",
}
TIMES = {
    "model": "{model}",
    "meta-training wall time (s)": "{wall_seconds:.0f}",
    "CPU time (s)": "{cpu_seconds:.0f}",
    "best validation accuracy": "{val_accuracy:.3f}",
    "best epoch": "{best_epoch}",
}
_PAIRED = "Ours against the best baseline of each cell (paired t-test)"
_SPAMMERS = "Accuracy against the spammer ratio"
_SELECTION = "Hyperparameters chosen on the validation alphabet"


def tables(results) -> list:
    """The result tables (:class:`harness.Table`), in the order of the page."""
    summary, cfg, tm = results["summary"], results["config"], results["meta_training"]
    main, Table = summary["main"], harness.Table
    methods = {m: DISPLAY.get(m, m) for m in METHODS if m in main["average"]}
    rows = harness.accuracy_rows(methods, _columns(main, methods), bold="max")
    out = [
        Table(
            "## Test accuracy, 4-way, mixture (expert, hammer, spammer) = (0.1, 0.7, "
            "0.2)\n\nMean ± standard error over the test tasks of each cell; bold: "
            "highest mean.",
            "Test accuracy (mean ± standard error), mixture (0.1, 0.7, 0.2)",
            ["method", *main["cells"], "average"],
            rows,
        )
    ]
    cells = [{"cell": k, **c} for k, c in main["cells"].items()]
    for c in cells:
        c["baseline_mean"] = c["methods"][c["best_baseline"]]["mean"]
    out.append(Table(f"## {_PAIRED}", _PAIRED, *harness.columns_table(PAIRED, cells)))
    if sweep := _spammer_sweep(summary, methods):
        ratios, cols, cells = sweep
        note = f"Average over the cells {cells}; mixtures (0.1, 0.9 - s, s)."
        header = ["method", *[f"spammers {r:g}" for r in ratios]]
        rows = harness.accuracy_rows(methods, cols)
        out.append(Table(f"## {_SPAMMERS}\n\n{note}", _SPAMMERS, header, rows))
    if kinds := [k for k in summary if k in ("pairwise_flipper", "classwise_spammer")]:
        others = {
            m: DISPLAY.get(m, m) for m in METHODS if m in summary[kinds[0]]["average"]
        }
        cols = [_columns(summary[k], others) for k in kinds]
        cols = [c for col in cols for c in col[:-1]] + [col[-1] for col in cols]
        header = [f"{k} ({c})" for k in kinds for c in summary[k]["cells"]]
        header = ["method", *header, *[f"{k} average" for k in kinds]]
        text = "## Other annotator types (every annotator of that type)"
        rows = harness.accuracy_rows(others, cols)
        out.append(Table(text, "Other annotator types", header, rows))
    avg, Js, bs = main["average"], cfg["em_iter_grid"], cfg["b_grid"]
    rows = [
        [DISPLAY[m], *[f"{avg[f'{m} [J={J}]']:.3f}" for J in Js]]
        for m in PSEUDO_ANNOTATION
    ]
    text = "## Sensitivity (test, main grid average; J and b were chosen on validation)"
    title = "Accuracy against {} (main grid average)"
    out.append(Table(text, title.format("J"), ["J", *map(str, Js)], rows))
    rows = [[DISPLAY[OURS], *[f"{avg[f'{OURS} [b={b:g}]']:.3f}" for b in bs]]]
    out.append(Table(None, title.format("b"), ["b", *[f"{b:g}" for b in bs]], rows))
    sel = results["hyperparameters"]["selection"]
    rows = [[m, f"J={sel[m]['J']}, b={sel[m]['b']:g}"] for m in PSEUDO_ANNOTATION]
    rows += [
        [m, f"fine-tuning steps: {sel[m]['steps']}"] for m in MAML_METHODS if m in sel
    ]
    rows = [[DISPLAY.get(m, m), c, f"{sel[m]['val_accuracy']:.3f}"] for m, c in rows]
    header = ["model", "choice", "validation accuracy"]
    out.append(Table(f"## {_SELECTION}", _SELECTION, header, rows))
    models = [
        {"model": DISPLAY.get(m, m), **t}
        for m, t in tm.items()
        if m in (OURS, WOPA, MAML_KEY)
    ]
    header, rows = harness.columns_table(TIMES, models)
    cpu = lambda m: f"{tm[m]['cpu_seconds'] / tm[WOPA]['cpu_seconds']:.3f}"  # noqa: E731
    rows.append(
        [
            "ratio paper's method / default",
            f"{tm['ratio_ours_over_wopa']:.3f}",
            cpu(OURS),
        ]
    )
    if "paired_ratio_median" in tm:
        label = f"ratio, median of {len(tm['paired_rounds'])} alternated runs of "
        label += f"{cfg['timing_episodes']} episodes"
        rows.append([label, f"{tm['paired_ratio_median']:.3f}", ""])
    if MAML_KEY in tm:
        ratio = f"{tm['ratio_maml_over_wopa']:.3f}"
        rows.append(["ratio MAML / default", ratio, cpu(MAML_KEY)])
    rows = [r + [""] * (len(header) - len(r)) for r in rows]
    out.append(Table("## Meta-training time", "Meta-training time", header, rows))
    return out


def _headline(results) -> str:
    h, tm = results["summary"]["main"]["headline"], results["meta_training"]
    paired = tm.get("paired_ratio_median", np.nan)
    return (
        f"**Headline** (average over the {h['n_cells']} cells at mixture "
        f"{MAIN_MIXTURE}): the default (w/o PA, clean episodes) {h['wopa']:.3f}; "
        f"the paper's method (with PA) {h['ours']:.3f} "
        f"({h['ours_minus_best_baseline']:+.3f} over the best baseline, "
        f"{h['best_baseline']} {h['best_baseline_accuracy']:.3f}; "
        f"{h['ours_minus_wopa']:+.3f} against the default). The paper's method vs "
        "the best "
        f"baseline of each cell (paired t-test, p < 0.05): {h['cells_won']} wins, "
        f"{h['cells_tied']} ties, {h['cells_lost']} losses; best or tied with every "
        f"method in {h['cells_best_or_tied_vs_all']} of {h['n_cells']} cells. "
        f"Meta-training wall time paper's method / default: "
        f"{tm['ratio_ours_over_wopa']:.3f} "
        f"(median of alternated short runs: {paired:.3f})."
    )


def write_outputs(results) -> dict:
    """JSON, CSV, Markdown and reST results and the PNG plots; returns their paths."""
    cfg, env, summary = results["config"], results["environment"], results["summary"]
    name, plots, main = cfg["name"], Path(cfg["plot_dir"]), summary["main"]
    csv, mix = [], lambda m: m if isinstance(m, dict) else "/".join(f"{v:g}" for v in m)
    for key, s in summary.items():
        for c in s["cells"].values():
            for m, st in c["methods"].items():
                row = {"setting": key, "mixture": mix(s["mixture"])}
                row.update(n_shot=c["n_shot"], n_annotators=c["n_annotators"])
                row.update(method=m, mean=st["mean"], sem=st["sem"], n_tasks=st["n"])
                csv.append(row)
    command = harness.benchmark_command("omniglot") + " --quick" * ("quick" in name)
    notes = [f"- **{m}**: {METHOD_NOTES[m]}" for m in METHODS if m in cfg["methods"]]
    page = [
        f"# Omniglot few-shot crowd benchmark ({name})",
        f"Generated by `{command}` in {results['seconds']['total']:.0f} s (torch "
        f"{env['torch']}, {env['cpu_count']} CPUs: {env['cpu']}).",
        f"Data: {results['data']}.",
        _headline(results),
        *tables(results),
        "## Methods\n\n" + "\n".join(notes),
    ]
    files = harness.write_page(
        cfg["output_dir"], name, results, page, csv=csv, rst_bold=False
    )
    shown = (OURS, WOPA, "PrDS", "PrMV", "MaDS", "MCL", "LRDS", "RFDS", "CL")
    shown = [m for m in shown if m in main["average"]]
    if sweep := _spammer_sweep(summary, shown):
        ratios, cols, cells = sweep
        files["plot_spammer_ratio"] = str(
            harness.line_plot(
                plots / f"{name}_spammer_ratio.png",
                ratios,
                {
                    DISPLAY.get(m, m): tuple(map(list, zip(*[c[m] for c in cols])))
                    for m in shown
                },
                xlabel="spammer ratio of the target annotators",
                ylabel="test accuracy",
                title=f"Omniglot, 4-way, average over {', '.join(cells)}",
                xticks=ratios,
            )
        )
    Js, series, cl = cfg["em_iter_grid"], {}, main["cells"].values()
    for base in PSEUDO_ANNOTATION:
        stats = [
            harness.pooled([c["methods"][f"{base} [J={J}]"] for c in cl]) for J in Js
        ]
        series[DISPLAY[base]] = tuple(map(list, zip(*stats)))
    best = main["headline"]["best_baseline"]
    series[f"{best} (best baseline)"] = (
        [main["average"][best]] * len(Js),
        [0.0] * len(Js),
    )
    files["plot_em_iterations"] = str(
        harness.line_plot(
            plots / f"{name}_em_iterations.png",
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


# -- studies: configurations of this benchmark -------------------------------------


def study_config(default_config, config=None, overrides=None) -> dict:
    """Configuration of a study script (``omniglot_clipping.py`` and the like):
    :func:`harness.configure`, with ``omniglot`` (the overrides of this
    benchmark's own configuration) merged key by key."""
    config = {**(config or {}), **(overrides or {})}
    return harness.configure(default_config, config, nested=("omniglot",))


def study_command_line(script, description, quick_help, argv=None, **options):
    """The overrides of a study's command line (:func:`harness.command_line`, with
    ``--data``, the Omniglot folder, and ``--name``, the stem of the files)."""
    data = (str, "folder with the Omniglot zip archives")
    name = (str, "stem of the output files")
    overrides = harness.command_line(
        script, description, quick_help, argv, data=data, name=name, **options
    )
    if "data" in overrides:
        overrides["omniglot"] = {"data": overrides.pop("data")}
    return overrides


def meta_study(cfg, ocfg, rows) -> dict:
    """Results of a study of meta-training alone (``omniglot_clipping.py`` and the
    like): ``rows(pools)`` (their entries) timed with the meta-training threads of
    the benchmark's configuration ``ocfg``."""
    pools = load_pools(ocfg)["pools"]
    with torch_threads(int(ocfg["meta_threads"])), Timer() as total:
        out = rows(pools)
    results = {
        "config": {**cfg, "omniglot": ocfg},
        "environment": harness.environment(),
    }
    return {**results, **out, "seconds": total.seconds}


def write_study(results, script, heading, text, rst_title, table, footer=None):
    """``<name>.json``, ``.md`` and ``_tables.rst`` of a study; returns their paths."""
    cfg = results["config"]
    out_dir = {**default_config(), **cfg["omniglot"]}["output_dir"]
    intro = (
        f"`{harness.benchmark_command(script)}` in {results['seconds']:.0f} s; {text}"
    )
    page = [
        f"# {heading} ({cfg['name']})",
        intro,
        harness.Table(None, rst_title, *table),
    ]
    return harness.write_page(
        out_dir, cfg["name"], results, [*page, footer], rst_bold=False
    )


# -- command line -------------------------------------------------------------------


def parse_max_grad_norm(value):
    """A ``max_grad_norm`` from the command line: a float, or ``"none"`` for None."""
    return None if value.lower() == "none" else float(value)


def main(argv=None):
    """Command-line entry point."""
    clip = "meta-gradient clipping of both models ('none': off; default 1.0)"
    rst = "print the tables of a results file as reStructuredText and exit"
    replot = "rewrite the tables and plots of a results file and exit"
    overrides = study_command_line(
        "omniglot.py",
        "Omniglot few-shot crowd benchmark: ours vs the paper's baselines.",
        "a few minutes: few episodes and tasks",
        argv,
        seed=(int, None),
        n_episodes=(int, "meta-training episodes"),
        n_test_tasks=(int, "test tasks per main cell"),
        max_grad_norm=(parse_max_grad_norm, clip),
        rst_from={"metavar": "JSON", "help": rst},
        replot_from={"metavar": "JSON", "help": replot},
    )
    overrides.update(overrides.pop("omniglot", {}))  # --data
    if path := overrides.get("replot_from") or overrides.get("rst_from"):
        results = json.loads(Path(path).read_text())
        results.pop("files", None)
        if "replot_from" in overrides:
            print(write_outputs(results))
        else:
            rst = harness.rst_tables(tables(results), bold=False)
            print("\n\n".join(harness.rst_csv_table(*t) for t in rst) + "\n")
        return
    run(overrides)


if __name__ == "__main__":
    main()
