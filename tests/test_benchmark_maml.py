"""The MAML baselines of the Omniglot benchmark (MaMV, MaDS) on synthetic images."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest
import torch

from sklearn_metaannot import DawidSkene, MajorityVote


@pytest.fixture(scope="module")
def maml_module():
    from benchmarks import _maml

    return _maml


def _squares(n_classes, n_per_class, seed):
    """16x16 images: class k is a bright 4x4 square at its own place, plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 0.3, size=(n_classes * n_per_class, 16, 16))
    y = np.repeat(np.arange(n_classes), n_per_class)
    for i, k in enumerate(y):
        r, c = divmod(int(k) % 16, 4)
        X[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 2.0
    return X.reshape(len(y), -1).astype(np.float32), y


def _maml(maml_module, **kw):
    params = {
        "n_way": 4,
        "n_shot": (1, 3),
        "n_query": 5,
        "image_shape": (1, 16, 16),
        "n_episodes": 40,
        "episodes_per_epoch": 20,
        "meta_batch_size": 4,
        "n_val_episodes": 10,
        "random_state": 0,
    }
    params.update(kw)
    return maml_module.MAML(**params)


def test_adaptation_fits_the_support(maml_module):
    X, y = _squares(16, 10, seed=0)
    maml = _maml(maml_module, n_episodes=4, n_val_episodes=0).meta_fit(X, y)
    xs = torch.as_tensor(X[y < 4][::5])
    targets = torch.eye(4)[torch.as_tensor(y[y < 4][::5])]

    def loss(params):
        logits = maml.logits(params, xs)
        return float(-(targets * torch.log_softmax(logits, -1)).sum(-1).mean().detach())

    start = maml.adapt(xs, targets, steps=0)
    assert loss(maml.adapt(xs, targets, steps=3)) < loss(start)
    # adaptation leaves the meta-learned weights alone
    for name, p in maml.net_.named_parameters():
        torch.testing.assert_close(p.detach(), start[name].detach())


def test_meta_training_keeps_the_best_validation_epoch(maml_module):
    X, y = _squares(16, 10, seed=0)
    Xv, yv = _squares(16, 10, seed=1)
    maml = _maml(maml_module).meta_fit(X[y < 12], y[y < 12], Xv[yv >= 12], yv[yv >= 12])
    accs = [row["valid_acc"] for row in maml.history_]
    assert len(accs) == 2 and [row["episodes"] for row in maml.history_] == [20, 40]
    assert maml.val_accuracy_ == pytest.approx(max([maml.val_accuracy_, *accs]))
    assert maml.best_epoch_ in (0, 1, 2)


@pytest.fixture(scope="module")
def squares_maml(maml_module):
    """Images of 16 classes and a MAML meta-trained on the first 12 (adaptation
    leaves its weights alone: one for both aggregators)."""
    X, y = _squares(16, 20, seed=0)
    train = y < 12
    maml = _maml(maml_module, n_episodes=80, n_val_episodes=0).meta_fit(
        X[train], y[train]
    )
    return X, y, maml


@pytest.mark.parametrize("aggregator", [MajorityVote(random_state=0), DawidSkene()])
def test_mamv_and_mads_learn_new_classes_from_noisy_labels(
    maml_module, squares_maml, aggregator
):
    X, y, maml = squares_maml
    rng = np.random.default_rng(3)
    accs = []
    for _ in range(5):
        classes = rng.choice(np.arange(12, 16), size=4, replace=False)
        support = np.concatenate(
            [rng.choice(np.flatnonzero(y == k), 3, replace=False) for k in classes]
        )
        codes = np.repeat(np.arange(4), 3)
        # five annotators: three right, two saying a random class
        Y = np.stack([codes] * 3 + [rng.integers(0, 4, size=12) for _ in range(2)], 1)
        query = np.concatenate([np.flatnonzero(y == k)[10:] for k in classes])
        clf = maml_module.MAMLAggregateClassifier(maml, aggregator, images=X)
        clf.fit(support[:, None], Y.astype(float))
        pred = clf.predict(query[:, None])
        accs.append(np.mean(pred == np.repeat(np.arange(4), 10)))
    assert np.mean(accs) >= 0.8


def test_the_public_helpers_are_the_package_ones(maml_module):
    """The benchmark's majority vote and encoder, built from the public API,
    equal the package's private ones that it used to import."""
    from sklearn_metaannot.em._steps import majority_vote_init, one_hot_annotations
    from sklearn_metaannot.meta._encoders import Conv4Encoder

    codes = np.array([[0, 1, 1], [2, -1, -1], [-1, -1, -1], [1, 1, 1]])
    expected = majority_vote_init(one_hot_annotations(torch.as_tensor(codes), 3))
    got = maml_module.soft_majority_vote(codes, 3)
    assert got.dtype == expected.dtype and torch.equal(got, expected)
    for shape in [(1, 28, 28), (1, 16, 16)]:
        torch.manual_seed(0)
        net = maml_module.MAML(image_shape=shape, n_way=3)._build()
        torch.manual_seed(0)
        reference = dict(Conv4Encoder(shape).named_parameters())
        got = dict(net[0].named_parameters())
        assert type(net[0]) is Conv4Encoder and got.keys() == reference.keys()
        assert all(torch.equal(got[k], v) for k, v in reference.items())
