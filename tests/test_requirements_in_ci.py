"""A test whose data or tool is missing skips on a developer's machine and fails in
CI (``require`` in tests/conftest.py); corrupt data fails everywhere.

Each case runs one real test of the suite in an inner pytest session, with the
environment arranged so that what it needs is missing (or corrupt).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from model import augment, data
from tests.conftest import PROJECT_ROOT, mnist_files_present, require

MNIST_TEST = "tests/model/test_data.py::test_real_mnist_matches_its_documented_shape"
BROWSER_TEST = "tests/browser/test_docs.py::test_docs_list_the_operations"
WRK_TEST = "tests/bench/test_harness.py::test_quick_run_against_the_noop_app"
COMPOSE_TEST = "tests/deploy/test_compose.py::test_docker_compose_accepts_it"
TRAIN_TEST = "tests/model/test_train.py::test_writes_model_card_and_plots"


def run_one(pytester: pytest.Pytester, test: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(
        str(PROJECT_ROOT / test), "-q", "-rsfE", "-p", "no:cacheprovider"
    )


def no_programs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))


MISSING: dict[str, tuple[str, Callable, str]] = {
    "mnist": (
        MNIST_TEST,
        lambda m, tmp: m.setenv("MNIST_DIR", str(tmp)),
        "MNIST not found",
    ),
    "chromium": (
        BROWSER_TEST,
        lambda m, tmp: m.setenv("CHROMIUM", str(tmp / "chromium")),
        "chromium is not installed",
    ),
    "wrk": (WRK_TEST, no_programs, "wrk not installed"),
    "docker-compose": (COMPOSE_TEST, no_programs, "docker-compose"),
    "fonts": (
        TRAIN_TEST,
        lambda m, tmp: m.setenv("FONTS_DIR", str(tmp)),
        "fonts not found*apt-get install fonts-dejavu-core",
    ),
}


@pytest.mark.parametrize("what", MISSING)
def test_missing_is_a_skip_here_and_a_failure_in_ci(
    what: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    test, arrange, reason = MISSING[what]
    arrange(monkeypatch, tmp_path)
    monkeypatch.delenv("CI", raising=False)
    here = run_one(pytester, test)
    here.assert_outcomes(skipped=1)
    here.stdout.fnmatch_lines([f"*{reason}*"])
    monkeypatch.setenv("CI", "true")
    in_ci = run_one(pytester, test)
    outcomes = in_ci.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 1, outcomes
    assert "skipped" not in outcomes
    in_ci.stdout.fnmatch_lines([f"*{reason}*CI=true*"])


def test_a_corrupt_mnist_file_fails_even_off_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    require(mnist_files_present(), "MNIST not found: set MNIST_DIR or fill ../shared/data/mnist")
    source = data.locate(download=False)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in data.CHECKSUMS:
        (folder / name).symlink_to(source / name)
    victim = folder / "t10k-labels-idx1-ubyte.gz"
    corrupted = bytearray(victim.read_bytes())
    corrupted[len(corrupted) // 2] ^= 0xFF
    victim.unlink()
    victim.write_bytes(bytes(corrupted))
    monkeypatch.setenv("MNIST_DIR", str(folder))
    monkeypatch.delenv("CI", raising=False)
    result = run_one(pytester, MNIST_TEST)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 1, outcomes
    result.stdout.fnmatch_lines(["*t10k-labels-idx1-ubyte.gz is corrupt*"])


def test_ci_installs_every_font_family_the_non_digits_are_drawn_in() -> None:
    script = (PROJECT_ROOT / ".ci" / "run").read_text()
    packages = {**augment.TRAINING_FONTS, **augment.MEASURING_FONTS}.values()
    assert [package for package in packages if package not in script] == []
