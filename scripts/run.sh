#!/usr/bin/env bash
# Installs what is needed, then runs the API (through scripts/start.sh, which migrates the
# embedded SQLite database) and the dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

API_PORT=${API_PORT:-8000}
DASHBOARD_PORT=${DASHBOARD_PORT:-8501}
export API_BASE_URL=${API_BASE_URL:-http://localhost:${API_PORT}}

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# The same start-up path as the container: wait for the database, migrate, admin, serve.
API_HOST=127.0.0.1 API_PORT="$API_PORT" scripts/start.sh &
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
