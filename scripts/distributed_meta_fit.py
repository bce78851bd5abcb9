r"""Data-parallel meta_fit on the CPU: the example of docs/distributed.rst.

Meta-learns an encoder on the handwritten digits 0-5 and adapts it to a
crowd-labelled 4-way task on the digits 6-9. Run it with one process::

    python scripts/distributed_meta_fit.py OUT_DIR

or with two, data-parallel::

    CUDA_VISIBLE_DEVICES= accelerate launch --multi_gpu --num_processes 2 \
        scripts/distributed_meta_fit.py OUT_DIR

Every process writes ``rank<r>.pt`` (its encoder's parameters) and
``rank<r>.json`` (the number of processes, the target-task accuracy, the
history's validation accuracies and the meta-training time) to ``OUT_DIR``.
The test suite runs it both ways (tests/test_distributed.py).
"""
# SPDX-License-Identifier: BSD-3-Clause

import argparse
import json
import os
import pathlib
import time

import numpy as np
import torch
from sklearn.datasets import load_digits

from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearner, simulate_annotators


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-episodes", type=int, default=48)
    parser.add_argument("--meta-batch-size", type=int, default=4, help="global")
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    source, target = y < 6, y >= 6
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=3,  # digits 0-2 meta-train, 3-5 are the validation tasks
            embedding_dim=16,
            hidden_layer_sizes=(32,),
            n_shot=5,
            n_query=5,
            n_episodes=args.n_episodes,
            episodes_per_epoch=args.n_episodes // 2,
            meta_batch_size=args.meta_batch_size,  # the sum over the processes
            validation_classes=0.5,
            n_val_episodes=8,
            n_threads=1,
        ),
        representation="meta",
        random_state=args.seed,
    )
    start = time.perf_counter()
    clf.meta_fit(X[source], y[source])
    seconds = time.perf_counter() - start

    # a target task: 4 new classes, 5 simulated annotators
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(np.flatnonzero(target), size=200, replace=False)
    Y, _, _ = simulate_annotators(y[idx], n_annotators=5, random_state=args.seed)
    accuracy = float(np.mean(clf.fit(X[idx], Y).predict(X[idx]) == y[idx]))

    rank = int(os.environ.get("RANK", 0))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(clf.meta_encoder_.module.state_dict(), args.out_dir / f"rank{rank}.pt")
    report = {
        "world_size": clf.meta_world_size_,
        "target_accuracy": accuracy,
        "valid_acc": [row.get("valid_acc") for row in clf.meta_history_],
        "best_epoch": clf.meta_best_epoch_,
        "meta_fit_seconds": seconds,
        "episodes": args.n_episodes,
    }
    (args.out_dir / f"rank{rank}.json").write_text(json.dumps(report))
    if rank == 0:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
