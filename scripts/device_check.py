"""Device check: meta-train the Conv-4 encoder on a device and on the CPU, compare.

Meta-fits ``MetaAnnotatorClassifier(meta_learner=MetaLearner(encoder="conv4"))``
on the shared Omniglot subsets for a fixed number of episodes, once on
``--device`` and once on the CPU, with the same seeds; reports episodes per
second and the validation accuracy of both; adapts the device-trained model to
a crowd-labelled target task, saves it and reloads it in a fresh Python process
that sees no GPU (``CUDA_VISIBLE_DEVICES=""``), checking that its predictions
are identical.

    python scripts/device_check.py --device cuda          # under 5 min on one GPU
    python scripts/device_check.py --device cpu --data synthetic --episodes 8 \\
        --val-episodes 4 --threads 1                        # the test-suite run

The report goes to ``<out>/device_check.json`` (and is printed); the exit status
is 1 when a check fails (different predictions after reloading, or validation
accuracies further apart than three standard errors).
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:  # a source checkout without installation
    sys.path.insert(0, str(_REPO))

DEFAULT_DATA = _REPO.parent / "shared" / "data" / "omniglot"
VAL_ALPHABETS = ("Greek",)
TEST_ALPHABETS = ("Sanskrit", "Tagalog")
IMAGE_SHAPE = (1, 28, 28)


def synthetic_images(n_classes=24, n_per_class=20, seed=0):
    """Omniglot-like 28 x 28 images: a random stroke template per class plus noise.

    Returns flat float32 images, labels and a (train, val, test) split of the
    classes (half, a quarter, a quarter).
    """
    rng = np.random.default_rng(seed)
    templates = (rng.random((n_classes, 7, 7)) < 0.3).astype(np.float32)
    templates = templates.repeat(4, axis=1).repeat(4, axis=2)  # (K, 28, 28)
    y = np.repeat(np.arange(n_classes), n_per_class)
    shift = rng.integers(-2, 3, size=(len(y), 2))
    images = np.stack(
        [np.roll(templates[k], tuple(s), axis=(0, 1)) for k, s in zip(y, shift)]
    )
    images += 0.3 * rng.standard_normal(images.shape).astype(np.float32)
    flat = images.reshape(len(y), -1).astype(np.float32)
    cut1, cut2 = n_classes // 2, (3 * n_classes) // 4
    split = np.where(y < cut1, 0, np.where(y < cut2, 1, 2))
    return flat, y, split


def load_data(data, max_classes=None):
    """Meta-train, validation and test pools (flat float32 images, labels)."""
    if data == "synthetic":
        X, y, split = synthetic_images()
        return {
            name: (X[split == i], y[split == i])
            for i, name in enumerate(("train", "val", "test"))
        }
    from sklearn_metaannot.datasets import load_omniglot, split_omniglot_by_alphabet

    bunch = load_omniglot(data)
    masks = split_omniglot_by_alphabet(
        bunch, val_alphabets=VAL_ALPHABETS, test_alphabets=TEST_ALPHABETS
    )
    X = bunch.images.reshape(len(bunch.images), -1).astype(np.float32)
    pools = {}
    for name, mask in zip(("train", "val", "test"), masks):
        Xs, ys = X[mask], bunch.target[mask]
        if max_classes is not None:
            keep = np.isin(ys, np.unique(ys)[:max_classes])
            Xs, ys = Xs[keep], ys[keep]
        pools[name] = (Xs, ys)
    return pools


def target_task(pools, n_way, n_shot, n_annotators, seed):
    """A crowd-labelled support set and a query set from the test pool."""
    from sklearn_metaannot import simulate_annotators

    X, y = pools["test"]
    rng = np.random.default_rng(seed)
    classes = rng.choice(np.unique(y), n_way, replace=False)
    support, query = [], []
    for k in classes:
        idx = rng.permutation(np.flatnonzero(y == k))
        support.append(idx[:n_shot])
        query.append(idx[n_shot:])
    support, query = np.concatenate(support), np.concatenate(query)
    Y, _, _ = simulate_annotators(y[support], n_annotators, random_state=seed)
    return X[support], Y, X[query], y[query]


def meta_fit(device, args, pools):
    """Meta-train on ``device``; returns the estimator and the timings."""
    import torch

    from sklearn_metaannot import (
        MetaAnnotatorClassifier,
        MetaLearner,
        MetaLearningWarning,
    )

    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            encoder="conv4",
            image_shape=IMAGE_SHAPE,
            n_way=args.n_way,
            n_shot=(1, 5),
            n_annotators=(3, 7),
            n_episodes=args.episodes,
            episodes_per_epoch=args.episodes_per_epoch,
            meta_batch_size=args.meta_batch_size,
            n_val_episodes=args.val_episodes,
            device=device,
            n_threads=args.threads,
        ),
        representation="meta",
        random_state=args.seed,
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        clf.meta_fit(*pools["train"], X_val=pools["val"][0], y_val=pools["val"][1])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    history = clf.meta_history_
    n_epochs = len(history)
    # validation passes: one before training, one after every epoch
    n_val = args.val_episodes * (n_epochs + 1)
    train_seconds = float(sum(row["dur"] for row in history))
    return clf, {
        "device": device,
        "seconds": seconds,
        "episodes": args.episodes,
        "validation_episodes": n_val,
        "episodes_per_s": args.episodes / seconds,
        "all_episodes_per_s": (args.episodes + n_val) / seconds,
        "epoch_seconds": train_seconds,
        "final_valid_acc": float(history[-1]["valid_acc"]),
        "best_valid_acc": float(clf.meta_val_accuracy_),
        "no_meta_valid_acc": float(clf.no_meta_val_accuracy_),
        "n_val_queries": args.val_episodes * args.n_way * 10,
    }


def save_model(model, path):
    """``sklearn_metaannot.save`` when the package has it, else joblib."""
    import sklearn_metaannot

    if hasattr(sklearn_metaannot, "save"):
        sklearn_metaannot.save(model, path)
        return "sklearn_metaannot.save"
    import joblib

    joblib.dump(model, path)
    return "joblib"


def load_model(path):
    import sklearn_metaannot

    if hasattr(sklearn_metaannot, "load"):
        return sklearn_metaannot.load(path)
    import joblib

    return joblib.load(path)


def reload_and_predict(model_path, query_path, out_path):
    """The fresh-process half: load the model, predict the saved queries."""
    import torch

    model = load_model(model_path)
    X_query = np.load(query_path)
    np.save(out_path, model.predict_proba(X_query))
    print(json.dumps({"cuda_available": bool(torch.cuda.is_available())}))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="torch device to check")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--episodes-per-epoch", type=int, default=250)
    parser.add_argument("--val-episodes", type=int, default=50)
    parser.add_argument("--meta-batch-size", type=int, default=4)
    parser.add_argument("--n-way", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--warmup", type=int, default=8, help="untimed episodes per device first"
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU torch threads")
    parser.add_argument(
        "--data", default=str(DEFAULT_DATA), help="Omniglot folder or 'synthetic'"
    )
    parser.add_argument("--max-classes", type=int, default=None)
    parser.add_argument("--out", default="device_check_out")
    parser.add_argument("--reload", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reload:
        reload_and_predict(*args.reload)
        return 0
    args.episodes_per_epoch = min(args.episodes_per_epoch, args.episodes)

    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pools = load_data(args.data, args.max_classes)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "args": vars(args),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "gpu": (
            torch.cuda.get_device_name(torch.device(args.device))
            if args.device.startswith("cuda") and torch.cuda.is_available()
            else None
        ),
        "pools": {
            k: [int(len(v[1])), int(len(np.unique(v[1])))] for k, v in pools.items()
        },
    }
    if args.warmup:
        # one-off costs (CUDA context, kernel selection, lazy imports) stay out
        # of the timed runs
        warm = argparse.Namespace(**{**vars(args), "episodes": args.warmup})
        warm.episodes_per_epoch, warm.val_episodes = args.warmup, 1
        for device in dict.fromkeys([args.device, "cpu"]):
            meta_fit(device, warm, pools)
    model, report["device_run"] = meta_fit(args.device, args, pools)
    _, report["cpu_run"] = meta_fit("cpu", args, pools)
    a, b = report["device_run"], report["cpu_run"]
    report["speedup"] = a["episodes_per_s"] / b["episodes_per_s"]
    p = 0.5 * (a["final_valid_acc"] + b["final_valid_acc"])
    se = np.sqrt(2 * max(p * (1 - p), 1e-12) / a["n_val_queries"])
    report["valid_acc_diff"] = a["final_valid_acc"] - b["final_valid_acc"]
    report["valid_acc_within_noise"] = bool(abs(report["valid_acc_diff"]) <= 3 * se)

    # adapt the device-trained model to a target task, save, reload without GPU
    X_s, Y_s, X_q, y_q = target_task(pools, args.n_way, 5, 5, args.seed)
    model.fit(X_s, Y_s)
    proba = model.predict_proba(X_q)
    model_path = out / "model.joblib"
    report["saved_with"] = save_model(model, model_path)
    np.save(out / "query.npy", X_q)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--reload",
            str(model_path),
            str(out / "query.npy"),
            str(out / "reloaded_proba.npy"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        report["reload"] = {"error": proc.stderr.strip().splitlines()[-5:]}
        reloaded_ok = False
    else:
        reloaded = np.load(out / "reloaded_proba.npy")
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        reloaded_ok = bool(np.array_equal(reloaded, proba))
        report["reload"] = {
            "cuda_visible_in_child": child["cuda_available"],
            "identical_proba": reloaded_ok,
            "max_abs_diff": float(np.abs(reloaded - proba).max()),
            "target_accuracy": float((model.classes_[proba.argmax(1)] == y_q).mean()),
        }
    report["ok"] = reloaded_ok
    (out / "device_check.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
