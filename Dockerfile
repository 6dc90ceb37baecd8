# syntax=docker/dockerfile:1
# Two images from one file, sharing the dependency layer (docker-compose.yml builds both):
#   docker build --target api .        the API, started by scripts/start.sh
#   docker build --target frontend .   the Streamlit dashboard
# No secret is baked in: every setting arrives at run time from the environment (.env).

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# Dependencies first, in their own layer: rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install -r requirements.txt
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
       --shell /usr/sbin/nologin app
COPY deploy/healthcheck.py deploy/healthcheck.py

FROM base AS api
COPY alembic.ini ./
COPY alembic/ alembic/
COPY api/ api/
COPY scripts/start.sh scripts/start.sh
COPY scripts/start-worker.sh scripts/start-worker.sh
# The images volume is mounted here; a new named volume takes this directory's owner.
RUN mkdir -p /data/images && chown app:app /data/images
ENV API_HOST=0.0.0.0 \
    API_PORT=8000 \
    API_WORKERS=2 \
    STORAGE_DIR=/data/images
USER app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD python deploy/healthcheck.py "http://127.0.0.1:${API_PORT}/health"
CMD ["scripts/start.sh"]

FROM base AS frontend
COPY frontend/ frontend/
USER app
EXPOSE 8501
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD python deploy/healthcheck.py "http://127.0.0.1:8501/_stcore/health"
CMD ["streamlit", "run", "frontend/app.py", \
     "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true", \
     "--browser.gatherUsageStats=false"]
