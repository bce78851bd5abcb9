"""Test configuration: torch runs single-threaded (tiny tensors, shared 2-core CI)."""
# SPDX-License-Identifier: BSD-3-Clause

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
