"""Which form of the network runs: float32, or int8 where the CPU makes it faster.

The model card can record two LiteRT forms of the same network: float32 (``litert``,
written by ``make convert``) and full-integer int8 (``litert_int8``: int8 weights and
activations, float input and output, calibrated on training images; written by
``python -m model.quantize --ship``). They give the same digit for 99.97 % of MNIST's
test images and keep every accuracy target (docs/performance.md). Which is faster
depends on the CPU: XNNPACK's int8 kernels are ~2.8× faster than float32 where the
CPU has an int8 dot-product instruction (x86's AVX-512 VNNI or AVX-VNNI, ARM's dot
product) and 1.4–1.6× slower where it has none. So ``INFERENCE_ENGINE=auto``, the
default, runs int8 on such a CPU when the card records an int8 form of this very model
file, and float32 otherwise; ``litert`` and ``litert-int8`` choose one outright.
"""

from __future__ import annotations

import functools
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# /proc/cpuinfo's names for an int8 dot-product instruction that XNNPACK uses.
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})
CARD_KEYS = {"litert": "litert", "litert-int8": "litert_int8"}  # engine -> model card record
ENGINES = ("auto", "litert", "litert-int8", "keras")


def int8_dot_product(cpuinfo: str) -> bool:
    """Whether /proc/cpuinfo's text names an int8 dot-product instruction (x86's
    ``flags``, ARM's ``Features``)."""
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features") and INT8_DOT_FLAGS & set(value.split()):
            return True
    return False


@functools.cache
def this_cpu_has_int8_dot_product() -> bool:
    try:
        return int8_dot_product(CPUINFO.read_text())
    except OSError:  # not Linux: float32 everywhere
        return False


def has_int8_form(card: dict, sha256: str, folder: Path) -> bool:
    """Whether the card records an int8 form made from the model file with this sha256,
    and its file lies in ``folder`` (the model's)."""
    record = card.get(CARD_KEYS["litert-int8"])
    return (
        isinstance(record, dict)
        and record.get("source_sha256") == sha256
        and (folder / str(record.get("file"))).is_file()
    )


def choose(
    requested: str, card: dict, sha256: str, folder: Path, int8_is_faster: bool | None = None
) -> str:
    """The engine to run for INFERENCE_ENGINE=``requested``: ``auto`` becomes
    ``litert-int8`` or ``litert``; any other value is kept."""
    if requested != "auto":
        return requested
    if int8_is_faster is None:
        int8_is_faster = this_cpu_has_int8_dot_product()
    return "litert-int8" if int8_is_faster and has_int8_form(card, sha256, folder) else "litert"
