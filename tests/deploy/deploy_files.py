"""Readers for the deployment files (compose, .env.example, Dockerfile, nginx template), with
the substitution rules docker compose and the nginx image apply, so tests check what runs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
NGINX_TEMPLATE = REPO_ROOT / "deploy" / "nginx" / "pixelgate.conf.template"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; `$$` escapes.
_COMPOSE_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
_ENVSUBST_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines of a dotenv file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def compose_variables(text: str) -> set[str]:
    """Names of the variables docker compose substitutes in `text`."""
    return {m.group(1) for m in _COMPOSE_VARIABLE.finditer(text) if m.group(1)}


class MissingVariable(LookupError):
    pass


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """Applies docker compose's substitution to every string inside `value`."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        if name is None:
            return "$"
        current = variables.get(name)
        unset_or_empty = current is None or ((operator or "").startswith(":") and current == "")
        if operator in (":-", "-"):
            return argument if unset_or_empty else current or ""
        if operator in (":?", "?") and unset_or_empty:
            raise MissingVariable(f"{name}: {argument}")
        return current or ""

    return _COMPOSE_VARIABLE.sub(substitute, value)


def envsubst_variables(text: str) -> set[str]:
    """The ${NAME} placeholders that the nginx image fills from its environment."""
    return set(_ENVSUBST_VARIABLE.findall(text))


def render_nginx_template(variables: dict[str, str]) -> str:
    text = NGINX_TEMPLATE.read_text()
    missing = envsubst_variables(text) - variables.keys()
    if missing:
        raise MissingVariable(f"nginx template needs {sorted(missing)}")
    return _ENVSUBST_VARIABLE.sub(lambda m: variables[m.group(1)], text)


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for instruction, args in self.instructions if instruction == keyword]


def dockerfile_stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    """The Dockerfile's stages by name, each with its (INSTRUCTION, arguments) in order."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line)
        pending = ""

    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            base, _, name = args.partition(" AS ")
            current = Stage(name=name.strip() or str(len(stages)), base=base.strip())
            stages[current.name] = current
        elif current is not None:
            current.instructions.append((instruction, args.strip()))
    return stages


def stage_chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    """A stage and the stages it builds on, base first."""
    chain = [stages[name]]
    while chain[0].base in stages:
        chain.insert(0, stages[chain[0].base])
    return chain
