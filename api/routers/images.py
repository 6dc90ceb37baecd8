"""Image routes: HTTP in and out only; the rules live in api/services/images.py and jobs.py."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from api.dependencies import CurrentUserOrKey, DbSession, JobRunnerDep, SettingsDep, StorageDep
from api.processing.imaging import MEDIA_TYPES, THUMBNAIL_RENDITION
from api.routers.conditional import NOT_MODIFIED, IfNoneMatch, entity_tag, is_current, not_modified
from api.routers.multipart_upload import receive_file_field
from api.schemas.common import IdPath, Page, Pagination, error_responses, to_page
from api.schemas.image import ImageOut
from api.schemas.job import BatchJobsOut, BatchProcessRequest, JobOut, ProcessRequest
from api.services import images as image_service

router = APIRouter(prefix="/images", tags=["images"])

# Served bytes are never sniffed into something executable, nor kept by shared caches.
IMAGE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache"}

_BINARY = {"schema": {"type": "string", "format": "binary"}}
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [image_service.UPLOAD_FIELD],
                    "properties": {
                        image_service.UPLOAD_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "JPEG, PNG, WebP, GIF, BMP or TIFF (judged by "
                            "content), at most MAX_UPLOAD_MB",
                        }
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ImageOut,
    responses=error_responses(401, 413, 415, 422, 503),
    openapi_extra=UPLOAD_BODY,
)
async def upload_image(
    request: Request,
    user: CurrentUserOrKey,
    db: DbSession,
    settings: SettingsDep,
    storage: StorageDep,
) -> ImageOut:
    """Uploads an image (multipart field `file`). The body is streamed to disk and cut off
    past MAX_UPLOAD_MB; the type is judged by the content, never by name or header."""
    received = await receive_file_field(
        request.stream(),
        content_type=request.headers.get("content-type"),
        content_length=request.headers.get("content-length"),
        field_name=image_service.UPLOAD_FIELD,
        destination=await run_in_threadpool(storage.scratch_path, "upload"),
        max_bytes=settings.max_upload_bytes,
    )
    try:
        image = await run_in_threadpool(
            image_service.store_upload,
            db,
            storage,
            settings,
            user,
            received.path,
            received.filename,
        )
    finally:
        received.path.unlink(missing_ok=True)
    return ImageOut.model_validate(image)


@router.get("", response_model=Page[ImageOut], responses=error_responses(401, 422))
def list_images(user: CurrentUserOrKey, db: DbSession, page: Pagination) -> Page[ImageOut]:
    """The caller's images, newest first."""
    items, total = image_service.images_page(db, user, page)
    return to_page(ImageOut, items, total, page)


@router.post(
    "/process-batch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchJobsOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def process_batch(
    body: BatchProcessRequest, user: CurrentUserOrKey, db: DbSession, runner: JobRunnerDep
) -> BatchJobsOut:
    """Queues one job per image (all or none), spread over the workers."""
    jobs = await runner.submit(db, user, body.image_ids, body.operations)
    return BatchJobsOut(jobs=[JobOut.model_validate(job) for job in jobs])


@router.get(
    "/{image_id:int}", response_model=ImageOut, responses=error_responses(401, 403, 404, 422)
)
def get_image(image_id: IdPath, user: CurrentUserOrKey, db: DbSession) -> ImageOut:
    return ImageOut.model_validate(image_service.get_owned_image(db, user, image_id))


def _inline_disposition(filename: str) -> str:
    """`inline` with the file name, RFC 6266 style (percent-encoded when not plain ASCII)."""
    quoted = quote(filename)
    if quoted != filename:
        return f"inline; filename*=utf-8''{quoted}"
    return f'inline; filename="{filename}"'


@router.get(
    "/{image_id:int}/content",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The bytes as uploaded, with their media type",
            "content": dict.fromkeys(MEDIA_TYPES.values(), _BINARY),
        },
        **NOT_MODIFIED,
        **error_responses(401, 403, 404, 422, 503),
    },
)
def image_content(
    image_id: IdPath,
    user: CurrentUserOrKey,
    db: DbSession,
    storage: StorageDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The bytes as stored, streamed (never the whole file in memory), with an `ETag`."""
    image = image_service.get_image_with_file(db, user, image_id)
    etag = entity_tag(image.storage_key)
    if is_current(if_none_match, etag):
        return not_modified(etag, IMAGE_HEADERS)
    content = image_service.open_content(storage, image)
    return StreamingResponse(
        content.chunks(),
        media_type=image.media_type,
        headers={
            **IMAGE_HEADERS,
            "ETag": etag,
            "Content-Length": str(content.size),
            "Content-Disposition": _inline_disposition(image.filename),
        },
        background=BackgroundTask(content.close),  # also when the client left before the end
    )


@router.get(
    "/{image_id:int}/thumbnail",
    response_class=Response,
    responses={
        200: {
            "description": "PNG (transparency, PNG and GIF sources) or JPEG; no EXIF",
            "content": {"image/png": _BINARY, "image/jpeg": _BINARY},
        },
        **NOT_MODIFIED,
        **error_responses(401, 403, 404, 422, 503),
    },
)
def image_thumbnail(
    image_id: IdPath,
    user: CurrentUserOrKey,
    db: DbSession,
    storage: StorageDep,
    size: Annotated[int, Query(ge=32, le=512, description="Longer side, in pixels")] = 256,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """A thumbnail with the EXIF orientation applied and no metadata, with an `ETag`: a
    revalidation that is current costs no rendering."""
    image = image_service.get_image_with_file(db, user, image_id)
    etag = entity_tag(image.storage_key, THUMBNAIL_RENDITION, size)
    if is_current(if_none_match, etag):
        return not_modified(etag, IMAGE_HEADERS)
    data, media_type = image_service.thumbnail(storage, image, size)
    return Response(data, media_type=media_type, headers={**IMAGE_HEADERS, "ETag": etag})


@router.delete(
    "/{image_id:int}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
def delete_image(
    image_id: IdPath, user: CurrentUserOrKey, db: DbSession, storage: StorageDep
) -> Response:
    """Deletes the image, row and file; its processing results stay (their source becomes null)."""
    image_service.delete_image(db, storage, user, image_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{image_id:int}/process",
    response_model=JobOut,
    responses={
        202: {"model": JobOut, "description": "Queued (`wait: false`)"},
        **error_responses(401, 403, 404, 422, 503),
    },
)
async def process_image(
    image_id: IdPath,
    body: ProcessRequest,
    response: Response,
    user: CurrentUserOrKey,
    db: DbSession,
    runner: JobRunnerDep,
) -> JobOut:
    """Queues the operations on a worker. With `wait` (default) the answer comes when the job
    has finished, done or failed (200); without, at once (202) — poll `/jobs/{id}`."""
    [job] = await runner.submit(db, user, [image_id], body.operations)
    if not body.wait:
        response.status_code = status.HTTP_202_ACCEPTED
        return JobOut.model_validate(job)
    await runner.wait(job.id)
    await run_in_threadpool(db.refresh, job)
    return JobOut.model_validate(job)
