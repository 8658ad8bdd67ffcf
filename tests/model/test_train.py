"""A tiny training run end to end: the files it writes load in the service."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.inference import load_classifier
from model import augment, data, evaluate, saved_extras, train, wholes
from tests.conftest import fonts

CARD_FIELDS = {
    "name", "version", "file", "file_bytes", "sha256", "parameters", "input", "classes",
    "whole", "test", "validation_accuracy", "training", "data", "versions", "date", "plots",
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, mnist: data.Mnist) -> tuple[Path, dict]:
    fonts(training=True)  # the non-digits are drawn in them
    out = tmp_path_factory.mktemp("tiny")
    args = ["--epochs", "1", "--limit", "300", "--validation-size", "200", "--out", str(out)]
    args += ["--whole-numbers", "30"]
    extras = ["--extras", str(out / "extras.npz")]  # rendered once, saved for reuse
    assert train.main([*args, *extras, "--data", str(mnist.folder)]) == 0
    return out, json.loads((out / train.CARD_NAME).read_text())


@pytest.mark.slow
def test_writes_model_card_and_plots(tiny_run: tuple[Path, dict]) -> None:
    out, card = tiny_run
    assert set(card) >= CARD_FIELDS
    model_file = out / card["file"]
    assert model_file.is_file() and card["file_bytes"] == model_file.stat().st_size
    assert card["sha256"] == data.sha256_of(model_file)
    assert card["version"].endswith(f"-s1-{card['sha256'][:7]}")  # two runs a day differ
    assert card["data"]["sha256"] == data.CHECKSUMS
    images = card["training"]["images"]
    assert images["MNIST training split"] == 300
    assert card["training"]["training_images"] == sum(images.values())
    # World variants of (nearly) every digit, real writers in proportion, non-digits.
    variants = augment.WORLD_VARIANTS * 300
    assert 0.85 * variants <= images["world variants of MNIST training digits"] <= variants
    real = augment.REAL_VARIANTS  # variants of each of the first 75 pen and bitmap digits
    assert 70 * real <= images["pendigits training writers"] <= 75 * real
    assert 70 * real <= images["optdigits training writers"] <= 75 * real
    assert images["not a digit"] >= 0.9 * augment.NEGATIVES_PER_DIGIT * 300
    assert card["training"]["validation_split"] == 200
    assert card["training"]["split_seed"] == card["training"]["seed"] == 1  # --seed's default
    assert card["training"]["validation_images"] > 200  # with the validation extras
    assert card["training"]["fonts"] == sorted(augment.TRAINING_FONTS.values())
    calibration = card["calibration"]
    assert calibration["temperature"] > 0 and 0 <= calibration["reject_below"] <= 1
    assert card["test"]["count"] == 10000
    assert np.asarray(card["test"]["confusion_matrix"]).sum() == 10000
    assert set(card["test"]["per_class_accuracy"]) == {str(d) for d in range(10)}
    for plot in card["plots"]:
        assert (out / plot).read_bytes().startswith(b"\x89PNG")
    whole = card["whole"]  # the twelfth output, trained on 30 numbers' candidates
    assert whole["numbers"] == 30 and min(whole["candidates"].values()) > 0


@pytest.mark.slow
def test_trained_model_loads_in_the_service(tiny_run: tuple[Path, dict]) -> None:
    out, card = tiny_run
    assert (out / card["litert"]["file"]).is_file(), "the LiteRT form is shipped beside it"
    assert card["litert"]["source_sha256"] == card["sha256"]
    assert (out / card["litert_int8"]["file"]).is_file(), "and its int8 form"
    assert card["litert_int8"]["source_sha256"] == card["sha256"]
    for engine in ("litert", "litert-int8"):
        classifier = load_classifier(out / card["file"], engine=engine, cache_dir=out / "cache")
        assert classifier.engine_name == engine
        assert not (out / "cache").exists(), "the shipped LiteRT form is used, not converted"
        assert classifier.version == card["version"]
        probabilities = classifier.predict(np.zeros((3, 28, 28, 1), dtype=np.float32))
        assert probabilities.shape == (3, 10)
        assert classifier.outputs(np.zeros((3, 28, 28, 1), np.float32)).shape == (3, 12)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_the_whole_output_trains_again_in_place(
    tiny_run: tuple[Path, dict], mnist: data.Mnist, tmp_path: Path
) -> None:
    """``python -m model.wholes`` on a model that has the output: a new head in place of
    the old one, the card updated to the new file, its LiteRT forms to be made again."""
    import keras

    out, card = tiny_run
    for name in (card["file"], train.CARD_NAME):
        shutil.copy(out / name, tmp_path / name)
    model_file = tmp_path / card["file"]
    args = ["--model", str(model_file), "--count", "6", "--epochs", "1", "--seed", "3"]
    assert wholes.main([*args, "--data", str(mnist.folder)]) == 0
    again = json.loads((tmp_path / train.CARD_NAME).read_text())
    assert again["sha256"] == data.sha256_of(model_file) != card["sha256"]
    assert again["version"] == card["version"][:-7] + again["sha256"][:7]
    assert again["whole"]["numbers"] == 6 and "litert" not in again
    assert again["parameters"] == card["parameters"]  # one head, not two
    model = keras.saving.load_model(model_file, compile=False)
    assert model.output_shape == (None, 12)
    assert again["parameters"] == model.count_params()  # the saved model's


@pytest.mark.slow
def test_evaluate_recomputes_the_card(
    tiny_run: tuple[Path, dict], mnist: data.Mnist, capsys: pytest.CaptureFixture[str]
) -> None:
    out, card = tiny_run
    model_file = out / card["file"]
    assert evaluate.main(["--model", str(model_file), "--data", str(mnist.folder)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["test"]["accuracy"] == pytest.approx(card["test"]["accuracy"], abs=1e-4)
    assert report["test"]["confusion_matrix"] == card["test"]["confusion_matrix"]


def test_extras_saved_load_back_unchanged(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 256, (5, 28, 28)) / np.float32(255)  # 8-bit, as rendered
    extras = augment.Extras(levels.astype(np.float32), np.arange(5), {"world": 5})
    held = augment.Extras(levels[:2].astype(np.float32), np.array([3, 10]), {"world": 2})
    wanted = saved_extras.recipe(1, 200, 300, data.CHECKSUMS)
    saved_extras.save(tmp_path / "e.npz", extras, held, wanted, 12.5)
    loaded, loaded_held, seconds = saved_extras.load(tmp_path / "e.npz", wanted)
    np.testing.assert_array_equal(loaded.inputs, extras.inputs)
    np.testing.assert_array_equal(loaded_held.labels, held.labels)
    assert (loaded.counts, loaded_held.counts, seconds) == ({"world": 5}, {"world": 2}, 12.5)
    # Another seed for the network and its extras, the same validation digits:
    another_seed = saved_extras.recipe(2, 200, 300, data.CHECKSUMS, split_seed=1)
    with pytest.raises(saved_extras.ExtrasMismatchError, match=r"\(seed differ\)"):
        saved_extras.load(tmp_path / "e.npz", another_seed)
    # The same seed, other validation digits (their extras are rendered from them):
    another_split = saved_extras.recipe(1, 200, 300, data.CHECKSUMS, split_seed=2)
    with pytest.raises(saved_extras.ExtrasMismatchError, match=r"\(split_seed differ\)"):
        saved_extras.load(tmp_path / "e.npz", another_split)
    # Crossed 7s (model.habits), letters only as drawn are other extras; a habit not
    # taken is the recipe as before:
    for habit, value in (("crossed_sevens", 0.3), ("drawn_letters", True)):
        other = saved_extras.recipe(1, 200, 300, data.CHECKSUMS, habits={habit: value})
        with pytest.raises(saved_extras.ExtrasMismatchError, match=rf"\({habit} differ\)"):
            saved_extras.load(tmp_path / "e.npz", other)
    none = {"crossed_sevens": 0.0, "drawn_letters": False}
    assert saved_extras.recipe(1, 200, 300, data.CHECKSUMS, habits=none) == wanted


@pytest.mark.slow
def test_extras_of_another_recipe_are_one_clear_error(
    tiny_run: tuple[Path, dict], mnist: data.Mnist, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = tiny_run
    args = ["--limit", "300", "--validation-size", "200", "--render-only"]
    args += ["--seed", "2", "--split-seed", "1"]  # the tiny run's validation digits
    extras = ["--extras", str(out / "extras.npz"), "--data", str(mnist.folder)]
    assert train.main([*args, *extras]) == 2
    error = capsys.readouterr().err
    assert "rendered for another recipe (seed differ)" in error and "Traceback" not in error


@pytest.mark.parametrize("flags", [[], ["--extras", "e.npz", "--mnist-only"]])
def test_render_only_needs_somewhere_to_save(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        train.main(["--render-only", *flags])
    assert exit_.value.code == 2 and "--render-only saves the extras" in capsys.readouterr().err


def test_missing_data_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train.main(["--data", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: MNIST folder") and "Traceback" not in error


def test_metrics_on_a_known_case() -> None:
    labels = np.array([0, 1, 2, 2])
    probabilities = np.eye(10)[[0, 1, 2, 1]] * 0.9 + 0.01
    result = evaluate.metrics(probabilities, labels)
    assert result["accuracy"] == 0.75 and result["errors"] == 1
    assert result["confusion_matrix"][2][1] == 1
    assert result["per_class_accuracy"]["2"] == 0.5
    assert result["per_class_accuracy"]["3"] is None  # no 3 among the labels


def test_distillation_loss_pulls_the_student_to_the_teacher() -> None:
    """--teacher: with the student's outputs the teacher's, only the labels' share of
    the cross-entropy is left; a student unlike the teacher costs more, even where
    both are right."""
    rng = np.random.default_rng(0)
    teacher = rng.dirichlet(np.ones(11), 8).astype(np.float32)
    labels = teacher.argmax(axis=1)
    sharp = np.eye(11, dtype=np.float32)[labels] * 0.98 + 0.02 / 11  # right, but not alike

    def loss(student: np.ndarray) -> np.ndarray:
        return np.asarray(train.distillation_loss(labels, np.concatenate([student, teacher], 1)))

    cross_entropy = -np.log(teacher[np.arange(8), labels])
    np.testing.assert_allclose(loss(teacher), (1 - train.SOFT_WEIGHT) * cross_entropy, rtol=1e-4)
    assert np.all(loss(sharp) > loss(teacher))


def _run_from(
    tiny_run: tuple[Path, dict], mnist: data.Mnist, out: Path, flag: str, *more: str
) -> tuple[Path, dict, dict]:
    """A one-epoch MNIST-only run into ``out`` with ``flag`` naming the tiny run's
    network (and ``more``): that network's file, its card and the new run's card."""
    start, card = tiny_run[0] / tiny_run[1]["file"], tiny_run[1]
    args = [flag, str(start), *more, "--mnist-only", "--epochs", "1", "--limit", "300"]
    args += ["--validation-size", "200", "--out", str(out), "--data", str(mnist.folder)]
    assert train.main(args) == 0
    return start, card, json.loads((out / train.CARD_NAME).read_text())


@pytest.mark.slow
def test_a_student_records_its_teacher(
    tiny_run: tuple[Path, dict], mnist: data.Mnist, tmp_path: Path
) -> None:
    teacher, card, student = _run_from(
        tiny_run, mnist, tmp_path, "--teacher", "--arch", "digitnet_small"
    )
    assert student["training"]["teacher"] == {"file": teacher.name, "sha256": card["sha256"]}
    assert student["parameters"] < card["parameters"] / 3
    assert load_classifier(tmp_path / student["file"], engine="litert").predict(
        np.zeros((1, 28, 28, 1), dtype=np.float32)
    ).shape == (1, 10)


@pytest.mark.slow
def test_a_fine_tune_starts_from_the_network_it_names(
    tiny_run: tuple[Path, dict], mnist: data.Mnist, tmp_path: Path
) -> None:
    import keras

    from app.engines import separated

    # At a learning rate of 0 the weights it starts from are the weights it ends with.
    zero = ("--learning-rate", "0")
    start, card, tuned = _run_from(tiny_run, mnist, tmp_path, "--start-from", *zero)
    assert tuned["training"]["start_from"] == {"file": start.name, "sha256": card["sha256"]}

    def kernels(path: Path) -> list[np.ndarray]:  # of its eleven outputs, not "whole"
        model = keras.saving.load_model(path, compile=False)
        eleven = keras.Model(model.input, separated(model).outputs[0])
        return [w.numpy() for w in eleven.weights if w.path.endswith("kernel")]

    before, after = kernels(start), kernels(tmp_path / tuned["file"])
    assert len(before) == len(after) > 3
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
