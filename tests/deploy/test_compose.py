"""The compose file, Dockerfile and proxy template: structure, and agreement with each other,
with .env.example and with the settings the app will actually load."""

from __future__ import annotations

import ast
import ipaddress
import re
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import yaml

from api.core.config import ConfigurationError, load_settings
from tests.deploy.deploy_files import (
    COMPOSE_FILE,
    DOCKERIGNORE,
    NGINX_TEMPLATE,
    MissingVariable,
    compose_variables,
    dockerfile_stages,
    envsubst_variables,
    interpolate,
    load_compose,
    read_env_file,
    render_nginx_template,
    stage_chain,
)
from tests.support.paths import REPO_ROOT
from tests.support.servers import free_port, http_server_thread

SERVICES = {
    "db",
    "redis",
    "rabbitmq",
    "seaweedfs",
    "api",
    "worker",
    "consumer",
    "frontend",
    "proxy",
    "mailpit",
}
LOCAL_BACKENDS = REPO_ROOT / "deploy" / "compose.local-backends.yml"
API_PORT = "8000"
DASHBOARD_PORT = "8501"
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY\b|CREDENTIAL", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file()


@pytest.fixture(scope="module")
def resolved(compose: dict[str, Any], example_env: dict[str, str]) -> dict[str, Any]:
    """The compose file as `docker compose config` would see it with .env.example as .env."""
    return interpolate(compose, example_env)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def _health_command(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), test
    return " ".join(test[1:])


