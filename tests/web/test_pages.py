"""The principal's profile page and the research page, in a real headless Chromium.

One demo municipality (eight units, two terms, three photos per group and term, rated sheets and
organisational data) is seeded once for the module and served by uvicorn. A principal reads their
unit's page (charts with accessible names and text alternatives, intervals, "too few to show" for
the age bands with three photos, development areas), switches to English, and cannot open another
unit's page; the page leads with its summary, lists the demo measure with its follow-up and records a
new one from a suggestion (edited, refused while its title is empty, edited again, deleted); a
researcher sees the registered models with the promoted one marked and the fit tables, and the
network view of every unit's development areas and measures with the areas they share. Screenshots (desktop 1280×900, tablet 1024×768) go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import PASSWORD
from tests.web.conftest import REPO, LiveServer, _free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DESKTOP = {"width": 1280, "height": 900}
TABLET = {"width": 1024, "height": 768}
# Dalhem is the demo unit whose profile has development areas; Olympia is someone else's.
PRINCIPAL: tuple[str, str, list[str]] = ("dal", "principal", ["Dalhem"])
RESEARCHER: tuple[str, str, list[str]] = ("forsk", "researcher", [])


@pytest.fixture(scope="module")
def demo_server(chromium, trained_model, shared_models, tmp_path_factory) -> Iterator[LiveServer]:
    """The demo municipality (``cli.demo.seed_demo``, 3 photos per group and term) served live."""
    from cli.demo import seed_demo
    from core.config import get_settings
    from core.db import dispose_engines, migrate, session_factory
    from core.users import upsert_user
    from training.registry import promote

    var = tmp_path_factory.mktemp("pages")
    mp = pytest.MonkeyPatch()
    mp.setenv("SPIRA_VAR_DIR", str(var / "var"))
    mp.setenv("SPIRA_MODELS_DIR", str(shared_models))
    get_settings.cache_clear()
    proc = None
    try:
        migrate()
        factory = session_factory()
        with factory() as session:
            promote(trained_model, session=session)
            session.commit()
        seed_demo(factory, photos_per_term=3, log=lambda line: None)
        with factory() as session:
            for username, role, units in (PRINCIPAL, RESEARCHER):
                upsert_user(
                    session, username=username, password=PASSWORD, role=role, unit_names=units
                )
            session.commit()
        port = _free_port()
        log = var / "server.log"
        env = os.environ | {"SPIRA_WORKER_ENABLED": "false", "SPIRA_ENV": "test"}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory"]
                + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield LiveServer(url=url, factory=factory, log=log)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        dispose_engines()
        mp.undo()
        get_settings.cache_clear()


def _signed_in_page(chromium, server: LiveServer, username: str, viewport: dict):
    """A fresh browser context signed in as `username` (Swedish); returns (context, page, errors)."""
    context = chromium.new_context(viewport=viewport, locale="sv-SE", device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.url}/")
    page.wait_for_selector("#login-section:not([hidden])")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_selector("#units-section:not([hidden])")
    return context, page, errors


def _wait_for_text(page, selector: str, text: str, timeout: float = 15) -> None:
    """Poll until the element's text contains `text` (the CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + timeout
    while text not in (page.text_content(selector) or ""):
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} never showed {text!r}")
        page.wait_for_timeout(100)


