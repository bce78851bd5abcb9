"""The command line on files: meta-fit, fit-predict, and malformed-file errors."""
# SPDX-License-Identifier: BSD-3-Clause

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from _factories import meta_classifier
from sklearn.base import clone

import sklearn_metaannot
from sklearn_metaannot import (
    MetaAnnotatorClassifier,
    MetaLearner,
    MetaLearningWarning,
    load,
    save,
    simulate_annotators,
)
from sklearn_metaannot import cli as cli_module
from sklearn_metaannot.__main__ import main
from sklearn_metaannot.cli import read_crowd, read_features
from sklearn_metaannot.meta._checkpoint import CHECKPOINT_NAME, load_checkpoint

pd = pytest.importorskip("pandas")

REPO = Path(__file__).resolve().parents[1]
FEATURES = [f"f{j}" for j in range(6)]
NAMES = np.array(["cat", "dog", "owl"])
#: numpy scalars' reprs, which no message of the command line may show
NUMPY_REPR = re.compile(r"\bnp\.(\w+\(|True_|False_)")


def run_cli(*args, cwd):
    """``python -m sklearn_metaannot ARGS`` in a subprocess, importing this checkout."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sklearn_metaannot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """source.csv (12 classes), and a 3-class crowd task: features.csv, crowd.csv."""
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    centers = 2 * rng.normal(size=(15, 6))
    y = np.repeat(np.arange(12), 20)
    source = pd.DataFrame(centers[y] + rng.normal(size=(240, 6)), columns=FEATURES)
    source["label"] = y
    source.to_csv(folder / "source.csv", index=False)

    y_task = np.repeat([12, 13, 14], 10)
    features = pd.DataFrame(
        centers[y_task] + rng.normal(size=(30, 6)), columns=FEATURES
    )
    features.insert(0, "task", [f"t{i}" for i in range(30)])
    features.to_csv(folder / "features.csv", index=False)
    Y, _, _ = simulate_annotators(
        NAMES[y_task - 12], 4, annotation_rate=0.8, random_state=0
    )
    crowd = pd.DataFrame(
        [
            (f"t{i}", f"w{r}", Y[i, r])
            for i in range(30)
            for r in range(4)
            if Y[i, r] is not None
        ],
        columns=["task", "worker", "label"],
    )
    crowd.to_csv(folder / "crowd.csv", index=False)
    truth = dict(zip(features["task"], NAMES[y_task - 12]))
    return folder, crowd, truth


def _check_predictions(path, truth):
    pred = pd.read_csv(path)
    assert list(pred.columns) == ["task", "label", *(f"proba_{c}" for c in NAMES)]
    assert pred["task"].tolist() == list(truth)
    proba = pred.filter(like="proba_").to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (pred["label"] == NAMES[proba.argmax(axis=1)]).all()
    accuracy = np.mean(pred["label"] == pred["task"].map(truth))
    assert accuracy >= 0.9
    return pred


def _task(folder, features="features.csv", crowd="crowd.csv"):
    """The features and crowd labels that fit-predict reads, read the same way."""
    tasks, X, columns = read_features(folder / features)
    return X, read_crowd(folder / crowd, tasks), columns


def _probabilities(path):
    return pd.read_csv(path).filter(like="proba_").to_numpy()


def test_round_trip_meta_fit_then_fit_predict(files, capsys, monkeypatch):
    folder, _, truth = files
    monkeypatch.chdir(folder)
    # in-process: each subprocess pays torch's start-up (one subprocess test
    # below covers the entry point)
    argv = ["meta-fit", "--data", "source.csv", "--target", "label", "-o", "model"]
    main([*argv, "--n-way", "3", "--n-episodes", "60"])
    out, err = capsys.readouterr()
    assert (folder / "model").exists()
    assert "episode" in err  # the progress bar
    assert "Saved to model" in out

    main([*_fit_predict(), "--model", "model"])
    _check_predictions(folder / "o.csv", truth)
    # the saved model is what fits the task: its encoder, parameters and space
    X, Y, _ = _task(folder)
    expected = clone(load("model")).fit(X, Y)
    assert f"{expected.representation_!r} representation" in capsys.readouterr().out
    np.testing.assert_allclose(
        _probabilities("o.csv"), expected.sample_posterior_, rtol=1e-12
    )


def test_fit_predict_uses_the_models_encoder_parameters_and_columns(files, capsys):
    folder, _, truth = files
    source = pd.read_csv(folder / "source.csv")
    model = meta_classifier(
        n_way=3,
        n_shot=2,
        n_episodes=20,
        episodes_per_epoch=10,
        n_val_episodes=5,
        representation="meta",
        n_em_iter=1,
        c=(5.0, 1.0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        model.meta_fit(source[FEATURES], source["label"])
    save(model, folder / "meta_model")
    # the features file lists the columns in another order: matched by name
    features = pd.read_csv(folder / "features.csv")
    features[["task", *FEATURES[::-1]]].to_csv(folder / "reversed.csv", index=False)
    main(
        [
            "fit-predict",
            "--crowd",
            str(folder / "crowd.csv"),
            "--features",
            str(folder / "reversed.csv"),
            "--model",
            str(folder / "meta_model"),
            "-o",
            str(folder / "meta_predictions.csv"),
        ]
    )
    assert "'meta' representation" in capsys.readouterr().out
    X, Y, _ = _task(folder)
    expected = clone(model).fit(X, Y).sample_posterior_
    proba = _probabilities(folder / "meta_predictions.csv")
    np.testing.assert_allclose(proba, expected, rtol=1e-12)
    # which a default estimator would not have given
    default = MetaAnnotatorClassifier().fit(X, Y).sample_posterior_
    assert np.abs(proba - default).max() > 1e-3
    _check_predictions(folder / "meta_predictions.csv", truth)


def test_fit_predict_writes_the_posterior_given_features_and_labels(files, capsys):
    folder, crowd, truth = files
    main(
        [
            "fit-predict",
            "--crowd",
            str(folder / "crowd.csv"),
            "--features",
            str(folder / "features.csv"),
            "-o",
            str(folder / "predictions_em.csv"),
            "--annotators",
            str(folder / "annotators.csv"),
        ]
    )
    assert re.search(
        r"'(input|scaled|normalized)' representation", capsys.readouterr().out
    )
    _check_predictions(folder / "predictions_em.csv", truth)
    # the probabilities are each task's posterior given its features and its
    # labels (sample_posterior_), not the features-only predict_proba
    X, Y, _ = _task(folder)
    fitted = MetaAnnotatorClassifier().fit(X, Y)
    proba = _probabilities(folder / "predictions_em.csv")
    np.testing.assert_allclose(proba, fitted.sample_posterior_, rtol=1e-12)
    assert np.abs(proba - fitted.predict_proba(X)).max() > 1e-3
    report = pd.read_csv(folder / "annotators.csv")
    assert report.columns[:4].tolist() == [
        "worker",
        "accuracy",
        "prior_weighted_accuracy",
        "n_labels",
    ]
    assert report["worker"].tolist() == ["w0", "w1", "w2", "w3"]
    counts = crowd["worker"].value_counts()
    assert report["n_labels"].tolist() == [counts[w] for w in report["worker"]]
    true_accuracy = [
        np.mean(g["label"] == g["task"].map(truth)) for _, g in crowd.groupby("worker")
    ]
    assert np.abs(report["accuracy"] - true_accuracy).max() < 0.15


def test_malformed_file_exits_2_with_one_line_in_a_subprocess(files):
    folder, crowd, _ = files
    crowd.drop(columns="worker").to_csv(folder / "no_worker.csv", index=False)
    result = run_cli(
        "fit-predict",
        "--crowd",
        "no_worker.csv",
        "--features",
        "features.csv",
        "-o",
        "out.csv",
        cwd=folder,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "no_worker.csv: no column 'worker'" in line
    assert not (folder / "out.csv").exists()


# The other errors go through the same code (``__main__.main``) in-process:
# each subprocess pays the start-up of torch, which is slow on a busy machine.
def _error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert not NUMPY_REPR.search(line), line
    return line


def _fit_predict(crowd="crowd.csv", features="features.csv"):
    return ["fit-predict", "--crowd", crowd, "--features", features, "-o", "o.csv"]


def test_task_without_features(files, capsys, monkeypatch):
    folder, crowd, _ = files
    monkeypatch.chdir(folder)
    extra = pd.DataFrame([["t99", "w0", "cat"]], columns=crowd.columns)
    bad = pd.concat([crowd.iloc[:4], extra, crowd.iloc[4:]])
    bad.to_csv("extra_task.csv", index=False)
    line = _error(capsys, _fit_predict(crowd="extra_task.csv"))
    assert "extra_task.csv, row 5 (line 6): task 't99' has no features" in line
    assert "features.csv" in line


def test_non_numeric_feature(files, capsys, monkeypatch):
    folder, _, _ = files
    monkeypatch.chdir(folder)
    features = pd.read_csv("features.csv")
    features["f2"] = features["f2"].astype(object)
    features.loc[7, "f2"] = "n/a?"
    features.to_csv("text_feature.csv", index=False)
    line = _error(capsys, _fit_predict(features="text_feature.csv"))
    assert "text_feature.csv, row 8 (line 9): column 'f2' is not a number" in line


@pytest.mark.parametrize(
    "column, where",
    [("task", "features.csv"), ("label", "crowd.csv")],
)
def test_missing_column(files, capsys, monkeypatch, column, where):
    folder, crowd, _ = files
    monkeypatch.chdir(folder)
    source = pd.read_csv(where).drop(columns=column)
    source.to_csv(f"no_{column}.csv", index=False)
    argv = _fit_predict(**{where.split(".")[0]: f"no_{column}.csv"})
    line = _error(capsys, argv)
    assert f"no_{column}.csv: no column {column!r}" in line


def test_empty_label_and_conflicting_labels(files, capsys, monkeypatch):
    folder, crowd, _ = files
    monkeypatch.chdir(folder)
    bad = crowd.copy()
    bad.loc[2, "label"] = None
    bad.to_csv("empty_label.csv", index=False)
    line = _error(capsys, _fit_predict(crowd="empty_label.csv"))
    assert "empty_label.csv, row 3 (line 4): empty value in column 'label'" in line

    first = crowd.iloc[0]
    other = "dog" if first["label"] != "dog" else "cat"
    conflict = pd.DataFrame(
        [[first["task"], first["worker"], other]], columns=crowd.columns
    )
    pd.concat([crowd, conflict]).to_csv("conflict.csv", index=False)
    line = _error(capsys, _fit_predict(crowd="conflict.csv"))
    last = len(crowd) + 1  # both rows of the conflict are named
    assert (
        f"conflict.csv, rows 1 and {last} (lines 2 and {last + 1}): worker "
        f"{first['worker']!r} gave task {first['task']!r} two different labels "
        f"({first['label']!r} and {other!r})"
    ) in line


def test_meta_fit_errors(files, capsys, monkeypatch):
    folder, _, _ = files
    monkeypatch.chdir(folder)
    line = _error(
        capsys, ["meta-fit", "--data", "source.csv", "--target", "y", "-o", "m"]
    )
    assert "source.csv: no column 'y'" in line
    source = pd.read_csv("source.csv")
    source["f0"] = source["f0"].astype(object)
    source.loc[11, "f0"] = "abc"
    source.to_csv("bad_source.csv", index=False)
    line = _error(capsys, ["meta-fit", "--data", "bad_source.csv", "-o", "m"])
    assert "bad_source.csv, row 12 (line 13): column 'f0' is not a number" in line
    line = _error(capsys, ["meta-fit", "--data", "nowhere.csv", "-o", "m"])
    assert "nowhere.csv: file not found" in line
    pd.read_csv("source.csv").assign(label=1).to_csv("one_class.csv", index=False)
    line = _error(capsys, ["meta-fit", "--data", "one_class.csv", "-o", "m"])
    assert line.endswith(
        "one_class.csv: every value of column 'label' is 1; at least "
        "2 classes are needed"
    )
    source = pd.read_csv("source.csv")
    source.assign(label=source["label"] + 0.5).to_csv("continuous.csv", index=False)
    line = _error(capsys, ["meta-fit", "--data", "continuous.csv", "-o", "m"])
    assert (
        "continuous.csv, row 1 (line 2): column 'label' holds 0.5, not a class" in line
    )
    assert not Path("m").exists()


def test_model_that_is_not_a_model(files, capsys, monkeypatch):
    folder, _, _ = files
    monkeypatch.chdir(folder)
    Path("not_a_model").write_text("hello")
    line = _error(capsys, [*_fit_predict(), "--model", "not_a_model"])
    assert "not_a_model: not a saved model" in line


# -- messages in the user's words ---------------------------------------------------


def test_messages_give_plain_values(files, capsys, monkeypatch):
    folder, crowd, _ = files
    monkeypatch.chdir(folder)
    features = pd.read_csv("features.csv")
    bad = features.copy()
    bad.loc[3, "f1"] = np.inf
    bad.to_csv("inf.csv", index=False)
    line = _error(capsys, _fit_predict(features="inf.csv"))
    assert line.endswith(
        "inf.csv, row 4 (line 5): column 'f1' is not a finite number: inf"
    )

    bad = features.copy()
    bad.loc[5, "task"] = "t0"
    bad.to_csv("twice.csv", index=False)
    line = _error(capsys, _fit_predict(features="twice.csv"))
    assert "twice.csv, rows 1 and 6 (lines 2 and 7): task 't0' appears twice" in line

    one_class = crowd.assign(label=2.0)
    one_class.to_csv("one_class.csv", index=False)
    line = _error(capsys, _fit_predict(crowd="one_class.csv"))
    assert line.endswith(
        "one_class.csv: every label is 2.0; at least 2 different "
        "labels (classes) are needed"
    )

    crowd.iloc[:0].to_csv("header_only.csv", index=False)
    line = _error(capsys, _fit_predict(crowd="header_only.csv"))
    assert line.endswith("header_only.csv: no label at all (only a header line)")
    assert " Y " not in line


def test_repeated_rows_are_merged_and_counted(files, capsys, monkeypatch):
    folder, crowd, _ = files
    monkeypatch.chdir(folder)
    pd.concat([crowd, crowd.iloc[[3, 5]]]).to_csv("repeats.csv", index=False)
    main(
        [
            "fit-predict",
            "--crowd",
            "repeats.csv",
            "--features",
            "features.csv",
            "-o",
            "repeats_out.csv",
        ]
    )
    out = capsys.readouterr().out
    assert f"{len(crowd)} labels (2 repeated rows merged)" in out


# -- output paths, atomic outputs ---------------------------------------------------


def _no_fit(monkeypatch):
    """Make any fit fail the test: the output paths are checked before it."""

    def fail(*args, **kwargs):
        pytest.fail("fit ran before the output paths were checked")

    monkeypatch.setattr(cli_module.MetaAnnotatorClassifier, "fit", fail)
    monkeypatch.setattr(cli_module.MetaAnnotatorClassifier, "meta_fit", fail)


def _leftovers(folder):
    """Hidden temporary files or folders that the command line left behind."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


