"""The broker-side consumer loop: the handlers run for each message of the durable queue.

A message is acknowledged only after its handlers finished (or its retry was scheduled), so a
consumer that dies mid-way has it redelivered; handlers that already finished it do not run
again (`handled_events`). A handler failure n is scheduled for another try after
`EVENTS_RETRY_DELAYS_S[n-1]` (a copy goes to that delay's retry queue, which expires it back
into the consumer queue); once the delays are used up the event is `failed`, logged at ERROR,
and the message dead-lettered to `pixelgate.events.dead`. An unreadable message goes there at
once. The outbox row follows: `handled`, or `attempts` and `last_error` counted, or `failed`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic
from pydantic import ValidationError

from api.core.config import Settings
from api.core.db import writes
from api.events import broker
from api.events.context import HandlerContext
from api.events.dispatch import failure_text, run_handlers
from api.events.outbox import (
    log_given_up,
    mark_handled,
    record_failure,
    retry_delay,
    retry_time,
)
from api.events.registry import HandlerRegistry
from api.models import EventState
from api.schemas.event import Event

log = logging.getLogger("pixelgate.consumer")

PREFETCH = 10
# The loop wakes this often while idle: to notice a stop, and to prove it is alive.
IDLE_S = 1.0
MAX_RECONNECT_BACKOFF_S = 30.0
# `--check` calls a consumer healthy when its loop beat this recently.
HEALTHY_WITHIN_S = 30.0


class EventConsumer:
    def __init__(
        self, settings: Settings, registry: HandlerRegistry, context: HandlerContext
    ) -> None:
        self._url = settings.events_broker_url.get_secret_value()
        self._retry_delays_s = settings.events_retry_delays_s
        self._heartbeat_file = settings.events_consumer_heartbeat_file
        self._registry = registry
        self._context = context

    def run(self, stop: threading.Event) -> None:
        """Consumes until `stop` is set, reconnecting with backoff whenever the broker is gone."""
        failures = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                self._consume(stop)
            except (pika.exceptions.AMQPError, OSError) as exc:
                if time.monotonic() - started > MAX_RECONNECT_BACKOFF_S:
                    failures = 0  # it ran for a while: a new outage starts the backoff afresh
                failures += 1
                backoff = min(MAX_RECONNECT_BACKOFF_S, 2.0 ** (failures - 1))
                log.warning(
                    "broker unavailable (%s), reconnecting in %.0f s", type(exc).__name__, backoff
                )
                stop.wait(backoff)

    def _consume(self, stop: threading.Event) -> None:
        connection = broker.connect(self._url)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            broker.declare_delivery(channel)
            for delay_s in self._retry_delays_s:
                broker.declare_retry_queue(channel, delay_s)
            channel.basic_qos(prefetch_count=PREFETCH)
            log.info("consuming events from %s", broker.QUEUE)
            for method, properties, body in channel.consume(
                broker.QUEUE, inactivity_timeout=IDLE_S
            ):
                self._beat()
                if stop.is_set():
                    break
                if method is not None:
                    self._deliver(channel, method, properties, body)
            channel.cancel()  # prefetched, unacknowledged messages go back to the queue
        finally:
            if connection.is_open:
                connection.close()

    def _beat(self) -> None:
        self._heartbeat_file.touch()

    def _deliver(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        try:
            event = Event.model_validate_json(body)
        except ValidationError:
            log.error("unreadable event message dead-lettered (routing key %s)", method.routing_key)
            channel.basic_reject(method.delivery_tag, requeue=False)
            return
        try:
            run_handlers(event, self._registry, self._context)
        except Exception as exc:
            failures = _attempts(properties) + 1
            self._retry_or_give_up(channel, method, event, failures, failure_text(exc))
            return
        with self._context.database.session() as db, writes(db):
            mark_handled(db, event.id)
        channel.basic_ack(method.delivery_tag)

    def _retry_or_give_up(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        event: Event,
        failures: int,
        error: str,
    ) -> None:
        delay_s = retry_delay(self._retry_delays_s, failures)
        with self._context.database.session() as db, writes(db):
            record_failure(db, [event.id], error, retry_time(delay_s), state=EventState.PUBLISHED)
        if delay_s is None:
            log_given_up(event, failures, error)
            channel.basic_reject(method.delivery_tag, requeue=False)  # to the dead-letter queue
            return
        channel.basic_publish(
            "",
            routing_key=broker.retry_queue_name(delay_s),
            body=broker.encode(event),
            properties=broker.message_properties(event, attempts=failures),
        )
        channel.basic_ack(method.delivery_tag)


def _attempts(properties: pika.BasicProperties) -> int:
    value = (properties.headers or {}).get(broker.ATTEMPT_HEADER, 0)
    return value if isinstance(value, int) and value >= 0 else 0


def heartbeat_is_fresh(path: Path, within_s: float = HEALTHY_WITHIN_S) -> bool:
    try:
        return time.time() - path.stat().st_mtime < within_s
    except OSError:
        return False
