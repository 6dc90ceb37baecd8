#!/usr/bin/env bash
# Makes the test suite's outside parts reachable: PostgreSQL, Redis, RabbitMQ, Debian's Chromium
# and nginx; and the benchmark's load generator, wrk.
set -uo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || python3 - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(s.connect_ex(("127.0.0.1", 5432)))
PY
}

if ! pg_up; then
  echo "==> starting PostgreSQL"
  if ls /etc/postgresql >/dev/null 2>&1; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 30); do pg_up && break; sleep 1; done
  pg_up || echo "!! PostgreSQL is still not reachable on 127.0.0.1:5432" >&2
fi

if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "==> starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null 2>&1 || true
fi

# The event broker tests and the Celery tests use fresh vhosts of the local RabbitMQ.
rabbitmq_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! rabbitmq_up; then
  if ! command -v rabbitmq-server >/dev/null && [ ! -x /usr/sbin/rabbitmq-server ]; then
    echo "==> installing Debian's rabbitmq-server"
    as_root apt-get update -qq >/dev/null 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null 2>&1 \
      || echo "!! could not install rabbitmq-server; the event broker tests will fail" >&2
  fi
  echo "==> starting RabbitMQ"
  as_root env PATH="$PATH:/usr/sbin" rabbitmq-server -detached >/dev/null 2>&1 || true
  as_root env PATH="$PATH:/usr/sbin" rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1 || true
  rabbitmq_up || echo "!! RabbitMQ is still not reachable on 127.0.0.1:5672" >&2
fi

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "==> installing Debian's chromium and chromium-driver"
  as_root apt-get update -qq >/dev/null 2>&1 || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
    || echo "!! could not install chromium; the browser test will fail" >&2
fi

# The deployment test runs the compose proxy's nginx template in front of scripts/start.sh.
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "==> installing Debian's nginx-light"
  as_root apt-get update -qq >/dev/null 2>&1 || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 \
    || echo "!! could not install nginx; the deployment proxy test will fail" >&2
fi
# The request-path benchmark (make bench) drives its servers with wrk.
if ! command -v wrk >/dev/null; then
  echo "==> installing Debian's wrk"
  as_root apt-get update -qq >/dev/null 2>&1 || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 \
    || echo "!! could not install wrk; make bench cannot measure the request path" >&2
fi
exit 0
