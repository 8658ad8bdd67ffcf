"""Not a digit: refused with a reason; calibrated confidence; a client's own threshold."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFont

from app import calibration, preprocessing, rejection
from app.preprocessing import preprocess
from tests.app.test_handwriting import STROKES, as_upload, pen_digit
from tests.conftest import png_bytes, sheared


def printed(text: str, size: int = 140, font_size: int = 100, slant: float = 0.0) -> bytes:
    """Dark text on white in Pillow's own font (no system fonts needed), leaning by
    ``slant`` (``sheared``)."""
    image = Image.new("L", (size * len(text), size), 255)
    font = ImageFont.load_default(size=font_size)
    ImageDraw.Draw(image).text((image.width / 2, size / 2), text, fill=0, font=font, anchor="mm")
    return png_bytes(sheared(image, slant) if slant else image)


def coins_photo(seed: int = 0) -> bytes:
    """A colour photo of shiny coins on a wooden table, JPEG."""
    rng = np.random.default_rng(seed)
    height, width = 480, 640
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    grain = np.sin(columns / 9 + np.sin(rows / 40) * 3) * 12
    table = np.stack([150 + grain, 100 + grain * 0.8, 60 + grain * 0.5], axis=-1)
    for _ in range(6):
        y, x, radius = rng.uniform(80, 400), rng.uniform(80, 560), rng.uniform(40, 70)
        distance = np.hypot(rows - y, columns - x) / radius
        inside = (distance < 1)[..., None]
        shine = (1.2 - distance)[..., None] * np.array([200, 170, 90])
        table = np.where(inside, np.clip(shine + 40, 0, 255), table)
    pixels = np.clip(table + rng.normal(0, 4, table.shape), 0, 255).astype(np.uint8)
    return png_bytes(Image.fromarray(pixels, "RGB"), "JPEG", quality=85)


def page_of_text() -> bytes:
    image = Image.new("L", (600, 400), 245)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=16)
    words = "the quick brown fox jumps over the lazy dog and reads every line of it"
    for line in range(18):
        draw.text((20, 15 + line * 21), f"{words[line:]} {words[:line]}", fill=20, font=font)
    return png_bytes(image)


def several_digits() -> bytes:
    parts = [pen_digit(STROKES[digit], size=120, width=12) for digit in (4, 7, 0)]
    return as_upload(np.concatenate([np.pad(part, 10) for part in parts], axis=1))


def post(client: TestClient, content: bytes, **params) -> dict:
    files = {"file": ("upload.png", content, "image/png")}
    return client.post("/predict", files=files, params=params)


@pytest.mark.parametrize("letter", ["K", "W", "#", "%", "M"])
def test_a_printed_letter_or_symbol_is_refused_with_a_reason(
    client: TestClient, letter: str
) -> None:
    response = post(client, printed(letter))
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("No digit found: ")


def test_a_refusal_looks_at_the_ink_the_reading_found(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reason comes from the ink map found while reading the upload, not found
    again: a refused image costs one pass over its pixels, not two."""
    sizes: list[tuple[int, ...]] = []
    ink_strength = preprocessing.ink_strength

    def counted(grey: np.ndarray) -> preprocessing.InkStrength:
        sizes.append(grey.shape)
        return ink_strength(grey)

    monkeypatch.setattr(preprocessing, "ink_strength", counted)
    response = post(client, printed("K"))
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"No digit found: {rejection.SYMBOL}"
    assert sizes == [(140, 140)]


def test_a_photo_of_objects_is_refused_as_a_photo(client: TestClient) -> None:
    response = post(client, coins_photo())
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"No digit found: {rejection.PHOTO}"


def test_a_page_of_text_is_refused_as_text(client: TestClient) -> None:
    response = post(client, page_of_text())
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"No digit found: {rejection.TEXT}"


def test_several_digits_point_to_read(client: TestClient) -> None:
    response = post(client, several_digits())
    assert response.status_code == 422, response.text
    assert "POST /read" in response.json()["detail"]


def test_a_client_can_keep_its_own_threshold(client: TestClient) -> None:
    threshold = client.get("/model").json()["card"]["calibration"]["reject_below"]
    letter = post(client, printed("K"), reject="false")
    assert letter.status_code == 200
    assert letter.json()["digit_score"] < threshold
    digit = post(client, as_upload(pen_digit(STROKES[7])), reject="false").json()
    assert digit["digit"] == 7 and digit["digit_score"] >= threshold


def test_a_batch_refuses_each_non_digit_in_its_place(client: TestClient) -> None:
    files = [
        ("files", ("seven.png", as_upload(pen_digit(STROKES[7])), "image/png")),
        ("files", ("k.png", printed("K"), "image/png")),
    ]
    items = client.post("/predict/batch", files=files).json()["predictions"]
    assert [item["filename"] for item in items] == ["seven.png", "k.png"]
    assert items[0]["prediction"]["digit"] == 7
    assert items[1]["error"]["status"] == 422
    assert items[1]["error"]["detail"].startswith("No digit found: ")


