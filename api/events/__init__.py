"""Domain-event machinery: the handler registry, the dispatcher, the relay, the broker, the
consumer loop. It uses only `core/`, `models/` and `schemas/`; the rules live in handlers.

How events flow
    A service calls `record_event(db, EventType.X, {...})` (`api/services/events.py`) inside its
    unit of work. Once that commits, the relay of the API process takes the outbox row and
    either runs the handlers itself (`EVENTS_BROKER_URL` empty) or publishes it to RabbitMQ,
    where `python -m api.consumer` runs the same handlers. Delivery is at least once; each
    handler runs at most once per event id (the `handled_events` record), and a handler that
    raises is retried with backoff (first retry within 60 s, retries for over an hour), then the
    event is `failed` and logged at ERROR.

How to add a handler (e.g. a mail on `user.password_changed`)
    1. A new event type? Add one line to `EventType` in `api/schemas/event.py`.
    2. Write the handler in `api/services/` (the rules live there, not here):
           def send_password_changed_notice(event: Event, context: HandlerContext) -> None:
               ...  # event.data["user_id"]; context.settings / .database / .storage
       It may run more than once if the process dies right after it (at least once): make the
       side effect harmless to repeat, or check for it. Raise to have it retried; never
       swallow a failure that a retry could fix.
    3. Register it in `build_handler_registry()` in `api/services/event_handlers.py`, the one
       place handlers are listed: `registry.register(send_password_changed_notice,
       EventType.USER_PASSWORD_CHANGED)`. Its registered name (module + function name) is its
       idempotency key: renaming it makes already-handled events look new to it.
    4. A handler needs another collaborator (a mailer)? Add a field to `HandlerContext`
       (`api/events/context.py`) and pass it where the context is built: `create_app`
       (`api/app.py`) and `api/consumer.py`.
"""
