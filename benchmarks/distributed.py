"""Scaling of data-parallel meta_fit: episodes per second with 1 and 2 processes.

    python -m benchmarks.distributed            # about two minutes on 2 cores
    python -m benchmarks.distributed --quick    # a smoke run

Protocol: digits 0-5 as source classes (``validation_classes=0.5``: 3-way
training and validation episodes), the MLP encoder of the docs' example (hidden
layer 32, embedding 16), 5 shots, 5 queries; ``n_episodes`` global episodes in
two epochs, global meta-batches of 8 and 32 (each of N processes draws
``meta_batch_size / N``), 8 validation tasks per epoch. Each run is a fresh
launch (``python`` for 1 process, ``accelerate launch`` on the CPU for 2), one
torch thread per process; the process group and a short warm-up ``meta_fit``
come before the clock; the time is the wall clock of the timed ``meta_fit`` on
rank 0. Episodes per second: the best of ``rounds`` runs, which alternate
(1, 2, 1, 2, ...); ratio: over the 1-process rate at the same meta-batch.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

from . import harness

_HERE = Path(__file__).resolve().parent

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


def cpu_launch_args(n_processes):
    """``python`` arguments that run a script as ``n_processes`` CPU processes.

    The launch of docs/distributed.rst ("One machine, N CPU processes"), as
    the benchmark and ``tests/test_distributed.py`` run it:

    ``-m accelerate.commands.launch --multi_gpu ...`` on a free local port:
    accelerate 1.15 starts several ``--cpu`` processes only through MPI, while
    ``--multi_gpu`` goes through torchrun; with no GPU visible
    (``CUDA_VISIBLE_DEVICES=""``) and ``device="cpu"`` the processes talk over
    gloo. Append the script and its arguments.

    Examples
    --------
    >>> from benchmarks.distributed import cpu_launch_args
    >>> cpu_launch_args(2)[:4]
    ['-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes']
    """
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(n_processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
    ]


def child(out, n_episodes, meta_batch_size, seed):
    """One timed ``meta_fit`` (in every launched process); rank 0 writes ``out``."""
    import warnings

    import torch
    from sklearn.datasets import load_digits

    from sklearn_metaannot import (
        MetaAnnotatorClassifier,
        MetaLearner,
        MetaLearningWarning,
    )

    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X, y = X[y < 6], y[y < 6]

    def model(n):
        return MetaAnnotatorClassifier(
            meta_learner=MetaLearner(
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
            ),
            random_state=seed,
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        # warm-up, which also sets up the process group: the first torch
        # optimizer of a process costs about a second
        model(4 * meta_batch_size).meta_fit(X, y)
        clf = model(n_episodes)
        with harness.Timer() as timer:
            clf.meta_fit(X, y)
    if int(os.environ.get("RANK", 0)) == 0:  # the main process writes
        report = {"world_size": clf.meta_world_size_, "seconds": timer.seconds}
        Path(out).write_text(json.dumps(report))


def _one_run(n_processes, meta_batch_size, cfg, tmp) -> float:
    """Seconds of the timed ``meta_fit`` of a fresh launch of ``n_processes``."""
    out = Path(tmp) / "report.json"
    out.unlink(missing_ok=True)
    # `python -m benchmarks.distributed`; `accelerate launch --module` with processes
    args = ["-m", "benchmarks.distributed", "--child", str(out)]
    args += ["--n-episodes", str(cfg["n_episodes"]), "--seed", str(cfg["seed"])]
    args += ["--meta-batch-size", str(meta_batch_size)]
    if n_processes > 1:
        args = cpu_launch_args(n_processes) + ["--module", *args[1:]]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    # HF_HOME: no user `accelerate config` file changes the launch
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", HF_HOME=f"{tmp}/hf_home")
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(_HERE.parent), env.get("PYTHONPATH")])
    )
    proc = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True
    )
    if proc.returncode:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    report = json.loads(out.read_text())
    if report["world_size"] != n_processes:
        raise RuntimeError(f"asked for {n_processes} processes, got {report}")
    return report["seconds"]


def run(config=None) -> dict:
    """Time meta_fit for each meta-batch and process count; the results."""
    cfg = harness.configure(
        lambda quick: {**DEFAULT_CONFIG, **(QUICK if quick else {})}, config
    )
    keys = [(b, n) for b in cfg["meta_batch_sizes"] for n in cfg["processes"]]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {(b, n): partial(_one_run, n, b, cfg, tmp) for b, n in keys}
        seconds = harness.alternate(runs, cfg["rounds"])
    rate = {key: cfg["n_episodes"] / min(s) for key, s in seconds.items()}
    rows = [
        {
            "meta_batch_size": b,
            "processes": n,
            "seconds": seconds[b, n],
            "episodes_per_s": rate[b, n],
            "ratio": rate[b, n] / rate[b, cfg["processes"][0]],
        }
        for b, n in keys
    ]
    return harness.stamped(cfg, rows=rows, load_average=os.getloadavg())


COLUMNS = [
    ("global meta-batch", "{meta_batch_size}"),
    ("processes", "{processes}"),
    ("meta_fit seconds (runs)", lambda r: ", ".join(f"{s:.2f}" for s in r["seconds"])),
    ("episodes / s", "{episodes_per_s:.0f}"),
    ("ratio to 1 process", "{ratio:.2f}"),
]


def markdown(results) -> str:
    """The results as a Markdown report."""
    env, cfg = results["environment"], results["config"]
    load = ", ".join(f"{x:.1f}" for x in results["load_average"])
    return (
        f"# Data-parallel meta_fit: scaling ({results['date']})\n\n"
        f"{cfg['n_episodes']} episodes on digits 0-5, best of {cfg['rounds']} runs; "
        f"{env['cpu']}, {env['cpu_count']} cores (load average after the runs: "
        f"{load}), torch {env['torch']}, one torch thread per process.\n\n"
        + harness.markdown_table(*harness.columns_table(COLUMNS, results["rows"]))
        + "\n"
    )


OPTIONS = {
    "quick": {"action": "store_true", "help": "a smoke run"},
    "child": {"help": argparse.SUPPRESS},
    "n_episodes": {"type": int, "help": argparse.SUPPRESS},
    "meta_batch_size": {"type": int, "help": argparse.SUPPRESS},
    "seed": {"type": int, "help": argparse.SUPPRESS},
}


def main(argv=None):
    options = harness.parse_options(
        argv, __doc__.splitlines()[0], OPTIONS, harness.benchmark_command("distributed")
    )
    if "child" in options:
        keys = ("child", "n_episodes", "meta_batch_size", "seed")
        return child(*(options[k] for k in keys))
    results = run(options)  # only --quick is left
    harness.publish(results, _HERE / "results", markdown(results))


if __name__ == "__main__":
    main()
