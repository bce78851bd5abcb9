"""The device check script runs end to end on the CPU (so that it cannot rot)."""
# SPDX-License-Identifier: BSD-3-Clause

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "device_check.py"


def test_device_check_cpu_round_trip(tmp_path, monkeypatch):
    # the tiny configuration: synthetic 28 x 28 images, a handful of episodes;
    # --device cpu compares two CPU runs, which must agree exactly
    # in this process (one import less); the reload runs in a fresh process
    spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    status = module.main(
        [
            "--device",
            "cpu",
            "--data",
            "synthetic",
            "--episodes",
            "4",
            "--episodes-per-epoch",
            "2",
            "--val-episodes",
            "2",
            "--meta-batch-size",
            "2",
            "--n-way",
            "3",
            "--threads",
            "1",
            "--warmup",
            "0",
            "--out",
            str(tmp_path),
        ]
    )
    assert status == 0
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert report["ok"] is True
    for run in ("device_run", "cpu_run"):
        assert report[run]["device"] == "cpu"
        assert report[run]["episodes"] == 4
        assert report[run]["episodes_per_s"] > 0
        assert 0 <= report[run]["final_valid_acc"] <= 1
    # same seeds on the same device: the same training, the same accuracy
    assert report["valid_acc_diff"] == 0.0
    reload = report["reload"]
    assert reload["cuda_visible_in_child"] is False
    assert reload["identical_proba"] is True and reload["max_abs_diff"] == 0.0
    assert (tmp_path / "model.joblib").is_file()
