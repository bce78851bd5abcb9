"""Command line on files: ``meta-fit`` on a labelled CSV, ``fit-predict`` on a crowd.

``python -m sklearn_metaannot meta-fit --data source.csv --target label -o model``
meta-learns an encoder on a CSV of numeric feature columns plus a clean label
column and saves the model. ``python -m sklearn_metaannot fit-predict --crowd
crowd.csv --features features.csv [--model model] -o predictions.csv`` infers
the true label of every task of a crowd export (crowd-kit's ``task,worker,label``
format) from the labels and the features.

Every error a user can cause (a malformed file, an output path where nothing
can be written, labels of one class) stops the command with exit status 2 and
one line naming the file (and the row); ``--debug`` shows the traceback. The
output paths are checked before anything is fitted, and the outputs are written
to temporary files moved into place only when all of them succeeded, so a
failed or interrupted run (Ctrl-C: exit status 130, SIGTERM: 143) leaves no new
or half-written file and every existing file as it was.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import warnings
from pathlib import Path

import numpy as np

from ._classifier import MetaAnnotatorClassifier
from .crowd._labels import CrowdLabelMatrix
from .io._atomic import AtomicOutputs, OutputPathError, check_output_path
from .meta._learner import MetaLearner, MetaLearningWarning

PROG = "python -m sklearn_metaannot"
COMMANDS = ("meta-fit", "fit-predict")
CROWD_COLUMNS = ("task", "worker", "label")
EXIT_STATUSES = (
    "exit status: 0 done; 2 a user's error (file, path, labels, options), one "
    "line; 130 interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM), no "
    "output written; 1 a bug (with a traceback)"
)


class InputFileError(ValueError):
    """A malformed input file; the message names the file (and the row).

    Examples
    --------
    >>> from sklearn_metaannot.cli import InputFileError
    >>> str(InputFileError("crowd.csv, row 3 (line 4): empty 'label'"))
    "crowd.csv, row 3 (line 4): empty 'label'"
    """


class Interrupted(BaseException):
    """SIGINT or SIGTERM during a command; ends it with status 128 + signal.

    A BaseException but not a KeyboardInterrupt, so that no library code
    (skorch's training loop stops quietly on KeyboardInterrupt) mistakes it for
    the end of the work.

    Parameters
    ----------
    signum : int
        The signal received.

    Examples
    --------
    >>> import signal
    >>> from sklearn_metaannot.cli import Interrupted
    >>> Interrupted(signal.SIGTERM).signum == signal.SIGTERM
    True
    >>> issubclass(Interrupted, KeyboardInterrupt)
    False
    """

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _plain(value):
    """A numpy scalar as the Python value it holds (``2.0``, not ``np.float64(2.0)``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot.cli import _plain
    >>> _plain(np.float64(2.0)), _plain(np.str_("t0")), _plain("owl")
    (2.0, 't0', 'owl')
    """
    return value.item() if isinstance(value, np.generic) else value


# -- saving and loading -----------------------------------------------------------


def _save_model(model, path):
    """Save ``model`` to ``path``.

    ``sklearn_metaannot.save`` (pickle-free) is used when the package has it;
    joblib is the fallback until save/load lands.
    """
    import sklearn_metaannot

    if hasattr(sklearn_metaannot, "save"):
        sklearn_metaannot.save(model, path)
    else:  # fallback until sklearn_metaannot.save/load lands
        import joblib

        joblib.dump(model, path)


def _load_model(path):
    """Load a model saved by :func:`_save_model`.

    ``sklearn_metaannot.load`` when the package has it, else joblib (the
    fallback until save/load lands).
    """
    import sklearn_metaannot

    if hasattr(sklearn_metaannot, "load"):
        return sklearn_metaannot.load(path)
    import joblib  # fallback until sklearn_metaannot.save/load lands

    return joblib.load(path)


# -- reading files ----------------------------------------------------------------


def _where(path, i):
    """``file, row R (line L)`` for the i-th data row (0-based) of a CSV."""
    return f"{path}, row {i + 1} (line {i + 2})"


def _where_two(path, i, j):
    """``file, rows R and S (lines L and M)`` for two data rows (0-based)."""
    return f"{path}, rows {i + 1} and {j + 1} (lines {i + 2} and {j + 2})"


def read_csv(path, *, dtype=None):
    """Read a CSV file with a header line, one data row per line.

    Parameters
    ----------
    path : str or path-like
        The file.
    dtype : dict, default=None
        Column types for :func:`pandas.read_csv`.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputFileError
        If the file is missing, empty or not a CSV table.

    Examples
    --------
    >>> from sklearn_metaannot.cli import read_csv
    >>> read_csv("no_such_file.csv")
    Traceback (most recent call last):
    ...
    sklearn_metaannot.cli.InputFileError: no_such_file.csv: file not found
    """
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory, not a CSV file")
    if not path.is_file():
        raise InputFileError(f"{path}: file not found")
    try:
        # blank lines are kept (as empty rows) so that row numbers match lines
        return pd.read_csv(path, dtype=dtype, skip_blank_lines=False)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except pd.errors.EmptyDataError:
        raise InputFileError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        message = " ".join(str(exc).split())
        raise InputFileError(f"{path}: not a readable CSV table ({message})") from None


def _require_columns(df, columns, path, what):
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputFileError(
            f"{path}: no column {missing[0]!r} ({what}); its columns are "
            f"{list(df.columns)}"
        )


def _check_no_empty(df, columns, path):
    for column in columns:
        empty = df[column].isna().to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise InputFileError(f"{_where(path, i)}: empty value in column {column!r}")


def numeric_features(df, columns, path):
    """The feature columns of ``df`` as a float64 array; an error names a bad cell.

    Parameters
    ----------
    df : pandas.DataFrame
        The table read from ``path``.
    columns : list of str
        Feature columns.
    path : str or path-like
        The file, for error messages.

    Returns
    -------
    ndarray of shape (n_rows, n_columns)

    Raises
    ------
    InputFileError
        If there is no feature column, or a cell is empty, not a number or not
        finite (``inf``).

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_metaannot.cli import numeric_features
    >>> df = pd.DataFrame({"a": [1.0, 2.0], "b": ["3", "x"]})
    >>> numeric_features(df, ["a"], "f.csv")
    array([[1.],
           [2.]])
    >>> numeric_features(df, ["a", "b"], "f.csv")
    Traceback (most recent call last):
    ...
    sklearn_metaannot.cli.InputFileError: f.csv, row 2 (line 3): column 'b' is \
not a number: 'x'
    """
    import pandas as pd

    if not columns:
        raise InputFileError(f"{path}: no feature column (numeric columns expected)")
    _check_no_empty(df, columns, path)
    values = np.empty((len(df), len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        converted = pd.to_numeric(df[column], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(converted)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            cell = _plain(df[column].iloc[i])
            if np.isnan(converted[i]):
                problem = f"is not a number: {cell!r}"
            else:  # inf or -inf, written as such or beyond the float range
                problem = f"is not a finite number: {cell}"
            raise InputFileError(f"{_where(path, i)}: column {column!r} {problem}")
        values[:, j] = converted
    return values


def read_features(path):
    """Read ``features.csv``: a ``task`` column plus numeric feature columns.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    tasks : ndarray of str of shape (n_tasks,)
        Task ids, unique.
    X : ndarray of shape (n_tasks, n_features)
        The features.
    columns : list of str
        Names of the feature columns.

    Raises
    ------
    InputFileError
        If the task column is missing, a task is empty or repeated, or a feature
        is not a number.

    Examples
    --------
    >>> from sklearn_metaannot.cli import read_features
    >>> read_features("features.csv")
    Traceback (most recent call last):
    ...
    sklearn_metaannot.cli.InputFileError: features.csv: file not found
    """
    df = read_csv(path, dtype={"task": str})
    _require_columns(df, ["task"], path, "the task ids")
    _check_no_empty(df, ["task"], path)
    tasks = df["task"].to_numpy(dtype=str)
    repeated = df["task"].duplicated().to_numpy()
    if repeated.any():
        j = int(np.flatnonzero(repeated)[0])
        i = int(np.flatnonzero(tasks == tasks[j])[0])
        raise InputFileError(
            f"{_where_two(path, i, j)}: task {str(tasks[j])!r} appears twice; give "
            "each task one row of features"
        )
    columns = [c for c in df.columns if c != "task"]
    return tasks, numeric_features(df, columns, path), columns


def read_crowd(path, tasks, *, features_path="the features file"):
    """Read ``crowd.csv`` (``task,worker,label``) over the tasks of the features.

    Identical repeated rows count once.

    Parameters
    ----------
    path : str or path-like
        The crowd file, one label per row.
    tasks : ndarray of str
        Task ids of the features file, in its row order.
    features_path : str, default="the features file"
        Name of the features file, for error messages.

    Returns
    -------
    CrowdLabelMatrix
        One row per task of ``tasks`` (tasks nobody labelled have no label), one
        column per worker.

    Raises
    ------
    InputFileError
        If a column or a value is missing, a task has no features, or a worker
        gave one task two different labels (the message names both rows).

    Examples
    --------
    >>> from sklearn_metaannot.cli import read_crowd
    >>> read_crowd("crowd.csv", ["t1"])
    Traceback (most recent call last):
    ...
    sklearn_metaannot.cli.InputFileError: crowd.csv: file not found
    """
    return _read_crowd(path, tasks, features_path)[0]


def _read_crowd(path, tasks, features_path):
    """:func:`read_crowd`, and the number of identical repeated rows merged."""
    df = read_csv(path, dtype={"task": str, "worker": str})
    _require_columns(
        df, CROWD_COLUMNS, path, "crowd-kit's format: one task,worker,label per row"
    )
    _check_no_empty(df, CROWD_COLUMNS, path)
    known = np.isin(df["task"].to_numpy(dtype=str), np.asarray(tasks, dtype=str))
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        raise InputFileError(
            f"{_where(path, i)}: task {df['task'].iloc[i]!r} has no features in "
            f"{features_path}"
        )
    _check_no_conflict(df, path)
    repeated = df.duplicated(["task", "worker"]).to_numpy()
    df = df[~repeated]
    Y = CrowdLabelMatrix.from_long(df, sample_ids=np.asarray(tasks, dtype=str))
    return Y, int(repeated.sum())


def _check_no_conflict(df, path):
    """Raise if a worker gave one task two labels, naming the two rows."""
    pairs = df.groupby(["task", "worker"], sort=False)["label"]
    first = pairs.transform("first")
    differs = (df["label"] != first).to_numpy()
    if not differs.any():
        return
    j = int(np.flatnonzero(differs)[0])
    task, worker = df["task"].iloc[j], df["worker"].iloc[j]
    same = ((df["task"] == task) & (df["worker"] == worker)).to_numpy()
    i = int(np.flatnonzero(same)[0])
    labels = _plain(df["label"].iloc[i]), _plain(df["label"].iloc[j])
    raise InputFileError(
        f"{_where_two(path, i, j)}: worker {worker!r} gave task {task!r} two "
        f"different labels ({labels[0]!r} and {labels[1]!r})"
    )


def _check_classes(Y, path):
    """The classes the crowd named; an error if fewer than two.

    The command line passes them to ``fit`` as the task's classes: it has no
    option to declare others, so a warning that a class might be missing
    could not be acted on.
    """
    if Y.n_labels == 0:
        raise InputFileError(f"{path}: no label at all (only a header line)")
    classes = np.asarray(Y.classes)
    if len(classes) < 2:
        raise InputFileError(
            f"{path}: every label is {_plain(classes[0])!r}; at least 2 different "
            "labels (classes) are needed"
        )
    return classes


# -- commands ---------------------------------------------------------------------


def _check_outputs(outputs, inputs):
    """Check every output path before the work; an error names the first bad one.

    Parameters
    ----------
    outputs : dict
        Option -> output path (None: not asked for).
    inputs : dict
        Option -> input path, which no output may overwrite.
    """
    seen = {Path(p).resolve(): o for o, p in inputs.items() if p is not None}
    read = set(seen)
    for option, path in outputs.items():
        if path is None:
            continue
        check_output_path(path, option)
        resolved = Path(path).resolve()
        if resolved in seen:
            kind = "input" if resolved in read else "output"
            raise OutputPathError(
                f"{path} ({option}): also the {kind} file of {seen[resolved]}; "
                "give another path"
            )
        seen[resolved] = option


def _meta_fit_command(args):
    """``meta-fit``: meta-learn on a CSV with clean labels and save the model."""
    import pandas as pd

    _check_outputs({"-o": args.output}, {"--data": args.data})
    if args.checkpoint_dir is not None:
        _check_checkpoint_dir(args.checkpoint_dir)
    df = read_csv(args.data)
    _require_columns(df, [args.target], args.data, "the --target label column")
    _check_no_empty(df, [args.target], args.data)
    columns = [c for c in df.columns if c != args.target]
    X = numeric_features(df, columns, args.data)
    y = df[args.target].to_numpy()
    _check_target(y, args.data, args.target)
    model = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            encoder=args.encoder,
            n_way=args.n_way,
            n_episodes=args.n_episodes,
            episodes_per_epoch=args.episodes_per_epoch or min(200, args.n_episodes),
            n_val_episodes=args.n_val_episodes,
            checkpoint_dir=args.checkpoint_dir,
            n_threads=args.n_threads,
            verbose=0 if args.quiet else 1,
        ),
        random_state=args.random_state,
    )
    with warnings.catch_warnings():
        if args.quiet:
            warnings.simplefilter("ignore", MetaLearningWarning)
        try:
            # a DataFrame: the encoder keeps the column names (feature_names_in)
            model.meta_fit(pd.DataFrame(X, columns=columns), y)
        except ValueError as exc:
            raise InputFileError(f"{args.data}: {exc}") from None
    with AtomicOutputs() as outputs:
        _write(_save_model, model, outputs.path(args.output), args.output)
    if not args.quiet:
        print(
            f"meta-learned on {len(y)} rows, {len(np.unique(y))} classes, "
            f"{len(columns)} features: validation accuracy "
            f"{model.meta_val_accuracy_:.3f} (EM on the features "
            f"{model.no_meta_val_accuracy_:.3f}); fit will use the "
            f"{model.meta_selected_!r} representation. Saved to {args.output}"
        )
    return model


def _check_target(y, path, column):
    """The label column of ``meta-fit``: class labels, at least two of them."""
    from sklearn.utils.multiclass import type_of_target

    if type_of_target(y) == "continuous":
        i = int(np.flatnonzero(np.mod(y.astype(float), 1) != 0)[0])
        raise InputFileError(
            f"{_where(path, i)}: column {column!r} holds {_plain(y[i])}, not a class "
            "label (its values must be classes: words or whole numbers)"
        )
    classes = np.unique(y)
    if len(classes) < 2:
        raise InputFileError(
            f"{path}: every value of column {column!r} is {_plain(classes[0])!r}; "
            "at least 2 classes are needed"
        )


def _check_checkpoint_dir(path):
    """``--checkpoint-dir``: an existing directory, or one that can be created."""
    path = Path(path)
    if path.is_dir():
        check_output_path(path / "meta_fit_resume.pt", "--checkpoint-dir")
    elif path.exists():
        raise OutputPathError(f"{path} (--checkpoint-dir): not a directory")
    else:
        check_output_path(path, "--checkpoint-dir")


def _write(write, data, temporary, final):
    """``write(data, temporary)``; an OSError names the final path."""
    try:
        write(data, temporary)
    except OSError as exc:
        raise OutputPathError(
            f"{final}: cannot write ({exc.strerror or exc}); no output was written"
        ) from None


def _model_for(args, columns, X):
    """A fresh estimator for fit-predict: the loaded model's clone, or a default."""
    from sklearn.base import clone

    if args.model is None:
        return MetaAnnotatorClassifier(), X
    path = Path(args.model)
    if not path.exists():
        raise InputFileError(f"{path}: file not found")
    try:
        model = _load_model(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
        raise InputFileError(f"{path}: not a saved model ({exc})") from None
    if not isinstance(model, MetaAnnotatorClassifier):
        raise InputFileError(
            f"{path}: not a saved MetaAnnotatorClassifier (a {type(model).__name__})"
        )
    encoder = model.meta_encoder
    expected = None if encoder is None else encoder.feature_names_in
    if expected is not None:
        missing = [c for c in expected if c not in columns]
        if missing:
            raise InputFileError(
                f"{args.features}: no column {missing[0]!r}; the model was "
                f"meta-fitted on the columns {list(expected)}"
            )
        X = X[:, [columns.index(c) for c in expected]]
    return clone(model), X


def _fit_predict_command(args):
    """``fit-predict``: infer the true label of every task and write them."""
    import pandas as pd

    _check_outputs(
        {"-o": args.output, "--annotators": args.annotators},
        {"--crowd": args.crowd, "--features": args.features, "--model": args.model},
    )
    tasks, X, columns = read_features(args.features)
    Y, n_merged = _read_crowd(args.crowd, tasks, args.features)
    classes = _check_classes(Y, args.crowd)
    model, X = _model_for(args, columns, X)
    # tasks that no crowd row names: unlabelled items, left out of the model
    # (they still get a prediction) unless --use-unlabelled lets the guard decide
    model.set_params(unlabelled_weight="auto" if args.use_unlabelled else 0.0)
    try:
        # the crowd's classes, all named: no class can be missing from the task
        model.fit(X, Y, classes=classes)
    except ValueError as exc:
        raise InputFileError(f"{args.crowd}, {args.features}: {exc}") from None
    proba = model.sample_posterior_
    out = pd.DataFrame({"task": tasks, "label": model.classes_[proba.argmax(axis=1)]})
    for k, label in enumerate(model.classes_):
        out[f"proba_{label}"] = proba[:, k]
    with AtomicOutputs() as outputs:
        temporary = outputs.path(args.output)
        _write(lambda df, p: df.to_csv(p, index=False), out, temporary, args.output)
        if args.annotators is not None:
            report = model.annotator_report()
            report.index.name = "worker"
            temporary = outputs.path(args.annotators)
            _write(lambda df, p: df.to_csv(p), report, temporary, args.annotators)
    if not args.quiet:
        merged = f" ({n_merged} repeated rows merged)" if n_merged else ""
        choice = model.unlabelled_choice_
        if choice.n_unlabelled and not args.use_unlabelled:
            merged += (
                f", {choice.n_unlabelled} tasks without labels (predicted, not "
                "used to fit: see --use-unlabelled)"
            )
        elif choice.n_unlabelled:
            used = f"used ({choice.candidate!r})" if choice.weight > 0 else "not used"
            merged += (
                f", {choice.n_unlabelled} tasks without labels {used}: {choice.reason}"
            )
        print(
            f"{len(tasks)} tasks, {Y.n_annotators} workers, {Y.n_labels} labels"
            f"{merged}, {len(model.classes_)} classes ({model.representation_!r} "
            f"representation): predictions written to {args.output}"
            + (f", worker report to {args.annotators}" if args.annotators else "")
        )
    return out


def _count(minimum):
    """An argparse type: an int of at least ``minimum``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def build_parser():
    """The argument parser of the ``meta-fit`` and ``fit-predict`` commands.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> from sklearn_metaannot.cli import build_parser
    >>> args = build_parser().parse_args(
    ...     ["fit-predict", "--crowd", "c.csv", "--features", "f.csv", "-o", "p.csv"])
    >>> args.command, args.model, args.debug
    ('fit-predict', None, False)
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error (default: one line, exit status 2)",
    )
    parser = argparse.ArgumentParser(prog=PROG, epilog=EXIT_STATUSES)
    sub = parser.add_subparsers(dest="command", required=True)
    meta = sub.add_parser(
        "meta-fit",
        parents=[common],
        help="meta-learn an encoder on a CSV with clean labels and save the model",
        description=(
            "Meta-learn an encoder on a CSV of numeric feature columns plus a clean "
            "label column (source classes: other classes than the crowd task's) "
            "and save the model for 'fit-predict --model'."
        ),
        epilog=EXIT_STATUSES,
    )
    meta.add_argument("--data", required=True, help="the source CSV file")
    meta.add_argument("--target", default="label", help="label column (default: label)")
    meta.add_argument("-o", "--output", required=True, help="where to save the model")
    meta.add_argument(
        "--encoder", default="mlp", choices=("mlp", "residual_mlp"), help="encoder"
    )
    meta.add_argument(
        "--n-way", type=_count(2), default=5, help="classes per episode (default: 5)"
    )
    meta.add_argument(
        "--n-episodes", type=_count(1), default=2000, help="episodes (default: 2000)"
    )
    meta.add_argument(
        "--episodes-per-epoch",
        type=_count(1),
        help="episodes between validations and checkpoints (default: "
        "min(200, n-episodes))",
    )
    meta.add_argument(
        "--n-val-episodes",
        type=_count(1),
        default=100,
        help="validation tasks, evaluated at every epoch end (default: 100)",
    )
    meta.add_argument(
        "--checkpoint-dir",
        help="save the training state there at every epoch end; run the same "
        "command again to resume an interrupted run",
    )
    meta.add_argument(
        "--n-threads", type=_count(1), default=1, help="torch threads (default: 1)"
    )
    meta.add_argument("--random-state", type=int, default=0, help="seed")
    meta.add_argument("--quiet", action="store_true", help="no progress bar")
    meta.set_defaults(run=_meta_fit_command)

    fp = sub.add_parser(
        "fit-predict",
        parents=[common],
        help="infer the true label of every task of a crowd file",
        description=(
            "Fit on crowd labels (task,worker,label) and task features (a task "
            "column plus numeric columns), and write each task's inferred label "
            "and class probabilities (posterior given its features and labels)."
        ),
        epilog=EXIT_STATUSES,
    )
    fp.add_argument("--crowd", required=True, help="crowd CSV: task,worker,label")
    fp.add_argument("--features", required=True, help="features CSV: task,...")
    fp.add_argument(
        "--model", help="a model saved by meta-fit (default: EM on the features)"
    )
    fp.add_argument("-o", "--output", required=True, help="predictions CSV to write")
    fp.add_argument(
        "--annotators", help="also write each worker's estimated accuracy here"
    )
    fp.add_argument(
        "--use-unlabelled",
        action="store_true",
        help=(
            "let the tasks of the features file that no crowd row names shape "
            "the model (semi-supervised EM) where the held-out crowd labels "
            "clearly gain from them; without it they only get predictions. "
            "Caution: unlabelled tasks of other classes, or features that do "
            "not cluster by class, can lower the accuracy when counted; the "
            "check guards against it but cannot see every case"
        ),
    )
    fp.add_argument("--quiet", action="store_true", help="no summary line")
    fp.set_defaults(run=_fit_predict_command)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` of the command line: ``warning: ...``, no source."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def _interrupt(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def _command_line_handlers():
    """Warnings as ``warning:`` lines; SIGINT and SIGTERM raise :class:`Interrupted`.

    Both are put back as they were at the end (the CLI may run in-process).
    """
    handled = [getattr(signal, n) for n in ("SIGINT", "SIGTERM") if hasattr(signal, n)]
    previous = {}
    try:
        for signum in handled:
            previous[signum] = signal.signal(signum, _interrupt)
    except ValueError:  # not the main thread: leave the signals alone
        pass
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv=None):
    """Run ``meta-fit`` or ``fit-predict``; a user's error exits with status 2.

    Parameters
    ----------
    argv : list of str or None
        Arguments, starting with the command; ``None`` reads ``sys.argv``.

    Examples
    --------
    >>> from sklearn_metaannot.cli import main
    >>> main(["fit-predict", "--crowd", "missing.csv", "--features", "missing.csv",
    ...       "-o", "out.csv"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        with _command_line_handlers():
            return args.run(args)
    except (InputFileError, OutputPathError) as exc:
        if args.debug:
            raise
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        name = signal.Signals(signum).name
        print(f"{PROG} {args.command}: interrupted by {name}", file=sys.stderr)
        raise SystemExit(128 + signum) from None
