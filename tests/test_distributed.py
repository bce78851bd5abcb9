"""Data-parallel meta_fit under ``accelerate launch`` (CPU, gloo), and without it."""
# SPDX-License-Identifier: BSD-3-Clause

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

import sklearn_metaannot
from benchmarks.distributed import cpu_launch_args
from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearner
from sklearn_metaannot.meta._distributed import (
    ShardedEpisodeDataset,
    check_divisible,
    launched_world_size,
    process_group,
)
from sklearn_metaannot.meta._episodic import EpisodeDataset

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "distributed_meta_fit.py"
# the package under test, first on the path of every subprocess
PACKAGE_ROOT = str(pathlib.Path(sklearn_metaannot.__file__).resolve().parents[1])

# Two processes draw the same episodes, in the same global meta-batches, as one
# process, and average their gradients: the runs differ only by the order of
# floating-point sums, which Adam can amplify for parameters whose gradient is
# near zero. The measured target-accuracy gap is 0.0 (seeds 0-2; 200 examples);
# the bound allows 5 of the 200 target examples to change their prediction.
ACCURACY_BOUND = 0.025


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")])),
        CUDA_VISIBLE_DEVICES="",
        OMP_NUM_THREADS="1",
        **extra,
    )
    return env


def _launch(out_dir, script_args=(), n_processes=2, script=SCRIPT, tmp_home=None):
    """``accelerate launch`` with ``n_processes`` CPU processes (gloo)."""
    cmd = [
        sys.executable,
        *cpu_launch_args(n_processes),
        str(script),
        str(out_dir),
        *script_args,
    ]
    # HF_HOME: no user `accelerate config` file changes the launch
    env = _env(HF_HOME=str(tmp_home or out_dir / "hf_home"))
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _check(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


# runs a script with `import accelerate` failing, then says whether it stayed unloaded
WITHOUT_ACCELERATE = """
import runpy, sys
sys.modules["accelerate"] = None  # `import accelerate` raises ImportError
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
loaded = [m for m, v in sys.modules.items() if v and m.startswith("accelerate")]
print("accelerate not imported" if not loaded else f"imported {loaded}")
"""


def _one_process(out_dir):
    """The example script in one process, without accelerate (as if not installed)."""
    cmd = [sys.executable, "-c", WITHOUT_ACCELERATE, str(SCRIPT), str(out_dir)]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    proc = _one_process(tmp_path_factory.mktemp("one_process"))
    _check(proc)
    return proc


# runs the example script (to OUT_DIR), then CHECKPOINT_SCRIPT (to CHECKPOINT_DIR)
# in the same processes: one launch, whose start-up is most of the time of either
EXAMPLE_THEN_CHECKPOINTS = """
import runpy, sys
out_dir, example, checkpointed, checkpoint_dir = sys.argv[1:]
for script, folder in ((example, out_dir), (checkpointed, checkpoint_dir)):
    sys.argv = [script, folder]
    runpy.run_path(script, run_name="__main__")
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_process):
    """The example script with one process, then launched with two; the two
    launched processes then run CHECKPOINT_SCRIPT (its reports: the third folder)."""
    pytest.importorskip(
        "accelerate", reason="accelerate (extras [distributed], [interop])"
    )
    one = pathlib.Path(one_process.args[-1])
    two, checkpointed, scripts = map(
        tmp_path_factory.mktemp, ("two_processes", "checkpointed", "scripts")
    )
    (scripts / "checkpointed.py").write_text(CHECKPOINT_SCRIPT)
    (scripts / "both.py").write_text(EXAMPLE_THEN_CHECKPOINTS)
    args = [str(SCRIPT), str(scripts / "checkpointed.py"), str(checkpointed)]
    _check(_launch(two, args, script=scripts / "both.py"))
    return one, two, checkpointed


def _report(folder, rank):
    return json.loads((folder / f"rank{rank}.json").read_text())


def test_two_processes_end_with_identical_encoders(runs):
    _, two, _ = runs
    params = [torch.load(two / f"rank{r}.pt") for r in (0, 1)]
    assert params[0].keys() == params[1].keys()
    for name in params[0]:
        assert torch.equal(params[0][name], params[1][name]), name
    reports = [_report(two, r) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    for key in ("target_accuracy", "valid_acc", "best_epoch"):
        assert reports[0][key] == reports[1][key], key


def test_two_processes_match_one_with_the_same_global_meta_batch(runs):
    one, two, _ = runs
    single, double = _report(one, 0), _report(two, 0)
    assert single["world_size"] == 1
    gap = abs(single["target_accuracy"] - double["target_accuracy"])
    assert gap <= ACCURACY_BOUND, (single, double)
    # same episodes and meta-batches: the validation curve agrees too
    np.testing.assert_allclose(single["valid_acc"], double["valid_acc"], atol=0.05)
    # every episode of the one-process run, split over the two processes
    params = torch.load(one / "rank0.pt"), torch.load(two / "rank0.pt")
    for name in params[0]:
        torch.testing.assert_close(params[0][name], params[1][name], atol=0.01, rtol=0)


CHECKPOINT_SCRIPT = """
import json, os, pathlib, sys
import torch
from sklearn.datasets import load_digits
from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearner

out = pathlib.Path(sys.argv[1])
saved = []
torch_save = torch.save
def counting_save(obj, f, *args, **kwargs):
    saved.append(str(f))
    return torch_save(obj, f, *args, **kwargs)
torch.save = counting_save

X, y = load_digits(return_X_y=True)
s = y < 6
def meta_fit(random_state, **params):
    learner = MetaLearner(
        n_way=3, embedding_dim=8, hidden_layer_sizes=(16,), n_shot=3, n_query=3,
        n_episodes=16, episodes_per_epoch=8, meta_batch_size=4,
        validation_classes=0.5, n_val_episodes=4, n_threads=1, **params,
    )
    return MetaAnnotatorClassifier(
        meta_learner=learner, random_state=random_state
    ).meta_fit(X[s], y[s])
first = meta_fit(checkpoint_dir=out / "ckpt", random_state=3, verbose=1)
n_saved = len(saved)
resumed = meta_fit(checkpoint_dir=out / "ckpt", random_state=3)  # finished: loads
unseeded = meta_fit(random_state=None, patience=1)  # early stopping agrees
rank = os.environ.get("RANK", "0")
(out / f"rank{rank}.json").write_text(json.dumps({
    "n_saved": n_saved,
    "files": sorted(p.name for p in (out / "ckpt").iterdir()),
    "valid_acc": [row["valid_acc"] for row in first.meta_history_],
    "resumed_valid_acc": [row["valid_acc"] for row in resumed.meta_history_],
    "resumed_saved": len(saved) - n_saved,
    "unseeded_scores": unseeded.meta_val_scores_,
}))
"""


def test_rank_0_writes_checkpoints_and_every_rank_resumes(runs):
    _, _, checkpointed = runs
    main, other = (_report(checkpointed, r) for r in (0, 1))
    assert main["n_saved"] > 0 and other["n_saved"] == 0
    assert other["resumed_saved"] == 0
    assert "meta_fit_resume.pt" in main["files"]
    assert not [f for f in main["files"] if f.endswith(".tmp")]
    # the finished checkpoint is read by both ranks: the same history
    for report in (main, other):
        assert report["resumed_valid_acc"] == main["valid_acc"]
    # random_state=None: rank 0's draws everywhere (same validation classes, so
    # the same no-meta scores, which each rank computes itself)
    assert main["unseeded_scores"] == other["unseeded_scores"]


@pytest.mark.filterwarnings("ignore::sklearn_metaannot.MetaLearningWarning")
def test_one_process_without_launcher():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(8), 15)
    X = rng.normal(size=(120, 5)) + np.eye(8, 5)[y]
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            n_way=3, n_episodes=4, episodes_per_epoch=4, n_val_episodes=2
        ),
        random_state=0,
    ).meta_fit(X, y)
    assert clf.meta_world_size_ == 1


def test_works_without_accelerate(one_process):
    """The package imports and meta-fits when ``import accelerate`` fails."""
    assert "accelerate not imported" in one_process.stdout
    report = _report(pathlib.Path(one_process.args[-1]), 0)
    assert report["world_size"] == 1


def test_launched_without_accelerate_says_what_to_install(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setitem(sys.modules, "accelerate", None)
    with pytest.raises(ImportError, match=r"sklearn-metaannot\[distributed\]"):
        process_group("cpu")
    monkeypatch.setenv("SKLEARN_METAANNOT_DISTRIBUTED", "0")
    assert process_group("cpu") is None


@pytest.mark.parametrize("value", ["two", "0", "-1"])
def test_bad_world_size(monkeypatch, value):
    monkeypatch.setenv("WORLD_SIZE", value)
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        launched_world_size()


def test_global_counts_must_split_over_the_processes():
    with pytest.raises(ValueError, match="meta_batch_size=5 .* multiple"):
        check_divisible(2, meta_batch_size=5)
    check_divisible(3, meta_batch_size=6, episodes_per_epoch=9)


@pytest.mark.parametrize(
    ("n_episodes", "batch_size", "world_size"), [(12, 4, 2), (10, 4, 2), (18, 6, 3)]
)
def test_shards_cover_every_global_batch(n_episodes, batch_size, world_size):
    base = EpisodeDataset(None, n_episodes, seed=0)
    shards = [
        ShardedEpisodeDataset(base, batch_size, r, world_size)
        for r in range(world_size)
    ]
    local = batch_size // world_size
    seen = []
    for start in range(0, len(shards[0]), local):
        # global batch: the shares of ranks 0, 1, ... in order
        batch = [
            s.global_index(i)
            for s in shards
            for i in range(start, min(start + local, len(s)))
        ]
        seen.append(batch)
    expected = [
        list(range(k, min(k + batch_size, n_episodes)))
        for k in range(0, n_episodes, batch_size)
    ]
    assert seen == expected
