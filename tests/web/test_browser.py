"""End to end in a real headless Chromium against a live server with its worker.

An educator signs in on a tablet-sized page and uploads two photos; the second one's first answer is
lost and the server is then unreachable for a while (the page is even reloaded meanwhile). Both end
up stored exactly once and appear once in the principal's profile; a refused file is explained in
Swedish and never retried; a principal of one unit cannot read another's profile.
"""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image
from sqlalchemy import select

from core.models import Photo
from tests.api.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TABLET = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}


def _photo_file(tmp_path, name: str, stage: int, seed: int) -> str:
    from vision.synthetic import make_photo

    # 5 MP (2582×1936): larger than the 2048 px the page scales down to
    path = tmp_path / name
    path.write_bytes(make_photo(stage, seed, megapixels=5.0))
    return str(path)


def _sign_in(page, url: str, username: str) -> None:
    page.goto(f"{url}/")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-button")


def _item_states(page) -> list[str]:
    return page.eval_on_selector_all("#queue li", "els => els.map(e => e.dataset.state)")


def _wait_for(predicate, timeout: float, page, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        page.wait_for_timeout(100)


def _stored_photos(server) -> list[Photo]:
    with server.factory() as s:
        return list(s.scalars(select(Photo).order_by(Photo.created_at)))


def test_educator_uploads_through_a_lost_connection_and_principal_sees_it_once(
    chromium, live_server, tmp_path, screenshots
) -> None:
    url = live_server.url
    context = chromium.new_context(viewport=TABLET, locale="sv-SE", device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # --- sign in: educators land on the upload page
    page.goto(f"{url}/")
    page.wait_for_selector("#login-section:not([hidden])")
    assert page.inner_text("#login-button") == "Logga in"  # Swedish by default
    page.screenshot(path=str(screenshots / "login-tablet.png"))
    _sign_in(page, url, "edu")
    page.wait_for_url(f"{url}/upload")
    page.wait_for_selector("#unit option", state="attached")
    assert page.inner_text("h1") == "Ladda upp foton"
    assert page.input_value("#unit") == str(live_server.unit_id("Olympia"))
    assert page.is_disabled("#library")  # no activity chosen yet
    page.fill("#activity", "teckning")
    assert page.is_enabled("#library") and page.is_enabled("#camera")
    assert page.get_attribute("#camera", "capture") == "environment"

    # --- photo A: sent at once
    page.set_input_files("#library", _photo_file(tmp_path, "a.jpg", 1, 11))
    page.wait_for_selector("#queue li[data-state=sent]", timeout=30_000)

    # --- photo B: the first answer is lost (stored, but the tablet never hears), then the server is
    # unreachable; the page is reloaded while B waits in IndexedDB
    calls: list[dict] = []

    def flaky(route, request):
        calls.append(
            {"key": request.headers.get("idempotency-key"), "body": request.post_data_buffer}
        )
        if len(calls) == 1:
            route.fetch()  # reaches the server, which stores the photo ...
            route.abort("connectionreset")  # ... but the answer never arrives
        else:
            route.abort("internetdisconnected")

    page.route("**/api/photos", flaky)
    page.set_input_files("#library", _photo_file(tmp_path, "b.jpg", 3, 12))
    _wait_for(lambda: len(calls) >= 2, 20, page, "a retry of photo B")
    page.wait_for_selector("#queue li[data-state=waiting]")
    assert "Ingen kontakt" in page.inner_text("#queue li[data-state=waiting]")
    page.screenshot(path=str(screenshots / "upload-retrying-tablet.png"))
    assert len(_stored_photos(live_server)) == 2  # B is stored once already, from the lost answer

    page.reload()
    page.wait_for_selector("#queue li")
    states = _item_states(page)
    assert len(states) == 2 and "sent" in states
    assert {s for s in states if s != "sent"} <= {"queued", "sending", "waiting"}
    keys = {c["key"] for c in calls}
    assert len(keys) == 1  # every retry carries the key given when the photo was queued
    (key_b,) = keys
    assert page.get_attribute("#queue li:not([data-state=sent])", "data-key") == key_b

    # the page scaled the photo down to 2048 px on its long side and re-encoded it
    body = calls[0]["body"]
    sent = Image.open(io.BytesIO(body[body.index(b"\xff\xd8\xff") :]))
    assert max(sent.size) == 2048 and sent.format == "JPEG"
    assert not sent.getexif()

    # --- the connection is back
    page.unroute("**/api/photos")
    page.evaluate("dispatchEvent(new Event('online'))")
    _wait_for(lambda: _item_states(page) == ["sent", "sent"], 30, page, "both photos sent")
    retried = page.inner_text(f"#queue li[data-key='{key_b}']")
    assert "Fanns redan" in retried  # the server answered 200 replay: stored once
    page.screenshot(path=str(screenshots / "upload-sent-tablet.png"))

    photos = _stored_photos(live_server)
    assert len(photos) == 2
    assert photos[1].idempotency_key == key_b
    assert len({p.idempotency_key for p in photos}) == 2 and len({p.sha256 for p in photos}) == 2

    # --- a file that is no photo: refused with the reason in Swedish, never retried
    pdf = tmp_path / "anteckningar.jpg"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    page.set_input_files("#library", str(pdf))
    refused = page.wait_for_selector("#queue li[data-state=refused]", timeout=15_000)
    text = refused.inner_text()
    assert "Filformatet stöds inte" in text and "PDF" in text
    page.wait_for_timeout(1500)
    assert _item_states(page).count("refused") == 1
    assert len(_stored_photos(live_server)) == 2
    page.screenshot(path=str(screenshots / "upload-refused-tablet.png"))

    # --- the choice is remembered; English on request, remembered too
    page.reload()
    page.wait_for_selector("#unit option", state="attached")
    assert page.input_value("#activity") == "teckning"
    page.click("button[data-lang=en]")
    assert page.inner_text("h1") == "Upload photos"
    page.reload()
    page.wait_for_selector("#unit option", state="attached")
    assert page.inner_text("h1") == "Upload photos"
    page.click("button[data-lang=sv]")

    phone = context.new_page()
    phone.set_viewport_size(PHONE)
    phone.goto(f"{url}/upload")
    phone.wait_for_selector("#queue li")
    phone.screenshot(path=str(screenshots / "upload-phone.png"), full_page=True)
    phone.close()

    # --- the worker scores both photos
    deadline = time.monotonic() + 120
    while any(p.status != "done" for p in _stored_photos(live_server)):
        assert time.monotonic() < deadline, live_server.log.read_text()[-3000:]
        assert all(p.status != "failed" for p in _stored_photos(live_server))
        time.sleep(0.5)

    # --- the principal sees both photos once (n = 2: figures suppressed, and saying so)
    page.click("#sign-out")
    page.wait_for_url(f"{url}/")
    page.wait_for_selector("#login-section:not([hidden])")
    _sign_in(page, url, "boss")
    card = page.wait_for_selector(".unit-card")
    cards = page.query_selector_all(".unit-card")
    assert [c.query_selector("h2").inner_text() for c in cards] == ["Olympia"]
    olympia = live_server.unit_id("Olympia")
    assert card.get_attribute("data-unit-id") == str(olympia)
    (row,) = card.query_selector_all("tbody tr")
    assert row.query_selector(".n-photos").inner_text() == "2"
    assert "för få för att visa" in row.inner_text()
    assert card.query_selector(f"a[href='/units/{olympia}']") is not None
    page.screenshot(path=str(screenshots / "units-principal-tablet.png"))

    phone = context.new_page()
    phone.set_viewport_size(PHONE)
    phone.goto(f"{url}/")
    phone.wait_for_selector(".unit-card")
    phone.screenshot(path=str(screenshots / "units-principal-phone.png"), full_page=True)
    phone.close()

    # --- and cannot open another unit's profile
    dalhem = live_server.unit_id("Dalhem")
    other = page.request.get(f"{url}/api/units/{dalhem}/profile")
    assert other.status == 404
    assert page.request.get(f"{url}/api/units/{olympia}/profile").status == 200
    assert errors == []
    context.close()


def test_principal_of_another_unit_sees_only_their_own(chromium, live_server, screenshots) -> None:
    url = live_server.url
    context = chromium.new_context(viewport=PHONE)
    page = context.new_page()
    _sign_in(page, url, "other")
    page.wait_for_selector(".unit-card")
    assert [h.inner_text() for h in page.query_selector_all(".unit-card h2")] == ["Dalhem"]
    olympia = live_server.unit_id("Olympia")
    assert page.request.get(f"{url}/api/units/{olympia}/profile").status == 404
    response = page.goto(f"{url}/api/units/{olympia}/profile")
    assert response is not None and response.status == 404
    # a wrong password is explained, in Swedish
    page.goto(f"{url}/")
    page.click("#sign-out")
    page.wait_for_selector("#login-section:not([hidden])")
    page.fill("#username", "other")
    page.fill("#password", "not-the-password")
    page.click("#login-button")
    page.wait_for_selector("#login-error:has-text('Fel användarnamn eller lösenord')")
    page.screenshot(path=str(screenshots / "login-error-phone.png"), full_page=True)
    context.close()
