"""The HTTPS edge (deploy/nginx/pixelgate-tls.conf.template), rendered as the nginx image
renders it and run for real with a self-signed certificate made here: in front of a real API
server and of a stand-in dashboard that sets a cookie the way Streamlit's route does."""

from __future__ import annotations

import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx2
import pytest
import requests

from tests.deploy.deploy_files import NGINX_INCLUDES, NGINX_TLS_TEMPLATE, render_nginx_template
from tests.support.accounts import login, register
from tests.support.certificates import self_signed_certificate
from tests.support.databases import migrate
from tests.support.deployment import nginx_binary, running_nginx
from tests.support.servers import api_env, api_server, free_port, http_server_thread

HSTS = "max-age=31536000"
CHALLENGE = "challenge-token-123"
DASHBOARD_COOKIE = "pixelgate_refresh=dashboard-value; HttpOnly; Path=/; SameSite=Strict"


class _Dashboard(BaseHTTPRequestHandler):
    """Answers every GET with a page and a cookie that is not marked Secure."""

    def do_GET(self) -> None:
        body = f"dashboard {self.path} proto={self.headers.get('X-Forwarded-Proto')}".encode()
        self.send_response(200)
        self.send_header("Set-Cookie", DASHBOARD_COOKIE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@dataclass
class Edge:
    http_port: int
    dashboard_port: int
    api_port: int
    certificate: Path

    def https(self, port: int, path: str) -> requests.Response:
        url = f"https://127.0.0.1:{port}{path}"
        return requests.get(url, verify=str(self.certificate), timeout=30)

    def api(self) -> httpx2.Client:
        """A client of the API through the edge that trusts the test's certificate only."""
        return httpx2.Client(
            base_url=f"https://127.0.0.1:{self.api_port}",
            verify=ssl.create_default_context(cafile=str(self.certificate)),
            trust_env=False,
            timeout=30,
        )


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    nginx = nginx_binary()
    if nginx is None:
        pytest.fail("nginx is required for the proxy test (scripts/ensure-services.sh installs it)")
    workdir = tmp_path_factory.mktemp("tls-edge")
    database_url = f"sqlite:///{workdir / 'app.db'}"
    migrate(database_url)
    certificate, key = self_signed_certificate(workdir)
    webroot = workdir / "acme"
    (webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
    (webroot / ".well-known" / "acme-challenge" / CHALLENGE).write_text(f"{CHALLENGE}.thumbprint")
    edge = Edge(free_port(), free_port(), free_port(), certificate)
    env = api_env(database_url, workdir / "images", PYTHON=sys.executable)
    with (
        api_server(env, workdir / "api.log") as api_url,
        http_server_thread(_Dashboard) as dashboard_url,
    ):
        config = render_nginx_template(
            {
                "API_UPSTREAM": api_url.removeprefix("http://"),
                "DASHBOARD_UPSTREAM": dashboard_url.removeprefix("http://"),
                "PROXY_HTTP_LISTEN": f"127.0.0.1:{edge.http_port}",
                "PROXY_DASHBOARD_LISTEN": f"127.0.0.1:{edge.dashboard_port}",
                "PROXY_API_LISTEN": f"127.0.0.1:{edge.api_port}",
                "PUBLIC_DASHBOARD_PORT": str(edge.dashboard_port),
                "PUBLIC_API_PORT": str(edge.api_port),
                "TLS_CERTIFICATE": str(certificate),
                "TLS_CERTIFICATE_KEY": str(key),
                "ACME_WEBROOT": str(webroot),
            },
            NGINX_TLS_TEMPLATE,
        )
        ready = f"http://127.0.0.1:{edge.http_port}/proxy-health"
        nginx_dir = workdir / "nginx"
        nginx_dir.mkdir()
        with running_nginx(nginx, config, NGINX_INCLUDES, nginx_dir, ready):
            yield edge


def test_the_api_is_served_over_https_with_hsts(edge: Edge) -> None:
    response = edge.api().get("/health")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
    assert response.headers["Strict-Transport-Security"] == HSTS
    # Error answers carry it too (`always`).
    missing = edge.api().get("/no/such/route")
    assert missing.status_code == 404
    assert missing.headers["Strict-Transport-Security"] == HSTS


def test_the_api_refresh_cookie_is_secure_at_the_edge(edge: Edge) -> None:
    """The API runs with COOKIE_SECURE=false here; the edge marks the cookie Secure anyway."""
    client = edge.api()
    register(client, "tls_user")
    logged_in = login(client, "tls_user")
    assert logged_in.status_code == 200
    cookies = logged_in.headers.get_list("set-cookie")
    [cookie] = [c for c in cookies if c.startswith("refresh_token=")]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "secure" in attributes and "httponly" in attributes


def test_the_dashboard_is_served_over_https_with_hsts_and_secure_cookies(edge: Edge) -> None:
    response = edge.https(edge.dashboard_port, "/account?tab=1")
    assert response.status_code == 200
    assert response.text == "dashboard /account?tab=1 proto=https"
    assert response.headers["Strict-Transport-Security"] == HSTS
    attributes = [part.strip().lower() for part in response.headers["Set-Cookie"].split(";")]
    assert "secure" in attributes and "samesite=strict" in attributes


def test_plain_http_is_redirected_to_https(edge: Edge) -> None:
    redirected = requests.get(
        f"http://127.0.0.1:{edge.http_port}/images?page=2", allow_redirects=False, timeout=30
    )
    assert redirected.status_code == 301
    assert redirected.headers["Location"] == (
        f"https://127.0.0.1:{edge.dashboard_port}/images?page=2"
    )
    # Plain HTTP sent to an HTTPS port is redirected too; the API's keeps method and body.
    to_api = requests.post(
        f"http://127.0.0.1:{edge.api_port}/auth/login", allow_redirects=False, timeout=30
    )
    assert to_api.status_code == 308
    assert to_api.headers["Location"] == f"https://127.0.0.1:{edge.api_port}/auth/login"
    to_dashboard = requests.get(
        f"http://127.0.0.1:{edge.dashboard_port}/", allow_redirects=False, timeout=30
    )
    assert to_dashboard.status_code == 301
    assert to_dashboard.headers["Location"] == f"https://127.0.0.1:{edge.dashboard_port}/"


def test_acme_challenges_and_the_liveness_answer_over_plain_http(edge: Edge) -> None:
    challenge = requests.get(
        f"http://127.0.0.1:{edge.http_port}/.well-known/acme-challenge/{CHALLENGE}",
        allow_redirects=False,
        timeout=30,
    )
    assert challenge.status_code == 200
    assert challenge.text == f"{CHALLENGE}.thumbprint"
    health = requests.get(f"http://127.0.0.1:{edge.http_port}/proxy-health", timeout=30)
    assert health.text == "ok\n"


def test_the_certificate_is_the_one_env_names(edge: Edge) -> None:
    # Verification against that certificate (and nothing else) succeeds; the system's CAs fail.
    assert edge.https(edge.api_port, "/health").status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{edge.api_port}/health", timeout=30)
