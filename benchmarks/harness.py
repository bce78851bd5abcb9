"""The benchmark harness: tasks, methods, the evaluation loop, statistics, files.

A benchmark script states its data, its protocol and its methods; this module
holds the rest: the seeded task sets every method shares (:class:`TaskSet`),
the method registry (:class:`Methods`), the evaluation loop with per-task rows
and timings (:func:`evaluate`), the summary (mean, standard error, paired
t-test, the best method and those tied with it), the tables, the writer of the
JSON, CSV, Markdown and reStructuredText files (:func:`write_page`), the plots
and the command lines.
"""
# SPDX-License-Identifier: BSD-3-Clause

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
import torch
from scipy import stats

from sklearn_metaannot import (
    AnnotatorSimulator,
    EpisodeSampler,
    MetaAnnotatorClassifier,
    MetaEncoder,
    MetaLearner,
    torch_threads,  # noqa: F401 (for scripts)
)

#: The repository root: the folder that holds the ``benchmarks`` package.
REPO = Path(__file__).resolve().parents[1]
#: Default data folder: ``shared/data`` next to the repository (never copied in).
SHARED_DATA = REPO.parent / "shared" / "data"


def benchmark_command(script) -> str:
    """The command that runs a benchmark: ``python -m benchmarks.NAME``.

    ``script`` is the benchmark's module name or its file name in
    ``benchmarks/`` (``"labelme"`` or ``"labelme.py"``).
    """
    return f"python -m benchmarks.{Path(script).stem}"


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
    unlabelled : ndarray of shape (n_unlabelled_total,)
        Pool indices of the unlabelled items (none unless asked for).
    unlabelled_y : ndarray of shape (n_unlabelled_total,)
        Their true class codes; ``-1`` for the items of distractor classes.
    """

    support: np.ndarray
    support_y: np.ndarray
    Y: np.ndarray
    query: np.ndarray
    query_y: np.ndarray
    classes: np.ndarray
    types: list
    seed: int
    unlabelled: np.ndarray = np.empty(0, dtype=np.int64)
    unlabelled_y: np.ndarray = np.empty(0, dtype=np.int64)


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
    n_unlabelled=0,
    n_distractor_classes=0,
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
    n_unlabelled, n_distractor_classes : int, default=0
        Unlabelled items per class of the task and of that many other classes
        (:class:`sklearn_metaannot.EpisodeSampler`), in ``CrowdTask.unlabelled``.
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
        n_unlabelled=n_unlabelled,
        n_distractor_classes=n_distractor_classes,
    )
    rng = np.random.default_rng(seed)
    tasks = []
    for _ in range(n_tasks):
        ep = sampler.sample(rng)
        # the sampler puts the unlabelled items after the labelled support
        n = len(ep.support_y) - (n_way + n_distractor_classes) * n_unlabelled
        Y = ep.support_codes[:n].astype(float)
        Y[ep.support_codes[:n] < 0] = np.nan
        tasks.append(
            CrowdTask(
                support=np.asarray(ep.support_X[:n]),
                support_y=ep.support_y[:n],
                Y=Y,
                query=np.asarray(ep.query_X),
                query_y=ep.query_y,
                classes=ep.classes,
                types=list(ep.types),
                seed=int(rng.integers(2**31 - 1)),
                unlabelled=np.asarray(ep.support_X[n:]),
                unlabelled_y=ep.support_y[n:],
            )
        )
    return tasks


class PrecomputedEncoder(MetaEncoder):
    """Look-up "encoder" over embeddings computed once for a whole pool.

    Methods are then fitted on ``X = pool indices`` of shape (n, 1): any
    estimator that embeds ``X`` with ``encoder.transform`` (``PrototypeClassifier``,
    ``CrowdLayerClassifier`` with a frozen encoder, ``MetaAnnotatorClassifier``
    with it as its ``meta_encoder``) gives exactly what it would give on the
    images, without running the network again for every task.

    Parameters
    ----------
    embeddings : ndarray of shape (n_pool, M)
        Embedding of every pool example.
    meta_encoder : MetaEncoder, optional
        The encoder that computed ``embeddings``: its validation results
        (``selected``, ``input_candidates``, ``n_way``, ...) are kept, so that a
        ``MetaAnnotatorClassifier`` decides as it would with that encoder.
    """

    #: What a ``MetaEncoder`` found in meta-training, kept from ``meta_encoder``.
    _KEPT = ("selected", "input_candidates", "val_scores", "input_scores")
    _KEPT += ("best_epoch", "history", "world_size", "n_way", "learner_params")

    def __init__(self, embeddings, meta_encoder=None):
        keep = () if meta_encoder is None else self._KEPT
        found = {k: getattr(meta_encoder, k) for k in keep}
        super().__init__(torch.nn.Identity(), 0.0, 1.0, 1, **found)
        self.embeddings = np.asarray(embeddings, dtype=np.float64)

    def transform(self, X, *, batch_size=None):
        """Embeddings of the pool rows ``X[:, 0]``."""
        idx = np.asarray(X)[:, 0].astype(np.int64)
        return self.embeddings[idx]


def index_features(indices) -> np.ndarray:
    """Pool indices as an (n, 1) float matrix, for :class:`PrecomputedEncoder`."""
    return np.asarray(indices, dtype=np.float64)[:, None]


class TaskSet:
    """Seeded tasks shared by every method, and how to read one as arrays.

    Parameters
    ----------
    tasks : sequence
        The tasks, drawn once before any method runs.
    read : callable
        ``read(task) -> (X, Y, X_query, y_query, seed)``: support features,
        crowd labels, query features, true query codes and the task's seed.
    """

    def __init__(self, tasks, read):
        self.tasks = list(tasks)
        self.read = read

    @classmethod
    def simulated(cls, X, y, **params) -> TaskSet:
        """Tasks of :func:`sample_crowd_tasks` on the pool ``(X, y)``."""
        X = np.asarray(X)

        def read(t):
            return X[t.support], t.Y, X[t.query], t.query_y, t.seed

        return cls(sample_crowd_tasks(y, **params), read)

    def __len__(self):
        return len(self.tasks)

    def __iter__(self):
        return iter(self.tasks)


class TaskModel:
    """``estimator`` fitted on one crowd task given as pool indices.

    Every method of a benchmark then reads the same task (see
    :func:`index_features`); when every annotation names one class, that class
    is predicted without fitting (many estimators need two classes).

    Parameters
    ----------
    estimator : estimator
        Fitted on ``(X, Y)``: crowd labels ``Y`` with ``np.nan`` for missing.
    features : ndarray of shape (n_pool, ...), optional
        When given, the estimator sees these rows of the pool instead of indices.
    """

    def __init__(self, estimator, features=None):
        self.estimator = estimator
        self.features = features

    def _rows(self, X):
        if self.features is None:
            return X
        return self.features[np.asarray(X)[:, 0].astype(np.int64)]

    def fit(self, X, Y):
        """Fit the estimator, unless the annotations name a single class."""
        Y = np.asarray(Y, dtype=float)
        named = np.unique(Y[~np.isnan(Y)]).astype(int)
        self.single_class_ = named[0] if len(named) < 2 else None
        if self.single_class_ is None:
            self.estimator.fit(self._rows(X), Y)
        return self

    def predict(self, X):
        """Predictions of the estimator (or the single class named)."""
        if self.single_class_ is not None:
            return np.full(len(X), self.single_class_)
        return self.estimator.predict(self._rows(X))


# -- our estimator ----------------------------------------------------------------

#: The parameters of :class:`MetaLearner` (meta-training) that
#: :func:`split_params` routes to it; ``random_state`` stays on the classifier,
#: whose ``meta_fit`` passes it to a learner without one (as the single
#: estimator of earlier versions used one seed for both).
LEARNER_PARAMS = frozenset(MetaLearner().get_params()) - {"random_state"}


def split_params(params) -> tuple[dict, dict]:
    """``params`` of our model as ``(MetaLearner params, classifier params)``."""
    learner = {k: v for k, v in params.items() if k in LEARNER_PARAMS}
    return learner, {k: v for k, v in params.items() if k not in LEARNER_PARAMS}


def meta_model(params=None, *, learner=MetaLearner, **more) -> MetaAnnotatorClassifier:
    """Our model from one flat dict of meta-training and adaptation parameters.

    ``learner`` is the :class:`MetaLearner` class (or a subclass) that gets the
    meta-training ones; the others go to ``MetaAnnotatorClassifier``.

    Examples
    --------
    >>> model = meta_model({"n_way": 4, "n_em_iter": 5}, random_state=0)
    >>> model.meta_learner.n_way, model.n_em_iter, model.random_state
    (4, 5, 0)
    """
    learner_params, clf_params = split_params({**(params or {}), **more})
    return MetaAnnotatorClassifier(meta_learner=learner(**learner_params), **clf_params)


def set_model_params(model, **params) -> MetaAnnotatorClassifier:
    """``model.set_params`` for flat parameters (those of :func:`split_params`'s
    learner as ``meta_learner__<name>``); ``model`` needs a ``meta_learner``."""
    learner_params, clf_params = split_params(params)
    nested = {f"meta_learner__{k}": v for k, v in learner_params.items()}
    return model.set_params(**clf_params, **nested)


# -- methods and the evaluation loop -----------------------------------------------


class Method(NamedTuple):
    """One method of a benchmark.

    Attributes
    ----------
    name : str
        Key in the results.
    label : str
        Name in the tables.
    build : callable
        ``build(context, seed) -> estimator``: an unfitted estimator for one
        task; ``context`` holds what the benchmark prepared (meta-trained
        models, settings).
    needs_meta : bool
        Whether the method needs a meta-trained model in ``context``.
    record : callable or None
        ``record(estimator) -> dict``: more columns of the per-task row.
    """

    name: str
    label: str
    build: object
    needs_meta: bool = False
    record: object = None


class Methods(dict):
    """Method registry: name -> :class:`Method`, in the order of registration."""

    def add(self, name, label, *, needs_meta=False, record=None):
        """Register the decorated ``build(context, seed)`` as method ``name``."""

        def register(build):
            self[name] = Method(name, label, build, needs_meta, record)
            return build

        return register

    def labels(self) -> dict:
        """Name -> label."""
        return {name: m.label for name, m in self.items()}

    def select(self, names) -> Methods:
        """The registered methods ``names``, in that order (unknown: an error)."""
        unknown = [n for n in names if n not in self]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; known: {list(self)}")
        out = Methods()
        out.update((n, self[n]) for n in names)
        return out


def evaluate(methods, taskset, context=None) -> list[dict]:
    """Fit every method on every task: one row per task and method.

    Parameters
    ----------
    methods : Methods
    taskset : TaskSet
    context : object, optional
        Passed to each method's ``build``.

    Returns
    -------
    list of dict
        ``task`` (index), ``method``, ``accuracy`` on the query, ``seconds``
        (fit and predict) and the method's ``record`` columns; tasks in order,
        methods in registration order within a task.
    """
    rows = []
    for i, task in enumerate(taskset):
        X, Y, X_query, y_query, seed = taskset.read(task)
        for method in methods.values():
            with Timer() as timer, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = method.build(context, seed)
                est.fit(X, Y)
                pred = np.asarray(est.predict(X_query))
            row = {
                "task": i,
                "method": method.name,
                "accuracy": float(np.mean(pred == y_query)),
                "seconds": timer.seconds,
            }
            if method.record is not None:
                row.update(method.record(est))
            rows.append(row)
    return rows


def column(rows, key="accuracy") -> dict[str, list]:
    """Values of ``key`` per method, in row order."""
    out: dict[str, list] = {}
    for row in rows:
        out.setdefault(row["method"], []).append(row[key])
    return out


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


def best_or_tied(accuracies: Mapping[str, Sequence[float]], *, alpha=0.05) -> set:
    """The method of highest mean and those tied with it (paired t-test).

    Parameters
    ----------
    accuracies : mapping
        Method -> per-task accuracies, on the same tasks in the same order.
    alpha : float, default=0.05
        Level of the test: p >= alpha is a tie.

    Returns
    -------
    set of str
        The methods to print in bold.
    """
    best = max(accuracies, key=lambda m: summarize(accuracies[m])["mean"])
    return {
        m
        for m, acc in accuracies.items()
        if m == best
        or paired_ttest(acc, accuracies[best], alpha=alpha)["verdict"] == "tie"
    }


def pooled(stats: Sequence[Mapping]) -> tuple[float, float]:
    """Mean of several cells' means and its standard error (independent cells)."""
    means = [s["mean"] for s in stats]
    sems = [s["sem"] ** 2 for s in stats]
    return float(np.mean(means)), float(np.sqrt(np.sum(sems)) / len(stats))


