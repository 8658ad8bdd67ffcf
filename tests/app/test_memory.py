"""How a worker manages memory: freed memory stays for the next request, and the
garbage collector leaves the startup heap alone.

Each case runs in a fresh interpreter, since malloc settings are per process and
the test process's own allocator has a history. glibc's mallinfo2() shows where
blocks come from: ``hblks`` counts blocks mapped on their own (returned to the
kernel when freed), ``arena`` is the heap, which the trim threshold keeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import memory

PROJECT_ROOT = Path(__file__).resolve().parents[2]

glibc_only = pytest.mark.skipif(not memory.on_glibc(), reason="malloc settings apply to glibc only")

PROBE = """
import ctypes, json, sys
from app import memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
applied = memory.tune_malloc() if sys.argv[1] == "tuned" else {}
before = libc.mallinfo2()
blocks = [bytearray(1 << 20) for _ in range(16)]  # what a photo's arrays take
during = libc.mallinfo2()
del blocks
after = libc.mallinfo2()
print(json.dumps({
    "applied": applied,
    "mapped_blocks_added": during.hblks - before.hblks,
    "heap_kept_after_free_mb": (after.arena - before.arena) / 2**20,
}))
"""


def probe(mode: str, script: str = PROBE, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    completed = subprocess.run(
        [sys.executable, "-c", script, mode],
        cwd=PROJECT_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout)


@glibc_only
def test_by_default_glibc_maps_megabyte_blocks_and_hands_them_back():
    """The behaviour the settings change, so that the test below can fail."""
    untuned = probe("untouched")
    assert untuned["mapped_blocks_added"] >= 1
    assert untuned["heap_kept_after_free_mb"] < 8


@glibc_only
def test_tuned_blocks_come_from_the_heap_and_stay_for_the_next_request():
    tuned = probe("tuned")
    assert tuned["applied"] == {
        "MALLOC_MMAP_THRESHOLD_": memory.MMAP_THRESHOLD,
        "MALLOC_TRIM_THRESHOLD_": memory.TRIM_THRESHOLD,
    }
    assert tuned["mapped_blocks_added"] == 0
    assert tuned["heap_kept_after_free_mb"] >= 15


@glibc_only
def test_a_setting_given_in_the_environment_is_left_alone():
    tuned = probe("tuned", MALLOC_MMAP_THRESHOLD_=str(64 * 1024))
    assert tuned["applied"] == {"MALLOC_TRIM_THRESHOLD_": memory.TRIM_THRESHOLD}
    assert tuned["mapped_blocks_added"] >= 1  # the operator's 64 kB threshold holds


GC_PROBE = """
import gc, json, sys
from fastapi.testclient import TestClient
from app.main import create_app

if sys.argv[1] == "unfrozen":
    from app import memory
    memory.freeze_startup_objects = lambda: 0  # as if the lifespan did not call it
with TestClient(create_app()):
    print(json.dumps({"frozen": gc.get_freeze_count(), "walked": len(gc.get_objects())}))
"""


def test_full_collections_leave_the_startup_heap_out():
    unfrozen = probe("unfrozen", GC_PROBE)
    assert unfrozen["frozen"] == 0 and unfrozen["walked"] > 20_000  # what it would walk
    served = probe("served", GC_PROBE)
    assert served["frozen"] > 20_000
    assert served["walked"] < served["frozen"] / 10


ENTRY_PROBE = """
import gc, json
import app.__main__  # what `python -m app` runs first: the collector goes off
imported = gc.isenabled()
from fastapi.testclient import TestClient
from app.main import create_app
with TestClient(create_app()):
    ready = gc.isenabled()
print(json.dumps({"imported": imported, "ready": ready, "frozen": gc.get_freeze_count()}))
"""


def test_the_collector_is_off_while_the_service_starts_and_on_once_it_is_ready():
    states = probe("entry", ENTRY_PROBE)
    assert states["imported"] is False
    assert states["ready"] is True and states["frozen"] > 20_000