def _named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """Named volume -> mount point (bind mounts, which start with . or /, left out)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if not source.startswith((".", "/")):
            mounts[source] = target
    return mounts


def test_every_service_is_there_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        assert not service["healthcheck"].get("disable"), name
        assert service.get("restart") == "unless-stopped", name


def test_database_keeps_its_data_and_reports_readiness(compose: dict[str, Any]) -> None:
    db = compose["services"]["db"]
    assert db["image"].startswith("postgres:")
    assert _named_volumes(db) == {"pgdata": "/var/lib/postgresql/data"}
    assert _health_command(db).startswith("pg_isready ")


def test_redis_holds_the_shared_rate_limit_counters(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:")
    assert _health_command(redis) == "redis-cli ping"
    api_env = _environment(compose["services"]["api"])
    assert api_env["RATE_LIMIT_STORAGE_URI"] == "redis://redis:6379/0"
    assert api_env["CACHE_URL"] == "redis://redis:6379/1"  # another database of the same Redis


def test_api_starts_through_the_start_script_after_db_and_redis(resolved: dict[str, Any]) -> None:
    api = resolved["services"]["api"]
    assert api["build"]["target"] == "api"
    assert api["command"] == ["scripts/start.sh"]
    assert api["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    env = _environment(api)
    assert env["ENV"] == "production"
    assert env["API_HOST"] == "0.0.0.0"  # noqa: S104 (a container listens on its network)
    assert env["API_PORT"] == API_PORT
    assert int(env["API_WORKERS"]) >= 2
    assert _health_command(api).endswith(f"http://127.0.0.1:{API_PORT}/health")
    # The whole .env reaches the API; compose's own values win where they must.
    assert api["env_file"] == ".env"


def test_api_database_url_is_made_from_the_postgres_settings(resolved: dict[str, Any]) -> None:
    db_env = _environment(resolved["services"]["db"])
    url = _environment(resolved["services"]["api"])["DATABASE_URL"]
    user, password, name = (
        db_env["POSTGRES_USER"],
        db_env["POSTGRES_PASSWORD"],
        db_env["POSTGRES_DB"],
    )
    assert url == f"postgresql+psycopg2://{user}:{password}@db:5432/{name}"


def test_jobs_go_to_celery_workers_and_images_to_seaweedfs(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    api_env = _environment(services["api"])
    assert api_env["PROCESSING_BACKEND"] == "celery"
    assert api_env["STORAGE_BACKEND"] == "s3"
    assert api_env["S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
    weed_env = _environment(services["seaweedfs"])
    assert api_env["S3_ACCESS_KEY_ID"] == weed_env["AWS_ACCESS_KEY_ID"]
    assert api_env["S3_SECRET_ACCESS_KEY"] == weed_env["AWS_SECRET_ACCESS_KEY"]
    assert f"-bucket={api_env['S3_BUCKET']}" in services["seaweedfs"]["command"]
    rabbit_env = _environment(services["rabbitmq"])
    user, password = rabbit_env["RABBITMQ_DEFAULT_USER"], rabbit_env["RABBITMQ_DEFAULT_PASS"]
    assert api_env["CELERY_BROKER_URL"] == f"amqp://{user}:{password}@rabbitmq:5672/%2F"
    # No image lives on the api's disk: STORAGE_DIR holds scratch files only.
    assert _named_volumes(services["api"]) == {}


def test_the_worker_is_the_api_image_running_celery(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    worker, api = services["worker"], services["api"]
    assert worker["image"] == api["image"]
    assert worker["command"][:5] == ["celery", "-A", "api.worker", "worker", "--loglevel=INFO"]
    assert worker["env_file"] == ".env"
    assert _environment(worker) == _environment(api)
    assert "ports" not in worker and "container_name" not in worker  # --scale worker=N
    assert _health_command(worker) == "celery -A api.worker inspect ping -d celery@$HOSTNAME"
    assert worker["depends_on"]["api"] == {"condition": "service_healthy"}  # migrated first
    assert worker["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
    assert worker["depends_on"]["seaweedfs"] == {"condition": "service_healthy"}


def test_seaweedfs_keeps_its_data_and_reports_health(compose: dict[str, Any]) -> None:
    seaweedfs = compose["services"]["seaweedfs"]
    assert seaweedfs["image"].startswith("chrislusf/seaweedfs")
    assert seaweedfs["command"][0] == "mini"
    assert "-dir=/data" in seaweedfs["command"]
    assert any(arg.startswith("-bucket=") for arg in seaweedfs["command"])
    assert _named_volumes(seaweedfs) == {"seaweedfs": "/data"}
    assert "9333/cluster/status" in _health_command(seaweedfs)


def test_the_local_backends_override_brings_the_images_volume_back() -> None:
    override = yaml.safe_load(LOCAL_BACKENDS.read_text())
    storage_dir = _environment(load_compose()["services"]["api"])["STORAGE_DIR"]
    for name in ("api", "consumer"):
        service = override["services"][name]
        assert service["environment"] == {"PROCESSING_BACKEND": "local", "STORAGE_BACKEND": "local"}
        assert _named_volumes(service) == {"images": storage_dir}
    assert override["services"]["worker"]["deploy"]["replicas"] == 0
    assert set(override["volumes"]) == {"images"}


def test_every_named_volume_is_declared_and_used(compose: dict[str, Any]) -> None:
    used = set()
    for service in compose["services"].values():
        used |= set(_named_volumes(service))
    assert used == set(compose["volumes"]) == {"pgdata", "rabbitmq", "seaweedfs"}


def test_rabbitmq_keeps_durable_queues_and_reports_health(resolved: dict[str, Any]) -> None:
    rabbitmq = resolved["services"]["rabbitmq"]
    assert rabbitmq["image"] == "rabbitmq:3-management"
    assert _named_volumes(rabbitmq) == {"rabbitmq": "/var/lib/rabbitmq"}
    assert _health_command(rabbitmq) == "rabbitmq-diagnostics -q ping"
    env = _environment(rabbitmq)
    broker_url = _environment(resolved["services"]["api"])["EVENTS_BROKER_URL"]
    credentials = f"{env['RABBITMQ_DEFAULT_USER']}:{env['RABBITMQ_DEFAULT_PASS']}"
    assert broker_url == f"amqp://{credentials}@rabbitmq:5672/%2F"
    # A broker that is down delays events, never the api: it does not wait for RabbitMQ.
    assert "rabbitmq" not in resolved["services"]["api"]["depends_on"]


def test_the_consumer_is_the_api_image_handling_events(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    consumer, api = services["consumer"], services["api"]
    assert consumer["image"] == api["image"] and consumer["build"] == api["build"]
    assert consumer["command"] == ["python", "-m", "api.consumer"]
    assert _health_command(consumer) == "python -m api.consumer --check"
    assert consumer["env_file"] == ".env"
    consumer_env, api_env = _environment(consumer), _environment(api)
    for name in (
        "ENV",
        "DATABASE_URL",
        "EVENTS_BROKER_URL",
        "STORAGE_BACKEND",
        "MAIL_BACKEND",
        "SMTP_HOST",
    ):
        assert consumer_env[name] == api_env[name], name
    # It removes deleted accounts' objects: the same store.
    assert consumer_env == api_env
    assert consumer["depends_on"] == {
        "api": {"condition": "service_healthy"},  # which migrates the database first
        "rabbitmq": {"condition": "service_healthy"},
    }


def test_mail_goes_to_the_mail_catcher_with_links_to_the_proxied_dashboard(
    resolved: dict[str, Any], example_env: dict[str, str]
) -> None:
    mailpit = resolved["services"]["mailpit"]
    assert mailpit["image"].startswith("axllent/mailpit:")
    assert _health_command(mailpit) == "/mailpit readyz"
    # A profile, on by default in .env.example: production leaves it out.
    assert mailpit["profiles"] == ["mail-catcher"]
    assert example_env["COMPOSE_PROFILES"] == "mail-catcher"
    env = _environment(resolved["services"]["api"])
    assert (env["MAIL_BACKEND"], env["SMTP_HOST"], env["SMTP_PORT"]) == ("smtp", "mailpit", "1025")
    assert env["SMTP_STARTTLS"] == "false"
    assert env["PUBLIC_DASHBOARD_URL"] == (
        f"http://localhost:{example_env['PUBLIC_DASHBOARD_PORT']}"
    )
    assert mailpit["ports"] == [f"127.0.0.1:{example_env['MAILPIT_UI_PORT']}:8025"]


def test_frontend_reaches_the_api_inside_the_network(compose: dict[str, Any]) -> None:
    frontend = compose["services"]["frontend"]
    assert frontend["build"]["target"] == "frontend"
    assert _environment(frontend)["API_BASE_URL"] == f"http://api:{API_PORT}"
    assert frontend["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert _health_command(frontend).endswith(f"http://127.0.0.1:{DASHBOARD_PORT}/_stcore/health")
    # It needs none of the API's secrets.
    assert "env_file" not in frontend
    assert not [name for name in _environment(frontend) if SECRET_NAME.search(name)]


def test_proxy_fronts_both_and_is_the_only_trusted_forwarder(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    proxy = services["proxy"]
    env = _environment(proxy)
    assert env["API_UPSTREAM"] == f"api:{API_PORT}"
    assert env["DASHBOARD_UPSTREAM"] == f"frontend:{DASHBOARD_PORT}"
    published = {port.split(":")[1] for port in proxy["ports"]}
    assert published == {env["PROXY_API_LISTEN"], env["PROXY_DASHBOARD_LISTEN"]}
    # Only the proxy is published: the API and dashboard are reached through it. (The mail
    # catcher's web UI is published on the host's loopback only.)
    assert [name for name, service in services.items() if "ports" in service] == [
        "proxy",
        "mailpit",
    ]
    assert all(port.startswith("127.0.0.1:") for port in services["mailpit"]["ports"])
    assert proxy["depends_on"]["api"] == {"condition": "service_healthy", "restart": True}
    assert proxy["depends_on"]["frontend"]["restart"] is True

    # The hops that forward client addresses have fixed addresses, and only they are trusted.
    fixed = {
        name: service["networks"]["backend"]["ipv4_address"]
        for name, service in services.items()
        if isinstance(service["networks"], dict)
    }
    assert set(fixed) == {"proxy", "frontend"}
    subnet = resolved["networks"]["backend"]["ipam"]["config"][0]["subnet"]
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(subnet) for ip in fixed.values())
    assert len(set(fixed.values())) == 2
    trusted = _environment(services["api"])["FORWARDED_ALLOW_IPS"].split(",")
    assert trusted == [fixed["proxy"], fixed["frontend"]]
    for name, service in services.items():
        if name not in fixed:
            assert service["networks"] == ["backend"]


def test_proxy_template_is_mounted_and_fully_rendered(compose: dict[str, Any]) -> None:
    proxy = compose["services"]["proxy"]
    mounts = [volume.split(":") for volume in proxy["volumes"]]
    template = NGINX_TEMPLATE.relative_to(REPO_ROOT)
    assert [f"./{template}", "/etc/nginx/templates/default.conf.template", "ro"] in mounts
    env = _environment(proxy)
    assert envsubst_variables(NGINX_TEMPLATE.read_text()) == set(env)
    # nginx's own $variables are lower case, so the image's envsubst never touches them.
    text = NGINX_TEMPLATE.read_text()
    assert {name for name in re.findall(r"\$([A-Za-z_]\w*)", text) if not name.islower()} == set()
    rendered = render_nginx_template(env)
    assert f"server {env['API_UPSTREAM']};" in rendered
    assert f"listen {env['PROXY_DASHBOARD_LISTEN']};" in rendered


def test_proxy_accepts_uploads_up_to_the_api_limit(example_env: dict[str, str]) -> None:
    match = re.search(r"client_max_body_size (\d+)m;", NGINX_TEMPLATE.read_text())
    assert match, "the proxy must state its body limit"
    # The API, not the proxy, answers an oversized upload (with its JSON 413).
    assert int(match.group(1)) > int(example_env["MAX_UPLOAD_MB"])


def test_compose_refuses_to_start_without_the_required_settings(compose: dict[str, Any]) -> None:
    with pytest.raises(MissingVariable, match=r"(\w+): set \1 in .env"):
        interpolate(compose, {})


def test_every_variable_compose_uses_is_in_env_example(example_env: dict[str, str]) -> None:
    used = compose_variables(COMPOSE_FILE.read_text())
    assert used, "compose should take its configuration from .env"
    assert sorted(used - example_env.keys()) == []


def _api_container_environment(resolved: dict[str, Any], dotenv: dict[str, str]) -> dict[str, str]:
    """What the API process sees: .env (env_file), overridden by compose's `environment`."""
    return {**dotenv, **_environment(resolved["services"]["api"])}


