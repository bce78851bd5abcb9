"""Test configuration: torch runs single-threaded (tiny tensors, shared 2-core CI)."""
# SPDX-License-Identifier: BSD-3-Clause

import re
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

#: The shared data folder next to the repository (never copied into it).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def labelme_data() -> Path:
    """The LabelMe folder of the shared data; skips the test when it is missing."""
    path = SHARED_DATA / "labelme"
    if not (path / "answers.txt").is_file():
        pytest.skip(
            f"LabelMe files not found in {path} (the shared data folder next to the "
            "repository); the benchmark harness needs them"
        )
    return path


#: Test modules of bad input: the ValueError and TypeError messages that their
#: ``pytest.raises`` catch are scanned for numpy reprs (``np.float64(2.0)``,
#: ``np.str_('t0')``, ``np.True_``): messages give plain values (``2.0``). Advice
#: naming numpy's API (``use np.nan for missing labels``) is not a repr.
MESSAGE_SCANNED_MODULES = {
    "test_aggregation",
    "test_annotator_history",
    "test_annotators",
    "test_atomic",
    "test_baselines",
    "test_classes",
    "test_cli",
    "test_crowd_labels",
    "test_em",
    "test_episodes",
    "test_gold_labels",
    "test_input_validation",
    "test_persistence",
}


#: ``np.float64(2.0)``, ``np.str_('t0')``, ``np.True_``: numpy scalars' reprs
NUMPY_REPR = re.compile(r"\bnp\.(\w+\(|True_|False_)")


class _RecordingRaises:
    """``pytest.raises(...)`` as a context manager that keeps the message caught."""

    def __init__(self, context, messages):
        self._context, self._messages = context, messages

    def __enter__(self):
        self._info = self._context.__enter__()
        return self._info

    def __exit__(self, *exc):
        suppressed = self._context.__exit__(*exc)
        if suppressed and isinstance(self._info.value, ValueError | TypeError):
            self._messages.append(str(self._info.value))
        return suppressed


@pytest.fixture(autouse=True)
def _no_numpy_repr_in_error_messages(request, monkeypatch):
    """Fail a bad-input test whose error message shows a numpy repr."""
    if request.module.__name__.rsplit(".", 1)[-1] not in MESSAGE_SCANNED_MODULES:
        yield
        return
    messages, raises = [], pytest.raises

    def recording_raises(*args, **kwargs):
        if len(args) > 1:  # pytest.raises(Error, function, *arguments)
            info = raises(*args, **kwargs)
            if isinstance(info.value, ValueError | TypeError):
                messages.append(str(info.value))
            return info
        return _RecordingRaises(raises(*args, **kwargs), messages)

    monkeypatch.setattr(pytest, "raises", recording_raises)
    yield
    numpy_reprs = [m for m in messages if NUMPY_REPR.search(m)]
    assert not numpy_reprs, f"numpy reprs in error messages: {numpy_reprs}"