def test_principal_reads_their_unit_profile(chromium, demo_server, screenshots) -> None:
    server = demo_server
    dalhem = server.unit_id("Dalhem")
    context, page, errors = _signed_in_page(chromium, server, PRINCIPAL[0], DESKTOP)

    # the landing page links to the unit's page
    page.click(f"article[data-unit-id='{dalhem}'] h2 a")
    page.wait_for_url(f"{server.url}/units/{dalhem}")
    page.wait_for_selector("#summary")
    assert page.inner_text("#unit-name") == "Dalhem"

    # the page leads with the answer: a summary, then the panels in the order a principal reads
    # them, only development areas and measures open
    summary = {
        key: page.inner_text(f"#summary [data-summary={key}]")
        for key in ("areas", "strongest", "certainty", "changed")
    }
    dev_labels = page.eval_on_selector_all(
        "#sec-development li.development-area h3", "hs => hs.map(h => h.textContent)"
    )
    assert dev_labels and all(label in summary["areas"] for label in dev_labels)
    # the strongest area is one above its expected value, or the summary says none is
    profile = context.request.get(f"{server.url}/api/units/{dalhem}/profile").json()["profile"]
    above = [
        e["label_sv"]
        for e in profile["expected"]
        if not e["suppressed"] and (e["shrunk_residual"] or 0) >= 0.005
    ]
    if above:
        assert any(label in summary["strongest"] for label in above)
        assert "[" in summary["strongest"]
    else:
        assert "Inget område ligger över det förväntade" in summary["strongest"]
    assert "foton" in summary["certainty"] and "syntetiska" in summary["certainty"]
    assert "2026-VT" in summary["changed"]  # compared with last term
    panels = page.eval_on_selector_all("#sections > details", "ds => ds.map(d => [d.id, d.open])")
    gap = context.request.get(f"{server.url}/api/units/{dalhem}/profile").json()["drawing_age_gap"]
    assert gap is not None  # the demo's model has a drawing-age head
    assert panels == [
        ["sec-development", True],
        ["sec-measures", True],
        ["sec-expected", False],
        ["sec-ability", False],
        ["sec-trend", False],
        ["sec-drawing-age", False],
        ["sec-distribution", False],
        ["sec-context", False],
        ["sec-indicators", False],
        ["sec-similar", False],
        ["sec-triangulation", False],
    ]
    # the drawing-age panel says first that the model was never validated on real drawings
    page.click("#sec-drawing-age > summary")
    note = page.inner_text("#sec-drawing-age [data-validation]")
    assert not gap["validated_on_real_drawings"]
    assert note.startswith("Inte validerad på riktiga teckningar")
    if gap["status"] != "unavailable":
        shown = page.eval_on_selector_all(
            "#drawing-age-table tbody tr", "rs => rs.map(r => r.cells[0].textContent)"
        )
        assert shown == [x["term"] for x in gap["terms"]]
    page.click("#sec-drawing-age > summary")  # closed again for the screenshot
    page.screenshot(path=str(screenshots / "unit-summary-desktop.png"))

    # measures: the demo's measure with its follow-up (worded as follow-up, never as proof)
    (demo_measure,) = page.query_selector_all("#measure-list li.measure")
    assert "Matematik i lek och rutiner" in demo_measure.inner_text()
    assert "2026-HT" in demo_measure.query_selector(".follow-up tbody").inner_text()
    assert "inte att åtgärden orsakade det" in page.inner_text("#sec-measures .hint")
    assert "Matematik i lek och rutiner" in page.inner_text("#term-summary")
    # a new measure from a suggestion of the area's help text, edited before saving
    page.select_option("#measure-area", "social_emotional")
    page.click("#measure-suggestions .use-suggestion")
    assert page.input_value("#measure-title") == "Lek, vänskap och känslor i grupperna"
    assert "turtagning" in page.input_value("#measure-description")
    assert "enskilda barn" in page.inner_text("#measure-no-child")
    page.fill("#measure-title", "")
    page.fill("#measure-decided-by", "Rektor och arbetslag")
    page.click("#measure-save")
    _wait_for_text(page, "#measure-error", "title")  # refused with the API's reason
    page.fill("#measure-title", "Lek och vänskap: samtal i små grupper")
    page.click("#measure-save")
    _wait_for_text(page, "#measure-flash", "sparad")
    items = page.query_selector_all("#measure-list li.measure")
    assert len(items) == 2
    new = items[-1].inner_text()
    assert "Lek och vänskap: samtal i små grupper" in new and "turtagning" in new
    assert "Följs upp från terminen efter 2026-HT" in new
    assert "startar nu" in page.inner_text("#term-summary")
    page.query_selector("#sec-measures").screenshot(
        path=str(screenshots / "unit-measures-desktop.png")
    )
    # edit, then delete (after a confirmation)
    items[-1].query_selector(".measure-edit").click()
    page.fill("#measure-title", "Lek och vänskap")
    page.click("#measure-save")
    deadline = time.monotonic() + 15
    while page.inner_text("#measure-list li.measure:last-child h3") != "Lek och vänskap":
        assert time.monotonic() < deadline, page.inner_text("#measure-list")
        page.wait_for_timeout(100)
    page.once("dialog", lambda d: d.accept())
    page.query_selector_all("#measure-list li.measure")[-1].query_selector(
        ".measure-delete"
    ).click()
    _wait_for_text(page, "#measure-flash", "borttagen")
    assert len(page.query_selector_all("#measure-list li.measure")) == 1

    # every detailed panel opens
    for panel_id, is_open in panels:
        if not is_open:
            page.click(f"#{panel_id} > summary")
    page.wait_for_selector("#sec-distribution svg")
    # the municipality's own quality indicators (the demo's two examples) next to the mean
    indicators = page.inner_text("#indicators-table")
    assert "Andel personal i kompetensutveckling (andel 0–1)" in indicators
    assert "Nöjda vårdnadshavare" in indicators and "n = 8" in indicators
    assert page.input_value("#term") == "2026-HT"  # the latest term by default
    assert page.eval_on_selector_all("#term option", "os => os.map(o => o.value)") == [
        "2026-VT",
        "2026-HT",
    ]

    # every chart is an accessible image with a title and a text alternative
    charts = page.query_selector_all("figure.chart")
    assert len(charts) >= 5  # distribution, trend, ability, expected, context
    for chart in charts:
        svg = chart.query_selector("svg")
        assert svg.get_attribute("role") == "img"
        assert len(svg.get_attribute("aria-label") or "") > 20
        assert svg.query_selector("title").text_content()
        assert chart.query_selector("figcaption table") is not None
    # the distribution has five bars and the expected-for-age marker
    assert len(page.query_selector_all("#sec-distribution rect.bar")) == 5
    assert page.query_selector("#sec-distribution line.marker.expected") is not None
    # figures come with an interval ("value [lo, hi]") and whiskers in the charts
    assert "[" in page.inner_text("#sec-trend figcaption tbody tr:last-child td:last-child")
    assert len(page.query_selector_all("#sec-ability line.whisker")) >= 3
    assert page.query_selector("#sec-ability line.reference") is not None
    # three photos per age band: each band's figures are withheld, the unit's (n = 6) shown
    age_table = page.inner_text("#sec-distribution figcaption")
    assert age_table.count("för få för att visa") >= 4  # 2 bands × (mean stage, index)
    assert "6" in page.inner_text("#sec-distribution figcaption tbody tr:last-child")
    # expected vs observed as a deviation, with the association-not-cause sentence
    assert "inte en orsak" in page.inner_text("#sec-expected .association-note")
    # a deviation shrunk to exactly 0 (no spread between units) is said in words, never shown
    # as a figure with an interval of no width
    assert "[0,00, 0,00]" not in page.inner_text("#sections")
    # units of measure in the page's language too
    assert "åldersjusterat index" in page.inner_text("#sec-expected")
    assert "age-adjusted" not in page.inner_text("#sec-expected")
    assert "andel 0–1" in page.inner_text("#sec-context")
    # development areas, each with its explanation
    areas = page.query_selector_all("#sec-development li.development-area")
    assert areas, page.inner_text("#sec-development")
    assert all(len(a.inner_text()) > 40 for a in areas)
    assert page.query_selector("#sec-similar tbody tr") is not None
    assert page.inner_text("#sec-triangulation p")
    # export buttons point at the unit's export
    assert page.get_attribute("#export-csv", "href") == (
        f"/api/profiles/export?format=csv&unit_id={dalhem}"
    )
    export = context.request.get(f"{server.url}{page.get_attribute('#export-xlsx', 'href')}")
    assert export.status == 200 and export.body()[:2] == b"PK"  # an xlsx (zip) file
    page.screenshot(path=str(screenshots / "unit-desktop.png"), full_page=True)

    # another term reloads the page's figures
    page.select_option("#term", "2026-VT")
    _wait_for_text(page, "#sec-distribution svg title", "2026-VT")
    assert "2026-VT" in (page.text_content("#sec-ability svg title") or "")

    # English: headings and notices change
    page.click("button[data-lang=en]")
    assert page.inner_text("#summary h2").startswith("In short")
    assert "synthetic drawings" in page.inner_text("#summary")
    assert page.inner_text("#sec-measures h2") == "Measures"
    assert page.inner_text("#sec-distribution h2") == "Stage distribution against age"
    assert page.inner_text("#sec-development h2") == "Development areas"
    assert "age-adjusted index" in page.inner_text("#sec-expected")
    assert "too few to show" in page.inner_text("#sec-distribution figcaption")
    assert page.inner_text("#export-csv") == "CSV"
    page.screenshot(path=str(screenshots / "unit-desktop-en.png"), full_page=True)
    page.click("button[data-lang=sv]")

    # a tablet reads the same page in one column without horizontal scrolling
    page.set_viewport_size(TABLET)
    page.select_option("#term", "2026-HT")
    _wait_for_text(page, "#sec-distribution svg title", "2026-HT")
    page.wait_for_selector("#unit-status", state="hidden")
    assert page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"]
    page.screenshot(path=str(screenshots / "unit-tablet.png"), full_page=True)

    # another unit's page: the API says 404 and the page says so
    olympia = server.unit_id("Olympia")
    page.goto(f"{server.url}/units/{olympia}")
    page.wait_for_selector("#unit-error:not([hidden])")
    assert "finns inte" in page.inner_text("#unit-error")
    assert page.is_hidden("#unit-page")
    # the network view is not for principals
    page.goto(f"{server.url}/network")
    _wait_for_text(page, "#network-error", "administratörer")
    assert page.query_selector("#network-table") is None
    assert errors == []
    context.close()


