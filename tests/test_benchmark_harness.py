"""The benchmark harness on a tiny synthetic benchmark."""
# SPDX-License-Identifier: BSD-3-Clause

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import harness  # noqa: E402


class Centroids:
    """Nearest class mean of the majority-vote labels (a method that learns)."""

    def fit(self, X, Y):
        votes = np.stack([(Y == k).sum(axis=1) for k in range(3)], axis=1)
        labels = votes.argmax(axis=1)
        self.means_ = np.stack(
            [
                X[labels == k].mean(axis=0) if (labels == k).any() else X.mean(axis=0)
                for k in range(3)
            ]
        )
        return self

    def predict(self, X):
        return ((X[:, None] - self.means_[None]) ** 2).sum(axis=-1).argmin(axis=1)


class Constant:
    """Always class 0 (a method that does not learn)."""

    def fit(self, X, Y):
        self.fitted_ = True
        return self

    def predict(self, X):
        return np.zeros(len(X), dtype=int)


def pool(seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(6), 20)
    X = rng.normal(size=(6, 2))[y] * 4 + rng.normal(size=(len(y), 2))
    return X, y


def tasks(seed=0, n_tasks=12):
    X, y = pool()
    return harness.TaskSet.simulated(
        X, y, n_tasks=n_tasks, n_way=3, n_shot=3, n_query=5, n_annotators=4, seed=seed
    )


def methods():
    registry = harness.Methods()
    registry.add("centroids", "Nearest centroid")(lambda context, seed: Centroids())
    registry.add("copy", "Nearest centroid, again")(lambda context, seed: Centroids())
    registry.add(
        "constant",
        "Always 0",
        record=lambda est: {"fitted": est.fitted_},
    )(lambda context, seed: Constant())
    return registry


def test_tasks_are_seeded_and_shared():
    a, b, c = tasks(0), tasks(0), tasks(1)
    assert len(a) == 12
    for s, t in zip(a, b):
        assert np.array_equal(s.support, t.support) and s.seed == t.seed
        assert np.array_equal(s.Y, t.Y, equal_nan=True)
    assert any(not np.array_equal(s.support, t.support) for s, t in zip(a, c))
    X, Y, X_query, y_query, seed = a.read(a.tasks[0])
    assert X.shape == (9, 2) and Y.shape == (9, 4) and len(X_query) == len(y_query)


def test_evaluation_loop_gives_one_timed_row_per_task_and_method():
    rows = harness.evaluate(methods(), tasks())
    assert len(rows) == 12 * 3
    assert [(r["task"], r["method"]) for r in rows[:4]] == [
        (0, "centroids"),
        (0, "copy"),
        (0, "constant"),
        (1, "centroids"),
    ]
    assert all(r["seconds"] >= 0 and 0 <= r["accuracy"] <= 1 for r in rows)
    assert all(r["fitted"] for r in rows if r["method"] == "constant")
    acc = harness.column(rows)
    assert list(acc) == ["centroids", "copy", "constant"]
    assert acc["centroids"] == acc["copy"]  # the same tasks for every method


def test_summary_marks_the_clearly_better_method_and_its_ties_in_bold():
    acc = harness.column(harness.evaluate(methods(), tasks()))
    summary = harness.compare(acc, reference="constant")
    assert summary["centroids"]["mean"] > 0.8 > summary["constant"]["mean"]
    assert summary["centroids"]["n"] == 12 and summary["centroids"]["sem"] >= 0
    assert summary["centroids"]["vs_reference"]["verdict"] == "win"
    assert "vs_reference" not in summary["constant"]
    # identical results tie: both in bold, the clearly worse method not
    assert summary["centroids"]["bold"] and summary["copy"]["bold"]
    assert not summary["constant"]["bold"]
    assert harness.best_or_tied({"a": [0.5, 0.6], "b": [0.5, 0.6]}) == {"a", "b"}
    assert harness.best_or_tied(acc) == {"centroids", "copy"}


def test_writers_round_trip_the_numbers(tmp_path):
    rows = harness.evaluate(methods(), tasks())
    summary = harness.compare(harness.column(rows))
    table = (
        ["method", "accuracy"],
        [
            [m, harness.fmt_acc(s["mean"], s["sem"], bold=s["bold"])]
            for m, s in summary.items()
        ],
    )
    files = harness.write_outputs(
        tmp_path,
        "tiny",
        {"summary": summary, "rows": rows, "nan": float("nan")},
        markdown=harness.markdown_table(*table),
        rst=[("Accuracy", *table), ("Again", *table)],
        csv=rows,
    )
    assert set(files) == {"json", "markdown", "rst", "csv"}
    on_disk = json.loads((tmp_path / "tiny.json").read_text())
    assert on_disk["summary"]["centroids"]["mean"] == summary["centroids"]["mean"]
    assert on_disk["nan"] is None
    with open(tmp_path / "tiny.csv") as fh:
        back = list(csv.DictReader(fh))
    assert [float(r["accuracy"]) for r in back] == [r["accuracy"] for r in rows]
    rst = (tmp_path / "tiny_tables.rst").read_text()
    assert rst.count(".. csv-table::") == 2 and '"**' in rst
    assert "| centroids | **" in (tmp_path / "tiny.md").read_text()
    plot = harness.line_plot(
        tmp_path / "tiny.png",
        [1, 2],
        {"ours": ([0.8, 0.9], [0.01, 0.01]), "other": ([0.5, 0.6], [0.02, 0.02])},
        xlabel="shot",
        ylabel="accuracy",
        title="tiny",
    )
    assert plot.stat().st_size > 0


