"""LabelMe benchmark: few-shot learning from real crowd labels, and all the data."""
# SPDX-License-Identifier: BSD-3-Clause

# Real annotators: the LabelMe images of Rodrigues & Pereira (AAAI 2018), 512-d
# VGG16 features, labelled by 59 Amazon Mechanical Turk workers (about 2.5
# labels per training image).
#
#   python benchmarks/labelme.py --quick      # a few minutes on 2 CPU cores
#   python benchmarks/labelme.py              # the full run
#
# Protocol (fixed before any result was seen):
# - class splits: the 8 classes are split 4 + 4 into source and target classes in
#   four fixed ways, so that every class is a target class in exactly two splits;
# - meta-training, per split: the train and valid images of the 4 source classes
#   with their gold labels; 20 % of them (stratified) are held out for validation
#   tasks (early stopping and the encoder check of meta_fit). Only 4 source
#   classes exist, so validation tasks use held-out images of the same classes;
# - target tasks, per split: 4-way tasks on the target classes. The support is
#   1, 3 or 5 crowd-labelled training images per target class (chosen by gold
#   class, which the methods never see), or all crowd-labelled training images
#   of the target classes ("all"), with their REAL annotations. A label naming a
#   non-target class is treated as missing, and counted; a support image left
#   without any label is removed from the support (for every method), and
#   counted; a draw whose remaining labels name fewer than 2 classes is redrawn
#   (counted). The query set is every test image of the target classes;
# - every method is evaluated on the same tasks; mean accuracy and standard
#   error over the tasks (n_tasks per split, all splits), paired t-tests;
# - the full-data setting: all 1000 crowd-labelled training images, 8 classes,
#   no source tasks, evaluated on the 1188 test images, next to approximate
#   reference points attributed to Rodrigues & Pereira (2018), whom the data
#   README cites without numbers (not re-verified here): MLP on gold labels
#   about 0.92, on MV labels about 0.80, on DS labels about 0.83, best crowd
#   model about 0.87.
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
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
if str(_HERE.parent) not in sys.path:  # a source checkout without installation
    sys.path.insert(1, str(_HERE.parent))

import harness  # noqa: E402
from harness import (  # noqa: E402
    Timer,
    fmt_acc,
    markdown_table,
    paired_ttest,
    rst_csv_table,
    stable_seed,
    summarize,
)

from sklearn_metaannot import (  # noqa: E402
    CrowdLabelMatrix,
    DawidSkene,
    MajorityVote,
    MetaAnnotatorClassifier,
)
from sklearn_metaannot.baselines import (  # noqa: E402
    AggregateThenClassify,
    CrowdLayerClassifier,
    PrototypeClassifier,
)
from sklearn_metaannot.datasets import load_labelme  # noqa: E402

REPO = _HERE.parent
DEFAULT_DATA = harness.SHARED_DATA / "labelme"

#: Target classes of the four fixed splits (the other 4 classes are the source).
#: Every class is a target class in exactly two splits.
SPLITS = ((4, 5, 6, 7), (0, 1, 2, 3), (1, 3, 5, 7), (0, 2, 4, 6))

OURS = "ours"
#: Few-shot methods: key -> (label, description).
METHODS = {
    "ours": (
        "Ours",
        "MetaAnnotatorClassifier with its defaults: residual-MLP encoder "
        "meta-learned on clean episodes (pseudo_annotation=False); EM in the "
        "latent space that representation='auto' (the default) chooses per task "
        "from the crowd labels: the meta-learned one or the input features",
    ),
    "ours_meta": (
        "Ours, always meta",
        "the same model with representation='meta': always the "
        "meta-learned latent space",
    ),
    "ours_fw": (
        "Ours, feature weights",
        "the same as Ours (representation='auto') with the "
        "'feature_weights' encoder (a per-feature re-weighting that starts at the "
        "identity)",
    ),
    "em_auto": (
        "EM, no meta (auto)",
        "our EM without meta-learning, representation='auto': "
        "standardised or globally scaled features, chosen per task from the crowd "
        "labels",
    ),
    "ours_sparse": (
        "Ours, sparse PA",
        "the same, meta-learned with sparse "
        "pseudo-annotators (R = 10-30, annotation_rate 0.125: about 2.5 "
        "labels per image, as the real crowd)",
    ),
    "ours_mlp": (
        "Ours, MLP encoder",
        "the same as Ours with the package's default 'mlp' encoder (512 -> 256 -> 64)",
    ),
    "em_global": (
        "EM, no meta (global scaling)",
        "our EM on the features scaled by "
        "one global mean and standard deviation of the support "
        "(representation='scaled') = the residual encoder before meta-training",
    ),
    "em_input": (
        "EM, no meta (standardised)",
        "our EM on per-feature standardised features (representation='input')",
    ),
    "ours_pa": (
        "Ours, with PA",
        "the paper's method: the same encoder and EM as Ours, meta-learned "
        "with pseudo-annotation (R = 3-7 dense simulated annotators)",
    ),
    "prmv": ("PrMV", "prototypes from soft majority-vote labels in the w/o-PA space"),
    "lrmv": (
        "LRMV",
        "majority vote, then logistic regression on standardised features",
    ),
    "lrds": ("LRDS", "Dawid-Skene, then logistic regression on standardised features"),
    "cl": (
        "CL",
        "crowd layer (MW) on an MLP (64 hidden units), standardised "
        "features, target support only",
    ),
    "gold": (
        "LR on gold (ceiling)",
        "logistic regression on the gold labels of the same support",
    ),
    "gold_proto": (
        "Prototypes on gold (ceiling)",
        "class means of the gold labels of "
        "the same support, features scaled globally (nearest prototype)",
    ),
}
#: Meta-learned models each method needs.
NEEDS = {
    "ours": "wopa",
    "ours_meta": "wopa",
    "ours_fw": "fw",
    "ours_sparse": "sparse",
    "ours_mlp": "mlp",
    "ours_pa": "pa",
    "prmv": "wopa",
}