def test_bad_output_path_fails_before_the_fit(files, capsys, monkeypatch):
    folder, _, _ = files
    monkeypatch.chdir(folder)
    _no_fit(monkeypatch)
    argv = [*_fit_predict()[:-1], "/nonexistent/dir/p.csv"]
    line = _error(capsys, argv)
    assert (
        "/nonexistent/dir/p.csv (-o): the directory /nonexistent/dir does not " in line
    )

    argv = [*_fit_predict()[:-1], "okp.csv", "--annotators", "/nonexistent/a.csv"]
    line = _error(capsys, argv)
    assert "/nonexistent/a.csv (--annotators): the directory" in line
    assert not Path("okp.csv").exists()

    line = _error(capsys, ["meta-fit", "--data", "source.csv", "-o", "/nonexistent/m"])
    assert "/nonexistent/m (-o): the directory /nonexistent does not exist" in line

    line = _error(capsys, [*_fit_predict()[:-1], "crowd.csv"])
    assert "crowd.csv (-o): also the input file of --crowd" in line
    assert _leftovers(folder) == []


def _refuses_writes(folder):
    try:
        (folder / "probe").write_text("")
    except OSError:
        return True
    (folder / "probe").unlink()
    return False


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory where writes fail: chmod 555, or, as root (whom chmod does not
    stop), ``chattr +i`` (immutable; ext2/3/4 and a few other file systems)."""
    path = tmp_path / "read_only"
    path.mkdir()
    path.chmod(0o555)
    if _refuses_writes(path):
        yield path
        path.chmod(0o755)
        return
    path.chmod(0o755)
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)]).returncode != 0:
        pytest.skip(
            "neither chmod (running as root) nor chattr +i makes a directory refuse "
            "writes here; test_disk_that_refuses_writes checks the same refusal"
        )
    try:
        if not _refuses_writes(path):
            pytest.skip("chattr +i does not make a directory refuse writes here")
        yield path
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_disk_that_refuses_writes(files, tmp_path, capsys, monkeypatch):
    """A path whose parent is a regular file: refused whoever runs the test."""
    folder, _, _ = files
    monkeypatch.chdir(folder)
    _no_fit(monkeypatch)
    (tmp_path / "file").write_text("not a directory")
    target = tmp_path / "file" / "p.csv"
    line = _error(capsys, [*_fit_predict()[:-1], str(target)])
    assert f"{target} (-o): {tmp_path / 'file'} is not a directory" in line
    line = _error(capsys, ["meta-fit", "--data", "source.csv", "-o", str(target)])
    assert "is not a directory" in line
    assert (tmp_path / "file").read_text() == "not a directory"


def test_read_only_directory(files, read_only_dir, capsys, monkeypatch):
    folder, _, _ = files
    monkeypatch.chdir(folder)
    _no_fit(monkeypatch)
    target = read_only_dir / "p.csv"
    argv = [*_fit_predict()[:-1], "ok.csv", "--annotators", str(target)]
    line = _error(capsys, argv)
    assert f"{target} (--annotators): cannot write in {read_only_dir} (" in line
    line = _error(capsys, ["meta-fit", "--data", "source.csv", "-o", str(target)])
    assert "cannot write in" in line
    assert list(read_only_dir.iterdir()) == []
    assert not Path("ok.csv").exists()


def test_failed_write_leaves_no_output_and_keeps_existing_files(
    files, capsys, monkeypatch
):
    folder, _, _ = files
    monkeypatch.chdir(folder)
    Path("kept.csv").write_text("old predictions\n")
    to_csv = pd.DataFrame.to_csv

    def full_disk_for_the_report(frame, path, *args, **kwargs):
        if "worker" in (frame.index.name, *frame.columns):
            raise OSError(28, "No space left on device")
        return to_csv(frame, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk_for_the_report)
    argv = [*_fit_predict()[:-1], "kept.csv", "--annotators", "report.csv"]
    line = _error(capsys, argv)
    assert "report.csv: cannot write (No space left on device)" in line
    assert Path("kept.csv").read_text() == "old predictions\n"
    assert not Path("report.csv").exists()
    assert _leftovers(folder) == []


def test_debug_shows_the_traceback(files, monkeypatch):
    folder, _, _ = files
    monkeypatch.chdir(folder)
    with pytest.raises(cli_module.InputFileError, match="nowhere.csv: file not found"):
        main(["meta-fit", "--data", "nowhere.csv", "-o", "m", "--debug"])


# -- warnings -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def five_way_model(files):
    """A model meta-fitted with the default n_way=5 (the crowd task has 3 classes)."""
    folder, _, _ = files
    source = pd.read_csv(folder / "source.csv")
    model = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(n_episodes=8, episodes_per_epoch=4, n_val_episodes=4),
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.meta_fit(source[FEATURES], source["label"].to_numpy())
    sklearn_metaannot.save(model, folder / "five_way_model")
    return folder / "five_way_model"


def test_no_missing_class_warning_when_the_crowd_names_every_class(
    files, five_way_model, capsys, monkeypatch
):
    folder, _, truth = files
    monkeypatch.chdir(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would be an exception
        main([*_fit_predict()[:-1], "five_way.csv", "--model", str(five_way_model)])
    err = capsys.readouterr().err
    assert "warning" not in err.lower(), err
    _check_predictions("five_way.csv", truth)


def test_warnings_are_lines_without_source_location(files, capsys, monkeypatch):
    folder, _, _ = files
    monkeypatch.chdir(folder)
    # 20-way episodes on 12 source classes: meta_fit warns that they are too few
    main(
        [
            "meta-fit",
            "--data",
            "source.csv",
            "-o",
            "m20",
            "--n-way",
            "20",
            "--n-episodes",
            "4",
        ]
    )
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "warning" in line.lower()]
    assert lines and all(line.startswith("warning: ") for line in lines), err
    assert "too few for 20-way" in err
    assert ".py:" not in err and "Warning:" not in err


def test_fit_predict_warning_is_a_line(files, five_way_model, capsys, monkeypatch):
    folder, _, _ = files
    monkeypatch.chdir(folder)
    model = sklearn_metaannot.load(five_way_model)
    with monkeypatch.context() as patch:  # a model saved by another version
        patch.setattr(
            sklearn_metaannot.io._persistence, "_package_version", lambda: "0.0.1"
        )
        sklearn_metaannot.save(model, "old_model")
    main([*_fit_predict()[:-1], "old_version.csv", "--model", "old_model"])
    err = capsys.readouterr().err
    (line,) = err.strip().splitlines()
    assert line == (
        "warning: old_model was saved with sklearn-metaannot 0.0.1 and is loaded "
        f"with sklearn-metaannot {sklearn_metaannot.__version__}; check its "
        "predictions"
    )


# -- help ---------------------------------------------------------------------------


def test_help_lists_exit_statuses_and_benchmark_help_is_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit-predict", "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--debug" in out
    assert "2 a user's error" in out and "130" in out and "143" in out
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "benchmark NAME" in out and "scale" in out and "--no-write" in out


# -- interrupted runs (subprocesses) ------------------------------------------------

# fit-predict, slowed down where the predictions are written and the worker report
# is not: the worst moment for an interruption
SLOW_REPORT = """
import sys, time
from sklearn_metaannot import cli
report = cli.MetaAnnotatorClassifier.annotator_report
def slow_report(self):
    print("READY", flush=True)
    time.sleep(60)
    return report(self)
