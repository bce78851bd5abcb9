"""Shared benchmark helpers: crowd tasks, statistics, tables and result files."""
# SPDX-License-Identifier: BSD-3-Clause

# Nothing here is specific to one data set: the Omniglot benchmark uses it, and a
# benchmark on another data set (e.g. LabelMe) can reuse the task sampler, the
# statistics (mean, standard error, paired t-test), the tables and the writers.

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import time
import warnings
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import stats

try:
    import sklearn_metaannot  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn_metaannot import AnnotatorSimulator, EpisodeSampler  # noqa: E402

#: Default data folder: ``shared/data`` next to the repository (never copied in).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# -- tasks --------------------------------------------------------------------------


class CrowdTask(NamedTuple):
    """One few-shot target task with a simulated crowd on its support set.

    Indices point into the pool the task was drawn from, so that any
    representation of the pool (pixels, embeddings) can be used for it.

    Attributes
    ----------
    support : ndarray of shape (n_support,)
        Pool indices of the support examples.
    support_y : ndarray of shape (n_support,)
        True class codes ``0 .. n_way - 1`` of the support (hidden from methods).
    Y : ndarray of shape (n_support, n_annotators)
        Annotations as float class codes, ``np.nan`` where missing.
    query : ndarray of shape (n_query_total,)
        Pool indices of the query examples.
    query_y : ndarray of shape (n_query_total,)
        True class codes of the query examples.
    classes : ndarray of shape (n_way,)
        Pool labels of the task's classes (code k is ``classes[k]``).
    types : list of str
        Annotator types.
    seed : int
        A seed derived from the task, for the methods' own randomness.
    """

    support: np.ndarray
    support_y: np.ndarray
    Y: np.ndarray
    query: np.ndarray
    query_y: np.ndarray
    classes: np.ndarray
    types: list
    seed: int


def stable_seed(*keys) -> list[int]:
    """An entropy list for :func:`numpy.random.default_rng` from ints and strings.

    Strings are hashed with CRC-32, so the seed does not depend on Python's hash
    randomisation: the same ``keys`` always give the same tasks.
    """
    out = []
    for key in keys:
        if isinstance(key, int | np.integer):
            out.append(int(key))
        else:
            out.append(zlib.crc32(repr(key).encode()))
    return out


def sample_crowd_tasks(
    y,
    *,
    n_tasks,
    n_way,
    n_shot,
    n_query,
    n_annotators,
    mixture=(0.1, 0.7, 0.2),
    simulator_params=None,
    seed=0,
) -> list[CrowdTask]:
    """Draw ``n_tasks`` class-balanced few-shot tasks with simulated annotators.

    The tasks depend only on ``y`` and the arguments, never on the methods that
    will be evaluated on them: every method sees the same tasks.

    Parameters
    ----------
    y : array-like of shape (n_pool,)
        Labels of the pool.
    n_tasks, n_way, n_shot, n_query, n_annotators : int
        Number of tasks, classes per task, support and query examples per
        class, annotators per task.
    mixture : dict or sequence of 3 floats, default=(0.1, 0.7, 0.2)
        Annotator types, see :class:`sklearn_metaannot.AnnotatorSimulator`.
    simulator_params : dict, optional
        Other parameters of the simulator (accuracy ranges, annotation rate).
    seed : int or sequence of int, default=0
        Seed of the task sequence (see :func:`stable_seed`).

    Returns
    -------
    list of CrowdTask
    """
    y = np.asarray(y)
    simulator = AnnotatorSimulator(mixture, **(simulator_params or {}))
    sampler = EpisodeSampler(
        np.arange(len(y)),
        y,
        n_way=n_way,
        n_shot=n_shot,
        n_query=n_query,
        n_annotators=n_annotators,
        simulator=simulator,
    )
    rng = np.random.default_rng(seed)
    tasks = []
    for _ in range(n_tasks):
        ep = sampler.sample(rng)
        Y = ep.support_codes.astype(float)
        Y[ep.support_codes < 0] = np.nan
        tasks.append(
            CrowdTask(
                support=np.asarray(ep.support_X),
                support_y=ep.support_y,
                Y=Y,
                query=np.asarray(ep.query_X),
                query_y=ep.query_y,
                classes=ep.classes,
                types=list(ep.types),
                seed=int(rng.integers(2**31 - 1)),
            )
        )
    return tasks


class PrecomputedEncoder:
    """Look-up "encoder" over embeddings computed once for a whole pool.

    Methods are then fitted on ``X = pool indices`` of shape (n, 1): any
    estimator that embeds ``X`` with ``encoder.transform`` (``PrototypeClassifier``,
    ``CrowdLayerClassifier`` with a frozen encoder, ``MetaAnnotatorClassifier``
    through its ``meta_encoder_``) gives exactly what it would give on the
    images, without running the network again for every task.

    Parameters
    ----------
    embeddings : ndarray of shape (n_pool, M)
        Embedding of every pool example.
    """

    n_features_in = 1

    def __init__(self, embeddings):
        self.embeddings = np.asarray(embeddings, dtype=np.float64)

    def transform(self, X):
        """Embeddings of the pool rows ``X[:, 0]``."""
        idx = np.asarray(X)[:, 0].astype(np.int64)
        return self.embeddings[idx]


def index_features(indices) -> np.ndarray:
    """Pool indices as an (n, 1) float matrix, for :class:`PrecomputedEncoder`."""
    return np.asarray(indices, dtype=np.float64)[:, None]


# -- statistics -----------------------------------------------------------------------


