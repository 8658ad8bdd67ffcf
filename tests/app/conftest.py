"""The shared live server of the hostile-input tests, checked after each module; a copy
of the shipped model folder to tamper with."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app import inference
from tests.conftest import LiveServer
from tests.deploy import limits

FAST = 2.0  # seconds to answer any single upload
MAX_RSS = limits.peak_rss_allowed()  # the server's peak resident memory, bytes


def rss(pid: int) -> dict[str, int]:
    """Current and peak resident memory of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(rest.split()[0]) * 1024
    return fields


@pytest.fixture(scope="module")
def server(live_server: LiveServer) -> Iterator[LiveServer]:
    """The shared server, checked alive, ready and the same process after this module."""
    process = live_server.process
    assert process is not None
    pid = process.pid
    yield live_server
    assert live_server.process is process and process.poll() is None, "the server died"
    assert process.pid == pid
    assert httpx.get(f"{live_server.url}/health/ready", timeout=FAST).status_code == 200
    peak = rss(pid)["VmHWM"]
    assert peak < MAX_RSS, f"server peak RSS {peak / 2**20:.0f} MiB"


@pytest.fixture
def artifacts(model_path: Path, tmp_path: Path) -> Path:
    """A copy of the shipped model folder: the .keras file, its LiteRT forms, the card."""
    folder = tmp_path / "artifacts"
    folder.mkdir()
    card = json.loads((model_path.parent / inference.CARD_NAME).read_text())
    shipped = (card["litert"]["file"], card["litert_int8"]["file"])
    for name in (model_path.name, *shipped, inference.CARD_NAME):
        shutil.copy2(model_path.parent / name, folder / name)
    return folder / model_path.name