def test_researcher_sees_models_agreement_and_fit(chromium, demo_server, screenshots) -> None:
    context, page, errors = _signed_in_page(chromium, demo_server, RESEARCHER[0], DESKTOP)
    page.click("#research-link")
    page.wait_for_url(f"{demo_server.url}/research")
    page.wait_for_selector("#models-table")

    promoted = page.query_selector_all("#models-table tbody tr:has(.badge)")
    assert len(promoted) == 1
    row = promoted[0].inner_text()
    assert "i bruk" in row
    assert "0," in row  # qwk, mae, ece shown with Swedish decimals
    # no labels pulled from Label Studio yet: said plainly
    assert "Inga etiketter" in page.inner_text("#no-labels")
    # item and rater fit from the demo ratings; misfit flagged
    assert len(page.query_selector_all("#items-table tbody tr")) >= 3
    assert len(page.query_selector_all("#raters-table tbody tr")) >= 2
    cells = page.query_selector_all("#sec-fit td[data-value]")
    fit = [
        (float(c.get_attribute("data-value")), "flag" in (c.get_attribute("class") or ""))
        for c in cells
    ]
    assert fit and any(flag for _, flag in fit)  # the demo ratings hold some misfit
    assert all(flag == (v < 0.7 or v > 1.3) for v, flag in fit)
    page.screenshot(path=str(screenshots / "research-desktop.png"), full_page=True)

    page.set_viewport_size(TABLET)
    page.click("button[data-lang=en]")
    assert page.inner_text("#sec-models h2") == "Registered stage models"
    assert "in use" in page.inner_text("#models-table")
    page.screenshot(path=str(screenshots / "research-tablet.png"), full_page=True)
    assert errors == []
    context.close()