# -- timing, processes, the environment -------------------------------------------


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


def repeat_timed(fn, repeats=1, stop_after_s=None) -> tuple[object, list[float]]:
    """Call ``fn()`` up to ``repeats`` times (warnings silenced), stopping after
    the first call of ``stop_after_s`` seconds or more.

    Returns
    -------
    out : object
        What the last call returned.
    seconds : list of float
        Wall time of each call (report the minimum).
    """
    times, out = [], None
    for _ in range(max(1, int(repeats))):
        with warnings.catch_warnings(), Timer() as timer:
            warnings.simplefilter("ignore")
            out = fn()
        times.append(timer.seconds)
        if stop_after_s is not None and timer.seconds >= stop_after_s:
            break
    return out, times


def alternate(measures: Mapping[str, object], rounds: int) -> dict[str, list]:
    """Call every measure once per round, in turn: their results by name.

    Measures that alternate share the changes of load of a shared machine;
    keep the best round of each, or compare them round by round.

    Parameters
    ----------
    measures : mapping
        Name -> callable without arguments.
    rounds : int
        Number of rounds.

    Returns
    -------
    dict
        Name -> list of ``rounds`` results.
    """
    out: dict[str, list] = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            out[name].append(measure())
    return out


def adding_seconds(fn, spent: list, *, when=None):
    """``fn``, adding the wall-clock seconds of its calls to ``spent[0]``.

    ``when(*args, **kwargs)``, if given, selects the calls that are timed.
    """

    def timed(*args, **kwargs):
        if when is not None and not when(*args, **kwargs):
            return fn(*args, **kwargs)
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    return timed


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux: ru_maxrss in kB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(args, *, timeout_s=None) -> dict:
    """Run ``python args...`` (one BLAS/OpenMP thread) and parse the JSON dict on
    its last line of output; ``{"error": ...}`` on a timeout or a failure.

    The child finds the ``benchmarks`` package (``args`` may start with
    ``-m benchmarks.NAME``): the repository root leads its ``PYTHONPATH``.
    """
    import subprocess

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), env.get("PYTHONPATH")])
    )
    cmd = [sys.executable, *map(str, args)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stamped(config, **parts) -> dict:
    """Results: ``config``, then ``parts``, the date (UTC) and :func:`environment`."""
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return {"config": config, **parts, "date": date, "environment": environment()}


# -- tables -------------------------------------------------------------------------


def fmt_acc(mean, sem=None, *, bold=False) -> str:
    """``0.892 ± 0.012``, in bold for Markdown when ``bold``."""
    text = (
        f"{mean:.3f}"
        if sem is None or not np.isfinite(sem)
        else f"{mean:.3f} ± {sem:.3f}"
    )
    return f"**{text}**" if bold else text


def accuracy_rows(labels: Mapping, columns: Sequence[Mapping], *, bold=None) -> list:
    """The generic table of methods x settings: rows ``[label, "mean ± sem", ...]``.

    Parameters
    ----------
    labels : mapping
        Method -> its name in the table, in the order of the rows.
    columns : sequence of mapping
        One per column: method -> ``(mean, sem)`` (``sem`` None: the mean alone).
    bold : "max" or sequence of sets, optional
        The cells in bold: the highest mean of each column, or per column the
        methods to mark (e.g. :func:`best_or_tied`); None: none.
    """
    rows = [[label] for label in labels.values()]
    for j, col in enumerate(columns):
        marked = bold[j] if bold not in (None, "max") else ()
        top = max(col[m][0] for m in labels) if bold == "max" else None
        for row, m in zip(rows, labels):
            row.append(fmt_acc(*col[m], bold=m in marked or col[m][0] == top))
    return rows


def columns_table(columns, rows: Sequence[Mapping]) -> tuple[list, list]:
    """Header and body of a table of ``rows`` (dicts) by column.

    ``columns`` maps a header to its cell (or holds ``(header, cell)`` pairs):
    a :meth:`str.format` template of the row's fields (``"{ratio:.2f}"``, nested
    fields as ``{grad_norm[max]:.0f}``) or a callable ``cell(row) -> str``.
    """
    columns = list(columns.items() if isinstance(columns, Mapping) else columns)
    body = [
        [cell(row) if callable(cell) else cell.format(**row) for _, cell in columns]
        for row in rows
    ]
    return [header for header, _ in columns], body


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
        "",
    ]
    lines += ["   " + ", ".join(cell(c) for c in row) for row in rows]
    return "\n".join(lines)


