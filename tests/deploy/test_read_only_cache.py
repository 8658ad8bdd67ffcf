"""A conversion baked into a read-only image is used, not redone in /tmp."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from app import inference

SHA256 = "4b1e365935e2" + "0" * 52


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> set[Path]:
    """Folders where creating a file fails as on a read-only root filesystem."""
    folders: set[Path] = set()
    touch = Path.touch

    def refuse(self: Path, *args, **kwargs) -> None:
        if self.parent in folders:
            raise OSError(30, "Read-only file system", str(self))
        touch(self, *args, **kwargs)

    monkeypatch.setattr(Path, "touch", refuse)
    return folders


def test_the_baked_conversion_beside_the_model_is_used(tmp_path: Path, read_only) -> None:
    model = tmp_path / "artifacts" / "digitnet.keras"
    cache = model.parent / ".cache"
    cache.mkdir(parents=True)
    baked = cache / f"digitnet-{SHA256[:16]}.tflite"
    baked.write_bytes(b"converted at build time")
    read_only.add(cache)
    assert inference.converted_path(model, SHA256) == baked
    assert inference.ensure_converted(model, SHA256) == baked  # no conversion started


def test_a_configured_read_only_cache_with_the_conversion_is_used(
    tmp_path: Path, read_only
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    baked = cache / f"digitnet-{SHA256[:16]}.tflite"
    baked.write_bytes(b"converted at build time")
    read_only.add(cache)
    assert inference.converted_path(tmp_path / "digitnet.keras", SHA256, cache) == baked


def test_a_read_only_cache_without_it_still_falls_back_to_a_temporary_folder(
    tmp_path: Path, read_only, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    cache = tmp_path / "artifacts" / ".cache"
    cache.mkdir(parents=True)
    read_only.add(cache)
    target = inference.converted_path(tmp_path / "artifacts" / "digitnet.keras", SHA256)
    assert target.parent == tmp_path / "tmp" / "digits-model-cache"
