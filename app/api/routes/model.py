"""GET /model: what is being served, and how good it is."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import PredictorDep
from app.api.errors import NOT_READY
from app.api.schemas import ModelInfo
from app.calibration import NUM_DIGITS
from app.inference import INPUT_SHAPE

router = APIRouter(tags=["model"])


@router.get("/model", summary="The served model and its model card", responses=NOT_READY)
async def model_info(predictor: PredictorDep) -> ModelInfo:
    """Name, version, input contract, classes, test accuracy and the full model card;
    the card of /read's pair reader."""
    classifier = predictor.classifier
    card = classifier.card
    return ModelInfo(
        name=classifier.name,
        version=classifier.version,
        sha256=classifier.sha256,
        engine=classifier.engine_name,
        input_shape=list(INPUT_SHAPE),
        classes=list(range(NUM_DIGITS)),
        test_accuracy=card.get("test", {}).get("accuracy"),
        card=card,
        pair_reader=None if predictor.pair_reader is None else predictor.pair_reader.card,
    )
