"""Who is calling: client IP (proxy-aware, only for trusted proxies) and user agent."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from api.core.config import Settings

MAX_USER_AGENT_LENGTH = 512


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip_address: str | None
    user_agent: str | None


def _is_trusted(peer: str | None, settings: Settings) -> bool:
    trusted = settings.trusted_proxies
    if trusted is None:
        return True
    if not peer or not trusted:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def client_ip(connection: HTTPConnection, settings: Settings) -> str | None:
    """The peer address, or the nearest untrusted hop of X-Forwarded-For behind trusted proxies."""
    peer = connection.client.host if connection.client else None
    if not _is_trusted(peer, settings):
        return peer
    forwarded = connection.headers.get("x-forwarded-for")
    if not forwarded:
        return peer
    hops = [_plain_ip(hop) for hop in forwarded.split(",") if hop.strip()]
    # Walk from the right: the rightmost address not belonging to a trusted proxy is the client.
    for hop in reversed(hops):
        if hop is None:
            return peer
        if not _is_trusted(hop, settings):
            return hop
    return hops[0] if hops else peer


def _plain_ip(text: str) -> str | None:
    """An IP address in canonical form; None for anything else, IPv6 zone ids included
    (`fe80::1%<anything>` parses, but is no client address and would not fit the column)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if getattr(address, "scope_id", None):
        return None
    return str(address)


def client_info(connection: HTTPConnection, settings: Settings) -> ClientInfo:
    user_agent = connection.headers.get("user-agent")
    return ClientInfo(
        ip_address=client_ip(connection, settings),
        user_agent=user_agent[:MAX_USER_AGENT_LENGTH] if user_agent else None,
    )
