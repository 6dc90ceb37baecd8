"""One real-browser journey: headless Debian Chromium against the API and the dashboard, each
started as its own process, exactly as `make run` starts them.

a bookmarked page opened logged out asks to log in → sign up → log in (remember me) → upload →
build a pipeline and run it → see the result → reload: still logged in, the pipeline still there
→ log out → reload, still logged out → a bookmarked page: log in, and it opens → turn on
two-factor authentication on the Account page → log out → log in with the password and a code.
All along, the page asks nothing of any host but the dashboard's own (the tab icon and the QR
code included). A screenshot of every page visited goes to test-artifacts/browser/; the
dashboard and the before/after page are the README's docs/screenshots/ (refreshed with
UPDATE_SCREENSHOTS=1). A second journey: forgot password → the mailed link (file backend) → a
new password → log in with it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image, ImageDraw

from tests.support.accounts import DEFAULT_PASSWORD, signup
from tests.support.databases import migrate
from tests.support.mail import OutboxFolder, link_in
from tests.support.mfa import totp_code
from tests.support.paths import REPO_ROOT
from tests.support.servers import (
    LiveClient,
    api_env,
    api_server,
    dashboard_server,
    free_port,
)

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
README_SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
WAIT_S = 30
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
NETWORK_SCHEMES = {"http", "https", "ws", "wss"}  # not data:, blob:, or the browser's own chrome:


def _require_chromium() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if not missing:
        return
    message = f"Debian's chromium and chromium-driver are needed: missing {', '.join(missing)}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (scripts/ensure-services.sh installs them)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def outbox(workdir: Path) -> OutboxFolder:
    """The API's mails (MAIL_BACKEND=file, the embedded default, as under `make run`)."""
    return OutboxFolder(workdir / "outbox")


@pytest.fixture(scope="module")
def dashboard_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def api_url(workdir: Path, dashboard_port: int) -> Iterator[str]:
    """The API as its own process; the links it mails point at the dashboard below."""
    _require_chromium()
    database_url = f"sqlite:///{workdir / 'app.db'}"
    migrate(database_url)
    env = api_env(
        database_url,
        workdir / "images",
        PUBLIC_DASHBOARD_URL=f"http://127.0.0.1:{dashboard_port}",
    )
    with api_server(env, workdir / "api.log") as base_url:
        yield base_url


