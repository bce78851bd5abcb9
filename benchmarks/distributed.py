"""Scaling of data-parallel meta_fit: episodes per second with 1 and 2 processes."""
# SPDX-License-Identifier: BSD-3-Clause

# Meta-training throughput of ``MetaAnnotatorClassifier.meta_fit`` in one process
# and in two processes started by ``accelerate launch`` on the CPU (gloo):
#
#   python benchmarks/distributed.py            # about two minutes on 2 cores
#   python benchmarks/distributed.py --quick    # a smoke run
#
# Protocol:
# - data: scikit-learn's digits 0-5 as source classes, ``validation_classes=0.5``
#   (3-way training and validation episodes), the MLP encoder of the docs'
#   example (hidden layer 32, embedding 16), ``n_shot=5``, ``n_query=5``;
# - ``n_episodes`` global episodes in two epochs, global meta-batches of 8 and
#   of 32 episodes per step (each of N processes draws ``meta_batch_size / N``),
#   8 validation tasks per epoch (every process validates on all of them);
# - each run is a fresh launch (``python`` for 1 process, ``accelerate launch
#   --multi_gpu --num_processes 2`` with no GPU visible for 2), torch with 1
#   intra-op thread per process; the process group is set up, and a short
#   ``meta_fit`` warms the process up (the first torch optimizer of a process
#   costs about a second), before the clock starts; the time is the wall clock
#   of the whole timed ``meta_fit`` on rank 0 (training, validation, the no-meta
#   reference scores);
# - episodes per second: ``n_episodes`` over that time, the best of ``rounds``
#   runs per configuration, which alternate (1, 2, 1, 2, ...); the ratio is
#   the 2-process rate over the 1-process rate at the same meta-batch.
#
# ``run(config) -> results`` does everything and is what the docs quote.

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
if str(_HERE.parent) not in sys.path:  # a source checkout without installation
    sys.path.insert(1, str(_HERE.parent))

import harness  # noqa: E402
from harness import markdown_table  # noqa: E402

from sklearn_metaannot._distributed import cpu_launch_args  # noqa: E402

REPO = _HERE.parent
RESULTS = _HERE / "results"

DEFAULT_CONFIG = {
    "name": "distributed",
    "processes": [1, 2],
    "n_episodes": 960,
    "meta_batch_sizes": [8, 32],
    "rounds": 2,
    "seed": 0,
}
QUICK = {
    "name": "distributed_quick",
    "n_episodes": 64,
    "meta_batch_sizes": [8],
    "rounds": 1,
}


def child(out, n_episodes, meta_batch_size, seed):
    """One timed ``meta_fit`` (in every launched process); rank 0 writes ``out``."""
    import warnings

    import torch
    from sklearn.datasets import load_digits

    from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearningWarning
    from sklearn_metaannot._distributed import process_group

    torch.set_num_threads(1)
    group = process_group("cpu")  # set up the process group before the clock
    X, y = load_digits(return_X_y=True)
    source = y < 6

    def model(n):
        return MetaAnnotatorClassifier(
            n_way=3,
            embedding_dim=16,
            hidden_layer_sizes=(32,),
            n_shot=5,
            n_query=5,
            n_episodes=n,
            episodes_per_epoch=n // 2,
            meta_batch_size=meta_batch_size,
            validation_classes=0.5,
            n_val_episodes=8,
            n_threads=1,
            random_state=seed,
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        # warm-up: the first torch optimizer of a process costs about a second
        model(4 * meta_batch_size).meta_fit(X[source], y[source])
        clf = model(n_episodes)
        start = time.perf_counter()
        clf.meta_fit(X[source], y[source])
        seconds = time.perf_counter() - start
    if group is None or group.is_main:
        Path(out).write_text(
            json.dumps({"world_size": clf.meta_world_size_, "seconds": seconds})
        )


def _one_run(n_processes, config, out, hf_home):
    args = [
        str(Path(__file__).resolve()),
        "--child",
        str(out),
        "--n-episodes",
        str(config["n_episodes"]),
        "--meta-batch-size",
        str(config["meta_batch_size"]),
        "--seed",
        str(config["seed"]),
    ]
    if n_processes > 1:
        launch = cpu_launch_args(n_processes)
        args = launch + args
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    # HF_HOME: no user `accelerate config` file changes the launch
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", HF_HOME=str(hf_home))
    path = [str(REPO), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, path))
    proc = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True
    )
    if proc.returncode:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    report = json.loads(Path(out).read_text())
    if report["world_size"] != n_processes:
        raise RuntimeError(f"asked for {n_processes} processes, got {report}")
    return report["seconds"]


def run(config=None):
    """Time meta_fit for each meta-batch and process count; return the results."""
    config = {**DEFAULT_CONFIG, **(config or {})}
    keys = [(b, n) for b in config["meta_batch_sizes"] for n in config["processes"]]
    seconds = {key: [] for key in keys}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(config["rounds"]):
            for batch, n in keys:
                out = Path(tmp) / f"{batch}_{n}_{r}.json"
                run_config = {**config, "meta_batch_size": batch}
                seconds[batch, n].append(
                    _one_run(n, run_config, out, Path(tmp) / "hf_home")
                )
    rows = []
    for batch, n in keys:
        rate = config["n_episodes"] / min(seconds[batch, n])
        base = config["n_episodes"] / min(seconds[batch, config["processes"][0]])
        rows.append(
            {
                "meta_batch_size": batch,
                "processes": n,
                "seconds": seconds[batch, n],
                "episodes_per_s": rate,
                "ratio": rate / base,
            }
        )
    return {
        "config": config,
        "rows": rows,
        "date": time.strftime("%Y-%m-%d"),
        "load_average": os.getloadavg(),
        "environment": harness.environment(),
    }


def markdown(results):
    """The results as a Markdown report."""
    env, cfg = results["environment"], results["config"]
    header = [
        "global meta-batch",
        "processes",
        "meta_fit seconds (runs)",
        "episodes / s",
        "ratio to 1 process",
    ]
    rows = [
        [
            r["meta_batch_size"],
            r["processes"],
            ", ".join(f"{s:.2f}" for s in r["seconds"]),
            f"{r['episodes_per_s']:.0f}",
            f"{r['ratio']:.2f}",
        ]
        for r in results["rows"]
    ]
    load = ", ".join(f"{x:.1f}" for x in results["load_average"])
    return (
        f"# Data-parallel meta_fit: scaling ({results['date']})\n\n"
        f"{cfg['n_episodes']} episodes on digits 0-5, best of {cfg['rounds']} runs; "
        f"{env['cpu']}, {env['cpu_count']} cores (load average after the runs: "
        f"{load}), torch {env['torch']}, one torch thread per process.\n\n"
        + markdown_table(header, rows)
        + "\n"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--n-episodes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--meta-batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.n_episodes, args.meta_batch_size, args.seed)
        return
    results = run(QUICK if args.quick else None)
    name = results["config"]["name"]
    RESULTS.mkdir(exist_ok=True)
    harness.write_json(results, RESULTS / f"{name}.json")
    text = markdown(results)
    (RESULTS / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