#: Full-data setting: key -> label.
FULL_METHODS = {
    "em_global": "EM, no meta (global scaling)",
    "em_input": "EM, no meta (standardised)",
    "lr_em": "LR on our EM's labels",
    "lrmv": "LR on MV labels",
    "lrds": "LR on DS labels",
    "mlpmv": "MLP on MV labels",
    "mlpds": "MLP on DS labels",
    "cl": "Crowd layer (MLP 64)",
    "gold_lr": "LR on gold labels",
    "gold_mlp": "MLP on gold labels",
}
#: Approximate reference points attributed to Rodrigues & Pereira (2018); the data
#: README cites that paper but lists no numbers, and they were not re-verified here.
REFERENCES = {
    "MLP on gold labels": 0.92,
    "MLP on MV labels": 0.80,
    "MLP on DS labels": 0.83,
    "best crowd model": 0.87,
}


def default_config(quick=False) -> dict:
    """The configuration of the full run, or of the ``--quick`` run.

    Parameters
    ----------
    quick : bool, default=False
        Two splits, 5 tasks per split and setting, 600 meta-training episodes,
        one seed in the full-data setting.

    Returns
    -------
    dict
        Every knob of the benchmark; ``run`` accepts any subset as overrides.
    """
    cfg = {
        "name": "labelme",
        "data": str(DEFAULT_DATA),
        "seed": 0,
        "splits": [list(s) for s in SPLITS],
        "shots": [1, 3, 5, "all"],
        "n_tasks": 25,  # per split and few-shot setting (4 splits: 100 tasks)
        "methods": list(METHODS),
        # meta-training (every meta-learned model of a split)
        "encoder": "residual_mlp",
        "hidden_layer_sizes": [256],
        "embedding_dim": 64,
        "n_way": 4,
        "meta_n_shot": [1, 5],
        "meta_n_query": 10,
        "meta_n_annotators": [3, 7],
        "meta_mixture": [0.1, 0.7, 0.2],
        "sparse_n_annotators": [10, 30],
        "sparse_annotation_rate": 0.125,
        "n_episodes": 2000,
        "episodes_per_epoch": 200,
        "meta_batch_size": 4,
        "n_val_episodes": 100,
        "val_fraction": 0.2,
        "lr": 1e-3,
        "max_grad_norm": 1.0,
        # EM (every variant of ours; the package defaults)
        "n_em_iter": 3,
        "tau": 0.0,
        "b": 10.0,
        "c": [2.0, 1.0],
        # baselines
        "cl_hidden": [64],
        "cl_epochs": 200,
        "cl_lr": 0.01,
        # full-data setting
        "full_data": True,
        "full_methods": list(FULL_METHODS),
        "full_seeds": [0, 1, 2],
        "mlp_hidden": [128],
        "threads": 1,  # torch threads (1: no spinning threads on a shared machine)
        # outputs
        "output_dir": str(REPO / "benchmarks" / "results"),
        "plot_dir": str(REPO / "docs" / "_static" / "benchmarks"),
        "write": True,
        "verbose": 1,
    }
    if quick:
        cfg.update(
            name="labelme_quick",
            splits=[list(SPLITS[0]), list(SPLITS[2])],
            n_tasks=5,
            n_episodes=600,
            n_val_episodes=30,
            full_seeds=[0],
        )
    return cfg


def _log(cfg, *args):
    if cfg.get("verbose"):
        print(*args, flush=True)


# -- data and tasks ------------------------------------------------------------


def _em_params(cfg):
    return {
        "n_em_iter": cfg["n_em_iter"],
        "tau": cfg["tau"],
        "b": cfg["b"],
        "c": tuple(cfg["c"]),
    }


def _em_global(X, cfg, seed):
    return MetaAnnotatorClassifier(
        representation="scaled", random_state=seed, **_em_params(cfg)
    )


def crowd_labels(answers, target):
    """Annotations of the support restricted to the target classes.

    Parameters
    ----------
    answers : ndarray of shape (n_support, n_annotators)
        LabelMe answers (class ids, -1 = not labelled).
    target : sequence of int
        Target class ids; code k means ``target[k]``.

    Returns
    -------
    codes : ndarray of shape (n_support, n_active)
        Label codes in ``0 .. len(target) - 1``, -1 when missing, for the
        annotators with at least one target-class label on the support.
    stats : dict
        ``labels`` (all labels on the support), ``non_target`` (labels naming a
        non-target class, treated as missing), ``unlabelled`` (support images
        left without a label), ``annotators`` (active ones), ``named_classes``.
    """
    target = np.asarray(target)
    lut = np.full(max(int(answers.max(initial=0)), int(target.max())) + 1, -1)
    lut[target] = np.arange(len(target))
    labelled = answers >= 0
    codes = np.where(labelled, lut[np.where(labelled, answers, 0)], -1)
    non_target = labelled & (codes < 0)
    active = (codes >= 0).any(axis=0)
    codes = codes[:, active]
    stats = {
        "labels": int(labelled.sum()),
        "non_target": int(non_target.sum()),
        "unlabelled": int((~(codes >= 0).any(axis=1)).sum()),
        "annotators": int(active.sum()),
        "named_classes": int(np.unique(codes[codes >= 0]).size),
    }
    return codes, stats


