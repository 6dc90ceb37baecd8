"""Dashboard, Images and Jobs pages against a real API server (real uploads and processing)."""

from __future__ import annotations

from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from frontend.auth.state import Tokens
from tests.frontend.harness import (
    ApiCaller,
    new_user,
    open_page,
    png_bytes,
    texts,
    upload_png,
)
from tests.support.accounts import bearer


@pytest.fixture
def member(api_url: str) -> Tokens:
    return new_user(api_url, "pics")[1]


def images_of(api_url: str, tokens: Tokens) -> list[dict[str, Any]]:
    answer = ApiCaller(api_url).get("/images", headers=bearer(tokens.access_token))
    return answer.json()["items"]


def add_step(app: AppTest, key: str, op: str, **params: Any) -> None:
    app.selectbox(key=f"{key}_new_op").set_value(op).run()
    for name, value in params.items():
        widget_key = f"{key}_{op}_{name}"
        widget = next(w for w in (*app.number_input, *app.selectbox) if w.key == widget_key)
        widget.set_value(value)
    app.button(key=f"{key}_add").click().run()


def steps_shown(app: AppTest) -> list[str]:
    return [m.value for m in app.markdown if m.value.startswith("**") and ".** `" in m.value]


def test_an_empty_library_invites_an_upload(app: AppTest, api_url: str, member: Tokens) -> None:
    open_page(app, api_url, member, "views/images.py")
    assert not app.exception
    assert "Your library is empty" in texts(app)
    assert app.expander[0].proto.expanded  # the upload form is open


def test_uploading_several_files_reports_each(app: AppTest, api_url: str, member: Tokens) -> None:
    open_page(app, api_url, member, "views/images.py")
    app.file_uploader(key="upload_files").set_value(
        [
            ("one.png", png_bytes(), "image/png"),
            ("two.png", png_bytes(color=(0, 90, 200)), "image/png"),
            ("notes.txt", b"not an image at all", "text/plain"),
        ]
    )
    app.button(key="FormSubmitter:upload_form-Upload").click().run()
    assert not app.exception
    assert [s.value for s in app.success] == ["Uploaded 2 image(s)."]
    (error,) = app.error
    assert error.value.startswith("**notes.txt**: ")  # the server's 415 message follows
    assert sorted(i["filename"] for i in images_of(api_url, member)) == ["one.png", "two.png"]


def test_the_gallery_pages_through_thumbnails(app: AppTest, api_url: str, member: Tokens) -> None:
    for index in range(14):
        upload_png(api_url, member, f"img{index:02}.png")
    open_page(app, api_url, member, "views/images.py")
    assert not app.exception
    assert len(app.image) == 12
    assert "Page 1 of 2 · 14 in all" in texts(app)
    app.button(key="gallery_next").click().run()
    assert len(app.image) == 2
    assert "Page 2 of 2 · 14 in all" in texts(app)


def test_an_image_page_builds_runs_and_shows_before_after(
    app: AppTest, api_url: str, member: Tokens
) -> None:
    image = upload_png(api_url, member, "photo.png")
    open_page(app, api_url, member, "views/images.py", image=str(image["id"]))
    assert app.title[0].value == "photo.png"
    assert "24 × 16 px" in texts(app)
    key = f"image_{image['id']}"

    add_step(app, key, "grayscale")
    add_step(app, key, "resize", width=48)
    add_step(app, key, "flip", direction="vertical")
    assert steps_shown(app) == [
        "**1.** `grayscale`",
        "**2.** `resize(width=48)`",
        "**3.** `flip(direction=vertical)`",
    ]
    app.button(key=f"{key}_up_2").click().run()  # flip moves above resize
    app.button(key=f"{key}_remove_0").click().run()  # grayscale goes
    assert steps_shown(app) == ["**1.** `flip(direction=vertical)`", "**2.** `resize(width=48)`"]

    app.button(key=f"run_{image['id']}").click().run()
    assert not app.exception
    assert not app.error
    (status,) = app.status
    assert "done in" in status.label
    results = [i for i in images_of(api_url, member) if i["source_image_id"] == image["id"]]
    assert len(results) == 1
    assert (results[0]["width"], results[0]["height"]) == (48, 32)
    assert results[0]["operations"] == [
        {"op": "flip", "direction": "vertical"},
        {"op": "resize", "width": 48},
    ]
    assert len(app.image) == 2  # before and after, side by side
    assert [s.proto.label for s in app.get("page_link") if "result" in s.proto.label.lower()]


