"""The MNIST loader: checksums, clear errors, the IDX format."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from model import data


def write_idx_images(path: Path, images: np.ndarray) -> None:
    header = struct.pack(">IIII", data.IMAGES_MAGIC, len(images), 28, 28)
    with gzip.open(path, "wb") as stream:
        stream.write(header + images.astype(np.uint8).tobytes())


def test_missing_folder_says_where_it_looked_and_how_to_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(data.MnistDataError) as caught:
        data.load(missing)
    message = str(caught.value)
    assert str(missing) in message
    assert "--data" in message and "MNIST_DIR" in message


def test_folder_without_files_names_the_missing_ones(tmp_path: Path) -> None:
    with pytest.raises(data.MnistDataError, match=r"train-images-idx3-ubyte\.gz"):
        data.load(tmp_path)


def test_environment_variable_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "from-env"))
    with pytest.raises(data.MnistDataError, match="from-env"):
        data.load()


def test_corrupt_file_fails_its_checksum(tmp_path: Path, mnist: data.Mnist) -> None:
    for name in data.CHECKSUMS:
        shutil.copy(mnist.folder / name, tmp_path / name)
    victim = tmp_path / "t10k-labels-idx1-ubyte.gz"
    corrupted = bytearray(victim.read_bytes())
    corrupted[len(corrupted) // 2] ^= 0xFF
    victim.write_bytes(bytes(corrupted))
    with pytest.raises(data.MnistDataError, match=r"t10k-labels-idx1-ubyte\.gz is corrupt"):
        data.load(tmp_path)


def test_read_idx_round_trip_and_bad_magic(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    path = tmp_path / "images.gz"
    write_idx_images(path, images)
    assert np.array_equal(data.read_idx(path, data.IMAGES_MAGIC), images)
    with pytest.raises(data.MnistDataError, match="magic"):
        data.read_idx(path, data.LABELS_MAGIC)


def test_truncated_idx_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "short.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(struct.pack(">IIII", data.IMAGES_MAGIC, 5, 28, 28) + bytes(100))
    with pytest.raises(data.MnistDataError, match="header promises"):
        data.read_idx(path, data.IMAGES_MAGIC)


def test_real_mnist_matches_its_documented_shape(mnist: data.Mnist) -> None:
    assert mnist.train.images.shape == (60000, 28, 28)
    assert mnist.test.images.shape == (10000, 28, 28)
    assert mnist.train.images.dtype == np.uint8
    assert mnist.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(mnist.test.labels).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009,
    ]  # fmt: skip


def test_validation_split_is_disjoint_and_complete() -> None:
    # Each image carries its own index in its first four pixels, its label with it.
    count = 6000
    indices = np.arange(count, dtype="<u4")
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    images[:, 0, :4] = indices.view(np.uint8).reshape(count, 4)
    train, validation = data.train_validation_split(data.Split(images, indices % 10), 500, seed=3)

    def tags(split: data.Split) -> np.ndarray:
        found = np.ascontiguousarray(split.images[:, 0, :4]).view("<u4").ravel()
        assert np.array_equal(split.labels, found % 10), "labels travel with their images"
        return found

    held, kept = tags(validation), tags(train)
    assert len(held) == len(set(held)) == 500 and len(kept) == len(set(kept)) == count - 500
    assert not set(held) & set(kept)
    assert set(held) | set(kept) == set(range(count))


def test_validation_split_is_seeded(mnist: data.Mnist) -> None:
    train, validation = data.train_validation_split(mnist.train, 5000, seed=1)
    again, _ = data.train_validation_split(mnist.train, 5000, seed=1)
    assert len(train.labels) == 55000 and len(validation.labels) == 5000
    assert np.array_equal(train.labels, again.labels)
    different, _ = data.train_validation_split(mnist.train, 5000, seed=2)
    assert not np.array_equal(train.labels[:100], different.labels[:100])
