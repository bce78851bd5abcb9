"""Loaders for Omniglot, LabelMe crowd labels and truth-inference benchmark sets."""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import http.client
import io
import numbers
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from urllib.request import urlopen

import numpy as np
from sklearn.datasets import get_data_home
from sklearn.utils import Bunch

__all__ = [
    "OMNIGLOT_SUBSETS",
    "fetch_omniglot",
    "load_labelme",
    "load_omniglot",
    "load_truth_inference",
    "rotate_classes",
    "split_omniglot_by_alphabet",
]

#: Names (without ``.zip``) of the archives of the published Omniglot release.
OMNIGLOT_SUBSETS = (
    "images_background",
    "images_evaluation",
    "images_background_small1",
    "images_background_small2",
)

_OMNIGLOT_URL = (
    "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{}.zip"
)
_DOWNLOAD_TIMEOUT = 60  # seconds

_LABELME_N_CLASSES = 8
_LABELME_SPLITS = ("train", "valid", "test")


# ------------------------------------------------------------------------- helpers


def _check_path(path, name="path"):
    """``path`` as a :class:`~pathlib.Path`, with a TypeError for other types."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{name} must be a str or os.PathLike, got {type(path).__name__}"
        )
    return Path(path).expanduser()


def _check_dir(path, name, expected):
    """``path`` as an existing directory, else FileNotFoundError naming ``expected``."""
    path = _check_path(path, name)
    if not path.is_dir():
        raise FileNotFoundError(
            f"{name}={str(path)!r} is not an existing directory; expected a "
            f"directory holding {expected}"
        )
    return path


def _import_pil_image():
    """Import :mod:`PIL.Image` lazily, with an installation hint when missing."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(
            "Pillow is required to decode the Omniglot images; install it with "
            "`pip install sklearn-metaannot[datasets]` (or `pip install pillow`)"
        ) from exc
    return Image


