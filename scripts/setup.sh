#!/usr/bin/env bash
# Sets up igait-pipeline on a fresh Debian machine: system packages, a Python 3.11 virtualenv with the pinned
# dependencies, the Node packages of the Firestore emulator used by tests, the sample video, and $DAGSTER_HOME.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v ffmpeg >/dev/null || ! command -v /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  # ffmpeg: stages 1 and 3. postgresql: the production-instance test starts a real server on localhost.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg postgresql >/dev/null
fi
# The tests take OpenCV's vtest.avi out of the Debian package opencv-doc (`apt-get download`, nothing installed;
# igait_pipeline.sample.fetch_vtest): apt must know the package.
if ! apt-cache show opencv-doc >/dev/null 2>&1; then
  $SUDO apt-get update -qq
fi

PY=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check --upgrade pip >/dev/null
# torch 2.13.0 (CPU) is pinned in pyproject.toml; installing it first keeps pip from resolving a CUDA build.
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

if [ -f tools/firestore-emulator/package.json ] && command -v npm >/dev/null; then
  (cd tools/firestore-emulator && npm ci --silent --no-audit --no-fund)
fi

.venv/bin/igait fetch-sample >/dev/null
mkdir -p .dagster_home
cp dagster.yaml .dagster_home/dagster.yaml
# Create the instance's SQLite storage now: `dagster dev` starts the webserver and the daemon at the same moment,
# and two processes opening a fresh instance race to create its tables ("table alembic_version already exists",
# seen by bench/load.py). On an existing instance this only brings the schema up to date.
DAGSTER_HOME="$PWD/.dagster_home" .venv/bin/dagster instance migrate >/dev/null
echo "igait-pipeline is set up. Dagster home: $PWD/.dagster_home"