def test_reasons_from_the_ink() -> None:
    one_shape = np.zeros((40, 40), np.float32)
    one_shape[5:35, 18:22] = 1
    assert rejection.shape_reason(rejection.marks_of(one_shape)) == rejection.SYMBOL
    side_by_side = np.zeros((40, 90), np.float32)
    side_by_side[5:35, 10:14] = side_by_side[5:35, 40:44] = side_by_side[5:35, 70:74] = 1
    assert rejection.shape_reason(rejection.marks_of(side_by_side)) == rejection.SEVERAL
    lines = np.zeros((100, 200), np.float32)
    for row in range(5, 95, 15):
        for column in range(5, 195, 12):
            lines[row : row + 8, column : column + 6] = 1
    assert rejection.shape_reason(rejection.marks_of(lines)) == rejection.TEXT


def test_temperature_scaling_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 10))
    true_probabilities = np.exp(logits / 2.5) / np.exp(logits / 2.5).sum(1, keepdims=True)
    labels = np.array([rng.choice(10, p=p) for p in true_probabilities])
    outputs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # over-confident by 2.5×
    temperature = calibration.fit_temperature(outputs.astype(np.float32), labels)
    assert temperature == pytest.approx(2.5, rel=0.1)
    before = calibration.expected_calibration_error(outputs, labels)
    after = calibration.expected_calibration_error(
        calibration.digit_probabilities(outputs, temperature), labels
    )
    assert after < 0.02 < before


def test_the_eleventh_output_does_not_change_the_digit_probabilities() -> None:
    digits = np.array([[0.5, 0.2, 0.1, 0.05, 0.05, 0.04, 0.03, 0.01, 0.01, 0.01]])
    with_not_a_digit = np.concatenate([digits * 0.4, [[0.6]]], axis=1)
    np.testing.assert_allclose(calibration.digit_probabilities(with_not_a_digit), digits, rtol=1e-5)
    assert calibration.digit_score(with_not_a_digit)[0] == pytest.approx(0.4)


def test_a_candidate_scores_its_digit_score_times_its_whole_output_weighted() -> None:
    """/read's candidates (``calibration.candidate_score``): the digit score alone from
    eleven outputs; with the twelfth, "whole", times it to the power WHOLE_WEIGHT."""
    digits = np.array([[0.5, 0.2, 0.1, 0.05, 0.05, 0.04, 0.03, 0.01, 0.01, 0.01]])
    eleven = np.concatenate([digits * 0.8, [[0.2]]], axis=1).astype(np.float32)
    assert calibration.candidate_score(eleven)[0] == pytest.approx(0.8)
    for whole, expected in ((1.0, 0.8), (0.25, 0.8 * 0.25**calibration.WHOLE_WEIGHT)):
        twelve = np.concatenate([eleven, [[whole]]], axis=1)
        assert calibration.candidate_score(twelve)[0] == pytest.approx(expected, rel=1e-5)
        assert calibration.digit_score(twelve)[0] == pytest.approx(0.8)  # /predict's: as ever
        np.testing.assert_allclose(calibration.digit_probabilities(twelve), digits, rtol=1e-5)
    assert 0 < calibration.WHOLE_WEIGHT < 1


@pytest.mark.parametrize("temperature", [1 / 8, 0.7, 1.0, 1.144, 3.0, 8.0])
def test_digit_probabilities_are_the_softmax_of_the_scaled_log_probabilities(
    temperature: float,
) -> None:
    rng = np.random.default_rng(7)
    outputs = rng.dirichlet(np.full(11, 0.05), size=20_000).astype(np.float32)
    outputs[:5, :10] = 0.0  # sure it is not a digit: the digits' floor, TINY, decides
    logits = calibration.digit_logits(outputs) / temperature
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    found = calibration.digit_probabilities(outputs, temperature)
    assert np.isfinite(found).all()
    np.testing.assert_array_max_ulp(found, softmax, maxulp=1)
    assert (found.argmax(axis=1) == softmax.argmax(axis=1)).all()


def test_expected_calibration_error_on_a_known_case() -> None:
    # Four answers at confidence 0.8, three right: |0.75 - 0.8| = 0.05.
    probabilities = np.full((4, 10), 0.2 / 9)
    probabilities[:, 0] = 0.8
    assert calibration.expected_calibration_error(probabilities, np.array([0, 0, 0, 1])) == (
        pytest.approx(0.05)
    )


@pytest.mark.slow
def test_confidence_is_calibrated_on_held_out_digits(client: TestClient, mnist) -> None:
    """On MNIST test digits (never used to fit anything), ECE is at most 1 %."""
    sample = np.random.default_rng(3).permutation(10_000)[:3000]
    inputs = mnist.test.images[sample].astype(np.float32)[..., None] / 255.0
    classifier = client.app.state.predictor.classifier
    probabilities = classifier.predict(inputs)
    labels = mnist.test.labels[sample]
    assert calibration.expected_calibration_error(probabilities, labels) <= 0.01


def test_a_real_digit_is_not_refused(client: TestClient) -> None:
    for digit in STROKES:
        response = post(client, as_upload(pen_digit(STROKES[digit])))
        assert response.status_code == 200 and response.json()["digit"] == digit


def test_preprocessing_alone_still_reads_letters() -> None:
    """Refusing is the network's decision, made after preprocessing."""
    assert preprocess(printed("K")).max() > 0.9