def _import_pandas():
    """Import :mod:`pandas` lazily, with an installation hint when missing."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(
            "pandas is required by load_truth_inference; install it with "
            "`pip install pandas` (or `pip install sklearn-metaannot[test]`)"
        ) from exc
    return pd


# ------------------------------------------------------------------------ Omniglot


def _resolve_subsets(subsets, *, allow_none):
    """Validated tuple of Omniglot subset names (``.zip`` suffix optional)."""
    if subsets is None:
        if allow_none:
            return None
        raise TypeError(
            f"subsets must be a subset name or a sequence of them among "
            f"{OMNIGLOT_SUBSETS}, got None"
        )
    if isinstance(subsets, (str, os.PathLike)):
        subsets = (subsets,)
    try:
        subsets = list(subsets)
    except TypeError:
        raise TypeError(
            f"subsets must be a subset name or a sequence of them among "
            f"{OMNIGLOT_SUBSETS}, got {subsets!r}"
        ) from None
    names = []
    for s in subsets:
        if not isinstance(s, str):
            raise TypeError(f"subsets must contain str names, got {s!r}")
        name = s[: -len(".zip")] if s.endswith(".zip") else s
        if name not in OMNIGLOT_SUBSETS:
            raise ValueError(
                f"unknown Omniglot subset {s!r} in subsets; expected names among "
                f"{OMNIGLOT_SUBSETS}"
            )
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"subsets must not be empty; choose among {OMNIGLOT_SUBSETS}")
    return tuple(names)


def _check_image_size(image_size):
    if not isinstance(image_size, numbers.Integral) or isinstance(image_size, bool):
        raise TypeError(f"image_size must be an int, got {image_size!r}")
    if image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    return int(image_size)


def _read_omniglot_zip(zip_path, characters, subset):
    """Add the PNG bytes of ``zip_path`` to ``characters``, keeping earlier copies.

    ``characters`` maps ``(alphabet, character)`` to ``(subset, [(name, bytes)])``.
    A character already read from an earlier archive is skipped entirely (the
    small background subsets share Greek and Latin, and the full background set
    holds both small ones).
    """
    found = {}
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                parts = info.filename.split("/")
                if (
                    len(parts) < 3
                    or parts[0] == "__MACOSX"
                    or parts[-1].startswith(".")
                    or not parts[-1].lower().endswith(".png")
                ):
                    continue
                key = (parts[-3], parts[-2])
                if key in characters:
                    continue
                found.setdefault(key, []).append((parts[-1], zf.read(info)))
    except zipfile.BadZipFile as exc:
        raise ValueError(
            f"{str(zip_path)!r} is not a valid zip archive ({exc}); delete it and "
            "download it again"
        ) from None
    for key, files in found.items():
        characters[key] = (subset, files)


def _decode_omniglot_png(data, image_size, Image):
    """Decode one PNG to a float32 (image_size, image_size) array with ink = 1."""
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("L")
        if im.size != (image_size, image_size):
            resampling = getattr(Image, "Resampling", Image)
            im = im.resize((image_size, image_size), resampling.BOX)
        arr = np.asarray(im, dtype=np.float32)
    # Omniglot strokes are black (0) on white (255): invert so that ink is 1.
    return 1.0 - arr / np.float32(255.0)


def load_omniglot(path, *, image_size=28, subsets=None, return_X_y=False):
    """Load Omniglot from the zip archives of its published release.

    Reads the archives ``images_background.zip``, ``images_evaluation.zip``,
    ``images_background_small1.zip`` and ``images_background_small2.zip`` (any
    of them) of the official release (Lake et al., Science 2015) from a
    directory. A character present in several archives (the small background
    subsets share Greek and Latin, and the full background set holds both) is
    kept once, from the first archive in ``subsets`` order.

    Parameters
    ----------
    path : str or path-like
        Directory holding the zip archives (their members are laid out as
        ``<subset>/<alphabet>/<character>/<drawing>.png``).
    image_size : int, default=28
        Side of the returned images; the 105x105 originals are downsampled
        with a box (area-averaging) filter.
    subsets : str or sequence of str, default=None
        Archives to read, among :data:`OMNIGLOT_SUBSETS` (``.zip`` suffix
        optional). By default, every one of them present in ``path``.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    bunch : :class:`~sklearn.utils.Bunch`
        With the keys:

        images : ndarray of shape (n_images, image_size, image_size), float32
            Pixel values in ``[0, 1]``, strokes (ink) are 1, background 0.
        data : ndarray of shape (n_images, image_size * image_size), float32
            The flattened images (a view sharing memory with ``images``).
        target : ndarray of shape (n_images,), int64
            Character class id in ``[0, n_characters)``, ordered by alphabet
            then character name.
        alphabet : ndarray of shape (n_images,), str
            Alphabet of each image.
        subset : ndarray of shape (n_images,), str
            Archive each image was read from (e.g. ``"images_background"``),
            for the standard background / evaluation split.
        character_names : ndarray of shape (n_characters,), str
            ``"<alphabet>/<character>"`` of each class id.
        alphabets : ndarray of shape (n_alphabets,), str
            Sorted distinct alphabets.
        DESCR : str
            Description of the data set.

    (data, target) : tuple
        If ``return_X_y`` is True.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a directory, holds none of the archives, or lacks
        one named in ``subsets``.
    ImportError
        If Pillow is not installed.

    See Also
    --------
    fetch_omniglot : Download the archives, then load them.
    split_omniglot_by_alphabet : Meta-train / validation / test masks.

    Examples
    --------
    >>> from sklearn_metaannot.datasets import load_omniglot
    >>> omniglot = load_omniglot("../shared/data/omniglot")  # doctest: +SKIP
    >>> omniglot.images.shape, len(omniglot.character_names)  # doctest: +SKIP
    ((4840, 28, 28), 242)
    """
    expected = ", ".join(f"{name}.zip" for name in OMNIGLOT_SUBSETS)
    path = _check_dir(path, "path", f"any of the Omniglot archives {expected}")
    image_size = _check_image_size(image_size)
    names = _resolve_subsets(subsets, allow_none=True)
    if names is None:
        names = tuple(n for n in OMNIGLOT_SUBSETS if (path / f"{n}.zip").is_file())
        if not names:
            raise FileNotFoundError(
                f"no Omniglot archive found in {str(path)!r}; expected any of "
                f"{expected} (from https://github.com/brendenlake/omniglot/tree/"
                "master/python, or use fetch_omniglot to download them)"
            )
    else:
        missing = [f"{n}.zip" for n in names if not (path / f"{n}.zip").is_file()]
        if missing:
            raise FileNotFoundError(
                f"Omniglot archive(s) {missing} requested by subsets not found in "
                f"{str(path)!r}; present: "
                f"{sorted(p.name for p in path.glob('*.zip')) or 'none'}"
            )
    Image = _import_pil_image()

    characters = {}
    for name in names:
        _read_omniglot_zip(path / f"{name}.zip", characters, name)
    if not characters:
        raise ValueError(
            f"the archives {[f'{n}.zip' for n in names]} in {str(path)!r} hold no "
            "PNG image laid out as <subset>/<alphabet>/<character>/<drawing>.png"
        )

    keys = sorted(characters)
    n_images = sum(len(characters[k][1]) for k in keys)
    images = np.empty((n_images, image_size, image_size), dtype=np.float32)
    target = np.empty(n_images, dtype=np.int64)
    alphabet = np.empty(n_images, dtype=object)
    subset = np.empty(n_images, dtype=object)
    i = 0
    for class_id, key in enumerate(keys):
        source, files = characters[key]
        for _, data in sorted(files):
            images[i] = _decode_omniglot_png(data, image_size, Image)
            target[i] = class_id
            alphabet[i] = key[0]
            subset[i] = source
            i += 1
    np.clip(images, 0.0, 1.0, out=images)
    data = images.reshape(n_images, -1)
    if return_X_y:
        return data, target

    alphabet = alphabet.astype(str)
    subset = subset.astype(str)
    alphabets = np.unique(alphabet)
    character_names = np.array([f"{a}/{c}" for a, c in keys])
    descr = (
        "Omniglot (Lake, Salakhutdinov & Tenenbaum, Science 2015; MIT licence)\n"
        "=====================================================================\n\n"
        f"Archives read: {', '.join(f'{n}.zip' for n in names)}.\n"
        f"{n_images} handwritten character images, {len(keys)} characters "
        f"(classes) from {len(alphabets)} alphabets, resized from 105x105 to "
        f"{image_size}x{image_size} with a box filter, float32 in [0, 1] with "
        "ink = 1. Characters present in several archives are kept once.\n"
        "Source: https://github.com/brendenlake/omniglot\n"
    )
    return Bunch(
        images=images,
        data=data,
        target=target,
        alphabet=alphabet,
        subset=subset,
        character_names=character_names,
        alphabets=alphabets,
        DESCR=descr,
    )


def _download_zip(url, dest):
    """Download ``url`` to ``dest`` through a temporary file and an atomic rename."""
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urlopen(url, timeout=_DOWNLOAD_TIMEOUT) as resp,
        ):
            shutil.copyfileobj(resp, out)
        if not zipfile.is_zipfile(tmp):
            raise OSError(f"the file downloaded from {url} is not a zip archive")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fetch_omniglot(
    data_home=None,
    *,
    download=True,
    subsets=("images_background", "images_evaluation"),
    image_size=28,
):
    """Load Omniglot, downloading its archives when they are not cached.

    The archives are cached under ``<data_home>/omniglot/``; missing ones are
    downloaded from the official repository
    ``https://raw.githubusercontent.com/brendenlake/omniglot/master/python/``.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Cache folder, ``~/scikit_learn_data`` (or ``$SCIKIT_LEARN_DATA``) by
        default, see :func:`sklearn.datasets.get_data_home`.
    download : bool, default=True
        If False, raise an error instead of downloading a missing archive.
    subsets : str or sequence of str, default=("images_background", \
"images_evaluation")
        Archives to load, among :data:`OMNIGLOT_SUBSETS`: the full background
        (30 alphabets, 964 characters) and evaluation (20 alphabets, 659
        characters) sets by default.
    image_size : int, default=28
        Side of the returned images.

    Returns
    -------
    bunch : :class:`~sklearn.utils.Bunch`
        As returned by :func:`load_omniglot`.

    Raises
    ------
    FileNotFoundError
        If an archive is missing and ``download`` is False.
    ConnectionError
        If an archive cannot be downloaded (e.g. offline); the message says
        where to put the archive by hand.

    Examples
    --------
    >>> from sklearn_metaannot.datasets import fetch_omniglot
    >>> omniglot = fetch_omniglot(subsets="images_background")  # doctest: +SKIP
    >>> omniglot.images.shape  # doctest: +SKIP
    (19280, 28, 28)
    """
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool, got {download!r}")
    names = _resolve_subsets(subsets, allow_none=False)
    image_size = _check_image_size(image_size)
    if data_home is not None:
        data_home = _check_path(data_home, "data_home")
    cache = Path(get_data_home(data_home=data_home)) / "omniglot"
    cache.mkdir(parents=True, exist_ok=True)

    for name in names:
        dest = cache / f"{name}.zip"
        if dest.is_file():
            continue
        url = _OMNIGLOT_URL.format(name)
        hint = (
            f"download {url} by hand and place it at {str(dest)!r} (or call "
            "load_omniglot on a directory holding the archives)"
        )
        if not download:
            raise FileNotFoundError(
                f"Omniglot archive {dest.name} is not in the cache {str(cache)!r} "
                f"and download=False; {hint}"
            )
        try:
            _download_zip(url, dest)
        except (OSError, http.client.HTTPException) as exc:
            # URLError, HTTPError, timeouts, truncated responses, disk errors
            raise ConnectionError(
                f"could not download the Omniglot archive {dest.name} ({exc}); {hint}"
            ) from exc
    return load_omniglot(cache, image_size=image_size, subsets=names)


def split_omniglot_by_alphabet(bunch, *, val_alphabets, test_alphabets):
    """Boolean masks of the meta-train, validation and test images, by alphabet.

    Splitting by alphabet keeps every character of an alphabet, and every
    drawing of a character, in one split, so that test classes are unseen
    during meta-training. Alphabets in neither list go to meta-training.

    Parameters
    ----------
    bunch : Bunch or mapping
        As returned by :func:`load_omniglot`; only ``bunch["alphabet"]`` is used.
    val_alphabets : str or sequence of str
        Alphabets of the meta-validation split (may be empty).
    test_alphabets : str or sequence of str
        Alphabets of the meta-test split (may be empty).

    Returns
    -------
    train_mask, val_mask, test_mask : ndarray of shape (n_images,), bool
        Disjoint masks covering every image.

    Raises
    ------
    ValueError
        If an alphabet is unknown, is in both lists, or no alphabet is left
        for meta-training.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.utils import Bunch
    >>> from sklearn_metaannot.datasets import split_omniglot_by_alphabet
    >>> bunch = Bunch(alphabet=np.array(["Greek", "Greek", "Latin", "Korean"]))
    >>> train, val, test = split_omniglot_by_alphabet(
    ...     bunch, val_alphabets=["Latin"], test_alphabets="Korean")
    >>> train, val, test
    (array([ True,  True, False, False]), array([False, False,  True, False]), \
array([False, False, False,  True]))
    """
    try:
        alphabet = np.asarray(bunch["alphabet"]).astype(str)
    except (KeyError, TypeError, IndexError):
        raise TypeError(
            "bunch must be a Bunch (or mapping) with an 'alphabet' array, as "
            "returned by load_omniglot"
        ) from None
    known = set(np.unique(alphabet).tolist())

    def _names(value, name):
        if isinstance(value, str):
            value = [value]
        try:
            value = [str(v) for v in value]
        except TypeError:
            raise TypeError(
                f"{name} must be an alphabet name or a sequence of them, got {value!r}"
            ) from None
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"{name} has alphabets not in the data: {unknown}; known alphabets: "
                f"{sorted(known)}"
            )
        return set(value)

    val = _names(val_alphabets, "val_alphabets")
    test = _names(test_alphabets, "test_alphabets")
    both = sorted(val & test)
    if both:
        raise ValueError(f"val_alphabets and test_alphabets share alphabets {both}")
    if not known - val - test:
        raise ValueError(
            "val_alphabets and test_alphabets cover every alphabet; none is left "
            "for meta-training"
        )
    val_mask = np.isin(alphabet, sorted(val))
    test_mask = np.isin(alphabet, sorted(test))
    return ~(val_mask | test_mask), val_mask, test_mask


def rotate_classes(images, target, rotations=(90, 180, 270)):
    """Augment images with rotated copies that form new classes.

    The standard Omniglot meta-training augmentation (Santoro et al. 2016,
    Vinyals et al. 2016): each rotation of a character is a distinct class.
    The rotated copies (counter-clockwise) of class ``c`` by the ``j``-th
    angle of ``rotations`` get the class id ``c + (j + 1) * (target.max() + 1)``.

    Parameters
    ----------
    images : array-like of shape (n_images, height, width, ...)
        Images; ``height == width`` is required for 90 and 270 degrees.
    target : array-like of shape (n_images,)
        Non-negative int class ids.
    rotations : sequence of int, default=(90, 180, 270)
        Distinct angles in degrees, multiples of 90 other than 0 (mod 360);
        the originals are always kept.

    Returns
    -------
    images : ndarray of shape (n_images * (len(rotations) + 1), height, width, ...)
        The originals followed by one rotated copy of all of them per angle.
    target : ndarray of shape (n_images * (len(rotations) + 1),), int64
        Class ids, with an offset of ``target.max() + 1`` per angle.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_metaannot.datasets import rotate_classes
    >>> images = np.arange(8.0).reshape(2, 2, 2)
    >>> aug, y = rotate_classes(images, [0, 1], rotations=(90, 180))
    >>> aug.shape, y.tolist()
    ((6, 2, 2), [0, 1, 2, 3, 4, 5])
    >>> aug[2]
    array([[1., 3.],
           [0., 2.]])
    """
    images = np.asarray(images)
    target = np.asarray(target)
    if images.ndim < 3:
        raise ValueError(
            "images must have shape (n_images, height, width, ...), got shape "
            f"{images.shape}; pass bunch.images rather than the flat bunch.data"
        )
    if target.ndim != 1 or len(target) != len(images):
        raise ValueError(
            f"target must have shape ({len(images)},) to match images, got "
            f"{target.shape}"
        )
    if len(target) and (
        not np.issubdtype(target.dtype, np.integer) or target.min() < 0
    ):
        raise ValueError("target must hold non-negative int class ids")
    if isinstance(rotations, numbers.Integral):
        rotations = (rotations,)
    turns = []
    for r in rotations:
        if not isinstance(r, numbers.Integral) or isinstance(r, bool) or r % 90:
            raise ValueError(f"rotations must be multiples of 90 degrees, got {r!r}")
        k = (int(r) // 90) % 4
        if k == 0:
            raise ValueError(
                f"rotations must not contain 0 (mod 360), got {r!r}; the originals "
                "are always kept"
            )
        if k in turns:
            raise ValueError(f"rotations must be distinct (mod 360), got {rotations!r}")
        if k % 2 and images.shape[1] != images.shape[2]:
            raise ValueError(
                f"rotations of {r} degrees need square images, got shape "
                f"{images.shape[1:3]}"
            )
        turns.append(k)
    target = target.astype(np.int64)
    offset = int(target.max()) + 1 if len(target) else 0
    out_images = [images] + [np.rot90(images, k=k, axes=(1, 2)) for k in turns]
    out_target = [target + j * offset for j in range(len(turns) + 1)]
    return np.concatenate(out_images), np.concatenate(out_target)


# ------------------------------------------------------------------------- LabelMe


def _load_labelme_array(path, kind):
    """Load one LabelMe file, with a ValueError naming it when malformed."""
    try:
        if kind == "features":
            arr = np.load(path, allow_pickle=False)
        else:
            arr = np.loadtxt(path, ndmin=2 if kind == "answers" else 1)
    except (ValueError, OSError) as exc:
        raise ValueError(f"could not read {str(path)!r}: {exc}") from None
    expected_ndim = 2 if kind in ("features", "answers") else 1
    if arr.ndim != expected_ndim:
        raise ValueError(
            f"{str(path)!r} must hold a {expected_ndim}-d array, got shape {arr.shape}"
        )
    if kind == "features":
        return arr
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise ValueError(f"{str(path)!r} must hold integer labels")
    arr = arr.astype(np.int64)
    low = -1 if kind == "answers" else 0
    if arr.size and (arr.min() < low or arr.max() >= _LABELME_N_CLASSES):
        raise ValueError(
            f"{str(path)!r} must hold labels in [{low}, {_LABELME_N_CLASSES - 1}]"
            f"{' (-1 = not labelled)' if low < 0 else ''}, got values in "
            f"[{arr.min()}, {arr.max()}]"
        )
    return arr


def load_labelme(path):
    """Load the LabelMe crowd-labelled image features of Rodrigues & Pereira.

    The data of "Deep learning from crowds" (AAAI 2018): 512-d VGG16
    average-pooled features of 1000 training, 500 validation and 1188 test
    images of 8 scene classes, gold labels, and the labels given to the
    training images by 59 Amazon Mechanical Turk annotators (about 2.5 per
    image).

    Parameters
    ----------
    path : str or path-like
        Directory holding ``LabelMe_VGG_avg_{train,valid,test}.npy``,
        ``LabelMe_Z_{train,valid,test}.txt`` and ``answers.txt``.

    Returns
    -------
    bunch : :class:`~sklearn.utils.Bunch`
        With the keys:

        X_train, X_valid, X_test : ndarray of shape (n_split, 512)
            Image features.
        y_train, y_valid, y_test : ndarray of shape (n_split,), int64
            Gold labels in ``[0, 8)``.
        answers : ndarray of shape (n_train, n_annotators), int64
            Crowd labels of the training images, ``-1`` when not labelled.
        crowd_train : CrowdLabelMatrix
            ``answers`` as a crowd label matrix over the classes ``0..7``.
        annotator_ids : ndarray of shape (n_annotators,), int64
            Column index of each annotator in ``answers``.
        classes : ndarray of shape (8,), int64
            The class codes. The class names are not part of the release.
        DESCR : str
            Description of the data set.

    Raises
    ------
    FileNotFoundError
        If ``path`` or one of the expected files is missing.
    ValueError
        If a file is malformed or the numbers of rows do not match.

    Examples
    --------
    >>> from sklearn_metaannot.datasets import load_labelme
    >>> labelme = load_labelme("../shared/data/labelme")  # doctest: +SKIP
    >>> labelme.X_train.shape, labelme.answers.shape  # doctest: +SKIP
    ((1000, 512), (1000, 59))
    """
    files = {}
    for split in _LABELME_SPLITS:
        files[f"X_{split}"] = f"LabelMe_VGG_avg_{split}.npy"
        files[f"y_{split}"] = f"LabelMe_Z_{split}.txt"
    files["answers"] = "answers.txt"
    expected = ", ".join(files.values())
    path = _check_dir(path, "path", f"the LabelMe files {expected}")
    missing = [name for name in files.values() if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"LabelMe file(s) {missing} not found in {str(path)!r}; expected {expected}"
        )

    out = {}
    for key, name in files.items():
        kind = (
            "features"
            if key.startswith("X")
            else ("answers" if key == "answers" else "labels")
        )
        out[key] = _load_labelme_array(path / name, kind)
    n_features = out["X_train"].shape[1]
    for split in _LABELME_SPLITS:
        X, y = out[f"X_{split}"], out[f"y_{split}"]
        if len(X) != len(y):
            raise ValueError(
                f"{files[f'X_{split}']} has {len(X)} rows but {files[f'y_{split}']} "
                f"has {len(y)} labels"
            )
        if X.shape[1] != n_features:
            raise ValueError(
                f"{files[f'X_{split}']} has {X.shape[1]} features, "
                f"{files['X_train']} has {n_features}"
            )
    answers = out["answers"]
    if len(answers) != len(out["X_train"]):
        raise ValueError(
            f"answers.txt has {len(answers)} rows but {files['X_train']} has "
            f"{len(out['X_train'])}"
        )

    from .crowd._labels import CrowdLabelMatrix

    classes = np.arange(_LABELME_N_CLASSES)
    crowd_train = CrowdLabelMatrix.from_dense(answers, missing=-1, classes=classes)
    n_labels = int((answers >= 0).sum())
    descr = (
        "LabelMe crowd data (Rodrigues & Pereira, 'Deep learning from crowds', "
        "AAAI 2018)\n"
        "=================================================================="
        "==========\n\n"
        f"{n_features}-d VGG16 average-pooled features of "
        f"{len(out['X_train'])} / {len(out['X_valid'])} / {len(out['X_test'])} "
        f"train / valid / test images of {_LABELME_N_CLASSES} scene classes, gold "
        f"labels, and {n_labels} crowd labels of the training images by "
        f"{answers.shape[1]} Amazon Mechanical Turk annotators "
        f"({n_labels / max(len(answers), 1):.2f} per image; -1 = not labelled).\n"
        "Research release; cite the paper. Sources: "
        "http://fprodrigues.com/publications/deep-crowds/, "
        "https://github.com/fmpr/CrowdLayer\n"
    )
    return Bunch(
        **out,
        crowd_train=crowd_train,
        annotator_ids=np.arange(answers.shape[1]),
        classes=classes,
        DESCR=descr,
    )


# ----------------------------------------------------------------- truth inference

_TASK_ALIASES = ("task", "item", "question", "object", "example", "instance")
_WORKER_ALIASES = ("worker", "annotator", "labeler", "labeller", "worker_id")
_LABEL_ALIASES = ("label", "answer", "response")
_TRUTH_ALIASES = ("truth", "gold", "label", "true_label", "answer")


def _read_crowd_csv(pd, path, roles):
    """Read a CSV and rename its columns to the keys of ``roles`` (aliases lists).

    Headers are matched case-insensitively against the aliases; a file whose
    first row is all numbers is read as headerless, with the columns in the
    order of ``roles``.
    """
    try:
        df = pd.read_csv(path, skipinitialspace=True)
    except (ValueError, OSError) as exc:  # pandas' ParserError is a ValueError
        raise ValueError(f"could not read {str(path)!r}: {exc}") from None
    columns = [str(c).strip().lower() for c in df.columns]

    def _is_number(text):
        try:
            float(text)
        except ValueError:
            return False
        return True

    if len(columns) == len(roles) and all(_is_number(c) for c in columns):
        df = pd.read_csv(path, header=None, names=list(roles), skipinitialspace=True)
        return df
    rename = {}
    for role, aliases in roles.items():
        match = next(
            (df.columns[i] for a in aliases for i, c in enumerate(columns) if c == a),
            None,
        )
        if match is None or match in rename:
            raise ValueError(
                f"{str(path)!r} needs a {role!r} column (one of {list(aliases)}), "
                f"got columns {list(df.columns)}"
            )
        rename[match] = role
    return df[list(rename)].rename(columns=rename)


def load_truth_inference(path):
    """Load a label-only truth-inference benchmark set.

    Reads a directory of the standard truth-inference benchmarks (bluebird,
    rte, web, ... as collected by Zheng et al., VLDB 2017) holding
    ``label.csv`` (``item,worker,label``; ``answer.csv`` with
    ``question,worker,answer`` is accepted too) and ``truth.csv``
    (``item,truth``; ``question,truth`` is accepted too).

    Parameters
    ----------
    path : str or path-like
        Directory of one data set.

    Returns
    -------
    labels : pandas.DataFrame
        Long-format crowd labels with the columns ``task``, ``worker`` and
        ``label``, one row per (task, worker) label.
    truth : pandas.Series
        Gold label of each task, indexed by ``task`` and named ``truth``. On
        some sets (trec, s5_AdultContent, web) only part of the tasks have one.

    Raises
    ------
    FileNotFoundError
        If ``path`` or one of the files is missing.
    ValueError
        If a file lacks a needed column or a task has two gold labels.
    ImportError
        If pandas is not installed.

    Examples
    --------
    >>> from sklearn_metaannot.datasets import load_truth_inference
    >>> labels, truth = load_truth_inference(
    ...     "../shared/data/truth_inference/bluebird")  # doctest: +SKIP
    >>> labels.shape, labels["worker"].nunique(), len(truth)  # doctest: +SKIP
    ((4212, 3), 39, 108)
    """
    expected = "label.csv (item,worker,label) and truth.csv (item,truth)"
    path = _check_dir(path, "path", expected)
    label_path = next(
        (path / n for n in ("label.csv", "answer.csv") if (path / n).is_file()), None
    )
    truth_path = path / "truth.csv"
    missing = [
        name
        for name, p in (("label.csv", label_path), ("truth.csv", truth_path))
        if p is None or not p.is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"truth-inference file(s) {missing} not found in {str(path)!r}; "
            f"expected {expected}"
        )
    pd = _import_pandas()
    labels = _read_crowd_csv(
        pd,
        label_path,
        {"task": _TASK_ALIASES, "worker": _WORKER_ALIASES, "label": _LABEL_ALIASES},
    )
    truth = _read_crowd_csv(
        pd, truth_path, {"task": _TASK_ALIASES, "truth": _TRUTH_ALIASES}
    )
    duplicated = truth["task"][truth["task"].duplicated()]
    if len(duplicated):
        raise ValueError(
            f"{str(truth_path)!r} gives several truths to tasks "
            f"{duplicated.unique()[:10].tolist()}"
        )
    truth = truth.set_index("task")["truth"]
    return labels.reset_index(drop=True), truth