cli.MetaAnnotatorClassifier.annotator_report = slow_report
cli.main(sys.argv[1:])
"""

# meta-fit, slowed down after each epoch's checkpoint
SLOW_EPOCHS = """
import sys, time
from sklearn_metaannot import cli
from sklearn_metaannot.meta import _checkpoint
on_epoch_end = _checkpoint.ResumeCheckpoint.on_epoch_end
def slow_epoch_end(self, net, **kwargs):
    on_epoch_end(self, net, **kwargs)
    print("EPOCH", flush=True)
    time.sleep(0.3)
_checkpoint.ResumeCheckpoint.on_epoch_end = slow_epoch_end
cli.main(sys.argv[1:])
"""

SIGNALS = [("SIGINT", 130), ("SIGTERM", 143)]


def _interrupt(script, args, cwd, signum, ready):
    """Run ``script`` with ``args``, send ``signum`` after the line ``ready``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        for line in child.stdout:
            if line.strip() == ready or time.monotonic() > deadline:
                break
        assert child.poll() is None, child.stderr.read()
        child.send_signal(signum)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.returncode, err


@pytest.mark.parametrize("name, status", SIGNALS)
def test_interrupted_fit_predict_leaves_no_partial_output(
    files, tmp_path, name, status
):
    folder, _, _ = files
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.csv").write_text("old predictions\n")
    args = [
        "fit-predict",
        "--crowd",
        str(folder / "crowd.csv"),
        "--features",
        str(folder / "features.csv"),
        "-o",
        str(out / "predictions.csv"),
        "--annotators",
        str(out / "annotators.csv"),
    ]
    code, err = _interrupt(SLOW_REPORT, args, folder, getattr(signal, name), "READY")
    assert code == status, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith(f"interrupted by {name}")
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv"]
    assert (out / "predictions.csv").read_text() == "old predictions\n"


