"""save/load without pickle: lossless round trips, tampered files, versions."""
# SPDX-License-Identifier: BSD-3-Clause

import json
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch
from _factories import meta_classifier
from sklearn.base import BaseEstimator, clone

import sklearn_metaannot
from sklearn_metaannot import (
    DawidSkene,
    EpisodeDataset,
    EpisodicEM,
    MetaAnnotatorClassifier,
    MetaLearner,
    MetaLearningWarning,
    load,
    save,
    simulate_annotators,
)


def _source(n_classes=10, n_per_class=12, side=None, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    n_features = 6 if side is None else side * side
    X = 2 * rng.normal(size=(n_classes, n_features))[y] + rng.normal(
        size=(len(y), n_features)
    )
    if side is not None:
        X = X.reshape(len(y), 1, side, side)  # images: image_shape is inferred
    return X.astype(np.float32), y


def _meta_fit(encoder, X, y):
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(
            encoder=encoder,
            n_way=3,
            n_shot=2,
            n_annotators=3,
            embedding_dim=5,
            hidden_layer_sizes=(8,),
            n_episodes=4,
            episodes_per_epoch=2,
            n_val_episodes=3,
        ),
        representation="meta",
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        return clf.meta_fit(X, y)


def _assert_same_state(a, b):
    # the parameters (MetaLearner and MetaEncoder included), then every attribute
    _assert_same_value(a.get_params(), b.get_params(), "get_params()")
    assert set(vars(a)) == set(vars(b))
    for name, value in vars(a).items():
        _assert_same_value(value, getattr(b, name), name)


def _assert_same_encoder(value, other, name):
    """Same weights, scaling and (for a MetaEncoder) validation results."""
    assert set(vars(value)) == set(vars(other)), name
    sa, sb = value.module.state_dict(), other.module.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    np.testing.assert_array_equal(value.offset, other.offset)
    np.testing.assert_array_equal(value.scale, other.scale)
    assert value.n_features_in == other.n_features_in
    for attr, v in vars(value).items():
        # a MetaEncoder's ``source`` is a reference to the meta-training data,
        # documented as not saved
        if attr not in ("module", "offset", "scale", "source"):
            _assert_same_value(v, getattr(other, attr), f"{name}.{attr}")


def _assert_same_value(value, other, name):
    """Equal, recursively through dicts, lists, tuples, estimators' parameters
    and encoders (arrays: exactly)."""
    assert type(value) is type(other), name
    if isinstance(value, sklearn_metaannot.FittedEncoder):
        _assert_same_encoder(value, other, name)
    elif isinstance(value, BaseEstimator):
        _assert_same_value(
            value.get_params(deep=False), other.get_params(deep=False), name
        )
    elif isinstance(value, np.ndarray):
        assert value.dtype == other.dtype, name
        np.testing.assert_array_equal(value, other)
    elif isinstance(value, dict):
        assert value.keys() == other.keys(), name
        for key in value:
            _assert_same_value(value[key], other[key], f"{name}[{key!r}]")
    elif isinstance(value, list | tuple):
        assert len(value) == len(other), name
        for i, (v, o) in enumerate(zip(value, other)):
            _assert_same_value(v, o, f"{name}[{i}]")
    elif isinstance(value, float) and np.isnan(value):
        assert np.isnan(other), name
    else:
        assert value == other, name


@pytest.mark.parametrize(
    "encoder, side", [("mlp", None), ("residual_mlp", None), ("conv4", 8)]
)
def test_round_trip_meta_fitted_and_fitted(tmp_path, encoder, side):
    X, y = _source(side=side)
    clf = _meta_fit(encoder, X[y < 7], y[y < 7])
    target = y >= 7
    Y, _, _ = simulate_annotators(y[target], 3, random_state=0)
    names = np.array(["a", "b", "c", "d", "e", "f", "g", "ant", "bee", "cat"])
    clf.fit(X[target], names[Y.astype(int)])  # string labels
    path = save(clf, tmp_path / "model.zip")
    loaded = load(path)
    _assert_same_state(clf, loaded)
    assert loaded.classes_.tolist() == ["ant", "bee", "cat"]
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    # the meta-fitted state survives for a new task, and so does meta_history_
    assert list(loaded.meta_history_[:, "valid_acc"]) == list(
        clf.meta_history_[:, "valid_acc"]
    )
    Xt, yt = X[y < 3], y[y < 3]
    np.testing.assert_array_equal(
        loaded.fit(Xt, yt).predict_proba(Xt), clf.fit(Xt, yt).predict_proba(Xt)
    )


#: A valid value other than the default for every constructor parameter, keyed
#: by name (the last component of a nested ``get_params`` name). The first
#: group is meta-training that runs here; the rest is set after fitting.
NON_DEFAULT = {
    "encoder": "residual_mlp",
    "hidden_layer_sizes": (7,),
    "n_way": 3,
    "n_shot": 2,
    "n_query": 4,
    "n_annotators": 3,
    "annotator_mixture": {"hammer": 0.6, "spammer": 0.4},
    "annotation_rate": 0.9,
    "pseudo_annotation": True,
    "n_unlabelled": 1,
    "n_distractor_classes": 2,
    "n_episodes": 6,
    "episodes_per_epoch": 3,
    "meta_batch_size": 3,
    "validation_classes": 0.3,
    "n_val_episodes": 4,
    "patience": 2,
    "lr": 0.01,
    "max_grad_norm": None,
    "n_em_iter": 5,
    "tau": 0.5,
    "b": 2.0,
    "c": (3.0, 1.5),
    "history_weight": 0.5,
    "representation": "meta",
    "head": "linear",
    "head_penalty": 3.0,
    "unlabelled_weight": 0.5,
    "n_threads": 1,
    "random_state": 3,
    # the package's own seams round-trip; a custom class cannot be saved
    "episodes": EpisodeDataset,
    "episodic_em": EpisodicEM,
}
#: Parameters that meta_fit cannot use here (no GPU, no compiler needed) or
#: that the residual encoder ignores: set on the fitted model.
NON_DEFAULT_AFTER_FIT = {
    "embedding_dim": 5,
    "image_shape": (1, 2, 3),
    "rank": 3,
    "encoder_alpha": 0.5,
    "device": "cuda:1",
    "num_workers": 2,
    "pin_memory": True,
    "mixed_precision": "bf16",
    "compile_em": True,
    "callbacks": [],
    "verbose": 1,
}


def _non_default_params(model, checkpoint_dir):
    """A non-default value for every parameter of ``model``, by ``get_params`` name."""
    table = {
        **NON_DEFAULT,
        **NON_DEFAULT_AFTER_FIT,
        "checkpoint_dir": checkpoint_dir,
    }
    defaults = type(model)(meta_learner=MetaLearner()).get_params()
    chosen = {}
    for name, default in defaults.items():
        if hasattr(default, "get_params") or name == "meta_encoder":
            # a nested object: its parameters are listed on their own; the
            # encoder is what meta_fit sets, compared through the predictions
            continue
        key = name.rsplit("__", 1)[-1]
        assert key in table, f"add a non-default value of {name!r} to NON_DEFAULT"
        assert table[key] != default, name
        chosen[name] = table[key]
    return chosen


def test_every_parameter_away_from_its_default_round_trips(tmp_path):
    X, y = _source(n_classes=10)
    model = MetaAnnotatorClassifier()
    params = _non_default_params(model, tmp_path / "checkpoints")
    run = {
        k.rsplit("__", 1)[-1]: v
        for k, v in params.items()
        if k.rsplit("__", 1)[-1] in NON_DEFAULT
    }
    run.pop("random_state")  # the learner's and the classifier's: both set here
    model = meta_classifier(random_state=NON_DEFAULT["random_state"], **run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetaLearningWarning)
        model.meta_fit(X[y < 7], y[y < 7])
    Y, _, _ = simulate_annotators(y[y >= 7], 3, random_state=0)
    model.fit(X[y >= 7], Y)
    model.set_params(**params)
    expected = MetaAnnotatorClassifier(meta_learner=MetaLearner()).get_params()
    expected.update(params, meta_learner=model.meta_learner)
    expected["meta_encoder"] = model.meta_encoder
    assert model.get_params() == expected
    loaded = load(save(model, tmp_path / "model.zip"))
    got = loaded.get_params()
    assert {
        k: v for k, v in got.items() if k not in ("meta_learner", "meta_encoder")
    } == {
        k: v for k, v in expected.items() if k not in ("meta_learner", "meta_encoder")
    }
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    # the EM settings (tau, b, c, n_em_iter) come back for the next task too
    Xt, yt = X[y < 3], y[y < 3]
    # (without meta_learner: its parameters changed after meta_fit, and a fit
    # would meta-train again; the saved model keeps no source data to do so)
    np.testing.assert_array_equal(
        clone(loaded).set_params(meta_learner=None).fit(Xt, yt).predict_proba(Xt),
        clone(model).set_params(meta_learner=None).fit(Xt, yt).predict_proba(Xt),
    )


def test_unfitted_and_other_estimators_round_trip(tmp_path):
    clf = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(n_shot=(2, 3), checkpoint_dir=tmp_path), c=3.0
    )
    loaded = load(save(clf, tmp_path / "unfitted.zip"))
    _assert_same_value(loaded.get_params(), clf.get_params(), "get_params()")
    assert not hasattr(loaded, "classes_")
    Y = np.array([[0, 0, 1], [1, 1, 1], [0, np.nan, 0], [2, 2, 2]])
    ds = DawidSkene().fit(Y)
    ds_loaded = load(save(ds, tmp_path / "ds.zip"))
    np.testing.assert_array_equal(ds_loaded.predict_proba(Y), ds.predict_proba(Y))


