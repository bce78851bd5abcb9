"""The benchmarks of sklearn-metaannot: run one as ``python -m benchmarks.NAME``.

A package of the source repository, not of the installed distribution: run its
modules from the repository root (``python -m benchmarks.labelme --quick``) or
through ``python -m sklearn_metaannot benchmark NAME``. A benchmark is a public
module with a module-level ``main`` function; ``harness`` and the private
modules (``_maml``) are the helpers they share.
"""
# SPDX-License-Identifier: BSD-3-Clause
