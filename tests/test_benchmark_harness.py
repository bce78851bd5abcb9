"""The benchmark harness on a tiny synthetic benchmark."""
# SPDX-License-Identifier: BSD-3-Clause

import csv
import json
import time

import numpy as np
import pytest

from benchmarks import harness


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
    summary = {m: harness.summarize(a) for m, a in acc.items()}
    assert summary["centroids"]["mean"] > 0.8 > summary["constant"]["mean"]
    assert summary["centroids"]["n"] == 12 and summary["centroids"]["sem"] >= 0
    test = harness.paired_ttest(acc["centroids"], acc["constant"])
    assert test["verdict"] == "win" and test["diff"] > 0.5
    assert harness.paired_ttest(acc["copy"], acc["centroids"])["verdict"] == "tie"
    # identical results tie: both in bold, the clearly worse method not
    assert harness.best_or_tied({"a": [0.5, 0.6], "b": [0.5, 0.6]}) == {"a", "b"}
    assert harness.best_or_tied(acc) == {"centroids", "copy"}


def test_writers_round_trip_the_numbers(tmp_path):
    rows = harness.evaluate(methods(), tasks())
    acc = harness.column(rows)
    bold = harness.best_or_tied(acc)
    summary = {m: {**harness.summarize(a), "bold": m in bold} for m, a in acc.items()}
    table = (
        ["method", "accuracy"],
        [
            [m, harness.fmt_acc(s["mean"], s["sem"], bold=s["bold"])]
            for m, s in summary.items()
        ],
    )
    files = harness.write_page(
        tmp_path,
        "tiny",
        {"summary": summary, "rows": rows, "nan": float("nan")},
        [harness.Table(None, "Accuracy", *table), harness.Table(None, "Again", *table)],
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


def test_alternate_calls_the_measures_in_turn_in_every_round():
    calls = []
    out = harness.alternate(
        {"a": lambda: calls.append("a") or len(calls), "b": lambda: calls.append("b")},
        3,
    )
    assert calls == ["a", "b"] * 3
    assert out == {"a": [1, 3, 5], "b": [None] * 3}


def test_adding_seconds_times_only_the_selected_calls():
    spent = [0.0]

    def slow(x, wait=True):
        if wait:
            time.sleep(0.01)
        return x

    timed = harness.adding_seconds(slow, spent, when=lambda x, wait=True: x > 0)
    assert timed(0) == 0 and spent[0] == 0.0  # not selected
    assert timed(1) == 1 and spent[0] >= 0.01
    with pytest.raises(TypeError):
        timed()  # errors of fn go through
    assert harness.adding_seconds(slow, spent)(-1, wait=False) == -1


def test_torch_threads_restores_the_number_of_threads():
    import torch

    before = torch.get_num_threads()
    with harness.torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before


def test_options_tables_and_published_files(tmp_path, capsys):
    options = {
        "steps": {"type": int},
        "min_episodes": {"type": int},
        "quick": {"action": "store_true"},
        "out": {},
    }
    assert harness.parse_options([], "tiny", options) == {}
    given = harness.parse_options(["--min-episodes", "3", "--quick"], "tiny", options)
    assert given == {"min_episodes": 3, "quick": True}
    with pytest.raises(SystemExit):
        harness.parse_options(["--steps", "many"], "tiny", options)
    capsys.readouterr()
    columns = [("n", "{n}"), ("rate", "{rate:.1f}"), ("twice", lambda r: 2 * r["n"])]
    header, body = harness.columns_table(columns, [{"n": 2, "rate": 1.34}])
    assert header == ["n", "rate", "twice"] and body == [["2", "1.3", 4]]
    results = harness.stamped({"name": "tiny"}, rows=[1])
    assert list(results)[:2] == ["config", "rows"]
    assert results["date"].endswith("UTC") and "torch" in results["environment"]
    files = harness.publish(results, tmp_path, "# tiny\n")
    assert capsys.readouterr().out == "# tiny\n\n"
    assert (tmp_path / "tiny.md").read_text() == "# tiny\n"
    assert json.loads((tmp_path / "tiny.json").read_text())["rows"] == [1]
    assert set(files) == {"json", "markdown"}


def test_timing_threads_and_logging(capsys):
    calls = []
    out, times = harness.repeat_timed(lambda: calls.append(1) or len(calls), 3)
    assert out == 3 and len(times) == 3 and min(times) >= 0
    # a call at least stop_after_s long ends the repeats
    out, times = harness.repeat_timed(lambda: len(calls), 5, stop_after_s=0.0)
    assert out == 3 and len(times) == 1
    harness.log({"verbose": 0}, "hidden")
    harness.log({"verbose": 1}, "shown", 1)
    assert capsys.readouterr().out == "shown 1\n"
    assert harness.peak_rss_mb() > 1


def test_child_process_reports_its_json_or_its_error():
    ok = harness.run_child(
        ["-c", "import json; print('log'); print(json.dumps({'a': 1}))"]
    )
    assert ok == {"a": 1}
    failed = harness.run_child(["-c", "raise SystemExit('broken')"])
    assert failed["error"].startswith("exit 1") and "broken" in failed["error"]
    assert harness.run_child(["-c", "import time; time.sleep(5)"], timeout_s=0.5) == {
        "error": "timeout"
    }


def test_bar_plot_is_written(tmp_path):
    path = harness.bar_plot(
        tmp_path / "bars.png",
        ["one", "two"],
        {"a": ([1.0, None], {"color": "C0"}), "b": ([2.0, 3.0], {"hatch": "//"})},
        ylabel="value",
        title="bars",
        logy=True,
        tick_fontsize=7,
    )
    assert path.stat().st_size > 1000


def test_log_threads_page_header_and_columns_table(capsys):
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
        "# Tiny (tiny_quick)\n\nCommand: `python -m benchmarks.tiny --quick`; "
        "CPU (2 CPUs), torch 2.0; wall time 12 s."
    )
    header, rows = harness.columns_table(
        {"method": "{name}", "accuracy": "{acc:.3f}", "n": "{n}"}.items(),
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
    # option keywords, an explicit None kept; no --no-write, no --quick
    clip = {"type": lambda v: None if v == "none" else float(v)}
    given = harness.command_line(
        "tiny.py", "Tiny.", None, ["--clip", "none"], clip=clip
    )
    assert given == {"quick": False, "write": True, "clip": None}
    with pytest.raises(SystemExit):
        harness.command_line("tiny.py", "Tiny.", None, ["--quick"], no_write=False)


def test_hbar_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    path = harness.hbar_plot(
        tmp_path / "bars.png",
        {"ours": (0.9, 0.01, "C3"), "other": (0.8, 0.0, "C0")},
        xlabel="accuracy",
        title="tiny",
        references={"published": 0.85},
        xlim=(0.5, 1.0),
    )
    assert path.stat().st_size > 1000


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
    labels = {"a": "A", "b": "B"}
    assert harness.accuracy_rows(labels, columns, bold="max") == [
        ["A", "0.500 ± 0.010", "**0.900**"],
        ["B", "**0.700 ± 0.020**", "0.800"],
    ]
    assert harness.accuracy_rows(labels, columns, bold=[{"a", "b"}, set()]) == [
        ["A", "**0.500 ± 0.010**", "0.900"],
        ["B", "**0.700 ± 0.020**", "0.800"],
    ]
    assert harness.accuracy_rows({"a": "a"}, columns) == [
        ["a", "0.500 ± 0.010", "0.900"]
    ]
    records = [{"name": "x", "stats": {"max": 3.14159}, "n": 2}]
    columns = {
        "name": "{name}",
        "max": "{stats[max]:.2f}",
        "twice": lambda r: 2 * r["n"],
    }
    assert harness.columns_table(columns, records) == (
        ["name", "max", "twice"],
        [["x", "3.14", 4]],
    )


def test_write_page_gives_the_page_and_the_rst_tables_of_its_parts(tmp_path):
    parts = [
        "# Page",
        "Intro.",
        harness.Table(
            "## Heading A\n\nA note.", "Table A", ["m", "acc"], [["x", "**0.9**"]]
        ),
        harness.Table(None, "Table B", ["m"], [["y"]]),
        harness.Table("Only on the page.", None, ["m"], [["z"]]),
        None,
        "The end.",
    ]
    files = harness.write_page(tmp_path, "page", {"n": 1}, parts, rst_bold=False)
    md = (tmp_path / "page.md").read_text()
    assert md == (
        "# Page\n\nIntro.\n\n## Heading A\n\nA note.\n\n| m | acc |\n|---|---|\n"
        "| x | **0.9** |\n\n| m |\n|---|\n| y |\n\nOnly on the page.\n\n| m |\n"
        "|---|\n| z |\n\nThe end.\n"
    )
    assert md == harness.markdown_page(parts) + "\n"
    rst = (tmp_path / "page_tables.rst").read_text()
    assert rst.count(".. csv-table::") == 2 and "Only" not in rst and "**" not in rst
    assert harness.rst_tables(parts, bold=False)[0] == (
        "Table A",
        ["m", "acc"],
        [["x", "0.9"]],
    )
    assert harness.rst_tables(parts)[0][2] == [["x", "**0.9**"]]
    assert set(files) == {"json", "markdown", "rst"}
