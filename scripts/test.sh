#!/usr/bin/env bash
# Installs what is needed and runs the whole suite: lint, then pytest on SQLite and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/ensure-services.sh

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "==> pytest (SQLite and PostgreSQL)"
export PIXELGATE_REQUIRE_POSTGRES=${PIXELGATE_REQUIRE_POSTGRES:-1}
export PIXELGATE_REQUIRE_RABBITMQ=${PIXELGATE_REQUIRE_RABBITMQ:-1}
exec .venv/bin/python -m pytest "$@"
