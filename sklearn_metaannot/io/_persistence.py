"""Save and load estimators without pickle: JSON for state, safetensors for arrays.

A model file is a zip archive with two members:

``model.json``
    The format version, the package version that wrote the file, the
    estimator's class name, its constructor parameters and its fitted
    (trailing-underscore) attributes, each encoded by type, plus the SHA-256 of
    the tensor member.
``tensors.safetensors``
    Every numeric array (numpy arrays, torch tensors, encoder weights), in the
    safetensors format.

Loading parses JSON and safetensors only and rebuilds objects from an explicit
list of types, so a file from an untrusted source cannot run code.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import warnings
import zipfile

import numpy as np
import torch

FORMAT = "sklearn-metaannot-model"
#: 2: the classifier holds its meta-training recipe (``meta_learner``) and its
#: frozen encoder (``meta_encoder``) as parameters. Version-1 files do not load.
FORMAT_VERSION = 2
_JSON_MEMBER = "model.json"
_TENSOR_MEMBER = "tensors.safetensors"
_JSON_SCALARS = (str, int, float, bool, type(None))


def _estimator_types():
    # imported here: this module sits above the estimators
    from .._classifier import MetaAnnotatorClassifier
    from ..aggregation import DawidSkene, MajorityVote

    return {
        cls.__name__: cls for cls in (MetaAnnotatorClassifier, DawidSkene, MajorityVote)
    }


def _parameter_types():
    """Estimators that may be parameter values of a saved estimator."""
    from ..meta._learner import MetaLearner

    return {"MetaLearner": MetaLearner}


def _parameter_classes():
    """Classes that may be parameter values (the package's default seams)."""
    from ..meta._episodic import EpisodeDataset, EpisodicEM

    return {cls.__name__: cls for cls in (EpisodeDataset, EpisodicEM)}


def _package_version():
    from .. import __version__

    return __version__


# -- encoding ------------------------------------------------------------------


class _Encoder:
    """Encodes python objects as typed JSON; arrays go to ``self.tensors``."""

    def __init__(self):
        self.tensors = {}

    def _store(self, key, array):
        self.tensors[key] = np.ascontiguousarray(array)
        return key

    def encode(self, value, key):
        """Typed JSON of ``value``; ``key`` names it in errors and tensor keys."""
        from ..adapt._representation import RepresentationChoice
        from ..adapt._unlabelled import UnlabelledChoice
        from ..meta._learner import MetaEncoder

        if value is None or isinstance(value, (bool, str)):
            return {"type": "py", "value": value}
        if isinstance(value, (int, float)) and type(value) in (int, float):
            return {"type": "py", "value": value}
        if isinstance(value, np.generic) and value.dtype.kind in "biuf":
            return {"type": "npscalar", "dtype": value.dtype.str, "value": value.item()}
        if isinstance(value, np.ndarray):
            return self._encode_array(value, key)
        if isinstance(value, torch.Tensor):
            array = value.detach().cpu().numpy()
            return {"type": "tensor", "key": self._store(key, array)}
        if isinstance(value, torch.device):
            return {"type": "torch_device", "value": str(value)}
        if isinstance(value, pathlib.PurePath):
            return {"type": "path", "value": str(value)}
        if isinstance(value, MetaEncoder):
            return self._encode_meta_encoder(value, key)
        if isinstance(value, RepresentationChoice):
            fields = {f: getattr(value, f) for f in value.__dataclass_fields__}
            return {"type": "representation_choice", "fields": self.encode(fields, key)}
        if isinstance(value, UnlabelledChoice):
            fields = {f: getattr(value, f) for f in value.__dataclass_fields__}
            return {"type": "unlabelled_choice", "fields": self.encode(fields, key)}
        if type(value) in _parameter_types().values():
            return {
                "type": "estimator",
                "class": type(value).__name__,
                "params": _encode_params(value, self, key=f"{key.split()[-1]}__"),
            }
        if type(value).__name__ == "History" and isinstance(value, list):
            rows = [self.encode(row, f"{key}.{i}") for i, row in enumerate(value)]
            return {"type": "skorch_history", "items": rows}
        if type(value) in (list, tuple):
            items = [self.encode(v, f"{key}.{i}") for i, v in enumerate(value)]
            return {"type": type(value).__name__, "items": items}
        if type(value) is dict:
            if not all(isinstance(k, str) for k in value):
                raise TypeError(
                    f"cannot save {key}: a dict with non-string keys "
                    f"({[k for k in value if not isinstance(k, str)][:5]})"
                )
            return {
                "type": "dict",
                "items": {k: self.encode(v, f"{key}.{k}") for k, v in value.items()},
            }
        raise TypeError(
            f"cannot save {key} of type {type(value).__module__}."
            f"{type(value).__qualname__}: sklearn_metaannot.save stores only "
            "numbers, strings, arrays, tensors, lists, tuples, dicts and "
            "meta-learned encoders; use joblib.dump for such models, and load "
            "them only from trusted sources"
        )

    def _encode_array(self, array, key):
        if array.dtype.kind in "biuf":
            return {"type": "ndarray", "key": self._store(key, array)}
        if array.dtype.kind in "UO":
            flat = array.ravel().tolist()
            bad = [v for v in flat if not isinstance(v, _JSON_SCALARS)]
            if bad:
                raise TypeError(
                    f"cannot save {key}: an array holding "
                    f"{type(bad[0]).__name__} values; only numbers, strings and "
                    "None can be stored"
                )
            return {
                "type": "ndarray_json",
                "dtype": "object" if array.dtype.kind == "O" else array.dtype.str,
                "shape": list(array.shape),
                "data": flat,
            }
        raise TypeError(f"cannot save {key}: arrays of dtype {array.dtype}")

    def _encode_meta_encoder(self, value, key):
        from ..meta._learner import MetaLearner

        module = value.module
        arch = value.learner_params
        if not isinstance(arch.get("encoder"), str) or arch["encoder"] not in (
            MetaLearner._parameter_constraints["encoder"][0].options
        ):
            raise TypeError(
                f"cannot save {key}: its encoder is a user torch.nn.Module "
                f"({arch.get('encoder')}), which can only be rebuilt by running "
                "code; save such a model with joblib.dump and load it only from "
                "trusted sources"
            )
        state = {
            name: self._store(f"{key}.state.{name}", t.detach().cpu().numpy())
            for name, t in module.state_dict().items()
        }
        image_shape = getattr(module, "image_shape", None)
        fields = {
            name: self.encode(getattr(value, name), f"{key}.{name}")
            for name in _META_ENCODER_FIELDS
        }
        return {
            "type": "meta_encoder",
            "module": type(module).__name__,
            "state": state,
            "image_shape": None if image_shape is None else list(image_shape),
            "offset": self.encode(np.asarray(value.offset), f"{key}.offset"),
            "scale": self.encode(np.asarray(value.scale), f"{key}.scale"),
            "n_features_in": int(value.n_features_in),
            "fields": fields,
        }


#: What a MetaEncoder holds besides its module and input scaling.
_META_ENCODER_FIELDS = (
    "selected",
    "input_candidates",
    "val_scores",
    "input_scores",
    "best_epoch",
    "history",
    "world_size",
    "n_way",
    "learner_params",
    "feature_names_in",
    "recipe",
)


def _encode_params(model, encoder, key=""):
    params = {}
    for param, value in model.get_params(deep=False).items():
        name = f"{key}{param}"
        if isinstance(value, torch.nn.Module):
            raise TypeError(
                f"cannot save parameter {name}: a torch.nn.Module "
                f"({type(value).__name__}) can only be rebuilt by running code; "
                "save such a model with joblib.dump and load it only from "
                "trusted sources"
            )
        if isinstance(value, np.random.RandomState | np.random.Generator):
            raise TypeError(
                f"cannot save parameter {name}: a random generator; set it to an "
                "int or None, or save the model with joblib.dump"
            )
        if isinstance(value, type):
            if _parameter_classes().get(value.__name__) is not value:
                raise TypeError(
                    f"cannot save parameter {name}: the class "
                    f"{value.__module__}.{value.__qualname__} can only be rebuilt by "
                    "running its code; save such a model with joblib.dump and load "
                    "it only from trusted sources"
                )
            params[param] = {"type": "class", "name": value.__name__}
            continue
        if isinstance(value, np.ndarray):
            value = value.tolist()  # array-like parameters come back as lists
        params[param] = encoder.encode(value, f"parameter {name}")
    return params


def save(model, path):
    """Save a fitted, meta-fitted or unfitted estimator without pickle.

    The file is a zip archive holding ``model.json`` (the parameters and
    fitted attributes, encoded by type, and the SHA-256 of the tensors) and
    ``tensors.safetensors`` (every array and the encoder weights). Loading it
    with :func:`load` parses JSON and safetensors only: a file from someone
    else cannot run code. Models whose parameters are not plain values (a
    ``torch.nn.Module`` encoder, a ``RandomState``, a custom ``episodes`` or
    ``episodic_em`` class of the :class:`MetaLearner`) are rejected with a
    TypeError; save those with ``joblib.dump``, for trusted use only.

    Parameters
    ----------
    model : MetaAnnotatorClassifier, DawidSkene or MajorityVote
        The estimator to save.
    path : str or path-like
        Destination file (overwritten).

    Returns
    -------
    path : pathlib.Path
        The file written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> import sklearn_metaannot
    >>> from sklearn_metaannot import MetaAnnotatorClassifier
    >>> X = np.array([[0.0], [0.2], [3.0], [3.2]])
    >>> clf = MetaAnnotatorClassifier().fit(X, [[0, 0], [0, 1], [1, 1], [1, 1]])
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.zip"
    >>> _ = sklearn_metaannot.save(clf, path)
    >>> loaded = sklearn_metaannot.load(path)
    >>> np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    True
    """
    types = _estimator_types()
    if type(model).__name__ not in types or type(model) is not types.get(
        type(model).__name__
    ):
        raise TypeError(
            f"model must be one of {sorted(types)}, got {type(model).__name__}"
        )
    encoder = _Encoder()
    params = _encode_params(model, encoder)
    attributes = {}
    for name, value in vars(model).items():
        if name in params:
            continue
        if not name.endswith("_") or name.startswith("_"):
            raise TypeError(
                f"cannot save attribute {name!r}: only constructor parameters and "
                "fitted attributes (names ending with '_') are saved"
            )
        same = [p for p, v in model.get_params(deep=False).items() if v is value]
        if same and value is not None:  # e.g. encoder_ is the meta_encoder parameter
            attributes[name] = {"type": "parameter", "name": same[0]}
            continue
        attributes[name] = encoder.encode(value, f"attribute {name}")
    from safetensors.numpy import save as save_tensors

    tensor_bytes = save_tensors(encoder.tensors)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": _package_version(),
        "estimator": type(model).__name__,
        "params": params,
        "attributes": attributes,
        "tensors_sha256": hashlib.sha256(tensor_bytes).hexdigest(),
    }
    path = pathlib.Path(os.fspath(path))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_JSON_MEMBER, json.dumps(document, indent=1))
        archive.writestr(_TENSOR_MEMBER, tensor_bytes)
    return path


