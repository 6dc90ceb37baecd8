#!/usr/bin/env bash
# The start of a Celery worker host (the compose service `worker`): an empty metrics directory
# that its main process and every pool process write to, then `celery -A api.worker worker`
# with the arguments given, replacing this shell so signals reach celery directly.
#
# Knobs, from the environment:
#   PROMETHEUS_MULTIPROC_DIR  where the processes write their metrics; the worker's metrics
#                          server (WORKER_METRICS_PORT, with METRICS_TOKEN) sums them. Default:
#                          ${TMPDIR:-/tmp}/pixelgate-worker-metrics-$WORKER_METRICS_PORT; emptied
#                          here, so it must belong to this worker alone
#   PYTHON                 the interpreter (default: .venv's when there is one, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
METRICS_DIR=${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/pixelgate-worker-metrics-${WORKER_METRICS_PORT:-9100}}

# Values of a previous run would be summed into this one's.
mkdir -p "$METRICS_DIR"
find "$METRICS_DIR" -mindepth 1 -maxdepth 1 -name '*.db' -delete
export PROMETHEUS_MULTIPROC_DIR=$METRICS_DIR

exec "$PYTHON" -m celery -A api.worker worker "$@"
