"""MNIST from the four original IDX ``.gz`` files, checksummed.

Where the files come from, in order:

1. the folder given explicitly (``--data`` on the command line);
2. the folder named by the ``MNIST_DIR`` environment variable;
3. ``../shared/data/mnist`` next to the project (the development machines);
4. the user cache (``~/.cache/digits/mnist``), downloading the files there on an
   online machine when they are missing.

Every file is verified against its published sha256 before a byte of it is used.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_MNIST_DIR = PROJECT_ROOT.parent / "shared" / "data" / "mnist"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "digits" / "mnist"
MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)

# sha256 of the files as published (see ../shared/data/README.md).
CHECKSUMS = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


class MnistDataError(RuntimeError):
    """The MNIST files are missing, corrupt or not where we were told to look."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (n, 28, 28) uint8, 0 = background, 255 = ink
    labels: np.ndarray  # (n,) uint8


@dataclass(frozen=True)
class Mnist:
    train: Split
    test: Split
    folder: Path
    checksums: dict[str, str]


def sha256_of(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _hint() -> str:
    return (
        "Point the loader at a folder holding the four IDX .gz files with --data DIR "
        "or the MNIST_DIR environment variable."
    )


def verify(
    folder: Path,
    checksums: dict[str, str] = CHECKSUMS,
    error: type[RuntimeError] = MnistDataError,
    hint: str = "",
) -> None:
    """Check that ``folder`` holds each file with its published sha256."""
    hint = hint or _hint()
    missing = [name for name in checksums if not (folder / name).is_file()]
    if missing:
        raise error(f"files missing in {folder}: {', '.join(missing)}. {hint}")
    for name, expected in checksums.items():
        actual = sha256_of(folder / name)
        if actual != expected:
            raise error(
                f"{folder / name} is corrupt: sha256 {actual}, expected {expected}. "
                "Replace it with the original file."
            )


def _download(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, expected in CHECKSUMS.items():
        target = folder / name
        if target.is_file() and sha256_of(target) == expected:
            continue
        errors = []
        for mirror in MIRRORS:
            partial = target.with_suffix(".part")
            try:
                with urllib.request.urlopen(mirror + name, timeout=30) as response:
                    partial.write_bytes(response.read())
            except OSError as error:
                errors.append(f"{mirror}: {error}")
                continue
            if sha256_of(partial) == expected:
                partial.replace(target)
                break
            partial.unlink()
            errors.append(f"{mirror}: checksum mismatch")
        else:
            raise MnistDataError(
                f"could not download {name} into {folder} ({'; '.join(errors)}). {_hint()}"
            )


def locate(folder: str | os.PathLike[str] | None = None, *, download: bool = True) -> Path:
    """Return a folder holding the four verified MNIST files."""
    if folder is None:
        folder = os.environ.get("MNIST_DIR") or None
    if folder is not None:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise MnistDataError(f"MNIST folder {path} does not exist. {_hint()}")
        verify(path)
        return path
    for candidate in (SHARED_MNIST_DIR, CACHE_DIR):
        if all((candidate / name).is_file() for name in CHECKSUMS):
            verify(candidate)
            return candidate
    if not download:
        raise MnistDataError(
            f"no MNIST files found in {SHARED_MNIST_DIR} or {CACHE_DIR}. {_hint()}"
        )
    _download(CACHE_DIR)
    verify(CACHE_DIR)
    return CACHE_DIR


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one IDX file (images: n×rows×cols, labels: n) as uint8."""
    with gzip.open(path, "rb") as stream:
        raw = stream.read()
    header_size = 16 if magic == IMAGES_MAGIC else 8
    if len(raw) < header_size:
        raise MnistDataError(f"{path} is too short to be an IDX file")
    found, count = struct.unpack(">II", raw[:8])
    if found != magic:
        raise MnistDataError(f"{path}: IDX magic {found}, expected {magic}")
    shape: tuple[int, ...] = (count,)
    if magic == IMAGES_MAGIC:
        rows, cols = struct.unpack(">II", raw[8:16])
        shape = (count, rows, cols)
    data = np.frombuffer(raw, dtype=np.uint8, offset=header_size)
    if data.size != int(np.prod(shape)):
        raise MnistDataError(f"{path}: {data.size} bytes of data, header promises {shape}")
    return data.reshape(shape)


def _split(folder: Path, prefix: str) -> Split:
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", IMAGES_MAGIC)
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", LABELS_MAGIC)
    if len(images) != len(labels):
        raise MnistDataError(f"{folder}: {len(images)} {prefix} images but {len(labels)} labels")
    return Split(images, labels)


def load(folder: str | os.PathLike[str] | None = None, *, download: bool = True) -> Mnist:
    """Load and verify MNIST; see the module docstring for where it looks."""
    path = locate(folder, download=download)
    return Mnist(
        train=_split(path, "train"),
        test=_split(path, "t10k"),
        folder=path,
        checksums=dict(CHECKSUMS),
    )


def train_validation_split(split: Split, validation_size: int, seed: int) -> tuple[Split, Split]:
    """Carve a stratification-free, seeded validation set out of the training set."""
    order = np.random.default_rng(seed).permutation(len(split.labels))
    held, kept = order[:validation_size], order[validation_size:]
    return (
        Split(split.images[kept], split.labels[kept]),
        Split(split.images[held], split.labels[held]),
    )