def test_configuration_and_registry_errors():
    def defaults(quick=False):
        return {"name": "tiny_quick" if quick else "tiny", "n": 1, "sub": {"a": 1}}

    cfg = harness.configure(defaults, {"quick": True, "sub": {"b": 2}}, nested=["sub"])
    assert cfg == {"name": "tiny_quick", "n": 1, "sub": {"a": 1, "b": 2}}
    with pytest.raises(ValueError, match="unknown configuration keys"):
        harness.configure(defaults, {"m": 1})
    registry = methods()
    assert list(registry.select(["constant", "copy"])) == ["constant", "copy"]
    assert registry.labels()["constant"] == "Always 0"
    with pytest.raises(ValueError, match="unknown methods"):
        registry.select(["nope"])


def test_task_models_read_pool_rows_and_predict_a_unanimous_crowd():
    X, y = pool()
    taskset = tasks()
    index = harness.TaskSet(
        taskset.tasks,
        lambda t: (
            harness.index_features(t.support),
            t.Y,
            harness.index_features(t.query),
            t.query_y,
            t.seed,
        ),
    )
    registry = harness.Methods()
    registry.add("pixels", "on the pool rows")(lambda X, seed: Centroids())
    registry.add("indices", "through TaskModel")(
        lambda X, seed: harness.TaskModel(Centroids(), X)
    )
    direct = harness.column(harness.evaluate(registry.select(["pixels"]), taskset))
    looked_up = harness.column(harness.evaluate(registry.select(["indices"]), index, X))
    assert direct["pixels"] == looked_up["indices"]
    # every annotation names class 2: no fit, class 2 predicted
    model = harness.TaskModel(Constant()).fit(
        np.zeros((3, 1)), [[2, np.nan], [2, 2], [np.nan, 2]]
    )
    assert model.single_class_ == 2 and not hasattr(model.estimator, "fitted_")
    assert model.predict(np.zeros((4, 1))).tolist() == [2, 2, 2, 2]


def test_cell_tables_pool_format_and_mark_the_best():
    mean, sem = harness.pooled([{"mean": 0.5, "sem": 0.3}, {"mean": 0.7, "sem": 0.4}])
    assert mean == pytest.approx(0.6) and sem == pytest.approx(0.25)
    columns = [
        {"a": (0.5, 0.01), "b": (0.7, 0.02)},
        {"a": (0.9, None), "b": (0.8, None)},
    ]
    assert harness.accuracy_rows(["a", "b"], columns, bold=True) == [
        ["a", "0.500 ± 0.010", "**0.900**"],
        ["b", "**0.700 ± 0.020**", "0.800"],
    ]
    assert harness.accuracy_rows(["a"], columns) == [["a", "0.500 ± 0.010", "0.900"]]
    records = [{"name": "x", "stats": {"max": 3.14159}, "n": 2}]
    columns = {
        "name": "{name}",
        "max": "{stats[max]:.2f}",
        "twice": lambda r: 2 * r["n"],
    }
    assert harness.format_table(records, columns) == (
        ["name", "max", "twice"],
        [["x", "3.14", 4]],
    )


def test_write_page_gives_the_page_and_the_rst_tables_of_its_sections(tmp_path):
    tables = {"a": (["m", "acc"], [["x", "**0.9**"]]), "b": (["m"], [["y"]])}
    sections = [
        ("a", "Table A", "Heading A", "A note."),
        ("b", "Table B", None, None),
        ("missing", "Never", "Never", None),
    ]
    files = harness.write_page(
        tmp_path,
        "page",
        {"n": 1},
        title="Page",
        intro=["Intro."],
        sections=sections,
        tables=tables,
        footer="The end.",
    )
    md = (tmp_path / "page.md").read_text()
    assert md == (
        "# Page\n\nIntro.\n\n## Heading A\n\nA note.\n\n| m | acc |\n|---|---|\n"
        "| x | **0.9** |\n\n| m |\n|---|\n| y |\n\nThe end.\n"
    )
    rst = (tmp_path / "page_tables.rst").read_text()
    assert rst.count(".. csv-table::") == 2 and "Never" not in rst and "**" not in rst
    assert harness.rst_blocks(sections, tables)[0] == (
        "Table A",
        ["m", "acc"],
        [["x", "0.9"]],
    )
    assert set(files) == {"json", "markdown", "rst"}
