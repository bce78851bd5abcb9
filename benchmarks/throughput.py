"""Meta-training throughput: episodes per second against a plain ProtoNet loop.

    python -m benchmarks.throughput            # digits, MLP encoder, CPU
    python -m benchmarks.throughput --device cuda

Protocol (details: docs, Benchmarks > Throughput): digits, episodes of 5 ways,
1-5 shots, 10 queries, 3-7 simulated annotators; per meta-batch size, ``steps``
meta-batches and at least ``min_episodes`` episodes (steady state) of ours
(``meta_fit`` without validation), ours with ``compile_em=True``, ours with
``n_em_iter=0`` and a plain ProtoNet loop on the same encoder, sampler and
optimiser; after a warm-up at that size (which compiles), the four alternate
``rounds`` times. Ours is timed over its training loop (skorch's
``on_train_begin`` to ``on_train_end``) and over the whole ``meta_fit`` call,
whose set-up and no-meta references do not grow with the episodes. Ratio:
plain episodes/s over ours, best round of each; also the median over rounds.
Clock: CPU time on the CPU, wall clock on CUDA (``--clock``). Validation cost:
the validation work of a short ``meta_fit``, timed through public seams: the
validation passes of the encoder and its EM (epoch 0 and every epoch: an
``EpisodicEM`` variant, ``episodic_em=``, that times its calls in eval mode)
and the no-meta references (from the end of the training loop to the end of
``meta_fit``: a skorch callback).
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback

from sklearn_metaannot import (
    EpisodeSampler,
    EpisodicEM,
    MetaAnnotatorClassifier,
    MetaLearningWarning,
)

from . import harness

_HERE = Path(__file__).resolve().parent

DEFAULT_CONFIG = {
    "name": "throughput",
    "meta_batches": [4, 16, 64],
    "steps": 25,
    "min_episodes": 400,
    "rounds": 3,
    "n_way": 5,
    "n_shot": [1, 5],
    "n_query": 10,
    "n_annotators": [3, 7],
    "embedding_dim": 64,
    "hidden_layer_sizes": [256],
    "lr": 1e-3,
    "threads": 1,
    "device": "cpu",
    "clock": "auto",
    "seed": 0,
    "validation": True,
}
#: The short meta_fit of the validation cost (classes 0-6; validation on 7-9).
VALIDATION_CONFIG = {
    "n_way": 3,
    "n_episodes": 400,
    "episodes_per_epoch": 200,
    "n_val_episodes": 100,
    "meta_batch": 4,
}
EPISODES = ("n_way", "n_shot", "n_query", "n_annotators")
ENCODER = ("embedding_dim", "hidden_layer_sizes")


def load_data():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return ((X - X.mean(0)) / (X.std(0) + 1e-8)).astype(np.float32), y


def n_steps(meta_batch, cfg) -> int:
    """Meta-batches per measurement: ``steps``, or more to reach ``min_episodes``."""
    return max(int(cfg["steps"]), -(-int(cfg.get("min_episodes", 0)) // meta_batch))


def _clock(cfg) -> str:
    """Clock of the headline figures: ``cpu`` (process time) or ``wall``."""
    auto = "cpu" if cfg["device"] == "cpu" else "wall"
    return auto if cfg.get("clock", "auto") == "auto" else cfg["clock"]


def _params(cfg, keys) -> dict:
    return {k: tuple(cfg[k]) if isinstance(cfg[k], list) else cfg[k] for k in keys}


def _model(cfg, **params) -> MetaAnnotatorClassifier:
    """The estimator on the encoder and episodes of ``cfg``, without validation;
    ``params`` of its ``MetaLearner`` or of the classifier (``n_em_iter``)."""
    fixed = {
        "encoder": "mlp",
        "pseudo_annotation": True,  # as the plain loop's sampler, whatever the default
        "validation_classes": 0.0,
        "lr": cfg["lr"],
        "device": cfg["device"],
        "n_threads": cfg["threads"],
    }
    return harness.meta_model(
        _params(cfg, EPISODES + ENCODER), **params, **fixed, random_state=cfg["seed"]
    )


class _LoopClock(Callback):
    """Times skorch's training loop: from ``on_train_begin`` to ``on_train_end``."""

    def on_train_begin(self, net, **kwargs):
        self.timer = harness.Timer().__enter__()

    def on_train_end(self, net, **kwargs):
        self.timer.__exit__()


