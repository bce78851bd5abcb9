"""The ablation seams of meta-training: ``MetaLearner(episodes=, episodic_em=)``."""
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import pytest
import torch
from _factories import small_meta_classifier
from sklearn.utils._param_validation import InvalidParameterError

from benchmarks.omniglot_variants import WithCleanLabels  # a custom episode source
from sklearn_metaannot import (
    EpisodeDataset,
    EpisodicEM,
    MetaLearner,
    load,
    save,
    simulate_annotators,
)


def _source(seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(9), 12)
    return rng.normal(size=(108, 9)) + 3 * np.eye(9)[y], y


class CountingEM(EpisodicEM):
    """The default EM, counting its calls of ``adapt`` by mode."""

    calls = {True: 0, False: 0}

    def adapt(self, U, codes, mask=None, n_classes=None):
        CountingEM.calls[self.training] += 1
        return super().adapt(U, codes, mask, n_classes)


class CleanLabelsEM(EpisodicEM):
    """Adapts on the clean column that ``WithCleanLabels`` appends."""

    seen_codes = []

    def forward(self, support_X, support_codes, support_mask, query_X, n_classes=None):
        CleanLabelsEM.seen_codes.append(support_codes.shape[-1])
        return super().forward(
            support_X, support_codes[..., -1:], support_mask, query_X, n_classes
        )


def test_a_custom_em_variant_is_what_meta_training_runs():
    CountingEM.calls = {True: 0, False: 0}
    X, y = _source()
    clf = small_meta_classifier(episodic_em=CountingEM, compile_em=False)
    clf.meta_fit(X, y)
    # training batches and the validation tasks (epoch 0 and every epoch)
    assert CountingEM.calls[True] > 0 and CountingEM.calls[False] > 0


def test_a_custom_episode_source_reaches_the_em_variant():
    CleanLabelsEM.seen_codes = []
    X, y = _source()
    kw = {
        "n_way": 3,
        "n_shot": 2,
        "n_query": 4,
        "n_annotators": 3,
        "annotator_mixture": {"spammer": 1.0},
        "embedding_dim": 4,
        "hidden_layer_sizes": (8,),
        "n_episodes": 10,
        "episodes_per_epoch": 5,
        "n_val_episodes": 6,
        "pseudo_annotation": True,
        "random_state": 0,
    }
    clean = MetaLearner(**kw, episodes=WithCleanLabels, episodic_em=CleanLabelsEM)
    clean = clean.fit(X, y).meta_encoder_
    # 3 simulated annotators plus the clean column
    assert set(CleanLabelsEM.seen_codes) == {4}
    noisy = MetaLearner(**kw).fit(X, y).meta_encoder_
    # the same encoder before training, on the same validation tasks: adapting
    # on their clean labels beats adapting on the spammers' labels
    before = [e.history[0]["valid_acc_initial"] for e in (clean, noisy)]
    assert before[0] > before[1] + 0.2, before


