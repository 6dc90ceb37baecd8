"""Drives wrk (the C load generator, Debian's `wrk`) and reads its figures back.

wrk rather than a Python client: on two cores a Python load generator would take a core from
the server it measures. Each run is given a Lua script made of the request's description and a
`done` hook that prints the figures as one JSON line, so nothing depends on wrk's text layout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

RESULT_PREFIX = "WRK_RESULT "
# Slow answers must count in the latency figures, not vanish as timeouts (wrk's default is 2 s).
TIMEOUT = "30s"

_DONE_HOOK = """
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"status_errors": %d, "socket_errors": %d}\\n',
    "WRK_RESULT ", summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.max, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
"""

# A chain of refresh tokens per connection: each answer's new token is the next request's.
# Tokens come one a line from the file given as the script's argument. wrk calls `request` once
# before connecting, to check the request it makes (never sent): that call takes no token.
_REFRESH_CHAINS = """
local tokens = {}
local checked = false
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
end
request = function()
  local token = "none"
  if checked then token = table.remove(tokens, 1) or "spent" end
  checked = true
  return wrk.format("POST", "/auth/refresh", {["Content-Type"] = "application/json"},
    '{"refresh_token":"' .. token .. '"}')
end
response = function(status, headers, body)
  local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token then tokens[#tokens + 1] = token end
end
"""


@dataclass(frozen=True)
class LoadResult:
    """The figures of one load run."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # answers of 400 and above, plus socket errors and timeouts

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class Request:
    """One request, sent again and again: method, path, headers and an optional body file."""

    method: str
    path: str
    headers: dict[str, str]
    body_file: Path | None = None

    def lua(self) -> str:
        lines = [f"wrk.method = {_lua_string(self.method)}"]
        lines += [
            f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}"
            for name, value in self.headers.items()
        ]
        if self.body_file is not None:
            lines.append(
                f'do local file = assert(io.open({_lua_string(str(self.body_file))}, "rb")) '
                "wrk.body = file:read('*a') file:close() end"
            )
        return "\n".join(lines)


def _lua_string(text: str) -> str:
    if "]==]" in text:
        raise ValueError("text cannot be quoted as a Lua long string")
    return f"[==[{text}]==]"


def available() -> bool:
    return shutil.which("wrk") is not None


def run(
    base_url: str,
    request: Request,
    *,
    connections: int,
    seconds: float,
    script_dir: Path,
) -> LoadResult:
    script = script_dir / "request.lua"
    script.write_text(request.lua() + _DONE_HOOK)
    return _run_script(f"{base_url}{request.path}", script, [], connections, seconds)


def run_refresh_chains(
    base_url: str, tokens: list[str], *, seconds: float, script_dir: Path
) -> LoadResult:
    """One connection per refresh token, each rotating its own session's token in turn."""
    token_file = script_dir / "refresh_tokens.txt"
    token_file.write_text("\n".join(tokens) + "\n")
    script = script_dir / "refresh.lua"
    script.write_text(_REFRESH_CHAINS + _DONE_HOOK)
    return _run_script(f"{base_url}/auth/refresh", script, [str(token_file)], len(tokens), seconds)


def _run_script(
    url: str, script: Path, script_args: list[str], connections: int, seconds: float
) -> LoadResult:
    # One thread: enough for these rates, and a Lua state (the refresh chains) per thread.
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", f"--timeout={TIMEOUT}"]
    args += ["-s", str(script), url, *script_args]
    completed = subprocess.run(args, capture_output=True, text=True, check=True)
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            figures = json.loads(line.removeprefix(RESULT_PREFIX))
            return LoadResult(
                requests=figures["requests"],
                seconds=figures["duration_us"] / 1e6,
                p50_ms=figures["p50_us"] / 1000,
                p99_ms=figures["p99_us"] / 1000,
                max_ms=figures["max_us"] / 1000,
                errors=figures["status_errors"] + figures["socket_errors"],
            )
    raise RuntimeError(f"wrk printed no figures: {completed.stdout}\n{completed.stderr}")
