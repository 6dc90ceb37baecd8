"""RabbitMQ: the topology both the relay and the consumer declare, and the publisher.

    relay ──> exchange pixelgate.events (topic, durable; routing key = event type)
                 └─ "#" ─> queue pixelgate.events.consumer (durable) ──> consumer
                              │ dead-letters (a message given up on, or unreadable)
                              ▼
              exchange pixelgate.events.dead (fanout) ─> queue pixelgate.events.dead
    consumer, on a handler failure n ──> queue pixelgate.events.retry.<delay>ms (TTL = delay)
                              └─ expires into the consumer queue again (default exchange)

Each retry delay has its own queue with a queue-wide TTL: messages of one queue then expire
in the order they came, which per-message TTLs in one queue would not do (RabbitMQ expires
only at the head). The relay declares the consumer queue too, so events published while no
consumer runs are kept. Both sides declare the same arguments (a mismatch is an error).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from api.schemas.event import Event

log = logging.getLogger("pixelgate.events")

EXCHANGE = "pixelgate.events"
QUEUE = "pixelgate.events.consumer"
DEAD_LETTER_EXCHANGE = "pixelgate.events.dead"
DEAD_LETTER_QUEUE = "pixelgate.events.dead"
# How many times the consumer has tried the message already (absent: none).
ATTEMPT_HEADER = "x-pixelgate-attempts"
CONTENT_TYPE = "application/json"

SOCKET_TIMEOUT_S = 10
# A broker that blocks publishers (memory or disk alarm) fails the publish after this long.
BLOCKED_CONNECTION_TIMEOUT_S = 30


def connect(url: str) -> pika.BlockingConnection:
    parameters = pika.URLParameters(url)
    parameters.connection_attempts = 1
    parameters.socket_timeout = SOCKET_TIMEOUT_S
    parameters.blocked_connection_timeout = BLOCKED_CONNECTION_TIMEOUT_S
    return pika.BlockingConnection(parameters)


def declare_delivery(channel: BlockingChannel) -> None:
    """The exchange, the consumer queue with its binding, and the dead-letter queue."""
    channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare(DEAD_LETTER_QUEUE, durable=True)
    channel.queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE)
    channel.queue_declare(
        QUEUE, durable=True, arguments={"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE}
    )
    channel.queue_bind(QUEUE, EXCHANGE, routing_key="#")


def retry_queue_name(delay_s: float) -> str:
    return f"{QUEUE}.retry.{_milliseconds(delay_s)}ms"


def declare_retry_queue(channel: BlockingChannel, delay_s: float) -> str:
    name = retry_queue_name(delay_s)
    channel.queue_declare(
        name,
        durable=True,
        arguments={
            "x-message-ttl": _milliseconds(delay_s),
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": QUEUE,
        },
    )
    return name


def message_properties(event: Event, attempts: int = 0) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type=CONTENT_TYPE,
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=str(event.id),
        type=event.type,
        timestamp=int(event.occurred_at.timestamp()),
        headers={ATTEMPT_HEADER: attempts} if attempts else None,
    )


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


class PublishFailed(Exception):
    """The broker did not confirm every message; the first `confirmed` ones it did."""

    def __init__(self, confirmed: int, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__} after {confirmed} confirmed")
        self.confirmed = confirmed
        self.cause = cause


class BrokerPublisher:
    """One connection and confirm-mode channel, made on first use and after any failure.

    Blocking: used from the relay's thread only.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def _ready_channel(self) -> BlockingChannel:
        if self._connection is not None and self._channel is not None and self._channel.is_open:
            try:
                # Serves heartbeats and notices a connection the broker closed while idle,
                # which is then replaced rather than counted as a failed publish.
                self._connection.process_data_events(time_limit=0)
            except pika.exceptions.AMQPError:
                log.info("broker connection was lost while idle; reconnecting")
            if self._channel.is_open:
                return self._channel
        self.close()
        connection = connect(self._url)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            declare_delivery(channel)
        except BaseException:
            _close_quietly(connection)
            raise
        self._connection, self._channel = connection, channel
        return channel

    def connect(self) -> None:
        """Makes sure a channel is open (raises the broker's error if not)."""
        try:
            self._ready_channel()
        except BaseException:
            self.close()
            raise

    def publish(self, events: Sequence[Event]) -> None:
        """Publishes in order and returns once the broker confirmed each one; otherwise raises
        PublishFailed, saying how many it confirmed."""
        confirmed = 0
        try:
            channel = self._ready_channel()
            for event in events:
                # Confirm mode: returns after the broker's ack, raises on a nack or return.
                channel.basic_publish(
                    EXCHANGE,
                    routing_key=event.type,
                    body=encode(event),
                    properties=message_properties(event),
                    mandatory=True,
                )
                confirmed += 1
        except Exception as exc:
            self.close()
            raise PublishFailed(confirmed, exc) from exc

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            _close_quietly(connection)


def _close_quietly(connection: pika.BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # a connection that is already broken has nothing left to close
        log.debug("closing a broken broker connection", exc_info=True)


def _milliseconds(delay_s: float) -> int:
    return max(1, round(delay_s * 1000))
