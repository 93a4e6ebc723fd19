"""The assessment page end to end in headless Chromium against a live server.

An educator reaches /assess from the top bar, picks a case, rates three children's responses with
the network cut, reconnects, and exactly three sheets arrive (the first request's answer is lost
on the way back: its retry with the same Idempotency-Key gets the first sheet's id); calibration
ratings arrive, show the reference levels, and appear on the researchers' page; the page works in
Swedish and English. Screenshots (tablet portrait) go to test-artifacts/ and docs/screenshots/.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from assessment.cases import load_case_library
from core.models import CalibrationRating, ResponseSheet
from tests.api.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PORTRAIT = {"width": 800, "height": 1280}  # a 10" tablet held upright
LANDSCAPE = {"width": 1280, "height": 800}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _wait_for(predicate, timeout: float, page, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        page.wait_for_timeout(100)


def _n(server, model) -> int:
    with server.factory() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def _shot(page, screenshots: Path, name: str, **kw) -> None:
    page.screenshot(path=str(screenshots / name), **kw)
    DOCS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screenshots / name, DOCS / name)


def _sign_in(page, url: str, username: str) -> None:
    page.goto(f"{url}/")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-button")


def _rate_child(page, level: int) -> None:
    for item in page.eval_on_selector_all(
        ".sheet .rubric-item", "els => els.map(e => e.dataset.item)"
    ):
        page.click(f'.sheet .rubric-item[data-item="{item}"] button.level[data-level="{level}"]')
    page.click("#next-child")


def test_educator_rates_three_children_offline_and_exactly_three_sheets_arrive(
    chromium, live_server, screenshots
) -> None:
    url = live_server.url
    context = chromium.new_context(viewport=PORTRAIT, locale="sv-SE", device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    _sign_in(page, url, "edu")
    page.wait_for_url(f"{url}/upload")
    page.click("#assess-link")  # the top bar leads educators to the assessment page
    page.wait_for_url(f"{url}/assess")
    assert page.inner_text("h1") == "Bedöm fallsvar"  # Swedish by default
    page.wait_for_selector("#case option[value]:not([value=''])", state="attached")
    # only the educator's own unit can be chosen
    units = page.eval_on_selector_all("#unit option", "os => os.map(o => o.textContent)")
    assert units == ["Olympia"]
    case_id = page.eval_on_selector("#case option:nth-child(2)", "o => o.value")
    page.select_option("#case", case_id)
    page.wait_for_selector("#case-card:not([hidden])")
    assert page.inner_text("#case-does") and page.inner_text("#case-says")
    # the materials to put out are readable before starting
    materials = next(c.materials for c in load_case_library() if c.id == case_id)
    assert page.inner_text("#case-materials") == ", ".join(materials)
    assert page.query_selector("#sheet input[type=text], #sheet textarea") is None  # no free text

    # --- three children rated with the network cut: nothing arrives, nothing is lost
    context.set_offline(True)
    for level in (0, 1, 2):
        _rate_child(page, level)
    page.wait_for_function("document.getElementById('child-h').textContent === 'Barn 4'")
    page.wait_for_selector("#offline:not([hidden])")
    assert _n(live_server, ResponseSheet) == 0
    page.screenshot(path=str(screenshots / "assess-offline-tablet-portrait.png"))

    # --- reconnect; the first answer is lost on the way back: its retry gets the first id
    calls: list[dict] = []

    def lossy(route, request):
        calls.append({"key": request.headers.get("idempotency-key")})
        answer = route.fetch()
        if len(calls) == 1:
            route.abort("connectionreset")  # stored, but the tablet never hears
        else:
            calls[-1]["status"] = answer.status
            calls[-1]["body"] = answer.json()
            route.fulfill(response=answer)

    page.route("**/api/sheets", lossy)
    context.set_offline(False)
    _wait_for(lambda: _n(live_server, ResponseSheet) >= 3, 60, page, "three sheets")
    _wait_for(lambda: len(calls) >= 4, 60, page, "the retried sheet")
    page.wait_for_timeout(1500)
    assert _n(live_server, ResponseSheet) == 3  # exactly three
    retry = next(c for c in calls[1:] if c["key"] == calls[0]["key"])
    assert retry["status"] == 200
    with live_server.factory() as s:
        first_id = s.scalar(
            select(ResponseSheet.id).where(ResponseSheet.external_id.like(f"%:{calls[0]['key']}"))
        )
    assert retry["body"]["sheet_id"] == first_id
    page.unroute("**/api/sheets")
    _wait_for(lambda: "3" in page.inner_text("#count"), 20, page, "the count of 3")
    _shot(page, screenshots, "assess-tablet-portrait.png")

    # --- undo the last sheet within the window: the server takes it back
    _rate_child(page, 1)
    _wait_for(lambda: _n(live_server, ResponseSheet) == 4, 30, page, "the fourth sheet")
    page.click("#undo")
    _wait_for(lambda: _n(live_server, ResponseSheet) == 3, 30, page, "the undo")

    # --- an invalid sheet is refused with the item named, and stays for correction: the page
    # only offers valid levels, so send one through the page's own queue with a level out of range
    page.route(
        "**/api/sheets",
        lambda route, request: route.fulfill(
            status=422,
            content_type="application/json",
            body='{"detail": "item x: level 9 is outside 0–3"}',
        ),
    )
    _rate_child(page, 2)
    page.wait_for_selector("#sheet-error:not([hidden])")
    assert "item x" in page.inner_text("#sheet-error")
    assert page.eval_on_selector_all(".sheet button.level[aria-pressed=true]", "b => b.length") > 0
    page.unroute("**/api/sheets")
    assert _n(live_server, ResponseSheet) == 3

    # --- calibration: rate one response; the reference and the explanation show
    first = page.wait_for_selector("#calibration li.calib")
    response_id = first.get_attribute("data-response")
    li = f'#calibration li[data-response="{response_id}"]'
    for i in range(page.locator(f"{li} .rubric-item").count()):  # each click redraws the row
        page.locator(f"{li} .rubric-item").nth(i).locator('button.level[data-level="1"]').click()
    page.click(f"{li} .calib-save")
    page.wait_for_selector(f'#calibration li[data-response="{response_id}"] .calib-explanation')
    assert _n(live_server, CalibrationRating) >= 1
    page.locator(f'#calibration li[data-response="{response_id}"]').scroll_into_view_if_needed()
    _shot(page, screenshots, "assess-calibration-tablet-portrait.png")

    # --- English, and landscape
    page.click("[data-lang=en]")
    assert page.inner_text("h1") == "Assess case responses"
    assert page.inner_text("#next-child") == "Next child"
    page.set_viewport_size(LANDSCAPE)
    assert page.is_visible("#next-child")
    assert errors == []

    # --- the researcher sees the calibration agreement on /research
    research = chromium.new_context(viewport=LANDSCAPE, locale="sv-SE").new_page()
    _sign_in(research, url, "res")
    research.click("#research-link")  # researchers land on their units; the top bar leads on
    research.wait_for_url(f"{url}/research")
    research.wait_for_selector("#calibration-agreement td", timeout=30_000)
    assert "edu" in research.inner_text("#calibration-agreement")
