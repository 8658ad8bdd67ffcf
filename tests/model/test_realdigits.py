"""The real-handwriting reader: formats, checksums, and the shared files."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from model import realdigits, world

PEN_FILE = """.INCLUDE dene.doc
.LEXICON "0" "1" "2" "3" "4" "5" "6" "7" "8" "9"

.SEGMENT DIGIT    0 ? "7"
.COMMENT 8 12  224
.PEN_DOWN
 100  400
 300  400
 150  100
.PEN_UP
.SEGMENT DIGIT    1 ? "4"
.PEN_DOWN
 100  400
 100  250
 300  250
.PEN_UP
.PEN_DOWN
 250  400
 250  100
.PEN_UP
"""


def gz(path: Path, text: str) -> Path:
    with gzip.open(path, "wt", encoding="ascii") as stream:
        stream.write(text)
    return path


def test_pendigits_strokes_are_read_with_y_pointing_down(tmp_path: Path) -> None:
    digits = realdigits.read_pendigits(gz(tmp_path / "pen.gz", PEN_FILE))
    assert [digit.label for digit in digits] == [7, 4]
    assert [len(digit.strokes) for digit in digits] == [1, 2]
    seven = digits[0].strokes[0]
    # The tablet's y points up: the 7's top bar (y = 400) is near the screen's top.
    np.testing.assert_array_equal(seven[0], [100, 100])
    np.testing.assert_array_equal(seven[-1], [150, 400])


def test_pendigits_writers_come_from_the_comment(tmp_path: Path) -> None:
    digits = realdigits.read_pendigits(gz(tmp_path / "pen.gz", PEN_FILE))
    assert [digit.writer for digit in digits] == [12, None]  # the 4 has no comment


def test_pendigits_bad_point_is_a_clear_error(tmp_path: Path) -> None:
    broken = PEN_FILE.replace(" 300  400", " 300  x")
    with pytest.raises(realdigits.RealDigitsError, match=r"pen\.gz:8: not a point"):
        realdigits.read_pendigits(gz(tmp_path / "pen.gz", broken))


def test_optdigits_bitmaps_and_labels(tmp_path: Path) -> None:
    one = ["0" * 15 + "11" + "0" * 15] * 32
    eight = ["1" * 32] + ["0" * 32] * 31
    text = "header line\n" * 21 + "\n".join([*one, " 1", *eight, " 8"]) + "\n"
    bitmaps = realdigits.read_optdigits(gz(tmp_path / "opt.gz", text))
    assert bitmaps.images.shape == (2, 32, 32) and bitmaps.labels.tolist() == [1, 8]
    assert bitmaps.images[0, :, 15:17].all() and bitmaps.images[0].sum() == 64
    assert bitmaps.images[1, 0].all() and bitmaps.images[1, 1:].sum() == 0


def test_pen_writers_counts_each_writers_misreadings(tmp_path: Path) -> None:
    """``model.world --pen-writers``: per writer and for all, what was read, refused
    and misread, from the readings the service's reader gives; and for all but the
    4s recorded without their stem."""
    seven, four = realdigits.read_pendigits(gz(tmp_path / "pen.gz", PEN_FILE))
    stemless = replace(four, strokes=four.strokes[:1], writer=realdigits.STEMLESS_WRITER)
    pen = [seven, replace(seven, writer=3), replace(four, writer=3), replace(four, writer=3)]
    # Read writer by writer: writer 3's 7 as 1, a 4 refused, a 4 right; writer 12's 7
    # right; the stemless 4 as 5.
    answers = iter([1, None, 4, 7, 5])

    def read(contents: list[bytes]) -> list[world.Reading]:
        readings = []
        for content in contents:
            assert content.startswith(b"\x89PNG")
            digit = next(answers)
            if digit is None:
                readings.append(world.Reading(None, 0.0, True))
            else:
                readings.append(world.Reading(np.eye(10)[digit], 1.0, False))
        return readings

    report = world.pen_writers([*pen, stemless], read)
    assert list(report) == [
        "writer 3", "writer 12", "writer 13", "all writers", "all, stemless 4s left out"
    ]  # fmt: skip
    assert report["writer 12"] == {"count": 1, "accuracy": 1.0, "refused": 0.0, "misread": {}}
    assert report["writer 3"] == {
        "count": 3, "accuracy": 0.3333, "refused": 0.3333, "misread": {"7>1": 1}
    }  # fmt: skip
    assert report["all writers"]["accuracy"] == 0.4
    assert report["all writers"]["misread"] == {"7>1": 1, "4>5": 1}
    assert report["all, stemless 4s left out"] == {
        "count": 4, "accuracy": 0.5, "refused": 0.25, "misread": {"7>1": 1}
    }  # fmt: skip


def test_only_the_stemless_writers_one_stroke_4s_are_left_out(tmp_path: Path) -> None:
    seven, four = realdigits.read_pendigits(gz(tmp_path / "pen.gz", PEN_FILE))
    writer = realdigits.STEMLESS_WRITER
    assert realdigits.stemless(replace(four, strokes=four.strokes[:1], writer=writer))
    assert not realdigits.stemless(replace(four, writer=writer))  # with its stem
    assert not realdigits.stemless(replace(four, strokes=four.strokes[:1], writer=writer - 1))
    assert not realdigits.stemless(replace(seven, writer=writer))  # one stroke, not a 4


def test_drawing_fills_the_square_as_asked(tmp_path: Path) -> None:
    seven = realdigits.read_pendigits(gz(tmp_path / "pen.gz", PEN_FILE))[0]
    coverage = realdigits.draw(seven, side=100, pen=6, fill=0.6)
    rows = np.flatnonzero(coverage.max(axis=1) > 0.5)
    assert coverage.max() == pytest.approx(1.0) and coverage.min() == 0.0
    assert 58 <= rows[-1] - rows[0] + 1 <= 68  # 60 px tall plus the pen's round ends


def test_a_corrupt_file_is_named(tmp_path: Path) -> None:
    for name in realdigits.CHECKSUMS:
        (tmp_path / name).write_bytes(b"not the file")
    with pytest.raises(realdigits.RealDigitsError, match=r"pendigits-orig\.tra\.gz is corrupt"):
        realdigits.locate(tmp_path)


def test_missing_files_say_where_to_point(tmp_path: Path) -> None:
    with pytest.raises(realdigits.RealDigitsError, match="REALDIGITS_DIR"):
        realdigits.locate(tmp_path)


def test_the_shared_sets(real_digits: realdigits.RealDigits) -> None:
    assert (len(real_digits.pen_train), len(real_digits.pen_test)) == (7494, 3498)
    assert len(real_digits.opt_train.labels) == 1934
    assert len(real_digits.opt_validation.labels) == 946
    assert sorted({digit.label for digit in real_digits.pen_test}) == list(range(10))
    # 25 of the test writer's 26 4s lost their stem; no other digit is left out.
    kept = {id(digit) for digit in real_digits.pen_test_legible}
    left_out = [digit for digit in real_digits.pen_test if id(digit) not in kept]
    assert len(left_out) == 25 and {(d.writer, d.label) for d in left_out} == {(13, 4)}
    assert set(np.unique(real_digits.opt_train.images)) == {0, 1}
    assert all(1 <= len(digit.strokes) <= 10 for digit in real_digits.pen_train)