def test_network_view_shows_every_unit_and_the_areas_they_share(
    chromium, demo_server, screenshots
) -> None:
    context, page, errors = _signed_in_page(chromium, demo_server, RESEARCHER[0], DESKTOP)
    page.click("#network-link")
    page.wait_for_url(f"{demo_server.url}/network")
    page.wait_for_selector("#network-table")
    assert page.input_value("#term") == "2026-HT"
    # every unit, alphabetically (never ranked), each with its development areas and measures
    names = page.eval_on_selector_all(
        "#network-table tbody th", "ths => ths.map(th => th.textContent)"
    )
    assert len(names) == 8 and names == sorted(names)
    dalhem = page.inner_text(f"tr[data-unit-id='{demo_server.unit_id('Dalhem')}']")
    assert "Matematik i lek och rutiner" in dalhem
    # followed up in 2026-HT (or said to rest on too few sheets to follow up)
    assert "Uppföljning 2026-HT" in dalhem or "2026-HT: för få underlag" in dalhem
    assert page.query_selector_all("#network-table td.dev-areas li")  # the demo has some
    # two demo units work on drawing progression: a common area, where a network meeting helps
    common = page.inner_text("#sec-common li[data-area=progression]")
    assert "Adolfsberg" in common and "Maria Park" in common
    assert "rangordnar inte" in page.inner_text("#sec-units")
    page.screenshot(path=str(screenshots / "network-desktop.png"), full_page=True)
    page.click("button[data-lang=en]")
    assert page.inner_text("h1") == "The municipality's network"
    assert "ranks no units" in page.inner_text("#sec-units")
    page.click("button[data-lang=sv]")
    assert errors == []
    context.close()
