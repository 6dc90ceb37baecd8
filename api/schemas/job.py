from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.models.job import JobStatus
from api.processing.operations import Pipeline
from api.schemas.common import MAX_ID

MAX_BATCH_IMAGES = 100


class ProcessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operations: Pipeline = Field(description="Applied in order; at most 10")
    wait: bool = Field(
        True, description="true: answer 200 when the job has finished; false: 202 at once"
    )


class BatchProcessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        min_length=1, max_length=MAX_BATCH_IMAGES
    )
    operations: Pipeline

    @field_validator("image_ids")
    @classmethod
    def _unique(cls, image_ids: list[int]) -> list[int]:
        if len(set(image_ids)) != len(image_ids):
            raise ValueError("image ids must be unique")
        return image_ids


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    image_id: int | None = Field(description="The source image; null once it is deleted")
    status: JobStatus
    operations: list[dict[str, Any]]
    result_image_id: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None = Field(description="From start to finish on a worker")


class BatchJobsOut(BaseModel):
    jobs: list[JobOut]