def test_a_failed_rule_shows_the_servers_message(
    app: AppTest, api_url: str, member: Tokens
) -> None:
    image = upload_png(api_url, member)
    open_page(app, api_url, member, "views/images.py", image=str(image["id"]))
    key = f"image_{image['id']}"
    add_step(app, key, "resize", width=0, height=0)
    assert [e.value for e in app.error] == ["Give a width, a height, or both."]


def test_deleting_asks_for_confirmation(app: AppTest, api_url: str, member: Tokens) -> None:
    image = upload_png(api_url, member, "doomed.png")
    open_page(app, api_url, member, "views/images.py", image=str(image["id"]))
    app.button(key=f"delete_{image['id']}").click().run()
    assert "Delete **doomed.png** for good?" in texts(app)
    app.button(key=f"delete_no_{image['id']}").click().run()
    assert len(images_of(api_url, member)) == 1

    app.button(key=f"delete_{image['id']}").click().run()
    app.button(key=f"delete_yes_{image['id']}").click().run()
    assert not app.exception
    assert images_of(api_url, member) == []
    assert app.title[0].value == "Images"  # back in the (now empty) gallery


def test_another_users_image_is_not_shown(app: AppTest, api_url: str, member: Tokens) -> None:
    _, other = new_user(api_url, "other")
    image = upload_png(api_url, other, "private.png")
    open_page(app, api_url, member, "views/images.py", image=str(image["id"]))
    assert not app.exception
    assert "private.png" not in texts(app)
    assert app.error


def test_batch_processing_follows_every_job(app: AppTest, api_url: str, member: Tokens) -> None:
    uploads = [upload_png(api_url, member, f"b{index}.png") for index in range(3)]
    open_page(app, api_url, member, "views/images.py")
    for image in uploads:
        app.checkbox(key=f"select_{image['id']}").check().run()
    assert "Process selected images (3)" in [e.label for e in app.expander]
    add_step(app, "batch", "invert")
    app.button(key="batch_run").click().run()
    assert not app.exception
    (bar,) = app.get("progress")
    assert bar.proto.value == 100
    assert bar.proto.text == "3 of 3 jobs finished"
    jobs = ApiCaller(api_url).get("/jobs", headers=bearer(member.access_token)).json()["items"]
    assert [(job["status"], job["error"]) for job in jobs] == [("done", None)] * 3
    results = [i for i in images_of(api_url, member) if i["source_image_id"]]
    assert len(results) == 3


def test_jobs_page_lists_status_duration_and_results(
    app: AppTest, api_url: str, member: Tokens
) -> None:
    image = upload_png(api_url, member)
    job = (
        ApiCaller(api_url)
        .post(
            f"/images/{image['id']}/process",
            json={"operations": [{"op": "sepia"}]},
            headers=bearer(member.access_token),
        )
        .json()
    )
    open_page(app, api_url, member, "views/jobs.py")
    assert not app.exception
    page = texts(app)
    assert f"**Job #{job['id']}**" in page
    assert "done" in page
    assert "sepia" in page
    labels = [link.proto.label for link in app.get("page_link")]
    assert "Result" in labels
    assert "Source" in labels


def test_jobs_page_without_jobs_says_what_to_do(app: AppTest, api_url: str, member: Tokens) -> None:
    open_page(app, api_url, member, "views/jobs.py")
    assert "No jobs here" in texts(app)


def test_dashboard_counts_and_recent_images(app: AppTest, api_url: str, member: Tokens) -> None:
    for index in range(2):
        upload_png(api_url, member, f"d{index}.png")
    open_page(app, api_url, member, "views/dashboard.py")
    assert not app.exception
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Images"] == "2"
    assert metrics["Jobs done"] == "0"
    assert metrics["Successful logins"] == "1"
    assert len(app.image) == 2
    assert app.get("vega_lite_chart")


def test_dashboard_empty_state(app: AppTest, api_url: str, member: Tokens) -> None:
    open_page(app, api_url, member, "views/dashboard.py")
    assert "No images yet" in texts(app)