def make_tasks(data, target, shot, n_tasks, seed, split_index) -> tuple[list, int]:
    """The target tasks of one split and setting (the same for every method).

    Returns
    -------
    tasks : list of dict
        ``support`` (train indices, images without a label removed), ``Y``
        (CrowdLabelMatrix over the codes ``0..3``), ``y`` (gold codes of the
        support), ``stats`` and ``seed``.
    redrawn : int
        Draws rejected because their labels named fewer than 2 classes.
    """
    target = np.asarray(target)
    y = data.y_train
    pool = np.flatnonzero(np.isin(y, target))
    n = 1 if shot == "all" else n_tasks
    tasks, redrawn = [], 0
    for t in range(n):
        rng = np.random.default_rng(
            stable_seed(seed, "labelme-task", split_index, str(shot), t)
        )
        for _ in range(1000):
            if shot == "all":
                support = pool
            else:
                support = np.concatenate(
                    [
                        rng.choice(pool[y[pool] == k], int(shot), replace=False)
                        for k in target
                    ]
                )
            codes, stats = crowd_labels(data.answers[support], target)
            if stats["named_classes"] >= 2:
                break
            redrawn += 1
        else:
            raise RuntimeError("could not draw a task whose labels name 2 classes")
        keep = (codes >= 0).any(axis=1)
        Y = codes[keep].astype(float)
        Y[Y < 0] = np.nan
        tasks.append(
            {
                "support": support[keep],
                "Y": CrowdLabelMatrix.from_dense(Y, classes=np.arange(len(target))),
                "y": np.searchsorted(target, y[support[keep]]),
                "stats": {**stats, "support": len(support), "kept": int(keep.sum())},
                "seed": int(rng.integers(2**31 - 1)),
            }
        )
    return tasks, redrawn


# -- meta-training -------------------------------------------------------------


def _meta_estimator(cfg, kind, seed):
    params = dict(
        encoder=cfg["encoder"],
        hidden_layer_sizes=tuple(cfg["hidden_layer_sizes"]),
        embedding_dim=cfg["embedding_dim"],
        n_way=cfg["n_way"],
        n_shot=tuple(cfg["meta_n_shot"]),
        n_query=cfg["meta_n_query"],
        n_annotators=tuple(cfg["meta_n_annotators"]),
        annotator_mixture=tuple(cfg["meta_mixture"]),
        n_episodes=cfg["n_episodes"],
        episodes_per_epoch=cfg["episodes_per_epoch"],
        meta_batch_size=cfg["meta_batch_size"],
        n_val_episodes=cfg["n_val_episodes"],
        lr=cfg["lr"],
        max_grad_norm=cfg["max_grad_norm"],
        random_state=seed,
        **_em_params(cfg),
    )
    if kind in ("pa", "sparse"):
        params["pseudo_annotation"] = True
    if kind == "sparse":
        params["n_annotators"] = tuple(cfg["sparse_n_annotators"])
        params["annotation_rate"] = cfg["sparse_annotation_rate"]
    elif kind == "mlp":
        params["encoder"] = "mlp"
    elif kind == "fw":
        params["encoder"] = "feature_weights"
    return MetaAnnotatorClassifier(**params)


def meta_train(cfg, data, target, split_index) -> tuple[dict, dict]:
    """Meta-learn the models the configured methods need on one split's source."""
    source = np.setdiff1d(np.arange(8), target)
    X = np.vstack([data.X_train, data.X_valid])
    y = np.concatenate([data.y_train, data.y_valid])
    keep = np.isin(y, source)
    X, y = X[keep], y[keep]
    rng = np.random.default_rng(stable_seed(cfg["seed"], "labelme-val", split_index))
    is_val = np.zeros(len(y), dtype=bool)
    for k in source:  # stratified hold-out of source images for validation tasks
        idx = np.flatnonzero(y == k)
        is_val[
            rng.choice(idx, int(round(cfg["val_fraction"] * len(idx))), replace=False)
        ] = True
    kinds = sorted({NEEDS[m] for m in cfg["methods"] if m in NEEDS})
    models, info = {}, {}
    for kind in kinds:
        seed = stable_seed(cfg["seed"], "labelme-meta", split_index, kind)[0]
        seed = int(np.random.default_rng(seed).integers(2**31 - 1))
        est = _meta_estimator(cfg, kind, seed)
        with Timer() as timer, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.meta_fit(X[~is_val], y[~is_val], X_val=X[is_val], y_val=y[is_val])
        models[kind] = est
        info[kind] = {
            "seconds": timer.seconds,
            "val_accuracy": est.meta_val_accuracy_,
            "no_meta_val_accuracy": est.no_meta_val_accuracy_,
            "best_epoch": est.meta_best_epoch_,
            "selected": est.meta_selected_,
            "warnings": sorted(
                {
                    str(w.message)[:120]
                    for w in caught
                    if "MetaLearning" in type(w.message).__name__
                }
            ),
        }
        _log(
            cfg,
            f"  split {split_index} meta-trained {kind:>6}: "
            f"{timer.seconds:6.1f} s, val acc {est.meta_val_accuracy_:.3f} "
            f"(no meta {est.no_meta_val_accuracy_:.3f}), best epoch "
            f"{est.meta_best_epoch_}",
        )
    return models, {
        "source": source.tolist(),
        "target": list(target),
        "n_source_train": int((~is_val).sum()),
        "n_source_val": int(is_val.sum()),
        "models": info,
    }