# -- decoding ------------------------------------------------------------------


class _Decoder:
    def __init__(self, tensors, path):
        self.tensors = tensors
        self.path = path

    def fail(self, message):
        raise ValueError(
            f"{self.path} is not a valid sklearn-metaannot model: {message}"
        )

    def tensor(self, key):
        if not isinstance(key, str) or key not in self.tensors:
            self.fail(f"tensor {key!r} is missing")
        return self.tensors[key]

    def decode(self, node):
        if not isinstance(node, dict) or "type" not in node:
            self.fail(f"unexpected entry {str(node)[:80]!r}")
        kind = node["type"]
        if kind == "py":
            value = node.get("value")
            if not isinstance(value, _JSON_SCALARS):
                self.fail(f"unexpected value {str(value)[:80]!r}")
            return value
        if kind == "npscalar":
            return np.dtype(self._dtype(node["dtype"], "biuf")).type(node["value"])
        if kind == "ndarray":
            return self.tensor(node["key"]).copy()
        if kind == "ndarray_json":
            flat = node["data"]
            if not isinstance(flat, list) or not all(
                isinstance(v, _JSON_SCALARS) for v in flat
            ):
                self.fail("an array must hold numbers, strings or None")
            shape = tuple(int(s) for s in node["shape"])
            if node["dtype"] == "object":
                out = np.empty(len(flat), dtype=object)
                out[:] = flat
            else:
                out = np.array(flat, dtype=self._dtype(node["dtype"], "U"))
            return out.reshape(shape)
        if kind == "tensor":
            return torch.from_numpy(self.tensor(node["key"]).copy())
        if kind == "torch_device":
            return torch.device(str(node["value"]))
        if kind == "path":
            return pathlib.Path(str(node["value"]))
        if kind in ("list", "tuple"):
            items = [self.decode(v) for v in node["items"]]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            return {str(k): self.decode(v) for k, v in node["items"].items()}
        if kind == "skorch_history":
            from skorch.history import History

            return History([self.decode(v) for v in node["items"]])
        if kind == "representation_choice":
            from ..adapt._representation import RepresentationChoice

            fields = self.decode(node["fields"])
            fields["candidates"] = tuple(fields["candidates"])
            return RepresentationChoice(**fields)
        if kind == "unlabelled_choice":
            from ..adapt._unlabelled import UnlabelledChoice

            fields = self.decode(node["fields"])
            return UnlabelledChoice(**fields)
        if kind == "meta_encoder":
            return self._meta_encoder(node)
        if kind == "class":
            classes = _parameter_classes()
            if node.get("name") not in classes:
                self.fail(f"unknown parameter class {node.get('name')!r}")
            return classes[node["name"]]
        if kind == "estimator":
            types = _parameter_types()
            if node.get("class") not in types:
                self.fail(f"unknown parameter estimator {node.get('class')!r}")
            params = {str(k): self.decode(v) for k, v in node["params"].items()}
            return types[node["class"]](**params)
        self.fail(f"unknown entry type {kind!r}")

    def _dtype(self, text, kinds):
        try:
            dtype = np.dtype(str(text))
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in kinds:
            self.fail(f"unexpected dtype {text!r}")
        return dtype

    def _meta_encoder(self, node):
        from ..meta._learner import MetaEncoder, MetaLearner

        fields = {k: self.decode(node["fields"][k]) for k in _META_ENCODER_FIELDS}
        n_features = int(node["n_features_in"])
        image_shape = node.get("image_shape")
        module = MetaLearner(**fields["learner_params"])._new_encoder(
            n_features, None if image_shape is None else tuple(image_shape)
        )
        if type(module).__name__ != node["module"]:
            self.fail(
                f"the encoder parameters build a {type(module).__name__}, but the "
                f"saved weights are those of a {node['module']}"
            )
        state = {
            name: torch.from_numpy(self.tensor(key).copy())
            for name, key in node["state"].items()
        }
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            self.fail(f"the encoder weights do not fit the encoder: {exc}")
        return MetaEncoder(
            module,
            self.decode(node["offset"]),
            self.decode(node["scale"]),
            n_features,
            **fields,
        )


