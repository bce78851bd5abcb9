"""Test configuration: torch runs single-threaded (tiny tensors, shared 2-core CI)."""
# SPDX-License-Identifier: BSD-3-Clause

import torch

torch.set_num_threads(1)