# -- methods -------------------------------------------------------------------


def _logistic():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def fit_predict(method, models, cfg, X, Y, y_gold, X_query, seed):
    """Fit ``method`` on one support and predict the query codes."""
    if method in ("ours", "ours_fw", "ours_sparse", "ours_mlp", "ours_pa"):
        est = clone(models[NEEDS[method]]).fit(X, Y)
    elif method == "ours_meta":
        est = clone(models["wopa"]).set_params(representation="meta").fit(X, Y)
    elif method == "em_auto":
        est = MetaAnnotatorClassifier(random_state=seed, **_em_params(cfg)).fit(X, Y)
    elif method == "em_global":
        est = _em_global(X, cfg, seed).fit(X, Y)
    elif method == "em_input":
        est = MetaAnnotatorClassifier(
            representation="input", random_state=seed, **_em_params(cfg)
        ).fit(X, Y)
    elif method == "prmv":
        est = PrototypeClassifier(
            models["wopa"], MajorityVote(random_state=seed), random_state=seed
        ).fit(X, Y)
    elif method == "lrmv":
        est = AggregateThenClassify(
            MajorityVote(random_state=seed), _logistic(), random_state=seed
        ).fit(X, Y)
    elif method == "lrds":
        est = AggregateThenClassify(
            DawidSkene(random_state=seed), _logistic(), random_state=seed
        ).fit(X, Y)
    elif method == "cl":
        est = CrowdLayerClassifier(
            hidden_layer_sizes=tuple(cfg["cl_hidden"]),
            n_epochs=cfg["cl_epochs"],
            lr=cfg["cl_lr"],
            random_state=seed,
        ).fit(X, Y)
    elif method in ("gold", "gold_proto"):
        if len(np.unique(y_gold)) < 2:
            return np.full(len(X_query), y_gold[0])
        if method == "gold":
            est = _logistic().fit(X, y_gold)
        else:  # our EM with one perfect annotator: the class means, tau = 0
            est = _em_global(X, cfg, seed).fit(X, y_gold)
    else:
        raise ValueError(f"unknown method {method!r}; known: {list(METHODS)}")
    return np.asarray(est.predict(X_query)).astype(np.int64)


def support_label_accuracy(task, seed) -> dict:
    """Accuracy of the aggregated support labels against the gold labels.

    Majority vote, our DawidSkene (defaults), and our classifier's MAP-EM on
    constant features (Dawid-Skene with its Dirichlet priors b and c), 50
    iterations.
    """
    Y, gold = task["Y"], task["y"]
    n = len(gold)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mv = MajorityVote(random_state=seed).fit(Y).labels_
        ds = DawidSkene(random_state=seed).fit(Y).labels_
        em = MetaAnnotatorClassifier(representation="input", n_em_iter=50)
        em.fit(np.zeros((n, 1)), Y)
    return {
        "mv": float(np.mean(mv.astype(np.int64) == gold)),
        "ds": float(np.mean(ds.astype(np.int64) == gold)),
        "map_em": float(np.mean(np.argmax(em.sample_posterior_, axis=1) == gold)),
    }


def query_set(data, target):
    """Every test image of the ``target`` classes, with its class code."""
    in_target = np.isin(data.y_test, target)
    return data.X_test[in_target], np.searchsorted(target, data.y_test[in_target])


def evaluate_split(cfg, data, target, split_index, models) -> dict:
    """Accuracies of every method on every task of one split, per setting."""
    target = np.asarray(target)
    X_query, y_query = query_set(data, target)
    out = {}
    for shot in cfg["shots"]:
        tasks, redrawn = make_tasks(
            data, target, shot, cfg["n_tasks"], cfg["seed"], split_index
        )
        acc = {m: [] for m in cfg["methods"]}
        seconds = dict.fromkeys(cfg["methods"], 0.0)
        for task in tasks:
            X = data.X_train[task["support"]]
            for method in cfg["methods"]:
                with Timer() as timer, warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pred = fit_predict(
                        method,
                        models,
                        cfg,
                        X,
                        task["Y"],
                        task["y"],
                        X_query,
                        task["seed"],
                    )
                seconds[method] += timer.seconds
                acc[method].append(float(np.mean(pred == y_query)))
        out[str(shot)] = {
            "accuracy": acc,
            "support_label_accuracy": [
                support_label_accuracy(t, t["seed"]) for t in tasks
            ],
            "seconds": seconds,
            "stats": [t["stats"] for t in tasks],
            "redrawn": redrawn,
            "n_query": int(len(y_query)),
        }
        _log(
            cfg,
            f"  split {split_index} shot {shot!s:>3}: "
            + ", ".join(f"{METHODS[m][0]} {np.mean(v):.3f}" for m, v in acc.items()),
        )
    return out


# -- full-data setting -----------------------------------------------------------------


