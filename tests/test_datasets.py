"""Tests of the Omniglot, LabelMe and truth-inference loaders."""
# SPDX-License-Identifier: BSD-3-Clause

import io
import sys
import types
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils import Bunch

from sklearn_metaannot import datasets
from sklearn_metaannot.datasets import (
    fetch_omniglot,
    load_labelme,
    load_omniglot,
    load_truth_inference,
    rotate_classes,
    split_omniglot_by_alphabet,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OMNIGLOT = DATA / "omniglot"
LABELME = DATA / "labelme"
TRUTH_INFERENCE = DATA / "truth_inference"


def _require(path):
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (../shared/data/)")
    return path


# ------------------------------------------------------------------ fake Omniglot


def _png(seed, size=105):
    """A 1-bit PNG with a black square stroke on white, like Omniglot's."""
    from PIL import Image

    arr = np.full((size, size), 255, dtype=np.uint8)
    lo = 10 + 5 * seed
    arr[lo : lo + 21, lo : lo + 21] = 0
    buf = io.BytesIO()
    Image.fromarray(arr).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def _fake_zip_bytes(subset, characters, n_drawings=3):
    """Zip bytes in the published layout, ``characters`` = [(alphabet, char)]."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{subset}/", b"")
        for i, (alphabet, character) in enumerate(characters):
            for d in range(n_drawings):
                name = f"{subset}/{alphabet}/{character}/{i:04d}_{d + 1:02d}.png"
                zf.writestr(name, _png(d))
        zf.writestr(f"__MACOSX/{subset}/._junk.png", b"not a png")
    return buf.getvalue()


FAKE_SMALL1 = [("Alpha", "character01"), ("Alpha", "character02"), ("Shared", "c01")]
FAKE_SMALL2 = [("Shared", "c01"), ("Beta", "character01")]


@pytest.fixture
def fake_omniglot(tmp_path):
    pytest.importorskip("PIL")
    root = tmp_path / "omniglot"
    root.mkdir()
    for subset, chars in [
        ("images_background_small1", FAKE_SMALL1),
        ("images_background_small2", FAKE_SMALL2),
    ]:
        (root / f"{subset}.zip").write_bytes(_fake_zip_bytes(subset, chars))
    return root


def test_load_omniglot_fake_dedup_and_layout(fake_omniglot):
    bunch = load_omniglot(fake_omniglot, image_size=21)
    assert isinstance(bunch, Bunch)
    # Shared/c01 is in both archives: kept once -> 4 characters x 3 drawings.
    assert bunch.images.shape == (12, 21, 21)
    assert bunch.images.dtype == np.float32
    assert bunch.data.shape == (12, 21 * 21)
    np.testing.assert_array_equal(bunch.data, bunch.images.reshape(12, -1))
    assert bunch.character_names.tolist() == [
        "Alpha/character01",
        "Alpha/character02",
        "Beta/character01",
        "Shared/c01",
    ]
    assert bunch.alphabets.tolist() == ["Alpha", "Beta", "Shared"]
    np.testing.assert_array_equal(bunch.target, np.repeat(np.arange(4), 3))
    assert bunch.alphabet.tolist() == ["Alpha"] * 6 + ["Beta"] * 3 + ["Shared"] * 3
    assert set(bunch.subset[bunch.alphabet == "Shared"]) == {"images_background_small1"}
    assert set(bunch.subset[bunch.alphabet == "Beta"]) == {"images_background_small2"}
    assert "Omniglot" in bunch.DESCR


def test_load_omniglot_ink_is_one(fake_omniglot):
    images = load_omniglot(fake_omniglot, image_size=105).images
    # Drawing 1 has its 21x21 black square at rows/cols 10..30: ink -> 1.
    first = images[0]
    assert first.min() == 0.0 and first.max() == 1.0
    assert np.all(first[10:31, 10:31] == 1.0)
    assert first.sum() == 21 * 21
    small = load_omniglot(fake_omniglot, image_size=21).images
    assert 0.0 <= small.min() and small.max() <= 1.0
    assert small[0].mean() < 0.5
    # Box-filter downsampling by 5 keeps the ink mass.
    np.testing.assert_allclose(small[0].sum() * 25, 21 * 21, rtol=1e-2)


def test_load_omniglot_subsets_and_return_X_y(fake_omniglot):
    X, y = load_omniglot(
        fake_omniglot, subsets="images_background_small2.zip", return_X_y=True
    )
    assert X.shape == (6, 28 * 28) and y.tolist() == [0, 0, 0, 1, 1, 1]
    # Order of subsets decides which archive a shared character is read from.
    bunch = load_omniglot(
        fake_omniglot,
        subsets=["images_background_small2", "images_background_small1"],
    )
    assert set(bunch.subset[bunch.alphabet == "Shared"]) == {"images_background_small2"}
    assert len(bunch.character_names) == 4


def test_load_omniglot_errors(tmp_path, fake_omniglot):
    with pytest.raises(FileNotFoundError, match="images_background_small1.zip"):
        load_omniglot(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="images_evaluation.zip"):
        load_omniglot(empty)
    with pytest.raises(FileNotFoundError, match="images_evaluation.zip"):
        load_omniglot(fake_omniglot, subsets=["images_evaluation"])
    with pytest.raises(ValueError, match="unknown Omniglot subset"):
        load_omniglot(fake_omniglot, subsets=["images_test"])
    with pytest.raises(ValueError, match="image_size"):
        load_omniglot(fake_omniglot, image_size=0)
    with pytest.raises(TypeError, match="image_size"):
        load_omniglot(fake_omniglot, image_size=2.5)
    with pytest.raises(TypeError, match="path"):
        load_omniglot(42)
    (empty / "images_evaluation.zip").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a valid zip"):
        load_omniglot(empty)


def test_load_omniglot_without_pillow(fake_omniglot, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImportError, match=r"pip install sklearn-metaannot\[datasets\]"):
        load_omniglot(fake_omniglot)


# ----------------------------------------------------------------- fetch (offline)


class _FakeResponse(io.BytesIO):
    pass


@pytest.fixture
def fake_remote(monkeypatch):
    """Serve fake archives instead of the network, recording the URLs asked."""
    pytest.importorskip("PIL")
    calls = []
    payloads = {
        "images_background": _fake_zip_bytes("images_background", FAKE_SMALL1),
        "images_evaluation": _fake_zip_bytes("images_evaluation", FAKE_SMALL2),
    }

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        name = url.rsplit("/", 1)[-1].removesuffix(".zip")
        return _FakeResponse(payloads[name])

    monkeypatch.setattr(datasets, "urlopen", fake_urlopen)
    return calls


def test_fetch_omniglot_downloads_then_uses_cache(tmp_path, fake_remote):
    bunch = fetch_omniglot(data_home=tmp_path)
    assert sorted(fake_remote) == [
        "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
        f"{name}.zip"
        for name in ("images_background", "images_evaluation")
    ]
    cache = tmp_path / "omniglot"
    assert sorted(p.name for p in cache.iterdir()) == [
        "images_background.zip",
        "images_evaluation.zip",
    ]
    assert len(bunch.character_names) == 4 and bunch.images.shape == (12, 28, 28)
    assert set(bunch.subset) == {"images_background", "images_evaluation"}
    # Second call: everything cached, no download.
    again = fetch_omniglot(data_home=tmp_path, download=False, image_size=14)
    assert len(fake_remote) == 2
    assert again.images.shape == (12, 14, 14)


def test_fetch_omniglot_default_data_home(tmp_path, monkeypatch, fake_remote):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "skl"))
    bunch = fetch_omniglot(subsets="images_evaluation")
    assert (tmp_path / "skl" / "omniglot" / "images_evaluation.zip").is_file()
    assert bunch.alphabets.tolist() == ["Beta", "Shared"]


def test_fetch_omniglot_uses_existing_cache_without_network(
    tmp_path, fake_omniglot, monkeypatch
):
    def no_network(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr(datasets, "urlopen", no_network)
    cache = tmp_path / "home" / "omniglot"
    cache.mkdir(parents=True)
    for p in fake_omniglot.iterdir():
        (cache / p.name).write_bytes(p.read_bytes())
    bunch = fetch_omniglot(
        tmp_path / "home",
        subsets=("images_background_small1", "images_background_small2"),
    )
    assert bunch.images.shape == (12, 28, 28)


def test_fetch_omniglot_download_false(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=False") as info:
        fetch_omniglot(data_home=tmp_path, download=False)
    msg = str(info.value)
    assert str(tmp_path / "omniglot" / "images_background.zip") in msg
    assert "raw.githubusercontent.com/brendenlake/omniglot" in msg


def test_fetch_omniglot_offline(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(datasets, "urlopen", offline)
    with pytest.raises(ConnectionError, match="could not download") as info:
        fetch_omniglot(data_home=tmp_path, subsets="images_evaluation")
    assert str(tmp_path / "omniglot" / "images_evaluation.zip") in str(info.value)
    assert list((tmp_path / "omniglot").iterdir()) == []  # no partial file left


def test_fetch_omniglot_rejects_non_zip_download(tmp_path, monkeypatch):
    monkeypatch.setattr(
        datasets, "urlopen", lambda url, timeout=None: _FakeResponse(b"<html>")
    )
    with pytest.raises(ConnectionError, match="not a zip"):
        fetch_omniglot(data_home=tmp_path, subsets="images_evaluation")
    assert list((tmp_path / "omniglot").iterdir()) == []


def test_fetch_omniglot_argument_errors(tmp_path):
    with pytest.raises(TypeError, match="download"):
        fetch_omniglot(data_home=tmp_path, download="yes")
    with pytest.raises(ValueError, match="subsets"):
        fetch_omniglot(data_home=tmp_path, subsets=["background"])
    with pytest.raises(TypeError, match="subsets"):
        fetch_omniglot(data_home=tmp_path, subsets=None)


# ----------------------------------------------------------- splits / augmentation


def test_split_omniglot_by_alphabet():
    bunch = Bunch(alphabet=np.array(["A", "A", "B", "C", "D", "C"]))
    train, val, test = split_omniglot_by_alphabet(
        bunch, val_alphabets=["B"], test_alphabets=("C", "D")
    )
    assert train.tolist() == [True, True, False, False, False, False]
    assert val.tolist() == [False, False, True, False, False, False]
    assert test.tolist() == [False, False, False, True, True, True]
    train, val, _ = split_omniglot_by_alphabet(
        bunch, val_alphabets=[], test_alphabets="D"
    )
    assert not val.any() and train.sum() == 5
    with pytest.raises(ValueError, match="not in the data"):
        split_omniglot_by_alphabet(bunch, val_alphabets=["Z"], test_alphabets=[])
    with pytest.raises(ValueError, match="share"):
        split_omniglot_by_alphabet(bunch, val_alphabets=["B"], test_alphabets=["B"])
    with pytest.raises(ValueError, match="meta-training"):
        split_omniglot_by_alphabet(
            bunch, val_alphabets=["A", "B"], test_alphabets=["C", "D"]
        )
    with pytest.raises(TypeError, match="alphabet"):
        split_omniglot_by_alphabet({}, val_alphabets=[], test_alphabets=[])


def test_rotate_classes():
    rng = np.random.default_rng(0)
    images = rng.random((6, 5, 5)).astype(np.float32)
    target = np.array([0, 0, 1, 1, 3, 3])
    aug, y = rotate_classes(images, target)
    assert aug.shape == (24, 5, 5) and aug.dtype == np.float32
    offset = 4  # target.max() + 1
    np.testing.assert_array_equal(
        y, np.concatenate([target + j * offset for j in range(4)])
    )
    np.testing.assert_array_equal(aug[:6], images)
    for j, k in enumerate((1, 2, 3), start=1):
        np.testing.assert_array_equal(
            aug[6 * j : 6 * (j + 1)], np.rot90(images, k, (1, 2))
        )
    # Every rotated class is new and keeps its number of examples.
    assert len(np.unique(y)) == 4 * len(np.unique(target))
    # Trailing channel dimension and a single angle.
    aug, y = rotate_classes(images[..., None], target, rotations=(180,))
    assert aug.shape == (12, 5, 5, 1) and y.max() == 3 + offset


def test_rotate_classes_errors():
    images, target = np.zeros((2, 4, 4)), np.array([0, 1])
    with pytest.raises(ValueError, match="bunch.images"):
        rotate_classes(images.reshape(2, -1), target)
    with pytest.raises(ValueError, match="square"):
        rotate_classes(np.zeros((2, 4, 3)), target, rotations=(90,))
    rotate_classes(np.zeros((2, 4, 3)), target, rotations=(180,))  # fine
    with pytest.raises(ValueError, match="0"):
        rotate_classes(images, target, rotations=(0, 90))
    with pytest.raises(ValueError, match="multiples of 90"):
        rotate_classes(images, target, rotations=(45,))
    with pytest.raises(ValueError, match="distinct"):
        rotate_classes(images, target, rotations=(90, 450))
    with pytest.raises(ValueError, match="target"):
        rotate_classes(images, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="non-negative"):
        rotate_classes(images, np.array([0.5, 1.0]))


# ------------------------------------------------------------------ shared Omniglot


@pytest.fixture(scope="module")
def shared_omniglot():
    return load_omniglot(_require(OMNIGLOT))


def test_shared_omniglot(shared_omniglot):
    b = shared_omniglot
    assert b.images.shape == (4840, 28, 28) and b.data.shape == (4840, 784)
    assert b.images.dtype == np.float32
    assert len(b.character_names) == 242 and len(b.alphabets) == 8
    assert b.alphabets.tolist() == sorted(set(b.alphabet))
    np.testing.assert_array_equal(np.bincount(b.target), np.full(242, 20))
    assert b.character_names.tolist() == sorted(b.character_names)
    assert 0.0 <= b.images.min() and b.images.max() <= 1.0
    assert b.images.mean() < 0.5  # strokes (ink) are 1 on a 0 background
    names = b.character_names[b.target]
    assert all(n.startswith(a + "/") for n, a in zip(names, b.alphabet))


def test_shared_omniglot_split(shared_omniglot):
    train, val, test = split_omniglot_by_alphabet(
        shared_omniglot, val_alphabets=["Greek"], test_alphabets=["Korean", "Latin"]
    )
    assert (train.astype(int) + val + test == 1).all()
    assert set(shared_omniglot.alphabet[val]) == {"Greek"}
    y = shared_omniglot.target
    assert not set(y[train]) & set(y[test])
    images, target = rotate_classes(shared_omniglot.images[train], y[train])
    assert len(np.unique(target)) == 4 * len(np.unique(y[train]))


# ------------------------------------------------------------------------- LabelMe


@pytest.fixture
def crowd_labels(monkeypatch):
    """The CrowdLabelMatrix module, or a stand-in while it is not importable."""
    try:
        from sklearn_metaannot.crowd import _labels as _crowd_labels
    except ImportError:
        _crowd_labels = types.ModuleType("sklearn_metaannot.crowd._labels")

        class CrowdLabelMatrix:
            @classmethod
            def from_dense(cls, Y, *, missing=np.nan, classes=None):
                return cls()

        _crowd_labels.CrowdLabelMatrix = CrowdLabelMatrix
        monkeypatch.setitem(sys.modules, _crowd_labels.__name__, _crowd_labels)
    return _crowd_labels


def test_shared_labelme(crowd_labels):
    b = load_labelme(_require(LABELME))
    assert b.X_train.shape == (1000, 512)
    assert b.X_valid.shape == (500, 512)
    assert b.X_test.shape == (1188, 512)
    for y, n in [(b.y_train, 1000), (b.y_valid, 500), (b.y_test, 1188)]:
        assert y.shape == (n,) and np.issubdtype(y.dtype, np.integer)
        assert set(np.unique(y)) == set(range(8))
    answers = b.answers
    assert answers.shape == (1000, 59) and np.issubdtype(answers.dtype, np.integer)
    assert set(np.unique(answers)) == set(range(-1, 8))
    n_labels = (answers >= 0).sum(axis=1)
    assert n_labels.min() >= 1 and 2.0 < n_labels.mean() < 3.0
    assert (answers == -1).mean() > 0.9
    np.testing.assert_array_equal(b.annotator_ids, np.arange(59))
    np.testing.assert_array_equal(b.classes, np.arange(8))
    assert isinstance(b.crowd_train, crowd_labels.CrowdLabelMatrix)


def test_shared_labelme_crowd_train():
    _require(LABELME)
    try:
        from sklearn_metaannot.crowd._labels import CrowdLabelMatrix
    except ImportError as exc:
        pytest.skip(f"sklearn_metaannot.crowd._labels not importable: {exc}")
    b = load_labelme(LABELME)
    assert isinstance(b.crowd_train, CrowdLabelMatrix)


def _write_fake_labelme(root, n_train=4, n_annotators=3):
    root.mkdir()
    rng = np.random.default_rng(0)
    for split, n in [("train", n_train), ("valid", 2), ("test", 3)]:
        np.save(root / f"LabelMe_VGG_avg_{split}.npy", rng.random((n, 5)))
        np.savetxt(root / f"LabelMe_Z_{split}.txt", rng.integers(0, 8, n), fmt="%d")
    answers = np.full((n_train, n_annotators), -1)
    answers[:, 0] = 2
    np.savetxt(root / "answers.txt", answers, fmt="%d")
    return root


def test_load_labelme_fake(tmp_path, crowd_labels):
    b = load_labelme(_write_fake_labelme(tmp_path / "lm"))
    assert b.X_train.shape == (4, 5) and b.y_test.shape == (3,)
    assert b.answers.tolist() == [[2, -1, -1]] * 4
    np.testing.assert_array_equal(b.annotator_ids, np.arange(3))
    assert "LabelMe" in b.DESCR


def test_load_labelme_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="answers.txt"):
        load_labelme(tmp_path / "nowhere")
    root = _write_fake_labelme(tmp_path / "lm")
    (root / "answers.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"\['answers.txt'\]"):
        load_labelme(root)
    np.savetxt(root / "answers.txt", np.full((3, 2), -1), fmt="%d")
    with pytest.raises(ValueError, match="answers.txt has 3 rows"):
        load_labelme(root)
    np.savetxt(root / "answers.txt", np.full((4, 2), 9), fmt="%d")
    with pytest.raises(ValueError, match="answers.txt"):
        load_labelme(root)
    np.savetxt(root / "answers.txt", np.full((4, 2), -1), fmt="%d")
    np.savetxt(root / "LabelMe_Z_valid.txt", np.zeros(5), fmt="%d")
    with pytest.raises(ValueError, match="LabelMe_Z_valid.txt"):
        load_labelme(root)


# ---------------------------------------------------------------- truth inference


def test_shared_truth_inference_bluebird():
    labels, truth = load_truth_inference(_require(TRUTH_INFERENCE / "bluebird"))
    assert labels.columns.tolist() == ["task", "worker", "label"]
    assert labels["task"].nunique() == 108 and labels["worker"].nunique() == 39
    assert len(labels) == 4212 and not labels.duplicated(["task", "worker"]).any()
    assert truth.index.name == "task" and truth.name == "truth"
    assert len(truth) == 108 and set(truth.unique()) == {0, 1}
    assert truth.index.isin(labels["task"]).all()


@pytest.mark.parametrize(
    "name, n_tasks, n_workers",
    [
        ("rte", 800, 164),
        ("s4_Dog_data", 807, 109),
        ("web", 2665, 177),
        ("trec", 19033, 762),
        ("s5_AdultContent", 11040, 825),
    ],
)
def test_shared_truth_inference_sets(name, n_tasks, n_workers):
    labels, truth = load_truth_inference(_require(TRUTH_INFERENCE / name))
    assert labels["task"].nunique() == n_tasks
    assert labels["worker"].nunique() == n_workers
    # Gold labels exist for some or all of the tasks, all of them labelled.
    assert 0 < len(truth) <= n_tasks and truth.index.isin(labels["task"]).all()


def test_load_truth_inference_header_variants(tmp_path):
    pytest.importorskip("pandas")
    zheng = tmp_path / "zheng"
    zheng.mkdir()
    (zheng / "answer.csv").write_text("question,worker,answer\nq1,w1,1\nq1,w2,0\n")
    (zheng / "truth.csv").write_text("Question , Truth\nq1,1\n")
    labels, truth = load_truth_inference(zheng)
    assert labels.columns.tolist() == ["task", "worker", "label"]
    assert labels["worker"].tolist() == ["w1", "w2"]
    assert truth.to_dict() == {"q1": 1}

    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "label.csv").write_text("0,0,1\n0,1,1\n1,0,0\n")
    (bare / "truth.csv").write_text("0,1\n1,0\n")
    labels, truth = load_truth_inference(bare)
    assert labels.shape == (3, 3) and labels["label"].tolist() == [1, 1, 0]
    assert truth.to_dict() == {0: 1, 1: 0}

    reordered = tmp_path / "reordered"
    reordered.mkdir()
    (reordered / "label.csv").write_text("worker,label,item\n3,1,7\n")
    (reordered / "truth.csv").write_text("item,truth\n7,1\n")
    labels, _ = load_truth_inference(reordered)
    assert labels.iloc[0].to_dict() == {"task": 7, "worker": 3, "label": 1}


def test_load_truth_inference_errors(tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    with pytest.raises(FileNotFoundError, match="label.csv"):
        load_truth_inference(tmp_path / "nowhere")
    root = tmp_path / "set"
    root.mkdir()
    (root / "label.csv").write_text("item,worker,label\n0,0,1\n")
    with pytest.raises(FileNotFoundError, match=r"\['truth.csv'\]"):
        load_truth_inference(root)
    (root / "truth.csv").write_text("item,gold_standard\n0,1\n")
    with pytest.raises(ValueError, match="'truth' column"):
        load_truth_inference(root)
    (root / "truth.csv").write_text("item,truth\n0,1\n0,0\n")
    with pytest.raises(ValueError, match="several truths"):
        load_truth_inference(root)
    (root / "truth.csv").write_text("item,truth\n0,1\n")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pandas"):
        load_truth_inference(root)