def test_new_attribute_types_round_trip_without_code_changes(tmp_path):
    X, y = _source()
    clf = MetaAnnotatorClassifier().fit(X[:30], y[:30])
    clf.representation_scores_ = {"meta": np.float64(0.5), "input": 0.25}
    clf.tried_ = ("meta", ["input", None], np.int64(3), True)
    clf.grid_ = np.arange(6, dtype=np.int32).reshape(2, 3)
    loaded = load(save(clf, tmp_path / "model.zip"))
    _assert_same_state(clf, loaded)


def test_unsupported_content_is_rejected_at_save(tmp_path):
    user_module = MetaAnnotatorClassifier(
        meta_learner=MetaLearner(encoder=torch.nn.Linear(3, 2))
    )
    with pytest.raises(TypeError, match="parameter meta_learner__encoder.*joblib"):
        save(user_module, tmp_path / "m.zip")
    with pytest.raises(TypeError, match="parameter random_state"):
        save(MetaAnnotatorClassifier(random_state=np.random.RandomState(0)), "x")
    clf = MetaAnnotatorClassifier()
    clf.odd_ = object()
    with pytest.raises(TypeError, match="cannot save attribute odd_ of type"):
        save(clf, tmp_path / "m.zip")
    with pytest.raises(TypeError, match="model must be one of"):
        save(torch.nn.Linear(2, 2), tmp_path / "m.zip")


