"""One image's page: metadata, before/after, the pipeline builder with live status, download,
delete with confirmation."""

from __future__ import annotations

from typing import Any

import streamlit as st

from frontend.api_client import ApiError
from frontend.auth.session import api_client
from frontend.components.feedback import show_error
from frontend.components.formatting import duration, human_size, when
from frontend.components.images import IMAGE_QUERY_PARAM, image_cache, open_link, show_thumbnail
from frontend.components.jobs import follow_jobs
from frontend.components.operations import describe_operations
from frontend.components.pipeline import pipeline_builder

PREVIEW_SIZE = 512
RECENT_JOBS_SCANNED = 50
PIPELINE_QUERY_PARAM = "step"  # ?image=7&step=sepia&step=… keeps the pipeline being built


def _result_key(image_id: int) -> str:
    return f"last_result_of_{image_id}"


def _latest_result(image_id: int) -> int | None:
    """The result of this session's last run on the image, else of its latest finished job
    (so a reload still shows the after picture)."""
    if known := st.session_state.get(_result_key(image_id)):
        return known
    recent = api_client().jobs(limit=RECENT_JOBS_SCANNED, status="done")["items"]
    return next((job["result_image_id"] for job in recent if job["image_id"] == image_id), None)


def back_to_gallery() -> None:
    st.query_params.pop(IMAGE_QUERY_PARAM, None)
    st.query_params.pop(PIPELINE_QUERY_PARAM, None)


def _before_after(before_id: int, after_id: int | None, after_caption: str) -> None:
    before, after = st.columns(2)
    with before:
        st.markdown("**Before**")
        show_thumbnail(before_id, PREVIEW_SIZE)
    with after:
        st.markdown("**After**")
        if after_id is None:
            st.caption("Run a pipeline to see the result here.")
        else:
            show_thumbnail(after_id, PREVIEW_SIZE, caption=after_caption)


def _metadata(image: dict[str, Any]) -> None:
    with st.container(border=True):
        st.markdown(
            f"**Format** {image['format']}  \n"
            f"**Size** {image['width']} × {image['height']} px · {human_size(image['size_bytes'])}"
            f"  \n**Added** {when(image['created_at'])}"
        )
        if image.get("source_image_id"):
            st.markdown(f"**Made from** image #{image['source_image_id']} with")
            st.code(describe_operations(image.get("operations")), language=None)
            open_link(image["source_image_id"], "Open the original", ":material/image:")


def _download(image: dict[str, Any]) -> None:
    client = api_client()  # the data callback runs on another thread: capture, don't look up
    st.download_button(
        "Download",
        data=lambda: client.image_content(image["id"]).content,
        file_name=image["filename"],
        mime=image.get("media_type") or "application/octet-stream",
        icon=":material/download:",
        key=f"download_{image['id']}",
        on_click="ignore",
    )


def _delete(image: dict[str, Any]) -> None:
    confirm_key = f"confirm_delete_{image['id']}"
    if not st.session_state.get(confirm_key):
        if st.button("Delete", icon=":material/delete:", key=f"delete_{image['id']}"):
            st.session_state[confirm_key] = True
            st.rerun()
        return
    st.warning(f"Delete **{image['filename']}** for good? This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete", type="primary", key=f"delete_yes_{image['id']}"):
        api_client().delete_image(image["id"])
        image_cache().forget(image["id"])
        st.session_state.pop(confirm_key, None)
        back_to_gallery()
        st.toast(f"Deleted {image['filename']}.")
        st.rerun()
    if no.button("Cancel", key=f"delete_no_{image['id']}"):
        st.session_state.pop(confirm_key, None)
        st.rerun()


def _run_pipeline(image_id: int, operations: list[dict[str, Any]]) -> None:
    try:
        job = api_client().process(image_id, operations)
    except ApiError as error:
        show_error(error)
        return
    with st.status(f"Job #{job['id']} queued…", expanded=False) as status:

        def report(jobs: list[dict[str, Any]]) -> None:
            current = jobs[0]
            status.update(label=f"Job #{current['id']}: {current['status']}…")

        job = follow_jobs([job], report)[0]
        if job["status"] == "done":
            status.update(
                label=f"Job #{job['id']} done in {duration(job.get('duration_ms'))}",
                state="complete",
            )
            st.session_state[_result_key(image_id)] = job["result_image_id"]
        elif job["status"] == "failed":
            status.update(label=f"Job #{job['id']} failed", state="error")
            st.error(job.get("error") or "The job failed.")
        else:
            status.update(label=f"Job #{job['id']} is still {job['status']}", state="running")
            st.info("It is taking a while; the Jobs page shows when it finishes.")


def image_page(image_id: int) -> None:
    client = api_client()
    try:
        image = client.image(image_id)
    except ApiError as error:
        if error.status not in (403, 404):
            raise
        st.button("All images", icon=":material/arrow_back:", on_click=back_to_gallery)
        show_error(error)
        return

    st.button("All images", icon=":material/arrow_back:", on_click=back_to_gallery)
    st.title(image["filename"])
    main, side = st.columns([3, 2], gap="large")

    with side:
        _metadata(image)
        actions = st.columns(2)
        with actions[0]:
            _download(image)
        with actions[1]:
            _delete(image)
        st.subheader("Pipeline")
        operations = pipeline_builder(f"image_{image_id}", PIPELINE_QUERY_PARAM)
        run = st.button(
            "Run pipeline",
            type="primary",
            icon=":material/play_arrow:",
            disabled=not operations,
            key=f"run_{image_id}",
            width="stretch",
        )

    with main:
        if run:
            _run_pipeline(image_id, operations)
        if image.get("source_image_id"):
            _before_after(
                image["source_image_id"], image_id, describe_operations(image.get("operations"))
            )
        else:
            result_id = _latest_result(image_id)
            _before_after(image_id, result_id, "Latest result" if result_id else "")
            if result_id:
                open_link(result_id, "Open the result", ":material/arrow_forward:")
