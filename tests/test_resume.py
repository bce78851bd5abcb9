"""meta_fit with checkpoint_dir: killed with SIGKILL, resumed, same encoder."""
# SPDX-License-Identifier: BSD-3-Clause

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

from sklearn_metaannot import (
    MetaAnnotatorClassifier,
    MetaLearner,
    MetaLearningWarning,
)
from sklearn_metaannot.meta._checkpoint import CHECKPOINT_NAME, load_checkpoint

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"
)

# of the MetaLearner
PARAMS = {
    "n_way": 3,
    "n_shot": 2,
    "n_annotators": 3,
    "embedding_dim": 5,
    "hidden_layer_sizes": (16,),
    "n_episodes": 24,
    "episodes_per_epoch": 4,
    "meta_batch_size": 2,
    "n_val_episodes": 3,
    "patience": 2,  # early stopping's counters must survive the crash too
    "random_state": 0,
}

# The child meta-fits with a short sleep per episode, so that the parent can
# kill it in the middle of an epoch.
CHILD = """
import json, sys, time, warnings
import numpy as np, torch
torch.set_num_threads(1)
warnings.simplefilter("ignore")
from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearner
from sklearn_metaannot.episodes import EpisodeSampler

params = json.loads(sys.argv[2])
params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
sample = EpisodeSampler.sample
def slow_sample(self, rng):
    time.sleep(0.05)
    return sample(self, rng)
EpisodeSampler.sample = slow_sample
data = np.load(sys.argv[3])
MetaAnnotatorClassifier(
    meta_learner=MetaLearner(checkpoint_dir=sys.argv[1], **params)
).meta_fit(data["X"], data["y"])
"""


def _source():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 12)
    X = 2 * rng.normal(size=(10, 6))[y] + rng.normal(size=(120, 6))
    return X, y


def _meta_fit(checkpoint_dir=None, **changes):
    X, y = _source()
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(checkpoint_dir=checkpoint_dir, **{**PARAMS, **changes})
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        return clf.meta_fit(X, y)


def _max_abs_diff(a, b):
    sa, sb = a.meta_encoder_.module.state_dict(), b.meta_encoder_.module.state_dict()
    assert sa.keys() == sb.keys()
    return max((sa[k] - sb[k]).abs().max().item() for k in sa)


def _killed_run(tmp_path, after_epochs=2):
    """Run the child, SIGKILL it during epoch ``after_epochs + 1``."""
    X, y = _source()
    data = tmp_path / "data.npz"
    np.savez(data, X=X, y=y)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    ckpt_dir = tmp_path / "ckpt"
    repo = pathlib.Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), *sys.path])}
    child = subprocess.Popen(
        [sys.executable, str(script), str(ckpt_dir), json.dumps(PARAMS), str(data)],
        env=env,
    )
    path = ckpt_dir / CHECKPOINT_NAME
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if path.exists() and load_checkpoint(path)["epochs"] >= after_epochs:
                break
            time.sleep(0.02)
        assert child.poll() is None, "the child ended before it could be killed"
        time.sleep(0.1)  # into the next epoch (4 episodes of >= 0.05 s)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return ckpt_dir, load_checkpoint(path)


def test_killed_meta_fit_resumes_to_the_same_encoder(tmp_path):
    reference = _meta_fit()
    ckpt_dir, state = _killed_run(tmp_path)
    n_done = state["epochs"]
    assert not state["finished"]
    assert n_done < len(reference.meta_history_)  # killed before the end
    resumed = _meta_fit(ckpt_dir)
    assert _max_abs_diff(reference, resumed) <= 1e-6
    # it resumed: the first epochs are those of the killed run, not a rerun
    assert resumed.meta_history_[:n_done, "dur"] == state["history"][:, "dur"]
    assert len(resumed.meta_history_) == len(reference.meta_history_)
    for key in ("valid_acc", "train_loss", "valid_acc_best"):
        np.testing.assert_allclose(
            resumed.meta_history_[:, key], reference.meta_history_[:, key], atol=1e-6
        )
    assert resumed.meta_best_epoch_ == reference.meta_best_epoch_
    assert resumed.meta_val_accuracy_ == reference.meta_val_accuracy_
    assert load_checkpoint(ckpt_dir / CHECKPOINT_NAME)["finished"]
    # a finished run is not repeated: same encoder, same history, no new epoch
    again = _meta_fit(ckpt_dir)
    assert _max_abs_diff(resumed, again) == 0.0
    assert again.meta_history_[:, "dur"] == resumed.meta_history_[:, "dur"]


def test_corrupted_or_foreign_checkpoints_are_errors(tmp_path):
    clf = _meta_fit(tmp_path, n_episodes=8)
    path = tmp_path / CHECKPOINT_NAME
    good = path.read_bytes()
    with pytest.raises(ValueError, match="written by a meta_fit with other param"):
        _meta_fit(tmp_path, n_episodes=8, lr=0.01)
    corrupted = f"checkpoint {re.escape(str(path))} is truncated or corrupted"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=corrupted):
        _meta_fit(tmp_path, n_episodes=8)
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match=corrupted):
        _meta_fit(tmp_path, n_episodes=8)
    torch.save({"format": "something else"}, path)
    with pytest.raises(ValueError, match="does not hold a meta_fit checkpoint"):
        _meta_fit(tmp_path, n_episodes=8)
    path.write_bytes(good)  # the intact file resumes a finished run
    assert _max_abs_diff(clf, _meta_fit(tmp_path, n_episodes=8)) == 0.0
