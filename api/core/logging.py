"""Log format for the service's own loggers (uvicorn keeps its own)."""

from __future__ import annotations

import logging

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str) -> None:
    logger = logging.getLogger("pixelgate")
    logger.setLevel(level.upper())
    if not any(getattr(h, "_pixelgate", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._pixelgate = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = True
