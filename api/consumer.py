"""`python -m api.consumer`: runs the event handlers for events published to RabbitMQ.

Needs `EVENTS_BROKER_URL` (with it empty the API handles events itself and there is nothing
to consume) and the API's database and storage settings. Any number may run: the broker
shares the queue's messages out. SIGTERM or SIGINT stops it after the message in hand.
`python -m api.consumer --check` is the container healthcheck: it exits 0 while a consumer
in this container consumes (its loop beat within the last 30 s).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from api.core.config import load_settings
from api.core.db import Database
from api.core.logging import configure_logging
from api.events.consumer import EventConsumer, heartbeat_is_fresh
from api.events.context import HandlerContext
from api.services.event_handlers import build_handler_registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.consumer", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="exit 0 if a running consumer's loop is alive"
    )
    arguments = parser.parse_args(argv)
    settings = load_settings()
    if arguments.check:
        return 0 if heartbeat_is_fresh(settings.events_consumer_heartbeat_file) else 1
    if not settings.events_broker_enabled:
        print(
            "EVENTS_BROKER_URL is empty: the API handles events itself, nothing to consume",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_level)
    database = Database(settings.database_url)
    context = HandlerContext.from_settings(settings, database)
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    try:
        EventConsumer(settings, build_handler_registry(), context).run(stop)
    finally:
        database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
