"""Turning API values (ISO timestamps, byte counts, user agents, counts) into words."""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st


def browser_timezone() -> tzinfo:
    """The visitor's time zone when the browser told us, else UTC."""
    try:
        name = st.context.timezone
    except Exception:
        name = None
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return UTC


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def local_time(value: str | None) -> datetime | None:
    parsed = parse_time(value)
    return parsed.astimezone(browser_timezone()) if parsed else None


def when(value: str | None, empty: str = "—") -> str:
    """'2024-05-01 14:03' in the visitor's time zone."""
    moment = local_time(value)
    return moment.strftime("%Y-%m-%d %H:%M") if moment else empty


def ago(value: str | None, now: datetime | None = None, empty: str = "never") -> str:
    moment = parse_time(value)
    if moment is None:
        return empty
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            return f"{plural(seconds // size, unit)} ago"
    return "just now"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 image', '3 images' ('1 copy', '2 copies' with `nouns="copies"`)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def human_size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "—"
    size = float(size_bytes)
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} MB"


def duration(milliseconds: int | float | None) -> str:
    if milliseconds is None:
        return "—"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    return f"{milliseconds / 1000:.1f} s"


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"))
_BROWSERS_LAST = (("Chrome/", "Chrome"), ("Chromium/", "Chromium"), ("Safari/", "Safari"))
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def device(user_agent: str | None) -> str:
    """A short 'Chrome on Linux' for a user agent; scripts and tools keep their own name."""
    if not user_agent:
        return "Unknown device"
    browser = next((name for key, name in _BROWSERS if key in user_agent), None)
    if browser is None:
        browser = next((name for key, name in _BROWSERS_LAST if key in user_agent), None)
    system = next((name for key, name in _SYSTEMS if key in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system or user_agent
    match = re.match(r"[\w.-]+(/[\w.]+)?", user_agent)
    return match.group(0) if match else user_agent[:40]