# -- files --------------------------------------------------------------------------


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


class Table(NamedTuple):
    """A table of a results page.

    Attributes
    ----------
    text : str or None
        The Markdown block before it on the page (a heading, a note), or None.
    title : str or None
        Its title in ``<name>_tables.rst``; None: only on the Markdown page.
    header : list
    rows : list of list
    """

    text: str | None
    title: str | None
    header: list
    rows: list


def page_header(results, script, title) -> str:
    """Title, command, hardware and wall time: the top of a Markdown results page.

    ``results`` has ``config`` (with ``name``; a name with "quick" is the
    ``--quick`` run), ``environment`` and ``wall_seconds``.
    """
    cfg, env = results["config"], results["environment"]
    command = benchmark_command(script) + (" --quick" if "quick" in cfg["name"] else "")
    return (
        f"# {title} ({cfg['name']})\n\nCommand: `{command}`; {env['cpu']} "
        f"({env['cpu_count']} CPUs), torch {env['torch']}; wall time "
        f"{results['wall_seconds']:.0f} s."
    )


def markdown_page(parts) -> str:
    """The Markdown page of ``parts``: blocks of text and :class:`Table` s."""
    blocks = []
    for part in parts:
        if isinstance(part, Table):
            blocks += [part.text] if part.text is not None else []
            blocks.append(markdown_table(part.header, part.rows))
        elif part is not None:
            blocks.append(part)
    return "\n\n".join(blocks)


