"""The consumer process (`python -m api.consumer`) as operators see it: its JSON log lines carry
the id of the event being handled, and it serves its own metrics with the API's token rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.support.accounts import register
from tests.support.broker import consumer_process
from tests.support.events import wait_for_events_settled
from tests.support.metrics import METRICS_TOKEN, Scrape
from tests.support.servers import api_env, free_port

HANDLED = frozenset({"handled"})


def test_consumer_logs_json_with_the_event_id_and_serves_its_metrics(
    make_client: Callable[..., Any], broker_url: str, tmp_path: Path
) -> None:
    port = free_port()
    with make_client(events_broker_url=broker_url) as client:
        register(client, "consumed")
        settings = client.app.state.settings
        env = api_env(
            settings.database_url,
            settings.storage_dir,
            EVENTS_BROKER_URL=broker_url,
            EVENTS_CONSUMER_HEARTBEAT_FILE=str(tmp_path / "consumer.alive"),
            LOG_FORMAT="json",
            METRICS_TOKEN=METRICS_TOKEN,
            CONSUMER_METRICS_PORT=str(port),
        )
        with consumer_process(env, tmp_path / "consumer.log"):
            [row] = wait_for_events_settled(client.app.state.database, settled=HANDLED, count=1)
            metrics_url = f"http://127.0.0.1:{port}/metrics"
            anonymous = requests.get(metrics_url, timeout=30)
            wrong = requests.get(
                metrics_url, headers={"Authorization": "Bearer not-the-token-0123"}, timeout=30
            )
            scraped = requests.get(
                metrics_url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30
            )
            elsewhere = requests.get(f"http://127.0.0.1:{port}/other", timeout=30)

    for refused in (anonymous, wrong):
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert scraped.status_code == 200
    assert "# TYPE pixelgate_mails_total counter" in scraped.text
    assert Scrape.parse(scraped.text).samples  # Prometheus text that parses
    assert elsewhere.status_code == 404

    lines = [
        json.loads(line)
        for line in (tmp_path / "consumer.log").read_text().splitlines()
        if line.startswith("{")
    ]
    handled = [line for line in lines if line.get("event_id") == str(row.event_id)]
    assert handled, lines
    assert all(line["logger"].startswith("pixelgate") for line in handled)
    assert any("user.created" in line["message"] for line in handled)
