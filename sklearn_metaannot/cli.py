"""Command line on files: ``meta-fit`` on a labelled CSV, ``fit-predict`` on a crowd.

``python -m sklearn_metaannot meta-fit --data source.csv --target label -o model``
meta-learns an encoder on a CSV of numeric feature columns plus a clean label
column and saves the model. ``python -m sklearn_metaannot fit-predict --crowd
crowd.csv --features features.csv [--model model] -o predictions.csv`` infers
the true label of every task of a crowd export (crowd-kit's ``task,worker,label``
format) from the labels and the features. Malformed files stop the command with
exit status 2 and a one-line message naming the file and the row.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from ._classifier import MetaAnnotatorClassifier
from ._crowd_labels import CrowdLabelMatrix
from ._meta_learner import MetaLearner, MetaLearningWarning

PROG = "python -m sklearn_metaannot"
COMMANDS = ("meta-fit", "fit-predict")
CROWD_COLUMNS = ("task", "worker", "label")


class InputFileError(ValueError):
    """A malformed input file; the message names the file (and the row).

    Examples
    --------
    >>> from sklearn_metaannot.cli import InputFileError
    >>> str(InputFileError("crowd.csv, row 3 (line 4): empty 'label'"))
    "crowd.csv, row 3 (line 4): empty 'label'"
    """


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
    if not path.is_file():
        raise InputFileError(f"{path}: file not found")
    try:
        # blank lines are kept (as empty rows) so that row numbers match lines
        return pd.read_csv(path, dtype=dtype, skip_blank_lines=False)
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
        If there is no feature column, or a cell is empty or not a number.

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
            raise InputFileError(
                f"{_where(path, i)}: column {column!r} is not a number: "
                f"{df[column].iloc[i]!r}"
            )
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
        i = int(np.flatnonzero(repeated)[0])
        raise InputFileError(
            f"{_where(path, i)}: task {tasks[i]!r} appears twice; give each task one "
            "row of features"
        )
    columns = [c for c in df.columns if c != "task"]
    return tasks, numeric_features(df, columns, path), columns


def read_crowd(path, tasks, *, features_path="the features file"):
    """Read ``crowd.csv`` (``task,worker,label``) over the tasks of the features.

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
        gave one task two different labels.

    Examples
    --------
    >>> from sklearn_metaannot.cli import read_crowd
    >>> read_crowd("crowd.csv", ["t1"])
    Traceback (most recent call last):
    ...
    sklearn_metaannot.cli.InputFileError: crowd.csv: file not found
    """
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
    pairs = df.duplicated(["task", "worker"], keep=False).to_numpy()
    if pairs.any():
        first = df[pairs].groupby(["task", "worker"], sort=False)["label"]
        conflicting = first.transform("nunique").to_numpy() > 1
        if conflicting.any():
            i = int(np.flatnonzero(pairs)[np.flatnonzero(conflicting)[0]])
            raise InputFileError(
                f"{_where(path, i)}: worker {df['worker'].iloc[i]!r} gave task "
                f"{df['task'].iloc[i]!r} two different labels"
            )
        df = df.drop_duplicates(["task", "worker"])
    return CrowdLabelMatrix.from_long(df, sample_ids=np.asarray(tasks, dtype=str))


# -- commands ---------------------------------------------------------------------


def _meta_fit_command(args):
    """``meta-fit``: meta-learn on a CSV with clean labels and save the model."""
    import pandas as pd

    df = read_csv(args.data)
    _require_columns(df, [args.target], args.data, "the --target label column")
    _check_no_empty(df, [args.target], args.data)
    columns = [c for c in df.columns if c != args.target]
    X = numeric_features(df, columns, args.data)
    y = df[args.target].to_numpy()
    model = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            encoder=args.encoder,
            n_way=args.n_way,
            n_episodes=args.n_episodes,
            episodes_per_epoch=min(200, args.n_episodes),
            n_threads=args.n_threads,
            verbose=0 if args.quiet else 1,
        ),
        random_state=args.random_state,
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MetaLearningWarning)
            # a DataFrame: the encoder keeps the column names (feature_names_in)
            model.meta_fit(pd.DataFrame(X, columns=columns), y)
    except ValueError as exc:
        raise InputFileError(f"{args.data}: {exc}") from None
    for warning in caught:
        if issubclass(warning.category, MetaLearningWarning) and not args.quiet:
            print(f"warning: {warning.message}", file=sys.stderr)
    _save_model(model, args.output)
    if not args.quiet:
        print(
            f"meta-learned on {len(y)} rows, {len(np.unique(y))} classes, "
            f"{len(columns)} features: validation accuracy "
            f"{model.meta_val_accuracy_:.3f} (EM on the features "
            f"{model.no_meta_val_accuracy_:.3f}); fit will use the "
            f"{model.meta_selected_!r} representation. Saved to {args.output}"
        )
    return model


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

    tasks, X, columns = read_features(args.features)
    Y = read_crowd(args.crowd, tasks, features_path=args.features)
    model, X = _model_for(args, columns, X)
    try:
        model.fit(X, Y)
    except ValueError as exc:
        raise InputFileError(f"{args.crowd}, {args.features}: {exc}") from None
    proba = model.sample_posterior_
    out = pd.DataFrame({"task": tasks, "label": model.classes_[proba.argmax(axis=1)]})
    for k, label in enumerate(model.classes_):
        out[f"proba_{label}"] = proba[:, k]
    out.to_csv(args.output, index=False)
    if args.annotators is not None:
        report = model.annotator_report()
        report.index.name = "worker"
        report.to_csv(args.annotators)
    if not args.quiet:
        print(
            f"{len(tasks)} tasks, {Y.n_annotators} workers, {Y.n_labels} labels, "
            f"{len(model.classes_)} classes ({model.representation_!r} "
            f"representation): predictions written to {args.output}"
            + (f", worker report to {args.annotators}" if args.annotators else "")
        )
    return out


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
    >>> args.command, args.model
    ('fit-predict', None)
    """
    parser = argparse.ArgumentParser(prog=PROG)
    sub = parser.add_subparsers(dest="command", required=True)
    meta = sub.add_parser(
        "meta-fit",
        help="meta-learn an encoder on a CSV with clean labels and save the model",
        description=(
            "Meta-learn an encoder on a CSV of numeric feature columns plus a clean "
            "label column (source classes: other classes than the crowd task's) "
            "and save the model for 'fit-predict --model'."
        ),
    )
    meta.add_argument("--data", required=True, help="the source CSV file")
    meta.add_argument("--target", default="label", help="label column (default: label)")
    meta.add_argument("-o", "--output", required=True, help="where to save the model")
    meta.add_argument(
        "--encoder", default="mlp", choices=("mlp", "residual_mlp"), help="encoder"
    )
    meta.add_argument("--n-way", type=int, default=5, help="classes per episode")
    meta.add_argument("--n-episodes", type=int, default=2000, help="episodes")
    meta.add_argument("--n-threads", type=int, default=1, help="torch threads")
    meta.add_argument("--random-state", type=int, default=0, help="seed")
    meta.add_argument("--quiet", action="store_true", help="no progress bar")
    meta.set_defaults(run=_meta_fit_command)

    fp = sub.add_parser(
        "fit-predict",
        help="infer the true label of every task of a crowd file",
        description=(
            "Fit on crowd labels (task,worker,label) and task features (a task "
            "column plus numeric columns), and write each task's inferred label "
            "and class probabilities (posterior given its features and labels)."
        ),
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
    fp.add_argument("--quiet", action="store_true", help="no summary line")
    fp.set_defaults(run=_fit_predict_command)
    return parser


def main(argv=None):
    """Run ``meta-fit`` or ``fit-predict``; malformed input exits with status 2.

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
        return args.run(args)
    except InputFileError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