def _read_archive(path):
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {_JSON_MEMBER, _TENSOR_MEMBER} - names
            if missing:
                raise ValueError(
                    f"{path} is not a valid sklearn-metaannot model: members "
                    f"{sorted(missing)} are missing"
                )
            return archive.read(_JSON_MEMBER), archive.read(_TENSOR_MEMBER)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(
            f"{path} is not a valid sklearn-metaannot model (a zip archive written "
            f"by sklearn_metaannot.save): {exc}"
        ) from None


def load(path):
    """Load an estimator written by :func:`save`, without running code.

    Only JSON and safetensors are parsed, and only the package's estimator
    types are rebuilt, so loading a file from an untrusted source is safe.
    The tensors are checked against the SHA-256 recorded at save time. A file
    written by another version of sklearn-metaannot loads with a UserWarning
    naming both versions.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    model : estimator
        The estimator, with its parameters and fitted state.

    Raises
    ------
    ValueError
        If the file is not a model written by :func:`save`, or was altered
        (bad JSON, tensors that do not match their hash).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import sklearn_metaannot
    >>> from sklearn_metaannot import MetaAnnotatorClassifier
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "unfitted.zip"
    >>> _ = sklearn_metaannot.save(MetaAnnotatorClassifier(n_em_iter=5), path)
    >>> sklearn_metaannot.load(path).n_em_iter
    5
    """
    path = pathlib.Path(os.fspath(path))
    raw_json, tensor_bytes = _read_archive(path)
    try:
        document = json.loads(raw_json.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{path} is not a valid sklearn-metaannot model: {_JSON_MEMBER} is not "
            f"valid JSON ({exc})"
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a valid sklearn-metaannot model: {_JSON_MEMBER} does "
            "not describe one"
        )
    if document.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} uses model format version {document.get('format_version')!r}; "
            f"this sklearn-metaannot ({_package_version()}) reads version "
            f"{FORMAT_VERSION}"
        )
    if hashlib.sha256(tensor_bytes).hexdigest() != document.get("tensors_sha256"):
        raise ValueError(
            f"{path} was altered or is corrupted: the SHA-256 of {_TENSOR_MEMBER} "
            "does not match the one recorded when the model was saved"
        )
    from safetensors import SafetensorError
    from safetensors.numpy import load as load_tensors

    try:
        tensors = load_tensors(tensor_bytes)
    except SafetensorError as exc:
        raise ValueError(
            f"{path} is not a valid sklearn-metaannot model: {_TENSOR_MEMBER} is "
            f"not a safetensors file ({exc})"
        ) from None
    types = _estimator_types()
    name = document.get("estimator")
    if name not in types:
        raise ValueError(
            f"{path} is not a valid sklearn-metaannot model: unknown estimator "
            f"{name!r} (expected one of {sorted(types)})"
        )
    version = document.get("package_version")
    if version != _package_version():
        warnings.warn(
            f"{path} was saved with sklearn-metaannot {version} and is loaded with "
            f"sklearn-metaannot {_package_version()}; check its predictions",
            UserWarning,
            stacklevel=2,
        )
    decoder = _Decoder(tensors, path)
    try:
        params = {k: decoder.decode(v) for k, v in document["params"].items()}
        model = types[name](**params)
        for attr, node in document["attributes"].items():
            if not attr.endswith("_") or attr.startswith("_"):
                decoder.fail(f"unexpected attribute {attr!r}")
            if isinstance(node, dict) and node.get("type") == "parameter":
                setattr(model, attr, getattr(model, str(node.get("name"))))
                continue
            setattr(model, attr, decoder.decode(node))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{path} is not a valid sklearn-metaannot model: {type(exc).__name__}: "
            f"{exc}"
        ) from None
    return model
