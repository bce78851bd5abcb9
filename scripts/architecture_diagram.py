"""Draw docs/_static/architecture.png: the package's layers and the two flows.

Run from the repository root after changing the module layout::

    python scripts/architecture_diagram.py
"""
# SPDX-License-Identifier: BSD-3-Clause

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

#: (layer, colour, modules); top to bottom, imports only run downwards. A module
#: is named by its path inside the package (``meta._learner`` is
#: ``sklearn_metaannot/meta/_learner.py``); a box lists one or more, separated by
#: commas (a line that ends with a comma continues on the next).
LAYERS = [
    (
        "estimators and front ends (top level, io/)",
        "#dbe9f6",
        [
            "_classifier\nMetaAnnotatorClassifier",
            "aggregation\nMajorityVote, DawidSkene",
            "baselines",
            "cli, demo",
            "io._persistence, io._atomic\nsave, load; CLI outputs",
        ],
    ),
    (
        "meta-training (meta/)",
        "#e5f5e0",
        [
            "meta._learner\nMetaLearner, MetaEncoder",
            "meta._episodic\nepisodic EM, skorch net",
            "meta._encoders",
            "meta._checkpoint, meta._distributed,\nmeta._throughput",
        ],
    ),
    (
        "the per-task choices of fit (adapt/)",
        "#fdf0d5",
        [
            "adapt._representation\ninput spaces, validated default,\n"
            "per-task checks, decide, embed",
            "adapt._unlabelled\nthe guard of unlabelled items",
        ],
    ),
    (
        "bottom: maths and data (em/, crowd/)",
        "#f2e6f7",
        [
            "em._steps\nE and M steps",
            "em._heads\nclass models",
            "em._proba",
            "crowd._labels\nCrowdLabelMatrix",
            "crowd._annotators,\ncrowd._validation",
            "episodes, datasets",
        ],
    ),
]


def draw(path):
    fig, ax = plt.subplots(figsize=(13, 6.4))
    ax.set_xlim(0, 13)
    ax.set_ylim(0, len(LAYERS) * 1.6 + 0.3)
    ax.axis("off")
    for i, (name, colour, modules) in enumerate(LAYERS):
        y = (len(LAYERS) - 1 - i) * 1.6 + 0.15
        ax.add_patch(
            FancyBboxPatch(
                (0.05, y),
                12.9,
                1.3,
                boxstyle="round,pad=0.02",
                facecolor=colour,
                edgecolor="grey",
            )
        )
        ax.text(0.2, y + 1.12, name, fontsize=10, fontweight="bold", va="center")
        width = 12.4 / len(modules)
        for j, module in enumerate(modules):
            x = 0.3 + j * width
            ax.add_patch(
                FancyBboxPatch(
                    (x, y + 0.12),
                    width - 0.2,
                    0.8,
                    boxstyle="round,pad=0.02",
                    facecolor="white",
                    edgecolor="black",
                )
            )
            ax.text(
                x + (width - 0.2) / 2,
                y + 0.52,
                module,
                ha="center",
                va="center",
                fontsize=8.5,
                family="monospace",
            )
        if i < len(LAYERS) - 1:
            ax.annotate(
                "",
                xy=(12.7, y - 0.12),
                xytext=(12.7, y + 0.12),
                arrowprops={"arrowstyle": "->", "color": "grey"},
            )
    ax.text(
        12.55,
        len(LAYERS) * 1.6 - 0.05,
        "imports run down only",
        ha="right",
        va="top",
        fontsize=8,
        color="grey",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    out = (
        Path(__file__).resolve().parent.parent / "docs" / "_static" / "architecture.png"
    )
    draw(out)
    print(f"wrote {out}")