def _load_settings_with(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, environment: dict[str, str]
) -> Any:
    monkeypatch.chdir(tmp_path)  # no developer .env in the way
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return load_settings()


def test_production_refuses_the_example_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, compose: dict[str, Any]
) -> None:
    dotenv = read_env_file()
    as_shipped = _api_container_environment(interpolate(compose, dotenv), dotenv)
    with pytest.raises(ConfigurationError, match="JWT_SECRET_KEY"):
        _load_settings_with(monkeypatch, tmp_path, as_shipped)

    dotenv["JWT_SECRET_KEY"] = "a-real-secret-" + "q" * 40
    only_jwt_changed = _api_container_environment(interpolate(compose, dotenv), dotenv)
    with pytest.raises(ConfigurationError, match="POSTGRES_PASSWORD"):
        _load_settings_with(monkeypatch, tmp_path, only_jwt_changed)

    dotenv["POSTGRES_PASSWORD"] = "0123456789abcdef0123456789abcdef"
    broker_left = _api_container_environment(interpolate(compose, dotenv), dotenv)
    with pytest.raises(ConfigurationError, match="RABBITMQ_PASSWORD"):
        _load_settings_with(monkeypatch, tmp_path, broker_left)

    dotenv["RABBITMQ_PASSWORD"] = "fedcba9876543210fedcba9876543210"
    store_left = _api_container_environment(interpolate(compose, dotenv), dotenv)
    with pytest.raises(ConfigurationError, match="S3_SECRET_ACCESS_KEY"):
        _load_settings_with(monkeypatch, tmp_path, store_left)