def ours(X, y, meta_batch, cfg, n_em_iter=3, compile_em=False) -> harness.Timer:
    """Timer of the training loop of meta_fit on ``n_steps * meta_batch`` episodes;
    its attribute ``meta_fit`` times the whole call."""
    n = n_steps(meta_batch, cfg) * meta_batch
    params = {"n_episodes": n, "episodes_per_epoch": n, "n_em_iter": n_em_iter}
    clock = _LoopClock()
    params |= {"compile_em": compile_em, "callbacks": [("loop_clock", clock)]}
    clf = _model(cfg, meta_batch_size=meta_batch, **params)
    with harness.Timer() as timer, warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        clf.meta_fit(X, y)  # ends by moving the encoder to the CPU (a sync)
    clock.timer.meta_fit = timer
    return clock.timer


def plain_protonet(X, y, meta_batch, cfg) -> harness.Timer:
    """Timer of a plain ProtoNet loop on the same encoder, episodes and optimiser."""
    device, F = torch.device(cfg["device"]), torch.nn.functional
    torch.manual_seed(cfg["seed"])
    # the encoder that ours meta-trains, freshly initialised
    encoder = _model(cfg).meta_learner.build_encoder(X.shape[1]).to(device)
    opt = torch.optim.Adam(encoder.parameters(), lr=cfg["lr"])
    sampler = EpisodeSampler(X, y, pseudo_annotation=True, **_params(cfg, EPISODES))
    rng = np.random.default_rng(cfg["seed"])
    with harness.Timer() as timer, harness.torch_threads(cfg["threads"]):
        for _ in range(n_steps(meta_batch, cfg)):
            opt.zero_grad()
            loss = 0.0
            for ep in (sampler.sample(rng) for _ in range(meta_batch)):
                parts = (ep.support_X, ep.query_X, ep.support_y, ep.query_y)
                xs, xq, ys, yq = (torch.as_tensor(a, device=device) for a in parts)
                Z = encoder(torch.cat([xs, xq]))
                onehot = F.one_hot(ys, cfg["n_way"]).to(Z.dtype)
                protos = (onehot.T @ Z[: len(xs)]) / onehot.sum(0).clamp_min(1)[:, None]
                logits = -torch.cdist(Z[len(xs) :], protos).pow(2)
                loss = loss + F.cross_entropy(logits, yq)
            (loss / meta_batch).backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return timer


LOOPS = {
    "ours": ours,
    "ours_compiled": partial(ours, compile_em=True),
    "ours_em0": partial(ours, n_em_iter=0),
    "plain": plain_protonet,
}


def _row(meta_batch, cfg, timers) -> dict:
    """The figures of one meta-batch size from the timers of every round."""
    n, clock = n_steps(meta_batch, cfg) * meta_batch, _clock(cfg)
    attr = "cpu" if clock == "cpu" else "seconds"
    s = {k: [getattr(t, attr) for t in v] for k, v in timers.items()}
    s["ours_meta_fit"] = [getattr(t.meta_fit, attr) for t in timers["ours"]]
    wall = {k: [t.seconds for t in v] for k, v in timers.items()}
    eps = {k: n / min(v) for k, v in s.items()}
    return {
        "meta_batch": meta_batch,
        "episodes": n,
        "ours_episodes_per_s": eps["ours"],
        "plain_episodes_per_s": eps["plain"],
        "ratio": eps["plain"] / eps["ours"],
        "ratio_median_of_rounds": float(np.median(np.divide(s["ours"], s["plain"]))),
        "ratio_wall_clock": min(wall["ours"]) / min(wall["plain"]),
        "ratio_meta_fit": eps["plain"] / eps["ours_meta_fit"],
        "clock": clock,
        "ours_compiled_episodes_per_s": eps["ours_compiled"],
        "ratio_compiled": eps["plain"] / eps["ours_compiled"],
        "ratio_compiled_median_of_rounds": float(
            np.median(np.divide(s["ours_compiled"], s["plain"]))
        ),
        "ours_em0_episodes_per_s": eps["ours_em0"],
        "ratio_em0": eps["plain"] / eps["ours_em0"],
        "em_iterations_share": 1.0 - min(s["ours_em0"]) / min(s["ours"]),
        **{f"{k}_seconds": s[k] for k in [*LOOPS, "ours_meta_fit"]},
        **{f"{k}_wall_seconds": wall[k] for k in ("ours", "plain")},
    }


