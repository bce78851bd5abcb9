"""Meta-training throughput: episodes per second against a plain ProtoNet loop."""
# SPDX-License-Identifier: BSD-3-Clause

# Episodes per second of ``MetaAnnotatorClassifier.meta_fit`` at meta-batch sizes
# 4, 16 and 64, and of a plain PyTorch prototypical-network loop on the same
# encoder, the same episode sampler and the same optimiser, in the same process:
#
#   python benchmarks/throughput.py            # digits, MLP encoder, CPU
#   python benchmarks/throughput.py --device cuda
#
# Protocol:
# - data: scikit-learn's digits (64 features, 10 classes); episodes of 5 ways,
#   1-5 shots, 10 queries, 3-7 simulated annotators (pseudo-annotation);
# - ours: meta_fit with no validation (validation_classes=0), one epoch of
#   ``steps * meta_batch`` episodes, at least ``min_episodes`` (steady state:
#   the per-call set-up, a few ms, is amortised as in a real run); the time
#   includes skorch, episode sampling and padding, and the EM (3 iterations)
#   in the forward pass;
# - ours, J=0: the same with n_em_iter=0 (the EM cut down to its final M-step
#   on the majority vote), which separates the cost of the EM iterations from
#   that of the pipeline;
# - plain: a hand-written loop, per step: sample ``meta_batch`` episodes with the
#   same sampler, embed support + query, class means of the *true* support
#   labels, softmax over negative squared distances, cross-entropy, Adam step;
# - the two alternate ``rounds`` times and the best round of each is kept;
#   ratio = plain episodes/s divided by ours (1.0: no overhead; the issue's
#   target is at most 1.10), from the best round of each, and the median over
#   rounds of ours's time over plain's in the same round (robust to a load that
#   changes during the run). Torch threads: ``--threads`` (default 1).
# - clock (``--clock``): by default the process's CPU time on the CPU (both
#   loops run in the main process, one torch thread, no DataLoader workers, so
#   CPU time is what they cost, whatever else runs on a shared machine), the wall
#   clock on CUDA; the wall-clock ratio is reported too.
#
# Validation cost (``validation`` in the results): a short meta_fit with
# validation (digits classes 0-6 for training, 7-9 for 3-way validation tasks;
# 400 training episodes, 2 epochs, 100 validation tasks, hence 3 validation
# passes and the two no-meta references), timed two ways in the same run:
# with the current validation and with the former one
# (validation tasks sampled, padded and collated again at every pass, batches
# of meta_batch_size tasks, the no-meta EM one task at a time), restored by
# patching the package for the run. The validation work is timed where it
# happens (epoch-0 validation, skorch's validation epochs, no-meta references).

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
if str(_HERE.parent) not in sys.path:  # a source checkout without installation
    sys.path.insert(1, str(_HERE.parent))

import harness  # noqa: E402
from harness import markdown_table  # noqa: E402

from sklearn_metaannot import (  # noqa: E402
    EpisodeSampler,
    MetaAnnotatorClassifier,
    MetaLearningWarning,
)
from sklearn_metaannot._encoders import build_encoder  # noqa: E402

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
}


def load_data():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = ((X - X.mean(0)) / (X.std(0) + 1e-8)).astype(np.float32)
    return X, y


