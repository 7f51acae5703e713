"""The dashboard over HTTP (aiohttp's test client against the real web app, SQLite and
PostgreSQL): sign-in by a one-time link from the chat, scope checks, CSRF, exports with
progress, and the security headers. The same journey in a real browser:
tests/test_dashboard_browser.py."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.db.models import AuditLog, Officer
from bot.engine import Engine
from bot.localities import LocalityIndex
from bot.runtime import Runtime
from bot.services import officers, orgs, rollup
from bot.web.server import make_web_app
from tests import orgdata, reportdata
from tests.conftest import Chat, Clock

LINK_RE = re.compile(r"(http://\S+/dashboard/login/([A-Za-z0-9_-]+))")


def runtime_for(core: Engine, clock: Clock) -> Runtime:
    return Runtime(core.settings, core.sessionmaker.kw["bind"], core.sessionmaker,
                   core.curriculum, core.localities, core, clock)  # fmt: skip


@pytest.fixture
async def client(core: Engine, clock: Clock, localities: LocalityIndex) -> AsyncIterator[
        TestClient]:  # fmt: skip
    async with core.sessionmaker() as session, session.begin():
        await reportdata.build(session, localities)
        await orgdata.add_officers(session, localities)
    async with core.sessionmaker() as session, session.begin():
        await rollup.refresh(session, localities)
    app = make_web_app(runtime_for(core, clock), [])
    async with TestClient(TestServer(app)) as c:
        yield c


async def link_for(core: Engine, account: str) -> tuple[str, str]:
    """What an officer gets by sending /dashboard in the chat: (url, token)."""
    replies = await Chat(core, user_id=account, channel="test").say("/dashboard")
    found = LINK_RE.search(replies[0].text)
    assert found, replies[0].text
    return found.group(1), found.group(2)


async def sign_in(client: TestClient, core: Engine, account: str) -> None:
    _url, token = await link_for(core, account)
    page = await client.get(f"/dashboard/login/{token}")
    assert page.status == 200
    html = await page.text()
    assert "Đăng nhập" in html
    nonce = re.search(r'name="nonce" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    done = await client.post("/dashboard/login", data={"token": token, "nonce": nonce},
                             allow_redirects=False)  # fmt: skip
    assert done.status == 303, await done.text()
    cookie = done.headers.getall("Set-Cookie")
    session_cookie = next(c for c in cookie if c.startswith("hvs_session="))
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
    assert "Path=/dashboard" in session_cookie and "Max-Age=28800" in session_cookie
    assert "Secure" not in session_cookie  # HOCVUSO_PUBLIC_URL is not https here


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


async def test_sign_in_drill_down_and_scope(client: TestClient, core: Engine) -> None:
    """A commune administrator signs in with the link, sees their commune, drills down to a
    unit, and cannot open another commune's page (403, audited)."""
    url, token = await link_for(core, "la")
    assert url.startswith("http://127.0.0.1:8080/dashboard/login/")
    # Opening the link (or a chat app's preview) shows the button and consumes nothing.
    for _ in range(2):
        assert (await client.get(f"/dashboard/login/{token}")).status == 200
    await sign_in(client, core, "la")
    home = await client.get("/dashboard")
    assert str(home.url).endswith(f"/dashboard/c/{orgdata.A}")
    html = await home.text()
    assert "Xã Hải Hậu" in html and home.headers["Content-Security-Policy"].startswith(
        "default-src 'none'")
    assert home.headers["Cache-Control"] == "no-store"
    # The level below: the commune's units, each a link.
    assert 'href="/dashboard/u/HPN-A?period=2026"' in html
    unit = await client.get("/dashboard/u/HPN-A?period=2026")
    assert unit.status == 200
    assert "Chi hội Phụ nữ xóm 1" in await unit.text()
    for other in (f"/dashboard/c/{orgdata.B}", "/dashboard/u/HPN-B", "/dashboard/p/37",
                  "/dashboard/u/HPN-B/criteria", f"/dashboard/c/{orgdata.B}/reports"):
        refused = await client.get(other)
        assert refused.status == 403, other
        assert "Xã Bắc Lý" not in await refused.text()
    async with core.sessionmaker() as session:
        refusals = list(await session.scalars(
            select(AuditLog).where(AuditLog.action == "refused", AuditLog.actor == "test:la")))
    assert len(refusals) == 5