@pytest.mark.parametrize("name, status", SIGNALS)
def test_interrupted_meta_fit_leaves_no_model_and_resumes(
    files, tmp_path, monkeypatch, name, status
):
    folder, _, _ = files
    args = [
        "meta-fit",
        "--data",
        str(folder / "source.csv"),
        "-o",
        str(tmp_path / "model"),
        "--n-way",
        "3",
        "--n-episodes",
        "12",
        "--episodes-per-epoch",
        "4",
        "--n-val-episodes",
        "10",
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        "--quiet",
    ]
    code, err = _interrupt(SLOW_EPOCHS, args, tmp_path, getattr(signal, name), "EPOCH")
    assert code == status, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    state = load_checkpoint(tmp_path / "ckpt" / CHECKPOINT_NAME)
    assert not state["finished"] and 1 <= state["epochs"] < 3
    if name == "SIGINT":
        return  # resuming is the same after either signal: once is enough
    monkeypatch.chdir(tmp_path)
    main(args)  # in-process: the same command again resumes
    assert (tmp_path / "model").is_file()
    final = load_checkpoint(tmp_path / "ckpt" / CHECKPOINT_NAME)
    assert final["finished"] and final["epochs"] == 3
    done = state["epochs"]  # the epochs before the signal were not run again
    assert final["history"][:done, "dur"] == state["history"][:, "dur"]