def n_steps(meta_batch, cfg) -> int:
    """Meta-batches per measurement: ``steps``, or more to reach ``min_episodes``."""
    return max(int(cfg["steps"]), -(-int(cfg.get("min_episodes", 0)) // meta_batch))


def ours(X, y, meta_batch, cfg, n_em_iter=3) -> float:
    """Seconds of meta_fit on ``n_steps * meta_batch`` episodes."""
    n = n_steps(meta_batch, cfg) * meta_batch
    clf = MetaAnnotatorClassifier(
        encoder="mlp",
        embedding_dim=cfg["embedding_dim"],
        hidden_layer_sizes=tuple(cfg["hidden_layer_sizes"]),
        n_way=cfg["n_way"],
        n_shot=tuple(cfg["n_shot"]),
        n_query=cfg["n_query"],
        n_annotators=tuple(cfg["n_annotators"]),
        n_episodes=n,
        episodes_per_epoch=n,
        meta_batch_size=meta_batch,
        validation_classes=0.0,
        lr=cfg["lr"],
        n_em_iter=n_em_iter,
        device=cfg["device"],
        n_threads=cfg["threads"],
        random_state=cfg["seed"],
    )
    start = _clocks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        clf.meta_fit(X, y)  # ends by moving the encoder to the CPU (a sync)
    return _elapsed(start)


def plain_protonet(X, y, meta_batch, cfg) -> float:
    """Seconds of a plain ProtoNet loop on the same encoder and episodes."""
    device = torch.device(cfg["device"])
    torch.manual_seed(cfg["seed"])
    encoder = build_encoder(
        "mlp",
        X.shape[1],
        embedding_dim=cfg["embedding_dim"],
        hidden_layer_sizes=tuple(cfg["hidden_layer_sizes"]),
        image_shape=None,
    ).to(device)
    opt = torch.optim.Adam(encoder.parameters(), lr=cfg["lr"])
    sampler = EpisodeSampler(
        X,
        y,
        n_way=cfg["n_way"],
        n_shot=tuple(cfg["n_shot"]),
        n_query=cfg["n_query"],
        n_annotators=tuple(cfg["n_annotators"]),
        pseudo_annotation=True,
    )
    rng = np.random.default_rng(cfg["seed"])
    K = cfg["n_way"]
    start = _clocks()
    with _common_threads(cfg["threads"]):
        for _ in range(n_steps(meta_batch, cfg)):
            opt.zero_grad()
            loss = 0.0
            for _ in range(meta_batch):
                ep = sampler.sample(rng)
                xs = torch.as_tensor(ep.support_X, device=device)
                xq = torch.as_tensor(ep.query_X, device=device)
                ys = torch.as_tensor(ep.support_y, device=device)
                yq = torch.as_tensor(ep.query_y, device=device)
                Z = encoder(torch.cat([xs, xq]))
                zs, zq = Z[: len(xs)], Z[len(xs) :]
                onehot = torch.nn.functional.one_hot(ys, K).to(Z.dtype)
                protos = (onehot.T @ zs) / onehot.sum(0).clamp_min(1).unsqueeze(1)
                logits = -torch.cdist(zq, protos).pow(2)
                loss = loss + torch.nn.functional.cross_entropy(logits, yq)
            (loss / meta_batch).backward()
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return _elapsed(start)


def _clocks():
    return time.perf_counter(), time.process_time()


def _elapsed(start):
    """(wall-clock, CPU) seconds since ``start``."""
    wall, cpu = _clocks()
    return wall - start[0], cpu - start[1]


def _clock(cfg) -> int:
    """Index of the clock of the headline figures: 1 (CPU time) on the CPU."""
    clock = cfg.get("clock", "auto")
    if clock == "auto":
        clock = "cpu" if cfg["device"] == "cpu" else "wall"
    return {"wall": 0, "cpu": 1}[clock]


class _common_threads:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


def run(config=None) -> dict:
    cfg = {**DEFAULT_CONFIG, **(config or {})}
    X, y = load_data()
    rows = []
    # warm-up: lazy imports and first-call costs
    warm = {**cfg, "steps": 1, "min_episodes": 0}
    ours(X, y, 2, warm)
    ours(X, y, 2, warm, n_em_iter=0)
    plain_protonet(X, y, 2, warm)
    for B in cfg["meta_batches"]:
        t_ours, t_em0, t_plain = [], [], []
        for _ in range(cfg["rounds"]):
            t_ours.append(ours(X, y, B, cfg))
            t_em0.append(ours(X, y, B, cfg, n_em_iter=0))
            t_plain.append(plain_protonet(X, y, B, cfg))
        n = n_steps(B, cfg) * B
        k = _clock(cfg)
        wall = [t[0] for t in t_ours], [t[0] for t in t_plain]
        t_ours, t_em0, t_plain = ([t[k] for t in ts] for ts in (t_ours, t_em0, t_plain))
        eps_ours, eps_plain = n / min(t_ours), n / min(t_plain)
        eps_em0 = n / min(t_em0)
        rows.append(
            {
                "meta_batch": B,
                "episodes": n,
                "ours_episodes_per_s": eps_ours,
                "plain_episodes_per_s": eps_plain,
                "ratio": eps_plain / eps_ours,
                # robust to a load that changes during the run: the two loops of
                # one round run back to back
                "ratio_median_of_rounds": float(
                    np.median(np.array(t_ours) / np.array(t_plain))
                ),
                "ratio_wall_clock": min(wall[0]) / min(wall[1]),
                "clock": ["wall", "cpu"][k],
                "ours_em0_episodes_per_s": eps_em0,
                "ratio_em0": eps_plain / eps_em0,
                # share of ours's time spent in the 3 EM iterations (fwd + bwd)
                "em_iterations_share": 1.0 - min(t_em0) / min(t_ours),
                "ours_seconds": t_ours,
                "ours_em0_seconds": t_em0,
                "plain_seconds": t_plain,
                "ours_wall_seconds": wall[0],
                "plain_wall_seconds": wall[1],
            }
        )
        print(rows[-1], flush=True)
    validation = validation_cost(X, y, cfg) if cfg.get("validation", True) else None
    print(validation, flush=True)
    return {
        "config": cfg,
        "environment": harness.environment(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
        "validation": validation,
    }


VALIDATION_CONFIG = {
    "n_way": 3,
    "n_episodes": 400,
    "episodes_per_epoch": 200,
    "n_val_episodes": 100,
    "meta_batch": 4,
}


class _Resampled(torch.utils.data.Dataset):
    """The former validation dataset: every access samples and pads again."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        from sklearn_metaannot.episodes import pad_episode

        ds = self.dataset
        ep = ds.sampler.sample(np.random.default_rng([ds.seed, 0, i]))
        s = ds.sampler
        return pad_episode(ep, s.max_support_size, s.max_annotators), ep.query_y


def _former_validation():
    """Patches restoring the former validation passes (see the header)."""
    from torch.utils.data import DataLoader, default_collate

    import sklearn_metaannot._classifier as classifier
    import sklearn_metaannot._meta as meta
    from sklearn_metaannot._em import one_hot_annotations, predict_log_proba, run_em

    def iterator(dataset, batch_size, shuffle=False, device=None, **kwargs):
        return DataLoader(
            _Resampled(dataset), batch_size=batch_size, collate_fn=default_collate
        )

    def no_meta(dataset, *, n_em_iter, tau, b, c, scaling="input"):
        correct = total = 0
        K = dataset.sampler.n_way
        for i in range(len(dataset)):
            ep = dataset.sampler.sample(np.random.default_rng([dataset.seed, 0, i]))
            xs, xq = meta._scaled_task(ep, scaling)
            U, Uq = torch.from_numpy(xs)[None], torch.from_numpy(xq)[None]
            codes = torch.from_numpy(ep.support_codes)[None]
            Y = one_hot_annotations(codes, K).double()
            res = run_em(U, Y, n_iter=n_em_iter, tau=tau, b=b, c=c)
            pred = predict_log_proba(Uq, res.mu, res.log_pi)[0].argmax(-1).numpy()
            correct += int((pred == ep.query_y).sum())
            total += len(ep.query_y)
        return correct / total

    return [
        (meta, "episode_iterator", iterator),
        (classifier, "no_meta_accuracy", no_meta),
        (classifier, "validation_batch_size", lambda meta_batch, n: meta_batch),
    ]


def _timed(fn, spent, only_validation=False):
    """``fn`` adding its seconds to ``spent[0]`` (validation epochs only, if asked)."""

    def wrapper(*args, **kwargs):
        if only_validation and kwargs.get(
            "training", args[2] if len(args) > 2 else True
        ):
            return fn(*args, **kwargs)
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    return wrapper


def _validation_fit(X, y, cfg, mode):
    """Seconds of the short meta_fit, of its validation work, and the estimator.

    The validation work is timed where it happens: the epoch-0 validation
    (``episode_accuracy``), skorch's validation epochs and the two no-meta
    references (``no_meta_accuracy``).
    """
    import sklearn_metaannot._classifier as classifier
    import sklearn_metaannot._meta as meta

    v = VALIDATION_CONFIG
    train, val = y < 7, y >= 7
    clf = MetaAnnotatorClassifier(
        encoder="mlp",
        embedding_dim=cfg["embedding_dim"],
        hidden_layer_sizes=tuple(cfg["hidden_layer_sizes"]),
        n_way=v["n_way"],
        n_shot=tuple(cfg["n_shot"]),
        n_query=cfg["n_query"],
        n_annotators=tuple(cfg["n_annotators"]),
        n_episodes=v["n_episodes"],
        episodes_per_epoch=v["episodes_per_epoch"],
        n_val_episodes=v["n_val_episodes"],
        meta_batch_size=v["meta_batch"],
        validation_classes=0.0,
        lr=cfg["lr"],
        device=cfg["device"],
        n_threads=cfg["threads"],
        random_state=cfg["seed"],
    )
    patches = _former_validation() if mode == "former" else []
    saved = {
        (mod, name): getattr(mod, name)
        for mod, name in [
            (meta, "episode_iterator"),
            (classifier, "no_meta_accuracy"),
            (classifier, "validation_batch_size"),
            (meta, "episode_accuracy"),
            (meta.EpisodicNet, "run_single_epoch"),
        ]
    }
    for mod, name, value in patches:
        setattr(mod, name, value)
    spent = [0.0]
    for mod, name in [(meta, "episode_accuracy"), (classifier, "no_meta_accuracy")]:
        setattr(mod, name, _timed(getattr(mod, name), spent))
    meta.EpisodicNet.run_single_epoch = _timed(
        saved[meta.EpisodicNet, "run_single_epoch"], spent, only_validation=True
    )
    try:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MetaLearningWarning)
            clf.meta_fit(X[train], y[train], X_val=X[val], y_val=y[val])
        seconds = time.perf_counter() - start
    finally:
        for (mod, name), value in saved.items():
            setattr(mod, name, value)
    return seconds, spent[0], clf


def validation_cost(X, y, cfg) -> dict:
    """Seconds of the validation work of a short run, current and former."""
    total = {"current": [], "former": []}
    validation = {"current": [], "former": []}
    scores = {}
    _validation_fit(X, y, cfg, "current")  # warm-up
    for _ in range(cfg["rounds"]):
        for mode in total:
            seconds, spent, clf = _validation_fit(X, y, cfg, mode)
            total[mode].append(seconds)
            validation[mode].append(spent)
            scores[mode] = (
                [row["valid_acc"] for row in clf.meta_history_],
                clf.meta_val_scores_,
            )
    share = {m: float(np.median(np.array(validation[m]) / total[m])) for m in total}
    return {
        **VALIDATION_CONFIG,
        "seconds": total,
        "validation_seconds": validation,
        "validation_current_s": min(validation["current"]),
        "validation_former_s": min(validation["former"]),
        "validation_share_current": share["current"],
        "validation_share_former": share["former"],
        "speedup_median_of_rounds": float(
            np.median(np.array(validation["former"]) / validation["current"])
        ),
        "same_scores": scores["current"] == scores["former"],
        "valid_acc": scores["current"][0],
        "val_scores": scores["current"][1],
    }


def markdown(results) -> str:
    header = [
        "meta-batch",
        "episodes",
        "ours (ep/s)",
        "plain ProtoNet (ep/s)",
        "ratio",
        "ratio, median of rounds",
        "ratio, wall clock",
        "ours, J=0 (ep/s)",
        "ratio, J=0",
        "EM iterations' share of ours",
    ]
    rows = [
        [
            r["meta_batch"],
            r["episodes"],
            f"{r['ours_episodes_per_s']:.1f}",
            f"{r['plain_episodes_per_s']:.1f}",
            f"{r['ratio']:.2f}",
            f"{r['ratio_median_of_rounds']:.2f}",
            f"{r['ratio_wall_clock']:.2f}",
            f"{r['ours_em0_episodes_per_s']:.1f}",
            f"{r['ratio_em0']:.2f}",
            f"{100 * r['em_iterations_share']:.0f} %",
        ]
        for r in results["rows"]
    ]
    cfg, env = results["config"], results["environment"]
    return (
        f"# Meta-training throughput ({results['date']})\n\n"
        f"`python benchmarks/throughput.py` — device {cfg['device']}, "
        f"clock: {cfg['clock']} ({'CPU time' if _clock(cfg) else 'wall clock'}), "
        f"{cfg['threads']} torch thread(s), {cfg['rounds']} rounds, {env['cpu']}, "
        f"{env['cpu_count']} cores.\n\n"
        + markdown_table(header, rows)
        + "\n\nratio = plain ProtoNet episodes/s / ours (1.00: no overhead); J=0: "
        "ours with n_em_iter=0 (the EM cut down to one M-step on the majority "
        "vote). At least "
        f"{cfg.get('min_episodes', 0)} episodes per measurement (steady state).\n"
        + _validation_markdown(results.get("validation"))
    )


def _validation_markdown(v) -> str:
    if not v:
        return ""
    return (
        f"\n## Validation cost\n\nShort meta_fit: {v['n_episodes']} training "
        f"episodes in {v['n_episodes'] // v['episodes_per_epoch']} epochs, "
        f"{v['n_val_episodes']} {v['n_way']}-way validation tasks (3 passes and "
        f"the no-meta references), meta-batch {v['meta_batch']}.\n\n"
        + markdown_table(
            ["validation", "seconds (best round)", "share of the run (median)"],
            [
                [
                    "current",
                    f"{v['validation_current_s']:.2f}",
                    f"{100 * v['validation_share_current']:.0f} %",
                ],
                [
                    "former",
                    f"{v['validation_former_s']:.2f}",
                    f"{100 * v['validation_share_former']:.0f} %",
                ],
            ],
        )
        + f"\n\nFormer / current validation time, median of rounds: "
        f"{v['speedup_median_of_rounds']:.1f}. Same validation "
        f"accuracies (every epoch, and the no-meta references): {v['same_scores']}.\n"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--clock",
        choices=["auto", "cpu", "wall"],
        default="auto",
        help="clock of the headline figures; auto: the process's CPU time on the "
        "CPU (robust to other processes on a shared machine), wall clock on CUDA",
    )
    parser.add_argument("--steps", type=int, default=DEFAULT_CONFIG["steps"])
    parser.add_argument("--rounds", type=int, default=DEFAULT_CONFIG["rounds"])
    parser.add_argument(
        "--min-episodes", type=int, default=DEFAULT_CONFIG["min_episodes"]
    )
    parser.add_argument("--out", default=str(_HERE / "results"))
    args = parser.parse_args(argv)
    results = run(
        {
            "device": args.device,
            "threads": args.threads,
            "steps": args.steps,
            "rounds": args.rounds,
            "min_episodes": args.min_episodes,
            "clock": args.clock,
        }
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    harness.write_json(results, out / f"{results['config']['name']}.json")
    (out / f"{results['config']['name']}.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
