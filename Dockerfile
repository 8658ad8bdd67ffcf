# digits: the service and its shipped model, one uvicorn worker per container.
#
#   docker build -t digits:1.0.0 .
#   docker run --rm -p 8000:8000 digits:1.0.0
#
# tests/deploy/test_image_environment.py reads this file and builds the same
# environment without Docker (same requirements, same commands, same ENV and CMD),
# then serves a prediction from it; keep it parseable: one instruction per line or
# backslash continuations, exec-form CMD and HEALTHCHECK.

ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

# ---- builder: the virtual environment, and the shipped model checked -------------------
FROM ${PYTHON_IMAGE} AS builder

ENV VIRTUAL_ENV=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
ENV PATH="$VIRTUAL_ENV/bin:$PATH"
WORKDIR /srv/digits
# The setuptools a Python 3.11 venv comes with is not needed at run time.
RUN python -m venv "$VIRTUAL_ENV" \
    && pip uninstall --quiet --yes setuptools

# Dependencies first, in their own layer: rebuilt only when the lock changes. What
# serving needs only: no TensorFlow (the model ships converted to LiteRT).
COPY deploy/requirements.txt deploy/requirements.txt
RUN pip install --no-cache-dir --no-deps --requirement deploy/requirements.txt \
    && pip check

COPY app/ app/
COPY model/artifacts/digitnet.keras model/artifacts/digitnet.tflite model/artifacts/digitnet.int8.tflite model/artifacts/model_card.json model/artifacts/pairnet.tflite model/artifacts/pairnet_card.json model/artifacts/
# Load the model as the service will: each shipped LiteRT file (float32 and int8) must be
# the one the card records and give the outputs Keras recorded, and the pair reader /read
# uses (app/pairs.py) the one its card records, or the build stops here.
RUN python -m app.inference check model/artifacts/digitnet.keras \
    && python -m app.pairs model/artifacts \
    && python -m compileall -q app

# ---- runtime ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=1.0.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="digits" \
      org.opencontainers.image.description="Reads handwritten digits: a Keras CNN trained on MNIST behind FastAPI." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-trixie"

RUN groupadd --system --gid 10001 digits \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin digits

ENV VIRTUAL_ENV=/opt/venv
ENV PATH="$VIRTUAL_ENV/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WORKERS=1

# Owned by root, read-only to the service's user.
COPY --from=builder /opt/venv /opt/venv
WORKDIR /srv/digits
COPY --from=builder /srv/digits/app app/
COPY --from=builder /srv/digits/model model/

USER 10001:10001
EXPOSE 8000
# No curl in the image: the standard library asks /health/ready (503 until the model is loaded).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('PORT', '8000'), timeout=2)"]
# uvicorn stops on SIGTERM: it stops accepting, lets requests in flight finish
# (up to 20 s), then exits 0.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "app"]