@pytest.fixture(scope="module")
def dashboard_url(api_url: str, workdir: Path, dashboard_port: int) -> Iterator[str]:
    """The dashboard as its own process, through `streamlit run`."""
    with dashboard_server(api_url, workdir / "dashboard.log", port=dashboard_port) as base_url:
        yield base_url


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1440,1100",
    ):
        options.add_argument(argument)
    # Every request the page makes, for the no-other-host check (Journey.requested_urls).
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def sample_photo(path: Path) -> Path:
    """A colourful picture, so the before/after screenshot shows what processing did."""
    width, height = 640, 420
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        draw.line([(0, y), (width, y)], fill=(40 + y // 3, 90 + y // 4, 200 - y // 3))
    draw.ellipse((380, 60, 560, 240), fill=(255, 196, 40))
    draw.polygon([(0, 420), (220, 170), (430, 420)], fill=(34, 110, 70))
    draw.polygon([(260, 420), (470, 210), (640, 420)], fill=(20, 80, 55))
    buffer = BytesIO()
    image.save(buffer, "JPEG", quality=90)
    path.write_bytes(buffer.getvalue())
    return path


class Journey:
    """The browser plus the few moves a person makes on a Streamlit page."""

    def __init__(self, driver: object, base_url: str) -> None:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.base_url = base_url
        # Streamlit redraws parts of the page at any time: an element found a moment ago may be
        # gone, and the condition is simply tried again.
        self.wait = WebDriverWait(
            driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,)
        )
        self.shots = 0
        self.urls: set[str] = set()
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        ARTIFACTS.mkdir(parents=True)

    def requested_urls(self) -> set[str]:
        """Every URL the page requested or opened a WebSocket to so far (Chrome's performance
        log, read as we go: the browser keeps it until it is read)."""
        for entry in self.driver.get_log("performance"):
            event = json.loads(entry["message"])["message"]
            if event["method"] == "Network.requestWillBeSent":
                self.urls.add(event["params"]["request"]["url"])
            elif event["method"] == "Network.webSocketCreated":
                self.urls.add(event["params"]["url"])
        return self.urls

    def tab_icon(self) -> str:
        return self.driver.execute_script(
            "return document.querySelector(\"link[rel='shortcut icon']\").href;"
        )

    def open_bookmark(self, path: str, title: str) -> None:
        """Opens `path` as a bookmark, logged out: the login form says it guards that page."""
        self.driver.get(self.base_url + path)
        self.see(f"Log in to see {title}.")
        self.see("Welcome back to Pixelgate")
        self.field("Username or email")
        self.settled()
        assert "Page not found" not in self.body()

    def body(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def until(self, condition: Callable[[], bool], what: str) -> None:
        try:
            self.wait.until(lambda _driver: condition())
        except Exception as error:
            self.screenshot("failure")
            page = self.body()
            raise AssertionError(f"timed out waiting for {what}; page says:\n{page}") from error

    def see(self, text: str) -> None:
        self.until(lambda: text in self.body(), repr(text))

    def settled(self) -> None:
        """Waits until Streamlit finished running the script (no 'running' indicator)."""
        from selenium.webdriver.common.by import By

        self.until(
            lambda: (
                not self.driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
            ),
            "the script run to finish",
        )

    def screenshot(self, name: str) -> Path:
        self.requested_urls()
        self.shots += 1
        path = ARTIFACTS / f"{self.shots:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def field(self, label: str) -> object:
        """The input labelled `label`, once drawn (the page streams in)."""
        from selenium.webdriver.common.by import By

        selector = f'input[aria-label="{label}"]'
        self.until(lambda: bool(self.driver.find_elements(By.CSS_SELECTOR, selector)), label)
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def type_into(self, label: str, text: str) -> None:
        field = self.field(label)
        field.clear()
        field.send_keys(text)

    def tick(self, label: str) -> None:
        self.driver.execute_script("arguments[0].click();", self.field(label))

    def buttons(self, label: str) -> list[object]:
        """Enabled buttons whose text ends with `label` (an icon's name may come first)."""
        from selenium.webdriver.common.by import By

        return [
            button
            for button in self.driver.find_elements(By.TAG_NAME, "button")
            if button.text.strip().endswith(label) and button.is_enabled()
        ]

    def click_button(self, label: str) -> None:
        def clickable() -> bool:
            buttons = self.buttons(label)
            if buttons:
                buttons[0].click()
            return bool(buttons)

        self.until(clickable, f"a button {label!r}")

    def click_link(self, text: str) -> None:
        from selenium.webdriver.common.by import By

        def clickable() -> bool:
            links = [
                link
                for link in self.driver.find_elements(By.TAG_NAME, "a")
                if link.text.strip().endswith(text)
            ]
            if links:
                links[0].click()
            return bool(links)

        self.until(clickable, f"a link {text!r}")

    def chart_drawn(self) -> bool:
        return self.driver.execute_script(
            "return !!document.querySelector("
            '\'[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg\');'
        )

    def loaded_images(self) -> int:
        """Images on the page that really arrived (not broken), thumbnails included."""
        return self.driver.execute_script(
            "return [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
            ".filter(img => img.complete && img.naturalWidth > 0).length;"
        )


def test_sign_up_to_log_out_in_a_real_browser(
    browser: object, dashboard_url: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    me = Journey(browser, dashboard_url)
    username = "browser_user"

    # A bookmark of a page that needs a login: the login form says so (no "Page not found")
    me.open_bookmark("/sessions", "Sessions")
    me.screenshot("bookmark-logged-out")

    # Sign up
    browser.get(dashboard_url)
    me.see("Welcome back to Pixelgate")
    me.screenshot("login")
    me.click_link("Sign up")
    me.see("Password rules")
    me.type_into("Username", username)
    me.type_into("Email", f"{username}@example.com")
    me.type_into("Full name", "Browser User")
    me.type_into("Password", DEFAULT_PASSWORD)
    me.type_into("Confirm password", DEFAULT_PASSWORD)
    me.tick("I agree to the terms of use")
    me.screenshot("signup")
    me.click_button("Sign up")
    me.see(f"Account {username} created.")

    # Log in, remembered
    me.type_into("Password", DEFAULT_PASSWORD)
    me.tick("Remember me on this device")
    me.click_button("Log in")
    me.see("Hello, Browser User")
    me.see("No images yet")
    me.settled()
    me.screenshot("dashboard-empty")

    # Upload
    me.click_link("Images")
    me.see("Your library is empty")
    file_input = 'input[type="file"]'
    me.until(lambda: bool(browser.find_elements(By.CSS_SELECTOR, file_input)), "the file picker")
    me.settled()
    assert len(me.buttons("Upload")) == 1  # the file picker's own, until files are chosen
    upload = browser.find_element(By.CSS_SELECTOR, file_input)
    upload.send_keys(str(sample_photo(tmp_path / "mountains.jpg")))
    me.see("mountains.jpg")
    me.click_button("Add 1 file to your library")
    me.see("Uploaded 1 image.")
    me.until(lambda: me.loaded_images() == 1, "the thumbnail")
    me.screenshot("images")

    # Process: sepia, then a little more contrast
    me.click_link("Open")
    me.see("Pipeline")
    me.see("JPEG")
    choose_operation(me, "Sepia")
    me.click_button("Add step")
    me.see("1. Sepia")
    choose_operation(me, "Contrast")
    me.click_button("Add step")
    me.see("2. Contrast (factor 1.3)")
    me.click_button("Run pipeline")
    me.see("done in")
    me.see("Open the result")
    me.until(lambda: me.loaded_images() == 2, "before and after images")
    me.settled()
    before_after = me.screenshot("image-before-after")
    image_url = browser.current_url
    assert "image=" in image_url

    # Reload: a new Streamlit session, continued from the HttpOnly cookie
    cookies = {cookie["name"]: cookie for cookie in browser.get_cookies()}
    refresh_cookie = cookies["pixelgate_refresh"]
    assert refresh_cookie["httpOnly"] is True
    assert refresh_cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie").find("pixelgate_refresh") == -1
    browser.refresh()
    me.see("Signed in as")
    me.see("mountains.jpg")
    me.see("2. Contrast (factor 1.3)")  # the pipeline being built is kept in the address
    me.until(lambda: me.loaded_images() == 2, "before and after images after the reload")
    me.screenshot("image-after-reload")

    me.click_link("Dashboard")
    me.see("Hello, Browser User")
    me.until(lambda: me.loaded_images() == 2, "recent images on the dashboard")
    me.until(me.chart_drawn, "the logins chart")
    me.settled()
    dashboard = me.screenshot("dashboard")

    # Log out; a reload no longer logs in
    me.click_button("Log out")
    me.see("Welcome back to Pixelgate")
    me.until(
        lambda: "pixelgate_refresh" not in {c["name"] for c in browser.get_cookies()},
        "the refresh cookie to be cleared",
    )
    browser.refresh()
    me.see("Welcome back to Pixelgate")
    assert "Signed in as" not in me.body()
    me.screenshot("logged-out-after-reload")

    # A bookmark again: after the login, the page that was asked for opens
    me.open_bookmark("/images", "Images")
    log_in(me, username)
    me.see("2 images. Tick images to process several at once.")
    assert urlsplit(browser.current_url).path == "/images"
    me.screenshot("bookmark-after-login")

    # Two-factor authentication: enrol on the Account page, then log in with a code
    me.click_link("Account")
    me.see("Set up two-factor authentication")
    me.settled()  # a click while the page is still being drawn can be lost
    me.click_button("Set up two-factor authentication")
    me.see("Scan this QR code")
    me.until(lambda: me.loaded_images() == 1, "the QR code")
    secret = shown_totp_secret(me)
    me.screenshot("two-factor-setup")
    me.type_into("Code", totp_code(secret))
    me.click_button("Turn on")
    me.see("Your recovery codes")
    me.screenshot("two-factor-recovery-codes")
    me.click_button("I have saved them")
    me.see("10 recovery codes left")
    me.click_button("Log out")
    me.see("Welcome back to Pixelgate")
    log_in(me, username)
    me.see("Enter the 6-digit code")
    me.screenshot("login-two-factor")
    me.type_into("Code", totp_code(secret, 1))
    me.click_button("Verify")
    me.see("Hello, Browser User")

    # Nothing but the dashboard itself was asked for anything, the tab icon included
    assert me.tab_icon().startswith("data:image/svg+xml")
    urls = me.requested_urls()
    assert any(url.startswith(dashboard_url) for url in urls)
    elsewhere = sorted(
        url
        for url in urls
        if urlsplit(url).scheme in NETWORK_SCHEMES and urlsplit(url).hostname not in LOCAL_HOSTS
    )
    assert elsewhere == []

    refresh_readme_screenshots({"dashboard.png": dashboard, "image-before-after.png": before_after})


def log_in(me: Journey, username: str) -> None:
    me.type_into("Username or email", username)
    me.type_into("Password", DEFAULT_PASSWORD)
    me.click_button("Log in")


def shown_totp_secret(me: Journey) -> str:
    """The key the setup shows as text (32 base32 characters)."""
    me.until(lambda: re.search(r"\b[A-Z2-7]{32}\b", me.body()) is not None, "the key as text")
    match = re.search(r"\b[A-Z2-7]{32}\b", me.body())
    assert match is not None
    return match.group()


def test_forgot_password_to_log_in_with_the_mailed_link(
    browser: object, api_url: str, dashboard_url: str, outbox: OutboxFolder
) -> None:
    username, new_password = "forgetful", "Fr3sh!start-now"
    assert signup(LiveClient(api_url), username).status_code == 201
    me = Journey(browser, dashboard_url)

    browser.get(dashboard_url)
    me.see("Welcome back to Pixelgate")
    me.click_link("Forgot password?")
    me.see("Forgot your password?")
    me.type_into("Email", f"{username}@example.com")
    me.click_button("Send me a reset link")
    me.see("If an account with that email exists")
    me.screenshot("forgot-password")

    link, _token = link_in(outbox.wait_for_mail(f"{username}@example.com", "Reset your"))
    assert link.startswith(f"{dashboard_url}/reset-password?token=")
    browser.get(link)
    me.see("Choose a new password")
    me.see("not a commonly used password")  # the rules as the API publishes them
    me.type_into("New password", new_password)
    me.type_into("Repeat new password", new_password)
    me.screenshot("reset-password")
    me.click_button("Set new password")
    me.see("Your new password is set.")
    me.until(lambda: "token=" not in browser.current_url, "the token to leave the address bar")
    me.click_link("Log in with your new password")
    me.see("Welcome back to Pixelgate")
    me.type_into("Username or email", username)
    me.type_into("Password", new_password)
    me.click_button("Log in")
    me.see("Signed in as")
    me.settled()
    # The reset link proved the address: no "not verified" banner.
    assert "is not verified yet" not in me.body()
    me.screenshot("logged-in-after-reset")


def refresh_readme_screenshots(shots: dict[str, Path]) -> None:
    """Copies the README's screenshots when missing or with UPDATE_SCREENSHOTS=1 (so a test
    run does not rewrite tracked files every time)."""
    README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, shot in shots.items():
        target = README_SCREENSHOTS / name
        if os.environ.get("UPDATE_SCREENSHOTS") == "1" or not target.exists():
            shutil.copyfile(shot, target)


def choose_operation(me: Journey, label: str) -> None:
    """Picks an entry of the 'Add a step' select box by typing it, as a keyboard user does."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    selector = 'input[aria-label="Add a step"]'

    def select() -> object:
        return me.driver.find_element(By.CSS_SELECTOR, selector)

    # The page streams in: the box may be drawn a moment after the heading above it.
    me.settled()
    me.until(lambda: bool(me.driver.find_elements(By.CSS_SELECTOR, selector)), "the step picker")
    select().click()
    select().send_keys(label)
    select().send_keys(Keys.ENTER)
    me.until(lambda: select().get_attribute("value") == label, f"{label!r} to be chosen")
    me.settled()