def rst_tables(parts, *, bold=True) -> list:
    """``(title, header, rows)`` of the :class:`Table` s of ``parts`` with a reST
    title; without the Markdown bold of the cells unless ``bold``."""
    tables = [p for p in parts if isinstance(p, Table) and p.title is not None]
    strip = (lambda c: c) if bold else (lambda c: str(c).replace("**", ""))
    return [
        (t.title, t.header, [[strip(c) for c in r] for r in t.rows]) for t in tables
    ]


def write_page(out_dir, name, results, parts=None, *, csv=None, rst_bold=True) -> dict:
    """Write a benchmark's files; returns their paths by kind.

    Parameters
    ----------
    out_dir : path
        Folder of the files.
    name : str
        Their stem.
    results : dict
        Written to ``<name>.json``.
    parts : sequence of str or Table, optional
        The page ``<name>.md``, block by block (None: skipped); its tables with a
        reST title go to ``<name>_tables.rst`` (included in the docs).
    csv : sequence of dict, optional
        Rows of ``<name>.csv``.
    rst_bold : bool, default=True
        Keep the Markdown bold of the cells in the reST tables.
    """
    out = Path(out_dir)
    files = {"json": str(write_json(results, out / f"{name}.json"))}
    if parts is not None:
        files["markdown"] = str(out / f"{name}.md")
        Path(files["markdown"]).write_text(markdown_page(parts) + "\n")
        if rst := rst_tables(parts, bold=rst_bold):
            files["rst"] = str(out / f"{name}_tables.rst")
            text = "\n\n".join(rst_csv_table(*t) for t in rst)
            Path(files["rst"]).write_text(text + "\n")
    if csv is not None:
        files["csv"] = str(write_csv(csv, out / f"{name}.csv"))
    return files


