"""Gradient-clipping ablation of meta-training, on the Omniglot validation alphabet.

Meta-trains our model (pseudo-annotation) and w/o PA with the settings of
``benchmarks/omniglot.py`` for each value of ``max_grad_norm`` and reports the
best validation accuracy (100 fixed Greek tasks, pseudo-annotated) and the
gradient norms before clipping. The test alphabets are not touched: this is how
the package default ``max_grad_norm=1.0`` was chosen.

    python -m benchmarks.omniglot_clipping            # 2000 episodes per run
    python -m benchmarks.omniglot_clipping --quick    # 200 episodes per run

Writes ``benchmarks/results/omniglot_clipping{,_quick}.{json,md}`` and
``omniglot_clipping{,_quick}_tables.rst`` (included in the docs).
"""
# SPDX-License-Identifier: BSD-3-Clause

from . import harness, omniglot


def _clip(row):
    return "none" if row["max_grad_norm"] is None else f"{row['max_grad_norm']:g}"


def _clipped(row):
    share = row["grad_norm"]["clipped_fraction"]
    return "–" if share is None else f"{100 * share:.0f} %"


TABLE = {
    "model": "{model}",
    "max_grad_norm": _clip,
    "best validation accuracy (epoch)": "{best_val_accuracy:.3f} ({best_epoch})",
    "last epoch": "{last_val_accuracy:.3f}",
    "gradient norm median / p90 / p99 / max": "{grad_norm[median]:.2f} / "
    "{grad_norm[p90]:.1f} / {grad_norm[p99]:.1f} / {grad_norm[max]:.0f}",
    "steps clipped": _clipped,
    "seconds": "{seconds:.0f}",
}


def default_config(quick=False) -> dict:
    """Settings of the ablation; ``omniglot`` overrides the benchmark's own."""
    cfg = {"name": "omniglot_clipping", "clip_values": [None, 3.0, 1.0]}
    cfg.update(models=[omniglot.OURS, omniglot.WOPA], n_episodes=2000, omniglot={})
    cfg.update(write=True, verbose=1)
    if quick:
        meta = {"episodes_per_epoch": 100, "n_val_episodes": 30}
        cfg.update(name="omniglot_clipping_quick", n_episodes=200, omniglot=meta)
    return cfg


def run(config=None, **overrides) -> dict:
    """One meta-training per model and clipping value; ``config`` and
    ``overrides`` override :func:`default_config` (``quick=True`` first)."""
    cfg = omniglot.study_config(default_config, config, overrides)
    ocfg = {
        **omniglot.default_config(),
        **cfg["omniglot"],
        "n_episodes": cfg["n_episodes"],
    }

    def rows(pools):
        out = []
        for name, clip in [(m, c) for m in cfg["models"] for c in cfg["clip_values"]]:
            pa = {"pseudo_annotation": name != omniglot.WOPA, "max_grad_norm": clip}
            model, timer = omniglot.meta_fit(omniglot.base_estimator(ocfg, **pa), pools)
            rec = omniglot.meta_record(model, timer, clip)
            out.append({"model": name, "max_grad_norm": clip})
            out[-1].update(
                best_val_accuracy=rec["val_accuracy"], best_epoch=rec["best_epoch"]
            )
            out[-1].update(
                last_val_accuracy=rec["valid_acc_curve"][-1], seconds=timer.seconds
            )
            out[-1]["grad_norm"] = rec["grad_norm"]
            harness.log(cfg, harness.columns_table(TABLE, [out[-1]])[1][0])
        return {"rows": out}

    results = omniglot.meta_study(cfg, ocfg, rows)
    if cfg["write"]:
        text = (
            f"{cfg['n_episodes']} meta-training episodes per run; validation on "
            f"{ocfg['n_val_episodes']} fixed tasks of the validation alphabet; "
            "gradient norms before clipping."
        )
        title = f"Validation accuracy after {cfg['n_episodes']} episodes against "
        title += "meta-gradient clipping"
        table = harness.columns_table(TABLE, results["rows"])
        heading = "Gradient-clipping ablation"
        results["files"] = omniglot.write_study(
            results, "omniglot_clipping.py", heading, text, title, table
        )
    return results


def main(argv=None):
    """Command-line entry point."""
    clip = "max_grad_norm values ('none': no clipping; default none 3 1)"
    overrides = omniglot.study_command_line(
        "omniglot_clipping.py",
        "Meta-gradient clipping ablation on the Omniglot validation alphabet.",
        "200 episodes per run",
        argv,
        n_episodes=(int, "episodes per run"),
        clip={"nargs": "+", "type": omniglot.parse_max_grad_norm, "help": clip},
    )
    if "clip" in overrides:
        overrides["clip_values"] = overrides.pop("clip")
    run(overrides)


if __name__ == "__main__":
    main()
