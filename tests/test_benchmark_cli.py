"""``python -m sklearn_metaannot benchmark``: the benchmarks it finds and runs."""
# SPDX-License-Identifier: BSD-3-Clause

import subprocess
import sys
from pathlib import Path

import pytest

import sklearn_metaannot.__main__ as entry
from sklearn_metaannot.__main__ import discover_benchmarks, main

REPO = Path(__file__).resolve().parents[1]

#: Benchmarks of the repository (more may be added: none is listed in the CLI)
BENCHMARKS = {
    "aggregation",
    "distributed",
    "labelme",
    "labelme_gold",
    "omniglot",
    "omniglot_clipping",
    "omniglot_seeds",
    "omniglot_variants",
    "scale",
    "selection_check",
    "small_source",
    "throughput",
}


def test_benchmarks_are_the_public_modules_with_a_main_function():
    found = discover_benchmarks()
    assert BENCHMARKS <= set(found)
    assert "harness" not in found and "_maml" not in found  # no main; private
    assert list(found) == sorted(found)
    assert found["labelme"].startswith("LabelMe benchmark: ")
    assert all(line and "\n" not in line for line in found.values())


def test_the_rule_reads_the_sources(tmp_path):
    (tmp_path / "__init__.py").write_text('"""A package."""\n')
    (tmp_path / "study.py").write_text('"""A study.\n\nMore.\n"""\ndef main(): ...\n')
    (tmp_path / "nodoc.py").write_text("def main(argv=None): ...\n")
    (tmp_path / "helper.py").write_text('"""Help."""\ndef run(): ...\n')
    (tmp_path / "nested.py").write_text("def outer():\n    def main(): ...\n")
    (tmp_path / "_private.py").write_text("def main(): ...\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "__init__.py").write_text("def main(): ...\n")
    assert discover_benchmarks(tmp_path) == {"nodoc": "", "study": "A study."}


def test_help_and_a_missing_name_list_the_benchmarks(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "python -m benchmarks.NAME" in out
    for name, line in discover_benchmarks().items():
        assert any(row.split() == [name, *line.split()] for row in out.splitlines())
    assert "harness" not in out.split("benchmarks:")[1]
    for argv in (["benchmark"], ["benchmark", "harness"], ["benchmark", "_maml"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "small_source" in err and "benchmark: error:" in err


def test_a_benchmark_runs_as_a_module_of_the_package(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "small_source", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m benchmarks.small_source")


def test_without_a_clone_benchmarks_need_one(capsys, monkeypatch):
    monkeypatch.setattr(entry, "_benchmarks_folder", lambda: None)
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "labelme"])
    assert exc.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "not with the installed package" in err
    assert "clone of the repository" in err
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "no benchmarks found" in out and "clone of the repository" in out


def test_benchmarks_import_as_a_package_without_sys_path_edits():
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        text = path.read_text()
        assert "sys.path" not in text and "E402" not in text, path.name


@pytest.mark.parametrize(
    ("cwd", "command"),
    [
        (REPO, ["-m", "benchmarks.small_source"]),
        (None, ["-m", "sklearn_metaannot", "benchmark", "small_source"]),
    ],
    ids=["python -m benchmarks.NAME", "python -m sklearn_metaannot benchmark"],
)
def test_command_lines_run_a_benchmark(cwd, command, tmp_path):
    proc = subprocess.run(
        [sys.executable, *command, "--help"],
        cwd=tmp_path if cwd is None else cwd,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m benchmarks.small_source")