def summarize(values) -> dict:
    """Mean, standard error (ddof=1) and count of per-task accuracies."""
    a = np.asarray(values, dtype=float)
    n = len(a)
    sem = float(a.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": float(a.mean()) if n else float("nan"), "sem": sem, "n": n}


def paired_ttest(a, b, *, alpha=0.05) -> dict:
    """Paired t-test of ``a`` against ``b`` (same tasks) with a verdict.

    Returns
    -------
    dict
        ``diff`` (mean of a - b), ``t``, ``p`` (two-sided,
        :func:`scipy.stats.ttest_rel`) and ``verdict``: ``"win"`` (a better,
        p < alpha), ``"loss"`` (a worse, p < alpha) or ``"tie"``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(np.mean(a - b))
    if len(a) < 2 or np.allclose(a, b):
        return {"diff": diff, "t": 0.0, "p": 1.0, "verdict": "tie"}
    with warnings.catch_warnings():  # nearly identical samples: precision notes
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_rel(a, b)
    t, p = float(res.statistic), float(res.pvalue)
    if not np.isfinite(p):  # constant differences
        p = 0.0 if diff != 0 else 1.0
    verdict = "tie" if p >= alpha else ("win" if diff > 0 else "loss")
    return {"diff": diff, "t": t, "p": p, "verdict": verdict}


class Timer:
    """Context manager measuring wall-clock (``seconds``) and CPU time (``cpu``)."""

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        return False


def environment() -> dict:
    """Versions and hardware, for the record."""
    import sklearn
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "cuda": bool(torch.cuda.is_available()),
    }


# -- tables and files ------------------------------------------------------------------


def fmt_acc(mean, sem=None, *, bold=False) -> str:
    """``0.892 ± 0.012``, in bold for Markdown when ``bold``."""
    text = (
        f"{mean:.3f}"
        if sem is None or not np.isfinite(sem)
        else (f"{mean:.3f} ± {sem:.3f}")
    )
    return f"**{text}**" if bold else text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = [
        "| " + " | ".join(str(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def rst_csv_table(title: str, header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A reStructuredText ``csv-table`` directive (for the Sphinx docs)."""

    def cell(v):
        s = str(v).replace('"', '""')
        return f'"{s}"'

    lines = [
        f".. csv-table:: {title}",
        "   :header: " + ", ".join(cell(h) for h in header),
    ]
    lines.append("")
    lines += ["   " + ", ".join(cell(c) for c in row) for row in rows]
    return "\n".join(lines)


def _jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(obj, path) -> Path:
    """Write ``obj`` as JSON (NumPy types converted, NaN as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(obj), indent=1) + "\n")
    return path


def write_csv(rows: Sequence[Mapping], path) -> Path:
    """Write a list of flat dicts as CSV (columns in first-seen order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(_jsonable(dict(row)))
    return path


def line_plot(
    path,
    x,
    series: Mapping[str, tuple],
    *,
    xlabel,
    ylabel,
    title,
    xticks=None,
    logx=False,
) -> Path:
    """Save a line plot with error bars; ``series`` maps a label to (means, sems)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7.4, 4.2), dpi=110)
    for label, (means, sems) in series.items():
        style = (
            {"lw": 2.4, "marker": "o"}
            if label.lower().startswith("ours")
            else {"lw": 1.3, "marker": ".", "alpha": 0.85}
        )
        ax.errorbar(x, means, yerr=sems, label=label, capsize=2, **style)
    if logx:
        ax.set_xscale("log")
    if xticks is not None:
        ax.set_xticks(list(xticks))
        ax.set_xticklabels([str(v) for v in xticks])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# -- studies on top of the Omniglot benchmark ------------------------------------------


def study_config(default_config, config=None, overrides=None) -> dict:
    """Configuration of a study script (``omniglot_clipping.py`` and the like).

    ``quick=True`` in ``config`` selects the quick defaults of
    ``default_config``; every other key overrides a default (unknown keys are an
    error), and ``omniglot``, the overrides of the Omniglot benchmark's own
    configuration, is merged key by key.
    """
    config = {**(config or {}), **(overrides or {})}
    cfg = default_config(quick=bool(config.pop("quick", False)))
    unknown = set(config) - set(cfg)
    if unknown:
        raise ValueError(f"unknown configuration keys {sorted(unknown)}")
    nested = {**cfg["omniglot"], **config.pop("omniglot", {})}
    cfg.update(config, omniglot=nested)
    return cfg


def write_study_outputs(results, out_dir, markdown_text, rst_title, table) -> dict:
    """``<name>.json``, ``<name>.md`` and ``<name>_tables.rst``; returns their paths."""
    out = Path(out_dir)
    name = results["config"]["name"]
    files = {"json": str(write_json(results, out / f"{name}.json"))}
    md = out / f"{name}.md"
    md.write_text(markdown_text + "\n")
    files["markdown"] = str(md)
    rst = out / f"{name}_tables.rst"
    rst.write_text(rst_csv_table(rst_title, *table) + "\n")
    files["rst"] = str(rst)
    return files


def study_parser(script, description, quick_help) -> argparse.ArgumentParser:
    """Command line of a study: ``--quick``, ``--data``, ``--name``, ``--no-write``."""
    parser = argparse.ArgumentParser(
        prog=f"python benchmarks/{script}", description=description
    )
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--data", help="folder with the Omniglot zip archives")
    parser.add_argument("--name", help="stem of the output files")
    parser.add_argument("--no-write", action="store_true", help="do not write files")
    return parser


def study_overrides(args, **extra) -> dict:
    """Configuration overrides from the parsed common options, plus ``extra``
    (the options left as None are dropped)."""
    overrides = {"quick": args.quick, "write": not args.no_write}
    if args.data:
        overrides["omniglot"] = {"data": args.data}
    if args.name:
        overrides["name"] = args.name
    overrides.update({k: v for k, v in extra.items() if v is not None})
    return overrides
