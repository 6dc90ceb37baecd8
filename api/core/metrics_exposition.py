"""Serving the metrics: one scrape sums every process of this host that writes to
`PROMETHEUS_MULTIPROC_DIR` (or, without it, this process alone), plus collectors that read the
database at scrape time; only for a caller presenting `METRICS_TOKEN`.

Used by the API's `GET /metrics` and by `serve_metrics`, the small HTTP server of processes that
serve no HTTP of their own (Celery workers, the event consumer).
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, MetricsHandler
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from pydantic import SecretStr

# The definitions this module exposes: imported so that every family is declared in a scrape,
# also in a process that has not counted anything yet.
from api.core import metrics as _metrics  # noqa: F401
from api.core.config import ConfigurationError

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")

log = logging.getLogger("pixelgate.metrics")


def multiprocess_dir() -> Path | None:
    """The directory every process of this host writes its values to, or None (in memory).

    prometheus_client reads the variable itself when first imported; an empty or missing
    directory would make it write beside the working directory or fail at the first count."""
    raw = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if raw is None:
        return None
    path = Path(raw)
    if not raw or not path.is_dir():
        raise ConfigurationError(
            f"{MULTIPROC_DIR_VARIABLE} must name an existing directory (scripts/start.sh "
            "creates it), or be unset"
        )
    return path


def forget_dead_processes(directory: Path) -> None:
    """Drops the live gauges (`livesum`, ...) of processes that are gone: a killed worker
    cannot do it itself. Their counters stay, so totals never go backwards."""
    for name in os.listdir(directory):
        match = _LIVE_GAUGE_FILE.match(name)
        if match and not _alive(int(match.group(1))):
            mark_process_dead(int(match.group(1)), str(directory))


def forget_this_process() -> None:
    """At a clean exit: this process's live gauges leave the sums at once."""
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if directory:
        mark_process_dead(os.getpid(), directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class MetricsSource:
    """What one scrape returns: the processes' own metrics and the scrape-time collectors."""

    def __init__(self, collectors: Iterable[Collector] = ()) -> None:
        self._directory = multiprocess_dir()
        self._collectors = tuple(collectors)
        if self._directory is None:
            self._processes: Collector = REGISTRY
        else:
            self._processes = CollectorRegistry()
            MultiProcessCollector(self._processes, str(self._directory))

    def collect(self) -> Iterator[Metric]:
        if self._directory is not None:
            forget_dead_processes(self._directory)
        yield from self._processes.collect()
        for collector in self._collectors:
            yield from collector.collect()

    def samples(self, name: str) -> Iterator[Sample]:
        """The processes' samples called `name` (e.g. `pixelgate_http_requests_total`)."""
        for metric in self._processes.collect():
            yield from (sample for sample in metric.samples if sample.name == name)

    def total(self, name: str) -> float:
        return sum(sample.value for sample in self.samples(name))

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format the scraper asked for (Prometheus text by default)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self), content_type


def token_matches(authorization: str | None, token: SecretStr) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.get_secret_value().encode())


def serve_metrics(
    source: MetricsSource,
    token: SecretStr,
    port: int,
    host: str = "0.0.0.0",  # noqa: S104
) -> ThreadingHTTPServer:
    """Serves `GET /metrics` with the same token rule as the API, in a daemon thread, for a
    process that has no HTTP server of its own. Returns the server (`shutdown()` stops it)."""

    class Handler(MetricsHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self._plain(404, b"Not Found\n")
            elif not token_matches(self.headers.get("Authorization"), token):
                self._plain(401, b"Not authenticated\n", {"WWW-Authenticate": "Bearer"})
            else:
                body, content_type = source.render(self.headers.get("Accept"))
                self._plain(200, body, {"Content-Type": content_type})

        def _plain(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in {"Content-Type": "text/plain", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    log.info("metrics served on port %s", server.server_address[1])
    return server
