"""The command line on files: meta-fit, fit-predict, and malformed-file errors."""
# SPDX-License-Identifier: BSD-3-Clause

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from _factories import meta_classifier
from sklearn.base import clone

from sklearn_metaannot import (
    MetaAnnotatorClassifier,
    MetaLearningWarning,
    load,
    save,
    simulate_annotators,
)
from sklearn_metaannot.__main__ import main
from sklearn_metaannot.cli import read_crowd, read_features

pd = pytest.importorskip("pandas")

REPO = Path(__file__).resolve().parents[1]
FEATURES = [f"f{j}" for j in range(6)]
NAMES = np.array(["cat", "dog", "owl"])


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
    assert f"conflict.csv, row 1 (line 2): worker {first['worker']!r}" in line
    assert "two different labels" in line


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


def test_model_that_is_not_a_model(files, capsys, monkeypatch):
    folder, _, _ = files
    monkeypatch.chdir(folder)
    Path("not_a_model").write_text("hello")
    line = _error(capsys, [*_fit_predict(), "--model", "not_a_model"])
    assert "not_a_model: not a saved model" in line
