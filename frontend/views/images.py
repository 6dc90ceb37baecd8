"""Images: upload several at once, a paged gallery, batch processing; `?image=<id>` opens one."""

from __future__ import annotations

from typing import Any

import streamlit as st

from frontend.api_client import ApiError
from frontend.auth.session import api_client
from frontend.components.feedback import empty_state, show_error
from frontend.components.formatting import duration, plural
from frontend.components.image_detail import image_page
from frontend.components.images import IMAGE_QUERY_PARAM, image_tile, open_link
from frontend.components.jobs import badge, follow_jobs
from frontend.components.paging import current_offset, pager
from frontend.components.pipeline import pipeline_builder

PAGE_SIZE = 12
COLUMNS = 4
SELECTED_KEY = "selected_images"
UPLOAD_REPORT_KEY = "upload_report"
UPLOAD_ROUND_KEY = "upload_round"
BATCH_PIPELINE_QUERY_PARAM = "batch_step"


def _selected() -> set[int]:
    return st.session_state.setdefault(SELECTED_KEY, set())


def _toggle(image_id: int) -> None:
    if st.session_state.get(f"select_{image_id}"):
        _selected().add(image_id)
    else:
        _selected().discard(image_id)


def _upload_form(expanded: bool) -> None:
    """The file picker (Streamlit's own "Upload" button), then one button that sends them."""
    with st.expander("Upload images", icon=":material/upload:", expanded=expanded):
        # A new key empties the picker once its files are sent.
        picker = f"upload_files_{st.session_state.get(UPLOAD_ROUND_KEY, 0)}"
        files = st.file_uploader(
            "JPEG, PNG, WebP, GIF, BMP or TIFF, up to 10 MB each",
            accept_multiple_files=True,
            key=picker,
        )
        if files and st.button(
            f"Add {plural(len(files), 'file')} to your library",
            type="primary",
            icon=":material/library_add:",
            key="upload_send",
        ):
            _upload(files)


def _upload(files: list[Any]) -> None:
    client = api_client()
    progress = st.progress(0.0, text=f"Uploading {plural(len(files), 'file')}…")
    uploaded, failed = [], []
    for index, file in enumerate(files, start=1):
        try:
            uploaded.append(client.upload(file.name, file.getvalue(), file.type))
        except ApiError as error:
            failed.append((file.name, error.message))
        progress.progress(index / len(files), text=f"{index} of {len(files)} sent")
    # Rerun so the gallery lists the new images; the report is shown on that run.
    st.session_state[UPLOAD_REPORT_KEY] = (len(uploaded), failed)
    st.session_state[UPLOAD_ROUND_KEY] = st.session_state.get(UPLOAD_ROUND_KEY, 0) + 1
    st.rerun()


def _upload_report() -> None:
    report = st.session_state.pop(UPLOAD_REPORT_KEY, None)
    if report is None:
        return
    uploaded, failed = report
    if uploaded:
        st.success(f"Uploaded {plural(uploaded, 'image')}.", icon=":material/check_circle:")
    for name, message in failed:
        st.error(f"**{name}**: {message}")


def _gallery() -> None:
    st.title("Images")
    client = api_client()
    page = client.images(limit=PAGE_SIZE, offset=current_offset("gallery", PAGE_SIZE))
    _upload_form(expanded=page["total"] == 0)
    _upload_report()
    if not page["items"]:
        empty_state(
            "Your library is empty",
            "Upload images above; then open one to build a processing pipeline.",
            ":material/add_photo_alternate:",
        )
        return
    st.caption(f"{plural(page['total'], 'image')}. Tick images to process several at once.")
    for start in range(0, len(page["items"]), COLUMNS):
        for column, image in zip(
            st.columns(COLUMNS), page["items"][start : start + COLUMNS], strict=False
        ):
            with column, st.container(border=True):
                image_tile(image)
                st.session_state[f"select_{image['id']}"] = image["id"] in _selected()
                st.checkbox(
                    "Select", key=f"select_{image['id']}", on_change=_toggle, args=(image["id"],)
                )
    pager("gallery", page["total"], PAGE_SIZE)
    _batch()


def _batch() -> None:
    selected = sorted(_selected())
    with st.expander(
        f"Process selected images ({len(selected)})",
        icon=":material/burst_mode:",
        expanded=bool(selected),
    ):
        if not selected:
            st.caption("Tick the images to process in the gallery above.")
            return
        operations = pipeline_builder("batch", BATCH_PIPELINE_QUERY_PARAM)
        if st.button(
            f"Process {plural(len(selected), 'image')}",
            type="primary",
            disabled=not operations,
            icon=":material/play_arrow:",
            key="batch_run",
        ):
            _run_batch(selected, operations)


def _run_batch(image_ids: list[int], operations: list[dict[str, Any]]) -> None:
    try:
        jobs = api_client().process_batch(image_ids, operations)
    except ApiError as error:
        show_error(error)
        return
    bar = st.progress(0.0, text="Queued…")

    def report(current: list[dict[str, Any]]) -> None:
        finished = sum(job["status"] in ("done", "failed") for job in current)
        bar.progress(finished / len(current), text=f"{finished} of {len(current)} jobs finished")

    finished_jobs = follow_jobs(jobs, report)
    for job in finished_jobs:
        line, link = st.columns([4, 1], vertical_alignment="center")
        line.markdown(
            f"Job #{job['id']} {badge(job['status'])} {duration(job.get('duration_ms'))}"
            + (f" — {job['error']}" if job.get("error") else "")
        )
        if job.get("result_image_id"):
            with link:
                open_link(job["result_image_id"], "Result")
    _selected().clear()


image_param = st.query_params.get(IMAGE_QUERY_PARAM)
if image_param and image_param.isdigit():
    # Written back so the browser's address keeps it: reruns and reloads stay on this image.
    st.query_params[IMAGE_QUERY_PARAM] = image_param
    image_page(int(image_param))
else:
    _gallery()
