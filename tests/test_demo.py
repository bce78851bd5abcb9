"""The demo and the command line run end to end (with small settings)."""
# SPDX-License-Identifier: BSD-3-Clause

import pytest

from sklearn_metaannot.__main__ import main
from sklearn_metaannot.demo import run_demo


def test_demo_runs_and_reports_every_method():
    result = run_demo(n_episodes=200, n_tasks=3, verbose=0)
    methods = {
        "ours",
        "w/o PA",
        "ours, no meta-learning",
        "majority vote + logistic regression",
    }
    assert methods <= set(result)
    for name in methods:
        assert 0.25 < result[name]["mean"] <= 1.0
        assert len(result[name]["accuracies"]) == 3
    # the meta-learned model never does worse than its no-meta-learning peer on
    # validation tasks, and here it is well above chance on the target tasks
    assert result["ours"]["mean"] > 0.7


def test_command_line_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "demo" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["benchmark", "nonsense"])
