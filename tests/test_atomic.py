"""Outputs of the command line: checked first, moved into place all or none."""
# SPDX-License-Identifier: BSD-3-Clause

import os

import pytest

from sklearn_metaannot.io import _atomic
from sklearn_metaannot.io._atomic import (
    AtomicOutputs,
    OutputPathError,
    check_output_path,
)


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_check_output_path(tmp_path):
    check_output_path(tmp_path / "p.csv", "-o")
    assert _names(tmp_path) == []  # the probe is gone
    (tmp_path / "file").write_text("")
    (tmp_path / "folder").mkdir()
    cases = [
        (tmp_path / "missing" / "p.csv", "the directory .* does not exist"),
        (tmp_path / "file" / "p.csv", "is not a directory"),
        (tmp_path / "folder", "is a directory; give a file name"),
    ]
    for path, message in cases:
        with pytest.raises(OutputPathError, match=message):
            check_output_path(path, "-o")


def test_outputs_move_together_or_not_at_all(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    with pytest.raises(RuntimeError, match="the second output failed"):
        with AtomicOutputs() as outputs:
            outputs.path(tmp_path / "a.txt").write_text("new a")
            outputs.path(tmp_path / "b.txt")
            raise RuntimeError("the second output failed")
    assert _names(tmp_path) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old a"


def test_a_failed_move_puts_back_the_moves_done(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "model").mkdir()  # an output that is a directory
    (tmp_path / "model" / "weights").write_text("old weights")
    replace, calls = os.replace, []

    def failing_third_move(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return replace(source, target)

    monkeypatch.setattr(_atomic.os, "replace", failing_third_move)
    with pytest.raises(OSError, match="No space left"):
        with AtomicOutputs() as outputs:
            outputs.path(tmp_path / "a.txt").write_text("new a")
            new_model = outputs.path(tmp_path / "model")
            new_model.mkdir()
            (new_model / "weights").write_text("new weights")
    assert _names(tmp_path) == ["a.txt", "model"]
    assert (tmp_path / "a.txt").read_text() == "old a"
    assert (tmp_path / "model" / "weights").read_text() == "old weights"

    monkeypatch.setattr(_atomic.os, "replace", replace)
    with AtomicOutputs() as outputs:
        new_model = outputs.path(tmp_path / "model")
        new_model.mkdir()
        (new_model / "weights").write_text("new weights")
    assert _names(tmp_path) == ["a.txt", "model"]
    assert (tmp_path / "model" / "weights").read_text() == "new weights"


def test_an_output_never_written_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="the output was not written"):
        with AtomicOutputs() as outputs:
            outputs.path(tmp_path / "a.txt").write_text("a")
            outputs.path(tmp_path / "b.txt")
    assert _names(tmp_path) == []