def run(config=None) -> dict:
    """Measure every meta-batch size (and the validation cost); the results."""
    cfg = harness.configure(lambda quick: dict(DEFAULT_CONFIG), config)
    X, y = load_data()
    rows = []
    for B in cfg["meta_batches"]:
        warm_up = {}
        for name, loop in LOOPS.items():  # first-call costs, compilation
            with harness.Timer() as timer:
                loop(X, y, B, {**cfg, "steps": 1, "min_episodes": 0})
            warm_up[name] = timer.seconds
        loops = {k: partial(loop, X, y, B, cfg) for k, loop in LOOPS.items()}
        rows.append(_row(B, cfg, harness.alternate(loops, cfg["rounds"])))
        # wall-clock seconds that compiling the EM added to the first meta-batch
        rows[-1]["compile_seconds"] = warm_up["ours_compiled"] - warm_up["ours"]
        print(rows[-1], flush=True)
    validation = validation_cost(X, y, cfg) if cfg["validation"] else None
    print(validation, flush=True)
    return harness.stamped(cfg, rows=rows, validation=validation)


def _timed_em(spent: list) -> type:
    """An ``EpisodicEM`` that adds the wall-clock seconds of its calls in eval
    mode (the validation tasks) to ``spent[0]``; the same EM otherwise."""

    class TimedEM(EpisodicEM):
        def forward(self, *args, **kwargs):
            forward = super().forward
            if self.training:
                return forward(*args, **kwargs)
            return harness.adding_seconds(forward, spent)(*args, **kwargs)

    return TimedEM


class _TrainingEnd(Callback):
    """Notes when skorch's training loop (with its validation epochs) ends."""

    def on_train_end(self, net, **kwargs):
        self.time = time.perf_counter()


def _validation_fit(X, y, cfg):
    """Seconds of the short meta_fit and of its validation work, the estimator.

    Timed: the validation passes (epoch 0 and skorch's validation epochs: the
    EM variant ``_timed_em``) and the no-meta references (what follows the
    training loop).
    """
    v, train, spent, end = VALIDATION_CONFIG, y < 7, [0.0], _TrainingEnd()
    keys = ("n_way", "n_episodes", "episodes_per_epoch", "n_val_episodes")
    clf = _model(
        cfg,
        meta_batch_size=v["meta_batch"],
        episodic_em=_timed_em(spent),
        callbacks=[("training_end", end)],
        **{k: v[k] for k in keys},
    )
    with harness.Timer() as timer, warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        clf.meta_fit(X[train], y[train], X_val=X[~train], y_val=y[~train])
        after_training = time.perf_counter() - end.time
    return timer.seconds, spent[0] + after_training, clf


def validation_cost(X, y, cfg) -> dict:
    """Seconds of the validation work of a short run, and its share of the run.

    The former validation (before issue 12) took 4.1 times as long; that
    comparison patched the package and was measured once, by this script at
    commit c75a999 (docs, Benchmarks > Throughput).
    """
    _validation_fit(X, y, cfg)  # warm-up
    runs = [_validation_fit(X, y, cfg) for _ in range(int(cfg["rounds"]))]
    clf = runs[-1][2]
    return {
        **VALIDATION_CONFIG,
        "seconds": [r[0] for r in runs],
        "validation_seconds": [r[1] for r in runs],
        "validation_current_s": min(r[1] for r in runs),
        "validation_share_current": float(np.median([r[1] / r[0] for r in runs])),
        "valid_acc": [h["valid_acc"] for h in clf.meta_history_],
        "val_scores": clf.meta_val_scores_,
    }