def _mlp(seed, cfg):
    return make_pipeline(
        StandardScaler(),
        MLPClassifier(
            tuple(cfg["mlp_hidden"]),
            alpha=1e-2,
            max_iter=500,
            early_stopping=False,
            random_state=seed,
        ),
    )


def full_data(cfg, data) -> dict:
    """All 1000 crowd-labelled images, 8 classes, no source tasks."""
    X, Xt, yt = data.X_train, data.X_test, data.y_test
    Y = data.crowd_train
    out = {}
    for method in cfg["full_methods"]:
        stochastic = method in ("mlpmv", "mlpds", "cl", "gold_mlp")
        accs, secs = [], []
        for seed in cfg["full_seeds"] if stochastic else cfg["full_seeds"][:1]:
            with Timer() as timer, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if method == "em_global":
                    est = _em_global(X, cfg, seed).fit(X, Y)
                elif method == "em_input":
                    est = MetaAnnotatorClassifier(
                        representation="input", random_state=seed, **_em_params(cfg)
                    ).fit(X, Y)
                elif method == "lr_em":
                    em = _em_global(X, cfg, seed).fit(X, Y)
                    labels = em.classes_[np.argmax(em.sample_posterior_, axis=1)]
                    est = _logistic().fit(X, labels)
                elif method in ("lrmv", "lrds", "mlpmv", "mlpds"):
                    agg = (
                        MajorityVote(random_state=seed)
                        if method.endswith("mv")
                        else DawidSkene(random_state=seed)
                    )
                    clf = _logistic() if method.startswith("lr") else _mlp(seed, cfg)
                    est = AggregateThenClassify(agg, clf, random_state=seed).fit(X, Y)
                elif method == "cl":
                    est = CrowdLayerClassifier(
                        hidden_layer_sizes=tuple(cfg["cl_hidden"]),
                        n_epochs=cfg["cl_epochs"],
                        lr=cfg["cl_lr"],
                        random_state=seed,
                    ).fit(X, Y)
                elif method == "gold_lr":
                    est = _logistic().fit(X, data.y_train)
                elif method == "gold_mlp":
                    est = _mlp(seed, cfg).fit(X, data.y_train)
                else:
                    raise ValueError(f"unknown full-data method {method!r}")
                accs.append(float(np.mean(np.asarray(est.predict(Xt)) == yt)))
            secs.append(timer.seconds)
        out[method] = {
            "accuracy": float(np.mean(accs)),
            "sd": float(np.std(accs, ddof=1)) if len(accs) > 1 else None,
            "runs": accs,
            "seconds": float(np.mean(secs)),
        }
        _log(cfg, f"  full data {FULL_METHODS[method]:<32} {np.mean(accs):.4f}")
    mv = MajorityVote(random_state=0).fit(Y)
    ds = DawidSkene(random_state=0).fit(Y)
    labelled = data.answers >= 0
    return {
        "methods": out,
        "references": REFERENCES,
        "label_accuracy": {
            "majority_vote": float(np.mean(mv.labels_ == data.y_train)),
            "dawid_skene": float(np.mean(ds.labels_ == data.y_train)),
            "annotations": float(
                np.mean(
                    data.answers[labelled]
                    == np.broadcast_to(data.y_train[:, None], labelled.shape)[labelled]
                )
            ),
        },
        "labels_per_image": float(labelled.sum(axis=1).mean()),
    }


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
        ``config``, ``environment``, ``meta_training`` (per split), ``raw`` (per
        split and setting: per-task accuracies, label statistics), ``summary``
        (per setting and method: mean, standard error, n, paired t-test against
        ours), ``label_stats``, ``full_data``, ``wall_seconds`` and, when written,
        ``files``.
    """
    config = {**(config or {}), **overrides}
    cfg = default_config(quick=bool(config.pop("quick", False)))
    unknown = set(config) - set(cfg)
    if unknown:
        raise ValueError(f"unknown configuration keys {sorted(unknown)}")
    cfg.update(config)
    cfg["shots"] = [s if s == "all" else int(s) for s in cfg["shots"]]
    bad = [m for m in cfg["methods"] if m not in METHODS]
    if bad:
        raise ValueError(f"unknown methods {bad}; known: {list(METHODS)}")
    t_start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(int(cfg["threads"]))
    try:
        data = load_labelme(cfg["data"])
        results = {
            "config": cfg,
            "environment": harness.environment(),
            "meta_training": [],
            "raw": [],
        }
        for i, target in enumerate(cfg["splits"]):
            _log(cfg, f"split {i}: target classes {target}")
            models, info = meta_train(cfg, data, target, i)
            results["meta_training"].append(info)
            results["raw"].append(evaluate_split(cfg, data, target, i, models))
        results["summary"], results["label_stats"] = summarize_results(cfg, results)
        if cfg["full_data"]:
            _log(cfg, "full-data setting (8 classes, 1000 crowd-labelled images)")
            results["full_data"] = full_data(cfg, data)
    finally:
        torch.set_num_threads(threads)
    results["wall_seconds"] = time.perf_counter() - t_start
    if cfg["write"]:
        results["files"] = write_outputs(results)
    return results


def summarize_results(cfg, results) -> tuple[dict, dict]:
    """Pool the splits: mean, standard error and paired t-tests per setting."""
    summary, label_stats = {}, {}
    for shot in map(str, cfg["shots"]):
        per_method = {
            m: sum((r[shot]["accuracy"][m] for r in results["raw"]), [])
            for m in cfg["methods"]
        }
        cell = {}
        for m, accs in per_method.items():
            cell[m] = summarize(accs)
            if OURS in per_method and m != OURS:
                cell[m]["vs_ours"] = paired_ttest(per_method[OURS], accs)
            cell[m]["seconds_per_task"] = sum(
                r[shot]["seconds"][m] for r in results["raw"]
            ) / max(len(accs), 1)
        summary[shot] = cell
        stats = [s for r in results["raw"] for s in r[shot]["stats"]]
        labels = sum(s["labels"] for s in stats)
        non_target = sum(s["non_target"] for s in stats)
        label_stats[shot] = {
            "n_tasks": len(stats),
            "support_images": float(np.mean([s["support"] for s in stats])),
            "labels": labels,
            "non_target_labels": non_target,
            "non_target_fraction": non_target / labels if labels else float("nan"),
            "unlabelled_images_removed": sum(s["unlabelled"] for s in stats),
            "removed_fraction": sum(s["unlabelled"] for s in stats)
            / max(sum(s["support"] for s in stats), 1),
            "annotators_per_task": float(np.mean([s["annotators"] for s in stats])),
            "labels_per_kept_image": (labels - non_target)
            / max(sum(s["kept"] for s in stats), 1),
            "redrawn_tasks": sum(r[shot]["redrawn"] for r in results["raw"]),
        }
        sla = [a for r in results["raw"] for a in r[shot]["support_label_accuracy"]]
        label_stats[shot]["support_label_accuracy"] = {
            key: summarize([a[key] for a in sla]) for key in ("mv", "ds", "map_em")
        }
    return summary, label_stats


def selection_check(results) -> list:
    """Issue-11 checks per split and shot: auto vs the better of meta / input.

    Rows: split, shot, the mean accuracy of Ours (auto), of Ours always meta,
    of EM on standardised and on globally scaled inputs, and Ours minus the
    better of (always meta, standardised input); plus the pooled row per shot.
    """
    cfg = results["config"]
    need = {"ours", "ours_meta", "em_input", "em_global"}
    if not need <= set(cfg["methods"]):
        return []
    few, _ = _fewshot_columns(cfg)
    rows = []
    for shot in few:
        per_split = [r[shot]["accuracy"] for r in results["raw"]]
        for si, acc in [*enumerate(per_split), ("all", None)]:
            if acc is None:
                acc = {m: sum((a[m] for a in per_split), []) for m in need}
            mean = {m: float(np.mean(acc[m])) for m in need}
            rows.append(
                {
                    "split": si,
                    "shot": shot,
                    **mean,
                    "auto_minus_better": mean["ours"]
                    - max(mean["ours_meta"], mean["em_input"]),
                    "auto_minus_global": mean["ours"] - mean["em_global"],
                }
            )
    return rows


def _selection_markdown(rows) -> str:
    head = (
        "| split | shot | Ours (auto) | always meta | EM input | EM global | "
        "auto - max(meta, input) | auto - EM global |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    body = [
        f"| {r['split']} | {r['shot']} | {r['ours']:.3f} | {r['ours_meta']:.3f} | "
        f"{r['em_input']:.3f} | {r['em_global']:.3f} | "
        f"{r['auto_minus_better']:+.3f} | {r['auto_minus_global']:+.3f} |"
        for r in rows
    ]
    return "\n".join([head, *body])


# -- outputs -------------------------------------------------------------------


def _fewshot_columns(cfg):
    few = [str(s) for s in cfg["shots"] if s != "all"]
    return few, [str(s) for s in cfg["shots"] if s == "all"]


def tables(results) -> dict:
    """Markdown and reStructuredText tables."""
    cfg = results["config"]
    summary = results["summary"]
    few, rest = _fewshot_columns(cfg)
    methods = cfg["methods"]
    header = (
        ["method"]
        + [f"{s}-shot" for s in few]
        + (["avg (1/3/5)"] if few else [])
        + ["all" for _ in rest]
    )

    def best_set(shot):
        # the best method and those tied with it (paired t-test, p >= 0.05);
        # the gold-label ceiling is not a competitor
        competitors = [m for m in methods if not m.startswith("gold")]
        best = max(competitors, key=lambda m: summary[shot][m]["mean"])
        accs = {
            m: sum((r[shot]["accuracy"][m] for r in results["raw"]), [])
            for m in competitors
        }
        return {
            m
            for m in competitors
            if m == best or paired_ttest(accs[m], accs[best])["verdict"] == "tie"
        }

    bests = {s: best_set(s) for s in few + rest}
    md_rows, rst_rows = [], []
    for m in methods:
        md, rs = [METHODS[m][0]], [METHODS[m][0]]
        for s in few + rest:
            c = summary[s][m]
            md.append(fmt_acc(c["mean"], c["sem"], bold=m in bests[s]))
            rs.append(
                ("**" if m in bests[s] else "")
                + fmt_acc(c["mean"], c["sem"])
                + ("**" if m in bests[s] else "")
            )
        if few:
            avg = float(np.mean([summary[s][m]["mean"] for s in few]))
            md.insert(1 + len(few), f"{avg:.3f}")
            rs.insert(1 + len(few), f"{avg:.3f}")
        md_rows.append(md)
        rst_rows.append(rs)

    ls = results["label_stats"]
    ls_header = [
        "setting",
        "tasks",
        "support images / task",
        "labels",
        "non-target labels (missing)",
        "images left unlabelled (removed)",
        "target labels / kept image",
        "annotators / task",
        "redrawn draws",
    ]
    ls_rows = [
        [
            f"{s}-shot" if s != "all" else "all",
            v["n_tasks"],
            f"{v['support_images']:.1f}",
            v["labels"],
            f"{v['non_target_labels']} ({100 * v['non_target_fraction']:.1f} %)",
            f"{v['unlabelled_images_removed']} ({100 * v['removed_fraction']:.1f} %)",
            f"{v['labels_per_kept_image']:.2f}",
            f"{v['annotators_per_task']:.1f}",
            v["redrawn_tasks"],
        ]
        for s, v in ls.items()
    ]

    sl_header = [
        "setting",
        "majority vote",
        "Dawid-Skene (smoothing 0.01)",
        "MAP-EM, no features (b=10, c=(2, 1))",
    ]
    sl_rows = [
        [f"{s}-shot" if s != "all" else "all"]
        + [
            fmt_acc(
                v["support_label_accuracy"][k]["mean"],
                v["support_label_accuracy"][k]["sem"],
            )
            for k in ("mv", "ds", "map_em")
        ]
        for s, v in ls.items()
    ]

    mt_header = [
        "split (target classes)",
        "model",
        "meta-training (s)",
        "val. acc. (meta)",
        "val. acc. (no meta)",
        "best epoch",
        "auto selects",
    ]
    mt_rows = []
    for i, info in enumerate(results["meta_training"]):
        for kind, m in info["models"].items():
            mt_rows.append(
                [
                    f"{i} {tuple(info['target'])}",
                    kind,
                    f"{m['seconds']:.1f}",
                    f"{m['val_accuracy']:.3f}",
                    f"{m['no_meta_val_accuracy']:.3f}",
                    m["best_epoch"],
                    m["selected"],
                ]
            )

    out = {
        "md_fewshot": markdown_table(header, md_rows),
        "rst_fewshot": rst_csv_table(
            "Accuracy on the target-class test images (mean ± s.e. over tasks)",
            header,
            rst_rows,
        ),
        "md_labels": markdown_table(ls_header, ls_rows),
        "rst_labels": rst_csv_table(
            "Real annotations of the target supports", ls_header, ls_rows
        ),
        "md_support_labels": markdown_table(sl_header, sl_rows),
        "rst_support_labels": rst_csv_table(
            "Accuracy of the aggregated support labels (mean ± s.e. over tasks)",
            sl_header,
            sl_rows,
        ),
        "md_meta": markdown_table(mt_header, mt_rows),
        "rst_meta": rst_csv_table("Meta-training per split", mt_header, mt_rows),
    }
    if "full_data" in results:
        fd = results["full_data"]
        f_header = ["method", "test accuracy", "runs", "time (s)"]
        f_rows = []
        for m, v in fd["methods"].items():
            sd = f" ± {v['sd']:.3f} (sd)" if v["sd"] is not None else ""
            f_rows.append(
                [
                    FULL_METHODS[m],
                    f"{v['accuracy']:.3f}{sd}",
                    len(v["runs"]),
                    f"{v['seconds']:.1f}",
                ]
            )
        for name, value in fd["references"].items():
            f_rows.append([f"published: {name}", f"{value:.2f}", "1", "–"])
        out["md_full"] = markdown_table(f_header, f_rows)
        out["rst_full"] = rst_csv_table(
            "Full-data setting: 1000 crowd-labelled images, 8 classes, "
            "1188 test images",
            f_header,
            f_rows,
        )
    return out


def csv_rows(results) -> tuple[list, list]:
    """Summary rows (setting, method) and per-task rows."""
    cfg = results["config"]
    rows = []
    for shot, cell in results["summary"].items():
        for m, c in cell.items():
            t = c.get("vs_ours", {})
            rows.append(
                {
                    "setting": "few-shot",
                    "shot": shot,
                    "method": m,
                    "label": METHODS[m][0],
                    "mean": c["mean"],
                    "sem": c["sem"],
                    "n": c["n"],
                    "diff_ours_minus_method": t.get("diff"),
                    "p_value": t.get("p"),
                    "seconds_per_task": c["seconds_per_task"],
                }
            )
    for m, v in results.get("full_data", {}).get("methods", {}).items():
        rows.append(
            {
                "setting": "full-data",
                "shot": "all-8-way",
                "method": m,
                "label": FULL_METHODS[m],
                "mean": v["accuracy"],
                "sem": None,
                "n": len(v["runs"]),
                "seconds_per_task": v["seconds"],
            }
        )
    tasks = []
    for i, raw in enumerate(results["raw"]):
        for shot, cell in raw.items():
            for t, stats in enumerate(cell["stats"]):
                row = {
                    "split": i,
                    "target": " ".join(map(str, cfg["splits"][i])),
                    "shot": shot,
                    "task": t,
                    **stats,
                }
                row.update({m: cell["accuracy"][m][t] for m in cfg["methods"]})
                tasks.append(row)
    return rows, tasks


def plots(results, plot_dir, prefix) -> list:
    """Few-shot accuracy against the support size, and the full-data bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = results["config"]
    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    shots = [str(s) for s in cfg["shots"]]
    paths = []
    fig, ax = plt.subplots(figsize=(9.0, 4.6), dpi=110)
    xs = np.arange(len(shots))
    for m in cfg["methods"]:
        means = [results["summary"][s][m]["mean"] for s in shots]
        sems = [results["summary"][s][m]["sem"] or 0.0 for s in shots]
        style = {"lw": 1.2, "marker": ".", "alpha": 0.85}
        if m == OURS:
            style = {"lw": 2.6, "marker": "o", "color": "C3"}
        elif m.startswith("gold"):
            style = {
                "lw": 1.2,
                "ls": "--" if m == "gold" else "-.",
                "color": "k",
                "marker": "",
            }
        elif m.startswith("em_"):
            style.update(ls=":")
        ax.errorbar(xs, means, yerr=sems, label=METHODS[m][0], capsize=2, **style)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{s}-shot" if s != "all" else "all (~500)" for s in shots])
    ax.set_xlabel("crowd-labelled support images per target class")
    ax.set_ylabel("accuracy on target-class test images")
    ax.set_title(
        "LabelMe, 4-way target tasks with real annotators "
        f"({len(cfg['splits'])} class splits)",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    path = plot_dir / f"{prefix}_fewshot.png"
    fig.savefig(path)
    plt.close(fig)
    paths.append(path)

    if "full_data" in results:
        fd = results["full_data"]
        names = [FULL_METHODS[m] for m in fd["methods"]]
        vals = [v["accuracy"] for v in fd["methods"].values()]
        errs = [v["sd"] or 0.0 for v in fd["methods"].values()]
        fig, ax = plt.subplots(figsize=(7.2, 5.0), dpi=110)
        colours = [
            "C3"
            if m.startswith("em_") or m == "lr_em"
            else ("0.3" if m.startswith("gold") else "C0")
            for m in fd["methods"]
        ]
        ax.barh(range(len(vals)), vals, xerr=errs, color=colours, alpha=0.85)
        ax.set_yticks(range(len(vals)))
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        styles = ["-", "--", "-.", ":"]
        for j, (name, value) in enumerate(fd["references"].items()):
            ax.axvline(
                value,
                color="k",
                ls=styles[j % 4],
                lw=1,
                label=f"published: {name} ({value:.2f})",
            )
        ax.set_xlim(0.6, 0.95)
        ax.set_xlabel("test accuracy (1188 images, 8 classes)")
        ax.set_title("LabelMe full-data setting (no source tasks)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.4, -0.13))
        fig.tight_layout()
        path = plot_dir / f"{prefix}_fulldata.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def write_outputs(results) -> dict:
    """JSON, CSV (summary and per task), Markdown and rst tables, plots."""
    cfg = results["config"]
    out = Path(cfg["output_dir"])
    name = cfg["name"]
    tab = tables(results)
    rows, tasks = csv_rows(results)
    files = {
        "json": harness.write_json(results, out / f"{name}.json"),
        "csv": harness.write_csv(rows, out / f"{name}.csv"),
        "tasks_csv": harness.write_csv(tasks, out / f"{name}_tasks.csv"),
    }
    env = results["environment"]
    command = "python benchmarks/labelme.py" + (" --quick" if "quick" in name else "")
    parts = [
        f"# LabelMe benchmark ({name})",
        f"Command: `{command}`; {env['cpu']} ({env['cpu_count']} CPUs), torch "
        f"{env['torch']}; wall time {results['wall_seconds']:.0f} s.",
        "## Few-shot target tasks with real annotators (4-way; bold: best and "
        "statistically tied, paired t-test p >= 0.05; gold ceiling excluded)",
        tab["md_fewshot"],
        "## Real annotations of the supports",
        tab["md_labels"],
        "## Accuracy of the aggregated support labels",
        tab["md_support_labels"],
        "## Meta-training",
        tab["md_meta"],
    ]
    check = selection_check(results)
    if check:
        parts += [
            "## Choice of the latent space per task (representation='auto')",
            _selection_markdown(check),
        ]
    if "md_full" in tab:
        parts += ["## Full-data setting", tab["md_full"]]
    md = out / f"{name}.md"
    md.write_text("\n\n".join(parts) + "\n")
    files["markdown"] = md
    rst = out / f"{name}_tables.rst"
    rst_parts = [v for k, v in tab.items() if k.startswith("rst_")]
    rst.write_text("\n\n".join(rst_parts) + "\n")
    files["rst"] = rst
    files["plots"] = plots(results, cfg["plot_dir"], name)
    return {
        k: [str(p) for p in v] if isinstance(v, list) else str(v)
        for k, v in files.items()
    }


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/labelme.py",
        description="LabelMe: few-shot learning from real crowd labels.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few minutes: 2 splits, 5 tasks, 600 episodes",
    )
    parser.add_argument(
        "--data", default=str(DEFAULT_DATA), help="folder with the LabelMe files"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-tasks", type=int, help="tasks per split and setting")
    parser.add_argument("--n-episodes", type=int, help="meta-training episodes")
    parser.add_argument("--threads", type=int, help="torch threads")
    parser.add_argument("--no-write", action="store_true", help="do not write files")
    args = parser.parse_args(argv)
    overrides = {
        "quick": args.quick,
        "data": args.data,
        "seed": args.seed,
        "write": not args.no_write,
    }
    for key in ("n_tasks", "n_episodes", "threads"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    results = run(overrides)
    tab = tables(results)
    print(tab["md_fewshot"])
    print(tab["md_labels"])
    if "md_full" in tab:
        print(tab["md_full"])
    print(f"wall time {results['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
