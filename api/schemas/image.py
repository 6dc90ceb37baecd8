from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ImageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    filename: str = Field(description="The uploader's file name; metadata only")
    format: str = Field(description="JPEG, PNG, WEBP, GIF, BMP or TIFF, judged by content")
    media_type: str
    width: int = Field(description="As displayed (EXIF orientation applied)")
    height: int
    size_bytes: int
    created_at: datetime
    source_image_id: int | None = Field(
        description="For a processing result, the image it was made from; null for an upload"
    )
    operations: list[dict[str, Any]] | None = Field(
        description="For a processing result, the operations applied; null for an upload"
    )
    file_missing_at: datetime | None = Field(
        None, description="Set when the start-up sweep found the stored file gone"
    )
