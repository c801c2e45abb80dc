"""The auditor's page in a real browser: Debian's Chromium, headless, driven by Selenium
through Debian's chromedriver, against the app served by uvicorn on a loopback port.

Sign in with an API key, read the timeline, move the instant picker across the ruling
and see the owner change; then the cookie's properties, the PDF link and sign-out.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import IN_CI
from tests.http.conftest import Api
from tests.http.evidence_scenario import disputed_buyer
from tests.http.test_aftercare_api import staff

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def served(api: Api) -> Iterator[str]:
    """The same app the ``api`` fixture drives, on a real socket for the browser."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(api.client.app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        message = f"{', '.join(missing)} missing: apt-get install chromium chromium-driver"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    profile = tempfile.mkdtemp(prefix="yingke-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _text(driver: webdriver.Chrome, element_id: str) -> str:
    text: str = driver.find_element(By.ID, element_id).text
    return text


def _wait_for(driver: webdriver.Chrome, element_id: str, expected: str) -> None:
    WebDriverWait(driver, 30).until(
        lambda d: (
            _text(d, element_id) == expected
            and d.find_element(By.ID, "picker").get_attribute("data-state") == "shown"
        )
    )


def test_an_auditor_signs_in_and_moves_the_instant_across_the_ruling(
    api: Api, served: str, browser: webdriver.Chrome
) -> None:
    d = disputed_buyer(api)
    auditor_id, auditor = api.principal("auditor")
    key = auditor["Authorization"].removeprefix("Bearer ")
    page = f"{served}/audit/clients/{d.client_id}"

    browser.get(page)  # not signed in: sent to the form, and back after it
    assert "/audit/sign-in" in browser.current_url
    browser.find_element(By.ID, "key").send_keys("not-a-key")
    browser.find_element(By.ID, "sign-in").click()
    # The click submits the form; on a loaded machine the answer page may not be in yet.
    WebDriverWait(browser, 30).until(
        lambda b: b.find_elements(By.ID, "error") and "密钥无效" in _text(b, "error")
    )
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 30).until(lambda b: b.current_url == page)
    assert auditor_id in _text(browser, "who")

    # The timeline: one row per event, the ruling among them, with its chain hash.
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")
    history = api.client.get(f"/v1/clients/{d.client_id}/history", headers=api.admin).json()
    assert len(rows) == len(history["events"])
    ruling = browser.find_element(By.CSS_SELECTOR, "#timeline tr.DisputeRuled")
    assert "DisputeRuled" in ruling.text
    assert len(ruling.find_element(By.CSS_SELECTOR, "code.hash").text) == 64
    assert "partner-b" in _text(browser, "reports")
    assert _text(browser, "owner-partner") == "partner-b"  # now, after the ruling

    # Move the picker back along the timeline, one event at a time, to before the ruling.
    slider = browser.find_element(By.ID, "instant-slider")
    types = [e["type"] for e in history["events"]]
    steps_back = len(types) - types.index("DisputeRuled")
    for _ in range(steps_back):
        slider.send_keys(Keys.ARROW_LEFT)
    _wait_for(browser, "owner-partner", "partner-a")
    assert _text(browser, "owner-basis") == "report"
    assert "OwnershipAwarded" in _text(browser, "owner-decided")
    assert "政策版本 0" in _text(browser, "owner-rule")
    assert "report_first" in _text(browser, "owner-rule")
    # And forward across it again: the ruling moves the buyer to partner-b.
    slider.send_keys(Keys.ARROW_RIGHT)
    slider.send_keys(Keys.ARROW_RIGHT)
    _wait_for(browser, "owner-partner", "partner-b")
    assert _text(browser, "owner-basis") == "ruling"
    # The typed instant works the same way.
    browser.execute_script(
        "const i = document.getElementById('instant');"
        "i.value = arguments[0]; i.dispatchEvent(new Event('change'));",
        _local(browser, d.before_ruling.isoformat()),
    )
    _wait_for(browser, "owner-partner", "partner-a")

    # The session cookie: HttpOnly, SameSite=Strict, the key itself nowhere in it.
    (cookie,) = [c for c in browser.get_cookies() if c["name"] == "yingke_audit"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert key not in cookie["value"]
    assert browser.execute_script("return document.cookie") == ""

    # The PDF link serves the bundle to the signed-in browser.
    href = browser.find_element(By.ID, "pdf").get_attribute("href")
    assert href is not None
    pdf = httpx.get(href, cookies={"yingke_audit": cookie["value"]}, timeout=60)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert httpx.get(href, timeout=60, follow_redirects=False).status_code == 303

    browser.find_element(By.ID, "sign-out").click()
    WebDriverWait(browser, 30).until(lambda b: "/audit/sign-in" in b.current_url)
    browser.get(page)
    assert "/audit/sign-in" in browser.current_url


def _local(driver: webdriver.Chrome, iso: str) -> Any:
    """The browser's local wall time of ``iso``, as a datetime-local input holds it."""
    return driver.execute_script(
        "const d = new Date(arguments[0]); const p = n => String(n).padStart(2, '0');"
        "return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' +"
        " p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());",
        iso,
    )


def test_sessions_are_signed_expire_and_end_with_the_key(api: Api) -> None:
    from api.routers.audit import COOKIE, SESSION_SECONDS, session_caller

    d = disputed_buyer(api)
    auditor_id, auditor = api.principal("auditor")
    key = auditor["Authorization"].removeprefix("Bearer ")
    page = f"/audit/clients/{d.client_id}"
    signed_in = api.client.post(
        "/audit/sign-in",
        data={"key": key, "next": "https://elsewhere.example/"},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/audit/"  # never an open redirect
    header = signed_in.headers["set-cookie"]
    assert "HttpOnly" in header and "SameSite=strict" in header and "Path=/audit" in header
    cookie = signed_in.cookies[COOKIE]
    app = api.container
    now = time.time()
    assert session_caller(app, cookie, now) is not None
    assert session_caller(app, cookie, now + SESSION_SECONDS + 1) is None
    payload, mac = cookie.split(".")
    forged = payload.replace(payload[5], "A" if payload[5] != "A" else "B", 1) + "." + mac
    assert session_caller(app, forged, now) is None

    # The test client keeps the cookie the sign-in set, as a browser would.
    ok = api.client.get(page)
    assert ok.status_code == 200 and "时间线" in ok.text
    assert "default-src 'self'" in ok.headers["content-security-policy"]
    revoked = api.client.delete(f"/v1/principals/{auditor_id}", headers=api.admin)
    assert revoked.status_code == 200, revoked.text
    gone = api.client.get(page, follow_redirects=False)
    assert gone.status_code == 303 and "/audit/sign-in" in gone.headers["location"]

    _, supervisor = staff(api, "supervisor")
    key = supervisor["Authorization"].removeprefix("Bearer ")
    signed = api.client.post("/audit/sign-in", data={"key": key}, follow_redirects=False)
    assert signed.status_code == 303
    refused = api.client.get(page)
    assert refused.status_code == 403
    api.client.cookies.clear()


def test_the_page_prints_chinese_as_chinese(api: Api) -> None:
    """The event contents on the page read 韩**, not their JSON escapes (\\u97e9**)."""
    d = disputed_buyer(api)
    _, auditor = api.principal("auditor")
    key = auditor["Authorization"].removeprefix("Bearer ")
    signed = api.client.post("/audit/sign-in", data={"key": key}, follow_redirects=False)
    assert signed.status_code == 303

    page = api.client.get(f"/audit/clients/{d.client_id}")

    assert page.status_code == 200
    assert "韩**" in page.text
    assert "\\u97e9" not in page.text
    api.client.cookies.clear()