def test_tasks_without_crowd_rows_are_unlabelled_items(files, capsys):
    folder, _, truth = files
    # 60 more tasks of the same classes that no crowd row names
    rng = np.random.default_rng(1)
    features = pd.read_csv(folder / "features.csv")
    labels = np.array([truth[t] for t in features["task"]])
    centers = features[FEATURES].groupby(labels).mean()
    names = np.repeat(NAMES, 20)
    more = pd.DataFrame(
        centers.loc[names].to_numpy() + rng.normal(size=(60, 6)), columns=FEATURES
    )
    more.insert(0, "task", [f"u{i}" for i in range(60)])
    pd.concat([features, more]).to_csv(folder / "features_more.csv", index=False)
    X, Y, _ = _task(folder, features="features_more.csv")
    argv = ["fit-predict", "--crowd", str(folder / "crowd.csv")]
    argv += ["--features", str(folder / "features_more.csv")]

    # without the flag they are predicted but do not shape the model
    main([*argv, "-o", str(folder / "plain.csv")])
    out = capsys.readouterr().out
    assert "60 tasks without labels (predicted, not used to fit" in out
    plain = pd.read_csv(folder / "plain.csv")
    assert len(plain) == 90 and plain["task"].iloc[-1] == "u59"
    expected = MetaAnnotatorClassifier(unlabelled_weight=0.0).fit(X, Y)
    np.testing.assert_allclose(
        _probabilities(folder / "plain.csv"), expected.sample_posterior_, rtol=1e-12
    )
    alone = MetaAnnotatorClassifier().fit(X[:30], _task(folder)[1])
    np.testing.assert_allclose(
        _probabilities(folder / "plain.csv")[:30], alone.sample_posterior_, atol=1e-10
    )
    assert np.mean(plain["label"].iloc[30:].to_numpy() == names) > 0.9

    # with --use-unlabelled the guard decides, as fit's default does
    main([*argv, "-o", str(folder / "used.csv"), "--use-unlabelled"])
    out = capsys.readouterr().out
    guarded = MetaAnnotatorClassifier().fit(X, Y)
    choice = guarded.unlabelled_choice_
    assert "60 tasks without labels" in out and choice.reason in out
    np.testing.assert_allclose(
        _probabilities(folder / "used.csv"), guarded.sample_posterior_, rtol=1e-12
    )


def test_use_unlabelled_help_states_the_caution(capsys):
    with pytest.raises(SystemExit):
        main(["fit-predict", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--use-unlabelled" in out and "Caution" in out and "other classes" in out
