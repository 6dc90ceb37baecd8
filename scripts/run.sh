#!/usr/bin/env bash
# Installs what is needed, migrates the embedded SQLite database and runs API + dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

API_PORT=${API_PORT:-8000}
DASHBOARD_PORT=${DASHBOARD_PORT:-8501}
export API_BASE_URL=${API_BASE_URL:-http://localhost:${API_PORT}}

mkdir -p data
.venv/bin/alembic upgrade head

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

.venv/bin/uvicorn api.main:app --host 127.0.0.1 --port "$API_PORT" &
pids+=($!)
.venv/bin/streamlit run frontend/app.py --server.address 127.0.0.1 --server.port "$DASHBOARD_PORT" \
  --server.headless true --browser.gatherUsageStats false &
pids+=($!)

echo
echo "  API:        http://localhost:${API_PORT}   (Swagger: http://localhost:${API_PORT}/docs)"
echo "  Dashboard:  http://localhost:${DASHBOARD_PORT}"
echo "  Ctrl+C stops both."
echo
wait -n "${pids[@]}"