def test_the_api_container_settings_load_once_secrets_are_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, compose: dict[str, Any]
) -> None:
    dotenv = read_env_file()
    dotenv["JWT_SECRET_KEY"] = "a-real-secret-" + "q" * 40
    dotenv["POSTGRES_PASSWORD"] = "0123456789abcdef0123456789abcdef"
    dotenv["RABBITMQ_PASSWORD"] = "fedcba9876543210fedcba9876543210"
    dotenv["SEAWEEDFS_SECRET_ACCESS_KEY"] = "s3-" + "k" * 40
    resolved = interpolate(compose, dotenv)
    settings = _load_settings_with(
        monkeypatch, tmp_path, _api_container_environment(resolved, dotenv)
    )
    assert settings.env == "production"
    assert settings.database_url == (
        "postgresql+psycopg2://pixelgate:0123456789abcdef0123456789abcdef@db:5432/pixelgate"
    )
    assert settings.rate_limit_storage_uri == "redis://redis:6379/0"
    assert settings.cache_url.get_secret_value() == "redis://redis:6379/1"
    assert str(settings.storage_dir) == "/data/images"
    assert settings.events_broker_url.get_secret_value() == (
        "amqp://pixelgate:fedcba9876543210fedcba9876543210@rabbitmq:5672/%2F"
    )
    assert settings.forwarded_allow_ips == [dotenv["PROXY_IPV4"], dotenv["FRONTEND_IPV4"]]
    assert (settings.processing_backend, settings.storage_backend) == ("celery", "s3")


