#!/usr/bin/env bash
# Install sklearn-metaannot and its test dependencies into the active Python.
# The CPU build of PyTorch goes first: without it pip resolves a multi-GB CUDA build.
# Pass extras as the first argument (default "test"), e.g. `bash scripts/install.sh dev`.
set -euo pipefail
extras="${1:-test}"
cd "$(dirname "$0")/.."
python -m pip install --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install "torch==2.13.0"
fi
python -m pip install -e ".[${extras}]"
