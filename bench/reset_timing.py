"""Reset-request timing: `python -m bench.reset_timing`. Prints figures, asserts nothing.

POST /auth/password-reset/request must answer in the same timing class whether or not the
address belongs to an account (the mail is made and sent after the answer). This times it
against a real uvicorn on a fresh SQLite file (mail to the file backend, rate limits off), for
an account's address and an unknown one, taking turns so that drift hits both alike, and
prints the median and the 90th percentile of each. The known address's links are made and
mailed meanwhile, by the relay of the same process: that work competes for the CPU too.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.accounts import register
from tests.support.databases import migrate
from tests.support.servers import api_env, api_server

ROUNDS = 200
WARM_UP = 20


def _time_one(client: httpx.Client, email: str) -> float:
    started = time.perf_counter()
    response = client.post("/auth/password-reset/request", json={"email": email})
    elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.text
    return elapsed


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pixelgate-bench-") as workdir:
        root = Path(workdir)
        database_url = f"sqlite:///{root / 'app.db'}"
        migrate(database_url)
        env = api_env(database_url, root / "images", RESET_EMAILS_PER_HOUR="1000000")
        with (
            api_server(env, root / "api.log") as base_url,
            httpx.Client(base_url=base_url) as client,
        ):
            register(client, "bench_known")
            addresses = {
                "known account": "bench_known@example.com",
                "unknown address": "nobody-here@example.com",
            }
            samples: dict[str, list[float]] = {name: [] for name in addresses}
            for round_number in range(WARM_UP + ROUNDS):
                for name, email in addresses.items():
                    elapsed = _time_one(client, email)
                    if round_number >= WARM_UP:
                        samples[name].append(elapsed)
            print(f"POST /auth/password-reset/request, {ROUNDS} each, taking turns")
            for name, values in samples.items():
                ordered = sorted(values)
                p90 = ordered[int(len(ordered) * 0.9)]
                print(
                    f"  {name:16} median {statistics.median(values) * 1000:6.2f} ms"
                    f"   p90 {p90 * 1000:6.2f} ms"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