# --- Dockerfile -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stages() -> dict[str, Any]:
    return dockerfile_stages()


@pytest.mark.parametrize("target", ["api", "frontend"])
def test_image_is_slim_python_311_non_root_with_healthcheck(stages: dict, target: str) -> None:
    chain = stage_chain(stages, target)
    assert chain[0].base.startswith("python:3.11-slim")
    users = [user for stage in chain for user in stage.all("USER")]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith(("root:", "0:"))
    assert stages[target].all("HEALTHCHECK"), "the stage declares its own HEALTHCHECK"
    assert stages[target].all("CMD")


@pytest.mark.parametrize("target", ["api", "frontend"])
def test_dependencies_are_a_layer_of_their_own(stages: dict, target: str) -> None:
    instructions = [item for stage in stage_chain(stages, target) for item in stage.instructions]
    copies = [i for i, (name, _) in enumerate(instructions) if name == "COPY"]
    requirements = next(i for i in copies if instructions[i][1] == "requirements.txt ./")
    install = next(
        i
        for i, (name, args) in enumerate(instructions)
        if name == "RUN" and "pip install -r requirements.txt" in args
    )
    first_source = min(i for i in copies if i != requirements)
    assert requirements < install < first_source


@pytest.mark.parametrize("target", ["api", "frontend"])
def test_no_secret_is_baked_in(stages: dict, target: str) -> None:
    for stage in stage_chain(stages, target):
        for keyword in ("ENV", "ARG"):
            for args in stage.all(keyword):
                names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split()[0]]
                assert not [n for n in names if SECRET_NAME.search(n)], (keyword, args)


def test_images_contain_what_their_commands_and_healthchecks_need(stages: dict) -> None:
    api_copied = {
        args.split()[0] for stage in stage_chain(stages, "api") for args in stage.all("COPY")
    }
    assert {
        "alembic.ini",
        "alembic/",
        "api/",
        "scripts/start.sh",
        "deploy/healthcheck.py",
    } <= api_copied
    assert stages["api"].all("CMD") == ['["scripts/start.sh"]']
    frontend_copied = {
        args.split()[0] for stage in stage_chain(stages, "frontend") for args in stage.all("COPY")
    }
    assert {"frontend/", "deploy/healthcheck.py"} <= frontend_copied
    assert "frontend/app.py" in stages["frontend"].all("CMD")[0]
    for source in api_copied | frontend_copied:
        assert (REPO_ROOT / source).exists(), source


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".env", ".venv", "data/", ".git"} <= ignored


def test_dashboard_image_needs_nothing_but_frontend() -> None:
    """The frontend image copies only frontend/: the dashboard must not import the API."""
    for path in (REPO_ROOT / "frontend").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            assert not [m for m in modules if m.split(".")[0] in {"api", "tests"}], path


# --- the health probe used by both images and by compose ------------------------------------


class _StatusHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = int(self.path.strip("/"))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def status_server() -> Iterator[str]:
    with http_server_thread(_StatusHandler) as url:
        yield url


def _probe(url: str) -> int:
    probe = REPO_ROOT / "deploy" / "healthcheck.py"
    return subprocess.run(
        [sys.executable, str(probe), url], capture_output=True, timeout=30
    ).returncode


def test_health_probe_passes_only_on_2xx(status_server: str) -> None:
    assert _probe(f"{status_server}/200") == 0
    assert _probe(f"{status_server}/503") == 1
    assert _probe(f"{status_server}/404") == 1
    assert _probe(f"http://127.0.0.1:{free_port()}/health") == 1
    assert _probe("file:///etc/passwd") == 2
