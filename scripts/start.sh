#!/usr/bin/env bash
# The one start-up path of the API, run by the container (CMD) and locally (make run, the
# deployment smoke test): wait for the database (bounded), migrate, bootstrap the first admin,
# then replace this shell with uvicorn so signals reach the server directly.
#
# Settings of the app come from the environment and `.env` (api/core/config.py). This script's
# own knobs come from the environment only:
#   API_HOST (127.0.0.1)   API_PORT (8000)   API_WORKERS (1)   DB_WAIT_TIMEOUT (60 seconds)
#   FORWARDED_ALLOW_IPS    the same variable the app reads: uvicorn believes X-Forwarded-For and
#                          X-Forwarded-Proto only from these proxies (empty: from nobody)
#   PROMETHEUS_MULTIPROC_DIR  where every worker writes its metrics, so that /metrics sums them
#                          (default: ${TMPDIR:-/tmp}/pixelgate-metrics-$API_PORT); emptied here,
#                          so it must belong to this server alone
#   PYTHON                 the interpreter (default: .venv's when there is one, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
API_HOST=${API_HOST:-127.0.0.1}
API_PORT=${API_PORT:-8000}
API_WORKERS=${API_WORKERS:-1}
DB_WAIT_TIMEOUT=${DB_WAIT_TIMEOUT:-60}
FORWARDED_ALLOW_IPS=${FORWARDED_ALLOW_IPS:-}
METRICS_DIR=${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/pixelgate-metrics-${API_PORT}}
# For uvicorn's workers only (below): the steps before are processes of their own.
unset PROMETHEUS_MULTIPROC_DIR

echo "==> waiting for the database (at most ${DB_WAIT_TIMEOUT}s)"
"$PYTHON" -m api.cli wait-for-db --timeout "$DB_WAIT_TIMEOUT"

echo "==> applying migrations"
"$PYTHON" -m alembic upgrade head

echo "==> bootstrapping the first admin"
"$PYTHON" -m api.cli create-admin

# uvicorn's own default trusts 127.0.0.1 when FORWARDED_ALLOW_IPS is unset; the app trusts
# nobody then. Say it explicitly so both always agree.
if [ -n "$FORWARDED_ALLOW_IPS" ]; then
  proxy_args=(--proxy-headers --forwarded-allow-ips "$FORWARDED_ALLOW_IPS")
else
  proxy_args=(--no-proxy-headers)
fi

# Every worker writes its metrics there and /metrics sums them. Values of a previous run would
# be summed into this one's, so it starts empty.
mkdir -p "$METRICS_DIR"
find "$METRICS_DIR" -mindepth 1 -maxdepth 1 -name '*.db' -delete
export PROMETHEUS_MULTIPROC_DIR=$METRICS_DIR

echo "==> serving on ${API_HOST}:${API_PORT} with ${API_WORKERS} worker(s)"
# The app writes its own access log (with request ids), so uvicorn's is off.
exec "$PYTHON" -m uvicorn api.main:app \
  --host "$API_HOST" --port "$API_PORT" --workers "$API_WORKERS" \
  "${proxy_args[@]}" --no-access-log --no-server-header