def _fitted(tmp_path):
    X, y = _source()
    clf = MetaAnnotatorClassifier().fit(X[:30], y[:30])
    return clf, save(clf, tmp_path / "model.zip")


def _rewrite(path, member, transform):
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members[member] = transform(members[member])
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_tampered_files_are_rejected(tmp_path):
    _, path = _fitted(tmp_path)

    def flip(data):
        data = bytearray(data)
        data[-1] ^= 0xFF
        return bytes(data)

    _rewrite(path, "tensors.safetensors", flip)
    with pytest.raises(ValueError, match=r"model.zip was altered.*SHA-256"):
        load(path)
    _, path = _fitted(tmp_path)
    _rewrite(path, "model.json", lambda data: data[:-20])
    with pytest.raises(ValueError, match=r"model.zip .*model.json is not valid JSON"):
        load(path)
    _, path = _fitted(tmp_path)

    def bad_type(data):
        doc = json.loads(data)
        doc["attributes"]["classes_"] = {"type": "pickle", "value": "gASV"}
        return json.dumps(doc).encode()

    _rewrite(path, "model.json", bad_type)
    with pytest.raises(ValueError, match="unknown entry type 'pickle'"):
        load(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="model.zip is not a valid sklearn-metaannot"):
        load(path)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.zip")


def test_other_package_version_loads_with_a_warning(tmp_path):
    clf, path = _fitted(tmp_path)

    def old_version(data):
        doc = json.loads(data)
        doc["package_version"] = "0.0.1"
        return json.dumps(doc).encode()

    _rewrite(path, "model.json", old_version)
    current = sklearn_metaannot.__version__
    with pytest.warns(
        UserWarning, match=f"saved with sklearn-metaannot 0.0.1.*{current}"
    ):
        loaded = load(path)
    np.testing.assert_array_equal(loaded.prototypes_, clf.prototypes_)


def test_loading_runs_no_pickle(tmp_path, monkeypatch):
    X, y = _source()
    clf = _meta_fit("mlp", X, y).fit(X[:30], y[:30])
    path = save(clf, tmp_path / "model.zip")

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    loaded = load(path)
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
