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


def test_evaluate_each_gives_every_task_its_own_context():
    taskset = tasks(n_tasks=4)

    class Fixed(Constant):
        def __init__(self, label):
            self.label = label

        def predict(self, X):
            return np.full(len(X), self.label)

    registry = harness.Methods()
    registry.add("fixed", "Per-task constant")(lambda label, seed: Fixed(label))
    first = {id(t): int(t.query_y[0]) for t in taskset}
    rows = harness.evaluate_each(registry, taskset, lambda t: first[id(t)])
    assert [r["task"] for r in rows] == [0, 1, 2, 3]
    for row, task in zip(rows, taskset):  # the context was that task's own
        assert row["accuracy"] == np.mean(task.query_y == task.query_y[0])
    assert set(rows[0]) == {"task", "method", "accuracy", "seconds"}


def test_log_threads_page_header_and_table_formats(capsys):
    torch = pytest.importorskip("torch")
    harness.log({"verbose": 0}, "hidden")
    harness.log({"verbose": 1}, "shown", 1)
    assert capsys.readouterr().out == "shown 1\n"
    before = torch.get_num_threads()
    with harness.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    results = {
        "config": {"name": "tiny_quick"},
        "environment": {"cpu": "CPU", "cpu_count": 2, "torch": "2.0"},
        "wall_seconds": 12.4,
    }
    assert harness.page_header(results, "tiny.py", "Tiny") == (
        "# Tiny (tiny_quick)\n\nCommand: `python benchmarks/tiny.py --quick`; "
        "CPU (2 CPUs), torch 2.0; wall time 12 s."
    )
    header, rows = harness.format_table(
        {"method": "{name}", "accuracy": "{acc:.3f}", "n": "{n}"},
        [{"name": "a", "acc": 0.51234, "n": 3, "unused": None}],
    )
    assert header == ["method", "accuracy", "n"] and rows == [["a", "0.512", "3"]]


def test_command_line_gives_the_overrides_given():
    def parse(*argv):
        options = {"n_tasks": (int, "tasks"), "data": (str, "folder")}
        return harness.command_line("tiny.py", "Tiny.", "fewer", list(argv), **options)

    assert parse() == {"quick": False, "write": True}
    assert parse("--quick", "--no-write", "--n-tasks", "3") == {
        "quick": True,
        "write": False,
        "n_tasks": 3,
    }
    with pytest.raises(SystemExit):
        parse("--unknown")


def test_bar_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    path = harness.bar_plot(
        tmp_path / "bars.png",
        {"ours": (0.9, 0.01, "C3"), "other": (0.8, 0.0, "C0")},
        xlabel="accuracy",
        title="tiny",
        references={"published": 0.85},
        xlim=(0.5, 1.0),
    )
    assert path.stat().st_size > 1000
