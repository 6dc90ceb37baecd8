#!/usr/bin/env bash
# Installs what is needed and runs the whole suite: lint, then pytest on SQLite and PostgreSQL,
# then the auth, password-reset and two-factor tests once more with the Redis cache on
# (CACHE_URL), on PostgreSQL.
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
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
.venv/bin/python -m pytest

echo "==> pytest: the auth tests with the cache on"
PIXELGATE_TEST_CACHE=1 PIXELGATE_TEST_BACKENDS=postgresql \
  .venv/bin/python -m pytest tests/api/test_auth_*.py tests/api/test_recovery_reset.py \
    tests/api/test_mfa_*.py

# The Images and Jobs suites once more with jobs on a real Celery worker (RabbitMQ) and images
# in a real S3 store (SeaweedFS).
echo "==> pytest: Images and Jobs on PROCESSING_BACKEND=celery, STORAGE_BACKEND=s3"
# Celery workers are other processes, so they share PostgreSQL (not a SQLite file).
PIXELGATE_TEST_PROCESSING=celery PIXELGATE_TEST_STORAGE=s3 PIXELGATE_TEST_BACKENDS=postgresql exec .venv/bin/python -m pytest \
  tests/api/test_images.py tests/api/test_jobs.py tests/api/test_jobs_recovery.py
