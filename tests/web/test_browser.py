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


_QUEUE_JS = """async () => {
  const q = await import('/static/queue.js');
  return (await q.listItems()).map((i) => ({
    key: i.key, state: i.state, owner: i.owner || '', has_blob: Boolean(i.blob),
    status: i.status, detail: i.detail, scaled: Boolean(i.scaled),
  }));
}"""


def _queue(page) -> list[dict]:
    """What the tablet keeps in its IndexedDB queue (every account's items)."""
    return page.evaluate(_QUEUE_JS)


def _sign_in_to_upload(page, url: str, username: str) -> None:
    _sign_in(page, url, username)
    page.wait_for_url(f"{url}/upload")
    page.wait_for_selector("#unit option", state="attached")
    page.fill("#activity", "teckning")


def _sign_out(page, url: str) -> None:
    page.click("#sign-out")
    page.wait_for_url(f"{url}/")
    page.wait_for_selector("#login-section:not([hidden])")


def test_queued_photos_wait_for_the_account_that_took_them(
    chromium, live_server, tmp_path, screenshots
) -> None:
    """On a shared tablet, photos queued by one educator are never sent under the next one's
    account: they wait unseen (with a count and an offer to discard them) until their owner signs
    in again, and are then sent as theirs."""
    from core.models import User
    from core.users import upsert_user

    with live_server.factory() as s:  # type: ignore[operator]
        upsert_user(s, username="edu2", password=PASSWORD, role="educator", unit_names=["Olympia"])
        s.commit()
        ids = {u.username: u.id for u in s.scalars(select(User))}
    url = live_server.url
    context = chromium.new_context(viewport=TABLET, locale="sv-SE")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sent: list[str] = []  # the Idempotency-Key of every upload request that left the tablet

    def offline(route, request):
        sent.append(request.headers.get("idempotency-key", ""))
        route.abort("internetdisconnected")

    # --- edu queues photo A while the server cannot be reached, then signs out
    _sign_in_to_upload(page, url, "edu")
    page.route("**/api/photos", offline)
    page.set_input_files("#library", _photo_file(tmp_path, "a.jpg", 2, 21))
    page.wait_for_selector("#queue li[data-state=waiting]")
    (item_a,) = _queue(page)
    assert item_a["owner"] == "edu" and item_a["has_blob"]
    _sign_out(page, url)
    page.unroute("**/api/photos")
    sent.clear()

    def watched(route, request):
        sent.append(request.headers.get("idempotency-key", ""))
        route.continue_()

    page.route("**/api/photos", watched)

    # --- edu2 signs in on the same tablet: A waits, unseen, and is not sent
    _sign_in_to_upload(page, url, "edu2")
    page.wait_for_selector("#foreign:not([hidden])")
    banner = page.inner_text("#foreign")
    assert "edu" in banner and "aldrig med ditt konto" in banner
    assert page.query_selector_all("#queue li") == []
    page.wait_for_timeout(2500)
    assert sent == [] and _stored_photos(live_server) == []
    page.screenshot(path=str(screenshots / "upload-foreign-photos-tablet.png"))
    # edu2's own photo goes out at once, under edu2
    page.set_input_files("#library", _photo_file(tmp_path, "c.jpg", 3, 23))
    page.wait_for_selector("#queue li[data-state=sent]", timeout=30_000)
    assert [p.uploaded_by for p in _stored_photos(live_server)] == [ids["edu2"]]
    assert len(sent) == 1 and sent[0] != item_a["key"]

    # --- edu signs in again: A is sent, as edu's
    _sign_out(page, url)
    _sign_in_to_upload(page, url, "edu")
    page.wait_for_selector("#queue li[data-state=sent]", timeout=30_000)
    assert page.is_hidden("#foreign")
    photos = _stored_photos(live_server)
    assert [(p.idempotency_key, p.uploaded_by) for p in photos][-1] == (item_a["key"], ids["edu"])
    assert next(i for i in _queue(page) if i["key"] == item_a["key"])["has_blob"] is False

    # --- edu queues B offline and leaves; edu2 discards it after a clear prompt
    page.unroute("**/api/photos")
    page.route("**/api/photos", offline)
    page.set_input_files("#library", _photo_file(tmp_path, "b.jpg", 1, 22))
    page.wait_for_selector("#queue li[data-state=waiting]")
    _sign_out(page, url)
    page.unroute("**/api/photos")
    _sign_in_to_upload(page, url, "edu2")
    page.wait_for_selector("#foreign:not([hidden])")
    prompts: list[str] = []

    def answer(accept: bool):
        def handle(dialog):
            prompts.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return handle

    page.once("dialog", answer(False))
    page.click("#discard-foreign")
    page.wait_for_timeout(300)
    assert any(i["owner"] == "edu" and i["state"] in ("waiting", "queued") for i in _queue(page))
    page.once("dialog", answer(True))
    page.click("#discard-foreign")
    page.wait_for_selector("#foreign", state="hidden")
    assert not any(i["owner"] == "edu" and i["state"] != "sent" for i in _queue(page))
    assert (
        len(prompts) == 2 and "1 foton" in prompts[0] and "går inte att få tillbaka" in prompts[0]
    )
    assert len(_stored_photos(live_server)) == 2
    assert errors == []
    context.close()


