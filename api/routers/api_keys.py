"""API key routes. Bearer only: a key can never mint or list keys."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.dependencies import Client, CurrentUser, DbSession
from api.models import ApiKey
from api.schemas.api_key import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from api.schemas.common import IdPath, error_responses
from api.services import api_keys as api_key_service

router = APIRouter(prefix="/api-keys", tags=["api-keys"])


def _key_out(record: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=record.id,
        name=record.name,
        prefix=record.prefix,
        created_at=record.created_at,
        expires_at=record.expires_at,
        last_used_at=record.last_used_at,
        revoked=record.revoked_at is not None,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=error_responses(401, 422),
)
def create_api_key(
    body: ApiKeyCreate, user: CurrentUser, db: DbSession, client: Client, response: Response
) -> ApiKeyCreated:
    """Creates a key for server-to-server calls. The full `key` is in this answer only;
    send it as `X-API-Key` to image and job routes."""
    issued = api_key_service.create_api_key(
        db, user, name=body.name, expires_in_days=body.expires_in_days, client=client
    )
    response.headers["Cache-Control"] = "no-store"
    return ApiKeyCreated(
        id=issued.record.id,
        name=issued.record.name,
        prefix=issued.record.prefix,
        key=issued.key,
        created_at=issued.record.created_at,
        expires_at=issued.record.expires_at,
    )


@router.get("", response_model=list[ApiKeyOut], responses=error_responses(401))
def list_api_keys(user: CurrentUser, db: DbSession) -> list[ApiKeyOut]:
    """The caller's keys, revoked ones included, newest first; never the keys themselves."""
    return [_key_out(record) for record in api_key_service.list_api_keys(db, user.id)]


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 422),
)
def revoke_api_key(key_id: IdPath, user: CurrentUser, db: DbSession, client: Client) -> Response:
    """Revokes one of the caller's keys at once (idempotent); another user's is a 404."""
    api_key_service.revoke_api_key(db, user, key_id, client=client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
