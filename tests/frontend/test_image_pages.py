"""Dashboard, Images and Jobs pages against a real API server (real uploads and processing)."""

from __future__ import annotations

from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from frontend.auth.state import Tokens
from tests.frontend.harness import (
    new_user,
    open_page,
    page_warnings,
    texts,
    upload_png,
)
from tests.support.accounts import bearer
from tests.support.images import image_bytes
from tests.support.servers import LiveClient


@pytest.fixture
def member(api_url: str) -> Tokens:
    return new_user(api_url, "pics")[1]


def images_of(api_url: str, tokens: Tokens) -> list[dict[str, Any]]:
    answer = LiveClient(api_url).get("/images", headers=bearer(tokens.access_token))
    return answer.json()["items"]


def add_step(app: AppTest, key: str, op: str, **params: Any) -> None:
    app.selectbox(key=f"{key}_new_op").set_value(op).run()
    for name, value in params.items():
        widget_key = f"{key}_{op}_{name}"
        widget = next(w for w in (*app.number_input, *app.selectbox) if w.key == widget_key)
        widget.set_value(value)
    app.button(key=f"{key}_add").click().run()


def steps_shown(app: AppTest) -> list[str]:
    return [m.value for m in app.markdown if m.value.startswith("**") and ".** " in m.value]


def send_button(app: AppTest) -> list[str]:
    """The label of the button that sends the chosen files, if it is there."""
    return [button.label for button in app.button if button.key == "upload_send"]


def test_an_empty_library_invites_an_upload(app: AppTest, api_url: str, member: Tokens) -> None:
    open_page(app, api_url, member, "views/images.py")
    assert not app.exception
    assert "Your library is empty" in texts(app)
    assert app.expander[0].proto.expanded  # the upload form is open
    # Before files are chosen, the picker's own "Upload" is the only button of the form.
    assert send_button(app) == []


def test_uploading_several_files_reports_each(app: AppTest, api_url: str, member: Tokens) -> None:
    open_page(app, api_url, member, "views/images.py")
    app.file_uploader[0].set_value(
        [
            ("one.png", image_bytes(), "image/png"),
            ("two.png", image_bytes(color=(0, 90, 200)), "image/png"),
            ("notes.txt", b"not an image at all", "text/plain"),
        ]
    ).run()
    assert send_button(app) == ["Add 3 files to your library"]
    app.button(key="upload_send").click().run()
    assert not app.exception
    assert [s.value for s in app.success] == ["Uploaded 2 images."]
    (error,) = app.error
    assert error.value.startswith("**notes.txt**: ")  # the server's 415 message follows
    assert sorted(i["filename"] for i in images_of(api_url, member)) == ["one.png", "two.png"]
    assert "2 images. Tick images to process several at once." in texts(app)
    assert not app.file_uploader[0].value  # emptied for the next files
    assert send_button(app) == []


def test_one_image_is_one_image(app: AppTest, api_url: str, member: Tokens) -> None:
    open_page(app, api_url, member, "views/images.py")
    app.file_uploader[0].set_value([("solo.png", image_bytes(), "image/png")]).run()
    assert send_button(app) == ["Add 1 file to your library"]
    app.button(key="upload_send").click().run()
    assert [s.value for s in app.success] == ["Uploaded 1 image."]
    assert "1 image. Tick images to process several at once." in texts(app)
    (image,) = images_of(api_url, member)
    app.checkbox(key=f"select_{image['id']}").check().run()
    add_step(app, "batch", "sepia")
    assert next(b for b in app.button if b.key == "batch_run").label == "Process 1 image"
    assert not [part for part in texts(app).split() if "(s)" in part]


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
    # The step list says what the picker says.
    assert steps_shown(app) == [
        "**1.** Grayscale",
        "**2.** Resize (width 48)",
        "**3.** Flip (vertical)",
    ]
    app.button(key=f"{key}_up_2").click().run()  # flip moves above resize
    app.button(key=f"{key}_remove_0").click().run()  # grayscale goes
    assert steps_shown(app) == ["**1.** Flip (vertical)", "**2.** Resize (width 48)"]

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


def test_a_reload_keeps_the_pipeline_being_built(
    app: AppTest, api_url: str, member: Tokens
) -> None:
    image = upload_png(api_url, member)
    open_page(app, api_url, member, "views/images.py", image=str(image["id"]))
    key = f"image_{image['id']}"
    add_step(app, key, "sepia")
    add_step(app, key, "rotate", angle=-90.0)
    add_step(app, key, "resize", height=20)
    address = dict(app.query_params)
    assert address == {
        "image": str(image["id"]),
        "step": ["sepia", "rotate angle -90", "resize height 20"],
    }

    reloaded = AppTest.from_file(app._script_path, default_timeout=app.default_timeout)
    open_page(reloaded, api_url, member, "views/images.py", **address)
    assert not reloaded.exception
    assert steps_shown(reloaded) == [
        "**1.** Sepia",
        "**2.** Rotate (angle -90)",
        "**3.** Resize (height 20)",
    ]
    reloaded.button(key=f"{key}_remove_0").click().run()
    assert reloaded.query_params["step"] == ["rotate angle -90", "resize height 20"]
    reloaded.button(key=f"{key}_remove_0").click().run()
    reloaded.button(key=f"{key}_remove_0").click().run()
    assert "step" not in reloaded.query_params


def test_steps_of_the_address_the_api_would_refuse_are_left_out(
    app: AppTest, api_url: str, member: Tokens
) -> None:
    image = upload_png(api_url, member)
    steps = ["sepia", "blur radius 99", "warp", "flip direction sideways", "resize"]
    open_page(app, api_url, member, "views/images.py", image=str(image["id"]), step=steps)
    assert not app.exception
    assert steps_shown(app) == ["**1.** Sepia"]
    assert page_warnings(app) == [
        "Left out the step “blur radius 99” of the address: Radius goes from 0.1 to 50.",
        "Left out the step “warp” of the address: There is no operation 'warp'.",
        "Left out the step “flip direction sideways” of the address: "
        "Direction is one of horizontal, vertical.",
        "Left out the step “resize” of the address: Give a width, a height, or both.",
    ]
    assert app.query_params["step"] == "sepia"


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
    jobs = LiveClient(api_url).get("/jobs", headers=bearer(member.access_token)).json()["items"]
    assert [(job["status"], job["error"]) for job in jobs] == [("done", None)] * 3
    results = [i for i in images_of(api_url, member) if i["source_image_id"]]
    assert len(results) == 3


def test_jobs_page_lists_status_duration_and_results(
    app: AppTest, api_url: str, member: Tokens
) -> None:
    image = upload_png(api_url, member)
    job = (
        LiveClient(api_url)
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
    assert "Sepia" in page
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