def test_the_default_seams_are_the_package_classes():
    X, y = _source()
    kw = {"n_way": 3, "n_shot": 2, "n_query": 4, "n_episodes": 4}
    kw.update(episodes_per_epoch=4, n_val_episodes=3, hidden_layer_sizes=(8,))
    a = MetaLearner(random_state=0, **kw).fit(X, y).meta_encoder_
    b = MetaLearner(
        random_state=0, episodes=EpisodeDataset, episodic_em=EpisodicEM, **kw
    )
    b = b.fit(X, y).meta_encoder_
    assert a.val_scores == b.val_scores
    for p, q in zip(a.module.parameters(), b.module.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", ["episodes", "episodic_em"])
def test_a_seam_that_is_not_a_class_is_an_error(name):
    X, y = _source()
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        MetaLearner(**{name: "stop-gradient"}).fit(X, y)


@pytest.mark.parametrize(
    "name, value, base",
    [
        ("episodes", EpisodicEM, "EpisodeDataset"),
        ("episodic_em", torch.nn.Linear, "EpisodicEM"),
    ],
)
def test_a_seam_of_the_wrong_class_is_a_clear_error(name, value, base):
    X, y = _source()
    with pytest.raises(TypeError, match=f"{name} must be a subclass of .*{base}"):
        MetaLearner(n_way=3, n_shot=2, n_query=4, **{name: value}).fit(X, y)


def test_a_changed_seam_changes_the_recipe():
    default = MetaLearner().recipe()
    assert MetaLearner(episodes=EpisodeDataset, episodic_em=EpisodicEM).recipe() == (
        default
    )
    stop = MetaLearner(episodic_em=CountingEM).recipe()
    assert stop != default
    assert MetaLearner(episodes=WithCleanLabels).recipe() not in (default, stop)


def test_a_search_over_a_seam_meta_trains_again(monkeypatch):
    X, y = _source()
    clf = small_meta_classifier(representation="meta").meta_fit(X[y < 6], y[y < 6])
    Y, _, _ = simulate_annotators(y[y >= 6], 3, random_state=0)
    calls = []
    fit = MetaLearner.fit

    def counting(self, *args, **kwargs):
        calls.append(self.episodic_em)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(MetaLearner, "fit", counting)
    clf.fit(X[y >= 6], Y)
    assert calls == []  # same recipe: the encoder of meta_fit
    clf.set_params(meta_learner__episodic_em=CountingEM).fit(X[y >= 6], Y)
    assert calls == [CountingEM]
    assert clf.encoder_ is not clf.meta_encoder


def test_a_custom_seam_is_not_saved_and_the_default_classes_are(tmp_path):
    clf = small_meta_classifier(episodic_em=CountingEM)
    with pytest.raises(TypeError, match="meta_learner__episodic_em.*CountingEM"):
        save(clf, tmp_path / "custom.zip")
    clf = small_meta_classifier(episodes=EpisodeDataset, episodic_em=EpisodicEM)
    loaded = load(save(clf, tmp_path / "default.zip")).meta_learner
    assert loaded.episodes is EpisodeDataset and loaded.episodic_em is EpisodicEM


def test_a_saved_file_cannot_name_another_class(tmp_path):
    import json
    import zipfile

    clf = small_meta_classifier(episodic_em=EpisodicEM)
    path = save(clf, tmp_path / "model.zip")
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    text = members["model.json"].decode().replace('"EpisodicEM"', '"Popen"')
    assert "Popen" in text
    members["model.json"] = json.dumps(json.loads(text)).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match="unknown parameter class 'Popen'"):
        load(path)


def test_compile_em_leaves_a_variant_with_its_own_adapt_eager(monkeypatch):
    import sklearn_metaannot.meta._episodic as meta

    compiled = []
    monkeypatch.setattr(
        meta,
        "compiled_episode_log_proba",
        lambda *a, **k: compiled.append(1) or meta.episode_log_proba(*a, **k),
    )
    CountingEM.calls = {True: 0, False: 0}
    U = torch.zeros(1, 2, 3)
    batch = {
        "support_X": torch.zeros(1, 2, 3),
        "support_codes": torch.tensor([[[0], [1]]]),
        "support_mask": torch.ones(1, 2),
        "query_X": torch.zeros(1, 1, 3),
    }
    CountingEM(torch.nn.Identity(), 2, compile_em=True).train()(**batch)
    assert compiled == [] and CountingEM.calls[True] == 1
    EpisodicEM(torch.nn.Identity(), 2, compile_em=True).train()(**batch)
    assert compiled == [1]
    assert U.shape == (1, 2, 3)


def test_a_custom_episode_source_is_refused_in_data_parallel_training(monkeypatch):
    import sklearn_metaannot.meta._learner as meta_learner

    group = type("Group", (), {"world_size": 2, "rank": 0, "is_main": True})()
    monkeypatch.setattr(meta_learner, "process_group", lambda device: group)
    X, y = _source()
    learner = MetaLearner(n_way=3, n_shot=2, n_query=4, episodes=WithCleanLabels)
    with pytest.raises(ValueError, match="custom episode source is not supported"):
        learner.fit(X, y)