def _heic_file(tmp_path) -> str:
    """A HEIC photo (as iPads send them): Chromium cannot decode it, so the page sends the original."""
    import numpy as np
    import pillow_heif

    from vision.synthetic import make_photo

    rgb = np.asarray(Image.open(io.BytesIO(make_photo(2, 31, megapixels=1.0))).convert("RGB"))
    pillow_heif.register_heif_opener()
    path = tmp_path / "IMG_0001.HEIC"
    Image.fromarray(rgb).save(path, format="HEIF", quality=80)
    return str(path)


def test_only_a_refusal_of_the_photo_itself_removes_it(
    chromium, live_server, tmp_path, screenshots
) -> None:
    """401 and 403 keep the photo queued and ask for a new sign-in; 413/415/422/400 remove it with
    the reason shown; a sent photo's bytes (also an original the browser could not decode) leave
    the tablet at once."""
    url = live_server.url
    context = chromium.new_context(viewport=TABLET, locale="sv-SE")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _sign_in_to_upload(page, url, "edu")

    for status, detail in [
        (403, "you may not upload to this unit"),
        (401, "the token has expired; sign in again"),
    ]:
        page.route(
            "**/api/photos",
            lambda route, request, status=status, detail=detail: route.fulfill(
                status=status, json={"detail": detail}
            ),
        )
        page.set_input_files("#library", _photo_file(tmp_path, f"s{status}.jpg", 2, status))
        page.wait_for_selector("#signed-out:not([hidden])", timeout=15_000)
        if status == 403:
            assert detail in page.inner_text("#signed-out-text")
        else:
            assert "gått ut" in page.inner_text("#signed-out-text")
        kept = [i for i in _queue(page) if i["status"] == status]
        assert len(kept) == 1 and kept[0]["state"] == "queued" and kept[0]["has_blob"]
        page.screenshot(path=str(screenshots / f"upload-kept-after-{status}-tablet.png"))
        page.unroute("**/api/photos")
        page.reload()  # signing in again (the session is still valid): both are sent
        page.wait_for_selector("#unit option", state="attached")
        page.fill("#activity", "teckning")
    _wait_for(lambda: [i["state"] for i in _queue(page)] == ["sent", "sent"], 30, page, "both sent")
    assert len(_stored_photos(live_server)) == 2

    for status, detail in [
        (413, "the file is larger than 40 MB; take the photo at a lower resolution"),
        (422, "the capture date lies in the future"),
        (415, "the file is a PDF, not a photo"),
        (400, "the image is truncated"),
    ]:
        page.route(
            "**/api/photos",
            lambda route, request, status=status, detail=detail: route.fulfill(
                status=status, json={"detail": detail}
            ),
        )
        page.set_input_files("#library", _photo_file(tmp_path, f"r{status}.jpg", 2, status))
        row = page.wait_for_selector(f"#queue li[data-state=refused]:has-text('{detail}')")
        assert "Avvisad" in row.inner_text()
        (refused,) = [i for i in _queue(page) if i["status"] == status]
        assert refused["state"] == "refused" and not refused["has_blob"]
        page.unroute("**/api/photos")
    assert page.is_hidden("#signed-out")

    # an original the browser cannot decode (HEIC) is sent as it is, and gone once stored
    page.set_input_files("#library", _heic_file(tmp_path))
    _wait_for(lambda: sum(i["state"] == "sent" for i in _queue(page)) == 3, 30, page, "HEIC sent")
    heic = [i for i in _queue(page) if i["state"] == "sent" and not i["scaled"]]
    assert len(heic) == 1 and not heic[0]["has_blob"]
    assert len(_stored_photos(live_server)) == 3
    assert errors == []
    context.close()


def test_docs_render_under_the_apps_csp_without_outside_requests(chromium, live_server) -> None:
    url = live_server.url
    context = chromium.new_context(viewport=TABLET)
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    refused: list[str] = []
    page.on(
        "console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None
    )
    page.goto(f"{url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)  # the operations are listed
    assert "Spira" in page.inner_text(".info")
    assert page.query_selector(".opblock-summary-path[data-path='/api/photos']") is not None
    assert requested and all(r.startswith(url) for r in requested), requested
    assert refused == []
    context.close()