def _percent(share) -> str:
    return f"{100 * share:.0f} %"


COLUMNS = [
    ("meta-batch", "{meta_batch}"),
    ("episodes", "{episodes}"),
    ("ours (ep/s)", "{ours_episodes_per_s:.1f}"),
    ("plain ProtoNet (ep/s)", "{plain_episodes_per_s:.1f}"),
    ("ratio", "{ratio:.2f}"),
    ("ratio, median of rounds", "{ratio_median_of_rounds:.2f}"),
    ("ratio, wall clock", "{ratio_wall_clock:.2f}"),
    ("ratio, whole meta_fit", "{ratio_meta_fit:.2f}"),
    ("ours, compiled EM (ep/s)", "{ours_compiled_episodes_per_s:.1f}"),
    ("ratio, compiled EM", "{ratio_compiled:.2f}"),
    ("ratio, compiled EM, median of rounds", "{ratio_compiled_median_of_rounds:.2f}"),
    ("compilation (s)", "{compile_seconds:.1f}"),
    ("ours, J=0 (ep/s)", "{ours_em0_episodes_per_s:.1f}"),
    ("ratio, J=0", "{ratio_em0:.2f}"),
    ("EM iterations' share of ours", lambda r: _percent(r["em_iterations_share"])),
]


def markdown(results) -> str:
    """The results as a Markdown report."""
    cfg, env = results["config"], results["environment"]
    clock = "CPU time" if _clock(cfg) == "cpu" else "wall clock"
    return (
        f"# Meta-training throughput ({results['date']})\n\n"
        f"`python -m benchmarks.throughput` — device {cfg['device']}, clock: "
        f"{cfg['clock']} ({clock}), {cfg['threads']} torch thread(s), "
        f"{cfg['rounds']} rounds, {env['cpu']}, {env['cpu_count']} cores.\n\n"
        + harness.markdown_table(*harness.columns_table(COLUMNS, results["rows"]))
        + "\n\nratio = plain ProtoNet episodes/s / ours (1.00: no overhead), ours "
        "timed over its training loop; whole meta_fit: also its set-up and "
        "no-meta references; compiled EM: ours with compile_em=True (compiled in "
        "the warm-up; compilation: the seconds it added to the warm-up, less where "
        "torch's on-disk cache already held the graphs); J=0: ours with "
        "n_em_iter=0 (the EM cut down to one M-step on the majority vote). At "
        f"least {cfg.get('min_episodes', 0)} episodes per measurement (steady "
        "state).\n" + _validation_markdown(results.get("validation"))
    )


def _validation_markdown(v) -> str:
    if not v:
        return ""
    columns = [
        ("validation", str),
        ("seconds (best round)", lambda m: f"{v[f'validation_{m}_s']:.2f}"),
        ("share of the run (median)", lambda m: _percent(v[f"validation_share_{m}"])),
    ]
    return (
        f"\n## Validation cost\n\nShort meta_fit: {v['n_episodes']} training "
        f"episodes in {v['n_episodes'] // v['episodes_per_epoch']} epochs, "
        f"{v['n_val_episodes']} {v['n_way']}-way validation tasks (3 passes and "
        f"the no-meta references), meta-batch {v['meta_batch']}.\n\n"
        + harness.markdown_table(*harness.columns_table(columns, ["current"]))
        + "\n\nThe validation before issue 12 took 4.1 times as long (measured once "
        "at commit c75a999, with the same accuracies).\n"
    )


OPTIONS = {
    "device": {},
    "threads": {"type": int},
    "clock": {
        "choices": ["auto", "cpu", "wall"],
        "help": "clock of the headline figures; auto: the process's CPU time on "
        "the CPU (robust to other processes on a shared machine), wall clock on CUDA",
    },
    "steps": {"type": int},
    "rounds": {"type": int},
    "min_episodes": {"type": int},
    "out": {},
}


def main(argv=None):
    options = harness.parse_options(
        argv, __doc__.splitlines()[0], OPTIONS, harness.benchmark_command("throughput")
    )
    out = options.pop("out", _HERE / "results")
    results = run(options)
    harness.publish(results, out, markdown(results))


if __name__ == "__main__":
    main()
