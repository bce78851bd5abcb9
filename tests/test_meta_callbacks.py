"""meta_fit's output (verbose) and user skorch callbacks (experiment tracking)."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest
from skorch.callbacks import Callback

from sklearn_metaannot import MetaAnnotatorClassifier, MetaLearner

# tiny meta-training does not beat the input features; not what is tested here
pytestmark = pytest.mark.filterwarnings("ignore::sklearn_metaannot.MetaLearningWarning")


@pytest.fixture(scope="module")
def source():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(12), 20)
    return rng.normal(size=(240, 6)) + 2 * np.eye(12, 6)[y], y


def _clf(**params):
    kw = {
        "n_way": 3,
        "embedding_dim": 8,
        "hidden_layer_sizes": (16,),
        "n_episodes": 30,
        "episodes_per_epoch": 10,
        "n_val_episodes": 5,
        "n_threads": 1,
    }
    return MetaAnnotatorClassifier(
        meta_learner=MetaLearner(**{**kw, **params}), random_state=0
    )


class Recorder(Callback):
    """Records what a tracking callback (TensorBoard, MLflow) would log."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        self.seen.append(
            {k: row.get(k) for k in ("train_loss", "valid_acc", "grad_norm_max")}
        )


def test_user_callbacks_see_loss_validation_accuracy_and_gradient_norm(source):
    recorder = Recorder()
    clf = _clf(callbacks=[("recorder", recorder)]).meta_fit(*source)
    # the parameter is left untouched
    assert clf.meta_learner.callbacks[0][1] is recorder
    # the callback is used as given (not copied): what it saw is on our object
    assert len(recorder.seen) == len(clf.meta_history_) == 3
    for row, seen in zip(clf.meta_history_, recorder.seen):
        assert seen == {k: row[k] for k in seen}
        assert 0 <= seen["valid_acc"] <= 1 and seen["grad_norm_max"] > 0
    # skorch re-initialises it at the next meta_fit
    clf.meta_fit(*source)
    assert len(recorder.seen) == 6


def test_unnamed_callback_is_named_after_its_class(source):
    recorder = Recorder()
    _clf(n_episodes=10, callbacks=[recorder]).meta_fit(*source)
    assert len(recorder.seen) == 1


@pytest.mark.parametrize(
    "callbacks, error, match",
    [
        ([object()], TypeError, "skorch.callbacks.Callback instances"),
        ([("x", 3)], TypeError, "skorch.callbacks.Callback instances"),
        ([("valid_acc", Recorder())], ValueError, "used by meta_fit's own"),
        ([Recorder(), Recorder()], ValueError, "several callbacks are named"),
    ],
)
def test_bad_callbacks_are_rejected(source, callbacks, error, match):
    with pytest.raises(error, match=match):
        _clf(callbacks=callbacks).meta_fit(*source)


def test_callbacks_must_be_a_list(source):
    with pytest.raises(ValueError, match="callbacks"):
        _clf(callbacks=Recorder()).meta_fit(*source)


def _lines_shown(text):
    """The lines a terminal shows (a progress bar redraws its line with \\r)."""
    text = "".join(part.rsplit("\r", 1)[-1] for part in text.splitlines(True))
    return [line for line in text.split("\n") if line]


def test_verbose_1_shows_one_bar_over_episodes(source, capsys):
    _clf(verbose=1).meta_fit(*source)
    out, err = capsys.readouterr()
    assert out == ""  # no epoch table
    (bar,) = _lines_shown(err)
    assert "30/30" in bar and "valid_acc=" in bar and "episode" in bar


def test_verbose_2_shows_the_epoch_table(source, capsys):
    _clf(verbose=2).meta_fit(*source)
    out, err = capsys.readouterr()
    assert "train_loss" in out + err and "valid_acc" in out + err
    assert "episode/s" not in err


def test_verbose_0_is_silent(source, capsys):
    _clf(verbose=0).meta_fit(*source)
    assert capsys.readouterr() == ("", "")


class _Writer:
    """Stands in for ``torch.utils.tensorboard.SummaryWriter`` (no tensorboard)."""

    def __init__(self):
        self.scalars, self.closed = [], False

    def add_scalar(self, tag, scalar_value, global_step=None):
        self.scalars.append((tag, float(scalar_value), global_step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_skorch_tensorboard_logs_loss_validation_accuracy_and_gradient_norm(source):
    # the user guide's example, with skorch's own TensorBoard callback
    from skorch.callbacks import TensorBoard

    writer = _Writer()
    clf = _clf(callbacks=[("tensorboard", TensorBoard(writer))]).meta_fit(*source)
    tags = {tag for tag, _, _ in writer.scalars}
    assert {"Loss/train_loss", "Loss/valid_acc", "grad_norm_max"} <= tags, tags
    logged = [v for tag, v, _ in writer.scalars if tag == "Loss/valid_acc"]
    assert logged == [row["valid_acc"] for row in clf.meta_history_]
    assert writer.closed
