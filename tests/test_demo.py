"""The demo and the command line run end to end (with small settings)."""
# SPDX-License-Identifier: BSD-3-Clause

import re

import pytest

from sklearn_metaannot.__main__ import main
from sklearn_metaannot.demo import run_demo


def test_demo_runs_and_reports_every_method():
    result = run_demo(n_episodes=200, n_tasks=3, verbose=0)
    methods = {
        "ours",
        "with PA",
        "ours, no meta-learning (standardised)",
        "ours, no meta-learning (globally scaled)",
        "ours, no meta-learning (unit-norm items)",
        "majority vote + logistic regression",
    }
    assert methods <= set(result)
    for name in methods:
        assert 0.25 < result[name]["mean"] <= 1.0
        assert len(result[name]["accuracies"]) == 3
    # the meta-learned model never does worse than its no-meta-learning peer on
    # validation tasks, and here it is well above chance on the target tasks
    assert result["ours"]["mean"] > 0.7
    # the demo says, from its own numbers, whether meta-learning paid
    assert result["verdict"].startswith("Meta-learning ")


def test_command_line_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "demo" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["benchmark", "nonsense"])


def _demo_output(capsys, *flags):
    from sklearn_metaannot.demo import main as demo_main

    demo_main(["--n-episodes", "40", "--n-tasks", "2", *flags])
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_demo_default_output_fits_on_one_screen(capsys):
    out, err = _demo_output(capsys)
    # what a terminal shows: a progress bar redraws its line with "\r"
    lines = [line.rsplit("\r", 1)[-1] for line in (out + err).splitlines(True)]
    lines = [line for line in "".join(lines).split("\n") if line]
    assert len(lines) <= 25, "\n".join(lines)
    # one progress bar per meta-training, finished, with the validation accuracy ...
    bars = [line for line in lines if "episode/s" in line]
    assert len(bars) == 2
    assert all(re.search(r" (\d+)/\1 ", bar) for bar in bars), bars
    assert all("valid_acc=" in bar for bar in bars), bars
    # ... no epoch table, and the result table
    assert "train_loss" not in out + err
    assert "majority vote + logistic regression" in out


def test_demo_verbose_prints_epoch_tables(capsys):
    out, err = _demo_output(capsys, "--verbose")
    # one epoch table per meta-training (skorch's PrintLog header)
    assert len(re.findall(r"epoch\s+grad_norm_max\s+train_loss", out + err)) == 2
    assert "majority vote + logistic regression" in out


def test_demo_quiet_prints_only_the_table(capsys):
    out, err = _demo_output(capsys, "--quiet")
    assert err == ""
    assert "train_loss" not in out and "meta-training 'ours'" not in out
    assert "majority vote + logistic regression" in out
