"""The floor the request path is measured against: one `async def` FastAPI endpoint, served
by the same uvicorn with the same options as the API (`uvicorn bench.bare_app:app`)."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/bare")
async def bare() -> dict[str, str]:
    return {"status": "ok"}
