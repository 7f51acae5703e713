"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright; Playwright's own browser downloads are never used): sign in by the link from the
chat, drill down, read a chart and its table, download a report, and be refused another
commune's page. Skipped when Chromium or Playwright is missing."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.engine import Engine
from bot.localities import LocalityIndex
from bot.services import rollup
from bot.web.server import make_web_app
from tests import orgdata, reportdata
from tests.conftest import Chat, Clock
from tests.test_dashboard import LINK_RE, runtime_for

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def sqlite_only(db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("one database is enough for the browser journey")


@pytest.fixture
async def site(sqlite_only: None, core: Engine, clock: Clock,
               localities: LocalityIndex) -> AsyncIterator[str]:  # fmt: skip
    async with core.sessionmaker() as session, session.begin():
        await reportdata.build(session, localities)
        await orgdata.add_officers(session, localities)
    async with core.sessionmaker() as session, session.begin():
        await rollup.refresh(session, localities)
    runner = web.AppRunner(make_web_app(runtime_for(core, clock), []))
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    playwright = pytest.importorskip("playwright.async_api")
    async with playwright.async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        await chromium.close()


async def link(core: Engine, account: str, base: str) -> str:
    replies = await Chat(core, user_id=account, channel="test").say("/dashboard")
    found = LINK_RE.search(replies[0].text)
    assert found
    return found.group(1).replace("http://127.0.0.1:8080", base)


async def test_the_dashboard_in_chromium(site: str, browser: object, core: Engine,
                                         tmp_path: Path) -> None:
    context = await browser.new_context(accept_downloads=True,  # type: ignore[attr-defined]
                                        viewport={"width": 390, "height": 844})  # a phone
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    # Sign in with the link from the chat: the page waits for "Đăng nhập".
    await page.goto(await link(core, "la", site))
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.wait_for_url(re.compile(rf"/dashboard/c/{orgdata.A}"))
    assert await page.locator("h1").inner_text() == "Xã Hải Hậu"
    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["hvs_session"]["httpOnly"] and cookies["hvs_session"]["sameSite"] == "Strict"

    # Charts are drawn by Chart.js, and their figures are in the tables too.
    await page.wait_for_function("() => window.Chart && Chart.getChart('chart-trend')")
    trend = await page.evaluate(
        "() => Chart.getChart('chart-trend').data.datasets.map(d => d.data)")
    table = await page.locator("#trend-table tbody tr").all_inner_texts()
    assert len(table) == 12 and sum(trend[0]) == 1  # k1 learned in February 2026, in A
    assert table[1].split("\t")[:2] == ["02/2026", "1"] and trend[0][1] == 1

    # Drill down one level: the commune's Women's Union, then its chi hội.
    await page.get_by_role("link", name="Hội LHPN xã Hải Hậu").click()
    await page.wait_for_url(re.compile(r"/dashboard/u/HPN-A"))
    assert await page.locator("h1").inner_text() == "Hội LHPN xã Hải Hậu"
    await page.get_by_role("link", name="Chi hội Phụ nữ xóm 1").click()
    await page.wait_for_url(re.compile(r"/dashboard/u/HPN-A-X1"))
    figures = await page.locator("#key-figures").inner_text()
    assert "Số người học tích cực" in figures

    # Download a report of the commune: a job page shows progress, then the file.
    await page.goto(f"{site}/dashboard/c/{orgdata.A}/reports?period=2026")
    await page.get_by_label("CSV").check()
    await page.get_by_role("button", name="Lập báo cáo").click()
    await page.wait_for_selector("#download", timeout=20_000)
    async with page.expect_download() as waiting:
        await page.click("#download")
    download = await waiting.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert {r["unit_code"] for r in rows} >= {"HPN-A", "DOAN-A", "MTTQ-A"}
    assert "HPN-B" not in {r["unit_code"] for r in rows}

    assert problems == [], problems  # no script errors, nothing blocked by the CSP

    # Another commune's page is refused.
    response = await page.goto(f"{site}/dashboard/c/{orgdata.B}")
    assert response is not None and response.status == 403
    assert "ngoài phạm vi" in await page.locator("main").inner_text()
    await context.close()
