# syntax=docker/dockerfile:1
# The iGait code location image: code server, run worker and step worker all run from it.
#
#   docker build -t igait-pipeline:$(git rev-parse --short HEAD) .
#
# Checked by igait_pipeline_tests/deploy/test_dockerfile.py (no Docker engine there): Python dependencies come from
# pyproject.toml's pins, torch from the CPU index, ffmpeg from Debian, a non-root user, and the gRPC command and
# port that helm/values.yaml expects.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

########## build: a virtualenv with the pinned dependencies and the package ##########
FROM ${PYTHON_IMAGE} AS build
# The CPU build of torch (the default index would bring several GB of CUDA wheels). For a CUDA build, pass e.g.
# --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0
# Every [project] dependency exactly as pyproject.toml pins it (torch==2.13.0 is already met by the CPU build).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install -r requirements.txt
COPY igait_pipeline ./igait_pipeline
RUN pip install --no-deps . && pip check

########## runtime ##########
FROM ${PYTHON_IMAGE} AS runtime
# ffmpeg for the video stages; tini as PID 1 (reaps ffmpeg children, forwards SIGTERM); GL/EGL/GLib for
# OpenCV and MediaPipe.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg tini libgl1 libegl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 igait \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/igait igait \
    && mkdir -p /opt/dagster/dagster_home \
    && chown -R 10001:10001 /opt/dagster
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /home/igait
USER 10001:10001
EXPOSE 3030
# The Helm chart and the K8sRunLauncher pass their own commands as container args (`dagster code-server start
# ...`, `dagster api execute_run ...`), so the entrypoint is only the init and the default CMD is the code server.
ENTRYPOINT ["tini", "--"]
CMD ["dagster", "code-server", "start", "-m", "igait_pipeline.definitions", "-h", "0.0.0.0", "-p", "3030"]