async def test_a_link_works_once_and_for_ten_minutes(client: TestClient, core: Engine,
                                                     clock: Clock) -> None:  # fmt: skip
    _url, token = await link_for(core, "oa")
    html = await (await client.get(f"/dashboard/login/{token}")).text()
    nonce = re.search(r'name="nonce" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    form = {"token": token, "nonce": nonce}
    first = await client.post("/dashboard/login", data=form, allow_redirects=False)
    assert first.status == 303
    # The same POST again, with the login page's cookie: the link is used up.
    replay = await client.post("/dashboard/login", data=form, allow_redirects=False,
                               headers={"Cookie": f"hvs_login={nonce}"})
    assert replay.status == 410
    assert (await client.get(f"/dashboard/login/{token}")).status == 410
    _url, late = await link_for(core, "oa")
    clock.advance(minutes=11)
    assert (await client.get(f"/dashboard/login/{late}")).status == 410
    # A POST without the nonce cookie of the login page (a forged cross-site form) fails.
    client.session.cookie_jar.clear()
    forged = await client.post("/dashboard/login", data={"token": late, "nonce": "x" * 24},
                               allow_redirects=False)  # fmt: skip
    assert forged.status == 403


async def test_citizens_get_the_unknown_command_answer(core: Engine,
                                                       localities: LocalityIndex) -> None:
    replies = await Chat(core, user_id="citizen-1", channel="test").say("/dashboard")
    assert "/dashboard" in replies[0].text and "login" not in replies[0].text


async def test_forms_need_the_csrf_token(client: TestClient, core: Engine) -> None:
    await sign_in(client, core, "p1")
    page = await client.get("/dashboard/p/37/reports")
    csrf = csrf_of(await page.text())
    missing = await client.post("/dashboard/p/37/reports", data={"period": "2026",
                                                                 "format": "csv"})
    assert missing.status == 403
    wrong = await client.post("/dashboard/p/37/reports",
                              data={"period": "2026", "format": "csv", "csrf": "x" * 32})
    assert wrong.status == 403
    out = await client.post("/dashboard/logout", data={"csrf": "nope"})
    assert out.status == 403
    assert (await client.get("/dashboard/p/37")).status == 200  # still signed in
    out = await client.post("/dashboard/logout", data={"csrf": csrf})
    assert out.status == 200
    assert (await client.get("/dashboard/p/37")).status == 401


async def test_report_download_with_progress(client: TestClient, core: Engine) -> None:
    await sign_in(client, core, "p1")
    page = await client.get("/dashboard/p/37/reports?period=2026")
    csrf = csrf_of(await page.text())
    started = await client.post("/dashboard/p/37/reports", allow_redirects=False,
                                data={"period": "2026", "format": "csv", "csrf": csrf})
    assert started.status == 303
    job = started.headers["Location"]
    for _ in range(200):
        html = await (await client.get(job)).text()
        if "/file" in html:
            break
        assert "<progress" in html and 'http-equiv="refresh"' in html
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the report job did not finish")
    got = await client.get(f"{job}/file")
    assert got.status == 200
    assert "attachment" in got.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO((await got.read()).decode("utf-8-sig"))))
    totals = {r["indicator"]: r["value"] for r in rows if r["unit_code"] == "" and
              r["locality_code"] == "37"}  # fmt: skip
    assert totals["active_learners"] == "4" and totals["people_reached"] == "2"
    async with core.sessionmaker() as session:
        exports = list(await session.scalars(select(AuditLog).where(
            AuditLog.action == "report_export", AuditLog.actor == "test:p1")))
    assert exports and exports[0].detail["via"] == "dashboard"  # type: ignore[index]
    # Another officer's session cannot fetch this job's file.
    client.session.cookie_jar.clear()
    await sign_in(client, core, "la")
    assert (await client.get(f"{job}/file")).status == 404


async def test_pages_of_a_province_admin(client: TestClient, core: Engine) -> None:
    await sign_in(client, core, "p1")
    overview = await (await client.get("/dashboard/p/37?period=2026")).text()
    assert 'id="chart-trend"' in overview and 'class="chart-data"' in overview
    assert 'href="/dashboard/c/14215?period=2026"' in overview  # drill down to a commune
    criteria = await client.get("/dashboard/p/37/criteria?period=2026")
    html = await criteria.text()
    assert criteria.status == 200 and "Tổng điểm" in html and "Xếp hạng" in html
    assert "Hội đồng Thi đua" in html  # evidence, not a verdict
    campaigns = await client.get("/dashboard/campaigns")
    assert campaigns.status == 200
    bad = await (await client.get("/dashboard/p/37?period=2027-2025")).text()
    assert 'role="alert"' in bad
    static = await client.get("/dashboard/static/chart.umd.min.js")
    assert static.status == 200 and "Chart.js" in (await static.text())[:200]
    assert (await client.get("/dashboard/static/../server.py")).status == 404


async def test_a_revoked_officer_is_out_at_once(client: TestClient, core: Engine,
                                                localities: LocalityIndex) -> None:
    await sign_in(client, core, "oa")
    assert (await client.get("/dashboard/u/HPN-A")).status == 200
    async with core.sessionmaker() as session, session.begin():
        officer = await session.scalar(select(Officer).where(Officer.external_id == "oa"))
        assert officer is not None
        unit = await orgs.get_unit(session, "HPN-A")
        await officers.revoke(session, channel="test", external_id="oa", role="org_admin",
                              unit=unit, locality=None, by="test", now=orgdata.NOW)
    assert (await client.get("/dashboard/u/HPN-A")).status == 401


async def test_frozen_reports_of_the_scope_only(client: TestClient, core: Engine,
                                                localities: LocalityIndex) -> None:
    from openpyxl import load_workbook

    from bot.services import metrics, reports
    from content import criteria

    ids = {}
    for commune in (orgdata.A, orgdata.B):
        async with core.sessionmaker() as session, session.begin():
            data = await reports.build(session, localities, metrics.parse_period("2026"),
                                       criteria.for_year(2026), locality=commune,
                                       now=orgdata.NOW, by="test")  # fmt: skip
            ids[commune] = (await reports.freeze(session, data, by="test:p1",
                                                 now=orgdata.NOW)).id  # fmt: skip
    await sign_in(client, core, "la")
    listed = await (await client.get(f"/dashboard/c/{orgdata.A}/reports")).text()
    assert f"/dashboard/frozen/{ids[orgdata.A]}.xlsx" in listed
    assert f"/dashboard/frozen/{ids[orgdata.B]}." not in listed
    got = await client.get(f"/dashboard/frozen/{ids[orgdata.A]}.xlsx")
    assert got.status == 200
    book = load_workbook(io.BytesIO(await got.read()))
    assert any("Báo cáo đã chốt số" in str(c.value) for c in book["Tổng hợp"]["A"] if c.value)
    assert (await client.get(f"/dashboard/frozen/{ids[orgdata.B]}.xlsx")).status == 403