def publish(results, out_dir, markdown_text) -> dict:
    """Write ``<name>.json`` and ``<name>.md`` to ``out_dir`` and print the Markdown.

    Returns
    -------
    dict
        The paths by kind (:func:`write_page`).
    """
    page = [markdown_text.rstrip("\n")]
    files = write_page(out_dir, results["config"]["name"], results, page)
    print(markdown_text, flush=True)
    return files


# -- plots --------------------------------------------------------------------------


def _figure(path, figsize):
    """pyplot (on the Agg backend), a figure and its axes, for a plot at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return plt, *plt.subplots(figsize=figsize, dpi=110)


def _save(plt, fig, path) -> Path:
    """Save ``fig`` to ``path`` and close it."""
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def line_plot(
    path,
    x,
    series: Mapping[str, tuple],
    *,
    xlabel,
    ylabel,
    title,
    xticks=None,
    styles=None,
) -> Path:
    """Save a line plot with error bars; ``series`` maps a label to (means, sems),
    ``styles`` (optional) a label to ``Axes.errorbar`` keywords replacing the
    default style (bold for labels starting with "Ours")."""
    plt, fig, ax = _figure(path, (7.4, 4.2))
    for label, (means, sems) in series.items():
        style = (
            {"lw": 2.4, "marker": "o"}
            if label.lower().startswith("ours")
            else {"lw": 1.3, "marker": ".", "alpha": 0.85}
        )
        style = (styles or {}).get(label, style)
        ax.errorbar(x, means, yerr=sems, label=label, capsize=2, **style)
    if xticks is not None:
        ax.set_xticks(list(xticks))
        ax.set_xticklabels([str(v) for v in xticks])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(plt, fig, path)


def bar_plot(
    path,
    groups,
    series: Mapping[str, tuple],
    *,
    ylabel,
    title,
    logy=False,
    ylim=None,
    figsize=(8.5, 4.6),
    ncol=4,
    legend_y=-0.1,
    tick_fontsize=None,
) -> Path:
    """Save a grouped bar chart.

    Parameters
    ----------
    path : path
    groups : sequence of str
        Tick labels of the groups.
    series : mapping
        Label -> ``(values, style)``: one value per group (None: no bar) and
        keyword arguments of ``Axes.bar`` (``color``, ``hatch``).
    ylabel, title : str
    logy : bool, default=False
    ylim : (float, float), optional
    figsize, ncol, legend_y, tick_fontsize
        Figure size, legend columns, legend position below the axes, tick size.
    """
    plt, fig, ax = _figure(path, figsize)
    width = 0.8 / max(len(series), 1)
    for j, (label, (values, style)) in enumerate(series.items()):
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
        kept = [(x, v) for x, v in zip(xs, values) if v is not None]
        ax.bar([x for x, _ in kept], [v for _, v in kept], width, label=label, **style)
    if logy:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(
        list(groups), **({"fontsize": tick_fontsize} if tick_fontsize else {})
    )
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=ncol, loc="upper center", bbox_to_anchor=(0.5, legend_y))
    return _save(plt, fig, path)


def hbar_plot(
    path, bars: Mapping[str, tuple], *, xlabel, title, references=None, xlim=None
) -> Path:
    """Save a horizontal bar chart, first bar on top.

    ``bars`` maps a label to ``(value, error, colour)``; ``references`` maps a
    label to a value drawn as a vertical line.
    """
    plt, fig, ax = _figure(path, (7.2, 5.0))
    values, errors, colours = zip(*bars.values())
    ax.barh(range(len(bars)), values, xerr=errors, color=colours, alpha=0.85)
    ax.set_yticks(range(len(bars)))
    ax.set_yticklabels(list(bars), fontsize=8)
    ax.invert_yaxis()
    for j, (label, value) in enumerate((references or {}).items()):
        ls = ["-", "--", "-.", ":"][j % 4]
        ax.axvline(value, color="k", ls=ls, lw=1, label=f"{label} ({value:.2f})")
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    if references:
        ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.4, -0.13))
    return _save(plt, fig, path)


# -- configuration and command lines -------------------------------------------------


def configure(default_config, config=None, *, nested=()) -> dict:
    """A benchmark's configuration: its defaults updated by ``config``.

    ``quick=True`` in ``config`` selects the quick defaults of
    ``default_config(quick=...)``; every other key overrides a default
    (unknown keys are an error); the keys in ``nested`` (dicts) are merged
    key by key.
    """
    config = dict(config or {})
    cfg = default_config(quick=bool(config.pop("quick", False)))
    unknown = set(config) - set(cfg)
    if unknown:
        raise ValueError(f"unknown configuration keys {sorted(unknown)}")
    merged = {k: {**cfg[k], **config.pop(k, {})} for k in nested}
    cfg.update(config, **merged)
    return cfg


def log(cfg, *args) -> None:
    """Print ``args`` (flushed) when ``cfg["verbose"]`` is set."""
    if cfg.get("verbose"):
        print(*args, flush=True)


def parse_options(argv, description, options: Mapping[str, dict], prog=None) -> dict:
    """Parse a command line; the options given, by name.

    Parameters
    ----------
    argv : list of str or None
        The arguments (None: ``sys.argv[1:]``).
    description : str
        Text of ``--help``.
    options : mapping
        Name -> keywords of :meth:`argparse.ArgumentParser.add_argument`; the
        option is ``--name`` with ``-`` for ``_``.
    prog : str, optional
        Name of the program in ``--help``.

    Returns
    -------
    dict
        Name -> value of the options on the command line; the others are left
        out (so that the configuration's defaults apply) unless their keywords
        give a ``default``.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for name, kwargs in options.items():
        flag = "--" + name.replace("_", "-")
        kwargs = {"default": argparse.SUPPRESS, **kwargs}  # not given: left out
        parser.add_argument(flag, dest=name, **kwargs)
    return vars(parser.parse_args(argv))


def command_line(
    script, description, quick_help=None, argv=None, *, no_write=True, **options
) -> dict:
    """Parse a benchmark's command line into configuration overrides.

    Parameters
    ----------
    script : str
        Module or file name in ``benchmarks/``: ``--help`` names the program
        ``python -m benchmarks.NAME``.
    description, quick_help : str
        Help of the program and of ``--quick`` (None: no ``--quick``).
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).
    no_write : bool, default=True
        Whether there is a ``--no-write`` option.
    **options : (type, help) or dict
        Configuration key -> option ``--key-name`` of that type (or the keywords
        of :meth:`argparse.ArgumentParser.add_argument`); the options not given
        are left out of the overrides.

    Returns
    -------
    dict
        ``quick``, ``write`` (False with ``--no-write``) and the options given.
    """
    common = {}
    if quick_help:
        common["quick"] = {"action": "store_true", "help": quick_help}
    if no_write:
        common["no_write"] = {"action": "store_true", "help": "do not write files"}
    for name, spec in options.items():
        common[name] = (
            spec if isinstance(spec, dict) else dict(zip(("type", "help"), spec))
        )
    args = parse_options(argv, description, common, benchmark_command(script))
    quick, skip_files = args.pop("quick", False), args.pop("no_write", False)
    return {"quick": quick, "write": not skip_files, **args}
