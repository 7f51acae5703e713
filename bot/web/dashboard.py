"""The officers' dashboard (aiohttp + Jinja2, on the web server of `hocvuso serve`).

- Sign-in: /dashboard in the chat gives a one-time link (bot.services.dashboard_auth). Its page
  shows a "Đăng nhập" button; the POST (with a double-submit CSRF nonce) consumes the link
  and opens a session cookie: HttpOnly, SameSite=Strict, Secure when HOCVUSO_PUBLIC_URL is
  https, 8 hours.
- Every page shows one subject: a province (/dashboard/p/37), a commune (/dashboard/c/14215)
  or a unit (/dashboard/u/HPN-14215), only if `bot.services.policy` lets the officer view it
  (403 and an audit entry otherwise); the figures are those of `bot.services.metrics`, the
  same as /stats and the reports. Below it, the units or communes one level down, each a link.
- Pages: overview (key numbers, monthly trends, the level below, gender and age), criteria
  (scores and ranks), campaigns, reports (downloads run as jobs in a worker thread with their
  own database connection, with a progress page; frozen reports).
- Every form carries the session's CSRF token; every response a strict Content-Security-Policy
  (scripts and styles from this server only: Chart.js is served from bot/web/static); the
  templates autoescape; the UI is Vietnamese.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from bot.i18n import _, current_language, fmt_date, fmt_datetime, fmt_number, fmt_percent
from bot.runtime import Runtime
from bot.services import audit, dashboard_auth, metrics, orgs, policy, rollup
from bot.services.metrics import Group, Period
from bot.services.policy import Actor, Refusal, UnitRef

log = logging.getLogger(__name__)

COOKIE = "hvs_session"
LOGIN_COOKIE = "hvs_login"
STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {"chart.umd.min.js": "application/javascript; charset=utf-8",
                "dashboard.js": "application/javascript; charset=utf-8",
                "dashboard.css": "text/css; charset=utf-8"}  # fmt: skip
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
KEY_FIGURES = ("registered", "active_learners", "lessons_completed", "certificates",
               "members_trained", "share_trained", "quiz_pass_rate", "campaigns_run",
               "people_reached", "people_engaged")  # fmt: skip
TABLE_FIGURES = ("registered", "active_learners", "lessons_completed", "members_trained",
                 "certificates", "people_reached")  # fmt: skip
TRENDS = (("active", "active_learners"), ("lessons", "lessons_completed"),
          ("certificates", "certificates"), ("reached", "people_reached"))  # fmt: skip
MAX_MONTHS = 72
JOB_TTL = 1800.0


# ---------------------------------------------------------------------------- rendering


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("bot.web", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]))  # fmt: skip
    env.filters["num"] = fmt_number
    env.filters["pct"] = fmt_percent
    env.filters["value"] = _fmt_value
    return env


def _fmt_value(value: Any, metric: str) -> str:
    if value is None:
        return "–"
    return fmt_percent(float(value)) if metrics.INDICATORS[metric].percent else fmt_number(value)


def labels() -> dict[str, str]:
    """The dashboard's wording (Vietnamese msgids via _())."""
    return {
        "app": _("hocvuso – dashboard"),
        "overview": _("Overview"),
        "criteria": _("Criteria and ranking"),
        "campaigns": _("Campaigns"),
        "reports": _("Reports"),
        "logout": _("Sign out"),
        "signin": _("Sign in"),
        "signin_title": _("Sign in to the hocvuso dashboard"),
        "signin_text": _("This link signs you in once. Press the button to continue."),
        "link_gone": _("This sign-in link is no longer valid: it was already used or has "
                       "expired. Send /dashboard in the chat to get a new one."),
        "signed_out": _("You are signed out. To sign in, send /dashboard to the hocvuso bot "
                        "in your chat app and open the link it sends."),
        "forbidden": _("This page is outside your scope."),
        "not_found": _("There is no such page."),
        "bad_form": _("The form has expired. Go back, reload the page and try again."),
        "period": _("Period"),
        "show": _("Show"),
        "period_help": _(metrics.PERIOD_HELP),
        "key_figures": _("Key figures"),
        "trends": _("Month by month"),
        "month": _("Month"),
        "below": _("One level down"),
        "units_here": _("Units"),
        "communes_here": _("Communes"),
        "name": _("Name"),
        "by_gender": _("By gender"),
        "by_age": _("By age group"),
        "gender": _("Gender"),
        "age_band": _("Age group"),
        "nothing": _("Nothing recorded yet."),
        "chart_note": _("The table below the chart gives the same figures."),
        "chart_below": _("Active learners, one level down"),
        "chart_trend": _("Month by month"),
        "scope": _("Scope"),
        "choose_scope": _("Choose what to look at"),
        "unit": _("Unit"),
        "level": _("Level"),
        "score": _("Score"),
        "total_score": _("Total score"),
        "rank": _("Rank"),
        "chart_scores": _("Total score (the 15 highest)"),
        "disclaimer": _("Scores and ranks are evidence for the Emulation and Commendation "
                        "Council, not a verdict."),
        "criteria_set": _("Criteria set"),
        "campaign": _("Campaign"),
        "created": _("Created"),
        "status": _("Status"),
        "audience": _("Audience"),
        "sent": _("Sent"),
        "delivered": _("Delivered"),
        "failed": _("Failed"),
        "skipped": _("Skipped"),
        "blocked": _("Blocked"),
        "engaged": _("Started learning"),
        "chart_campaigns": _("Sent and started learning, latest campaigns"),
        "download": _("Download"),
        "format": _("Format"),
        "make_report": _("Make the report"),
        "report_intro": _("The criteria report of this scope for a period: XLSX (Excel), CSV "
                          "(for other tools), HTML (prints to A4) or DOCX (Word)."),
        "frozen_reports": _("Frozen reports"),
        "frozen_at": _("Frozen on"),
        "frozen_by": _("Frozen by"),
        "working": _("Preparing the report…"),
        "ready": _("The report is ready."),
        "failed_job": _("The report could not be made."),
        "stage": _("Step"),
        "back": _("Back"),
        "signed_in_as": _("Signed in as"),
        "official": _("official count"),
    }


def _security_headers(response: web.StreamResponse, *, cache_static: bool = False) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "private, max-age=3600" if cache_static else "no-store"


def _page(template: str, status: int = 200, **context: Any) -> web.Response:
    token = current_language.set("vi")
    try:
        html = _env().get_template(f"dashboard/{template}").render(L=labels(), **context)
    finally:
        current_language.reset(token)
    response = web.Response(text=html, content_type="text/html", status=status)
    _security_headers(response)
    return response


def _message(status: int, text: str, viewer: Viewer | None = None) -> web.Response:
    nav = _nav(viewer, None, None) if viewer is not None else {"viewer": None, "place": None}
    return _page("message.html", status=status, text=text, **nav)


# ---------------------------------------------------------------------------- sessions


@dataclass(slots=True)
class Viewer:
    actor: Actor
    session_id: int
    csrf: str
    who: str


def _rt(request: web.Request) -> Runtime:
    from bot.web.server import RUNTIME

    return request.app[RUNTIME]


def _secure(rt: Runtime) -> bool:
    return bool(rt.settings.public_url and rt.settings.public_url.startswith("https://"))


async def _viewer(request: web.Request, session: Any) -> Viewer | None:
    rt = _rt(request)
    row = await dashboard_auth.find_session(session, request.cookies.get(COOKIE), rt.clock())
    if row is None:
        return None
    actor = await policy.load_actor(session, row.channel, row.external_id, rt.localities)
    if not actor.is_officer:
        return None
    return Viewer(actor, row.id, row.csrf, actor.who)


Handler = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]


def authed(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Signed-in officers only; POSTs must carry the session's CSRF token."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        rt = _rt(request)
        current = current_language.set("vi")
        try:
            async with rt.sessionmaker() as session:
                viewer = await _viewer(request, session)
            if viewer is None:
                return _message(401, labels()["signed_out"])
            if request.method == "POST":
                form = await request.post()
                sent = form.get("csrf")
                if not isinstance(sent, str) or not secrets.compare_digest(sent, viewer.csrf):
                    async with rt.sessionmaker() as session, session.begin():
                        audit.write(session, viewer.who, "refused", request.path[:128],
                                    at=rt.clock(), command="dashboard", reason="csrf")
                    return _message(403, labels()["bad_form"], viewer)
            return await handler(request, viewer)
        finally:
            current_language.reset(current)

    return wrapped


async def login_page(request: web.Request) -> web.Response:
    """GET /dashboard/login/<token>: the "Đăng nhập" button (consumes nothing)."""
    rt = _rt(request)
    token = request.match_info["token"][:80]
    async with rt.sessionmaker() as session:
        link = await dashboard_auth.peek_link(session, token, rt.clock())
    if link is None:
        return _message(410, labels()["link_gone"])
    nonce = secrets.token_urlsafe(18)
    response = _page("login.html", token=token, nonce=nonce)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=600, path="/dashboard/login", httponly=True,
                        samesite="Strict", secure=_secure(rt))  # fmt: skip
    return response


async def login(request: web.Request) -> web.Response:
    """POST /dashboard/login: consume the link once, open a session."""
    rt = _rt(request)
    form = await request.post()
    token, nonce = form.get("token"), form.get("nonce")
    cookie = request.cookies.get(LOGIN_COOKIE)
    if not (isinstance(token, str) and isinstance(nonce, str) and cookie
            and secrets.compare_digest(nonce, cookie)):  # fmt: skip
        return _message(403, labels()["bad_form"])
    now = rt.clock()
    async with rt.sessionmaker() as session, session.begin():
        link = await dashboard_auth.consume_link(session, token[:80], now)
        if link is None:
            audit.write(session, "web", "refused", "dashboard_login", at=now, command="dashboard",
                        reason="link_used_or_expired")  # fmt: skip
            refused = True
        else:
            actor = await policy.load_actor(session, link.channel, link.external_id,
                                            rt.localities)  # fmt: skip
            refused = not actor.is_officer
            if refused:
                audit.write(session, actor.who, "refused", "dashboard_login", at=now,
                            command="dashboard", reason=str(Refusal.REVOKED))  # fmt: skip
            else:
                cookie_token, _row = await dashboard_auth.open_session(session, link, now)
                audit.write(session, actor.who, "dashboard_login", None, at=now)
    if refused:
        return _message(410, labels()["link_gone"])
    response = web.HTTPSeeOther("/dashboard")
    _security_headers(response)
    response.set_cookie(COOKIE, cookie_token, max_age=int(dashboard_auth.SESSION_TTL
                                                           .total_seconds()),
                        path="/dashboard", httponly=True, samesite="Strict", secure=_secure(rt))
    response.del_cookie(LOGIN_COOKIE, path="/dashboard/login")
    raise response


@authed
async def logout(request: web.Request, viewer: Viewer) -> web.Response:
    rt = _rt(request)
    async with rt.sessionmaker() as session, session.begin():
        row = await session.get(dashboard_auth.DashboardSession, viewer.session_id)
        if row is not None:
            await dashboard_auth.close_session(session, row, rt.clock())
    response = _message(200, labels()["signed_out"])
    response.del_cookie(COOKIE, path="/dashboard")
    return response


# ---------------------------------------------------------------------------- subjects


@dataclass(slots=True)
class Place:
    """What a page is about, as the URL names it."""

    kind: str  # p, c, u
    code: str
    name: str
    subject: metrics.Subject
    group: Group
    unit: UnitRef | None = None
    children: list[tuple[str, str, Group]] = field(default_factory=list)  # (name, href, group)
    child_kind: str = "units"

    @property
    def href(self) -> str:
        return f"/dashboard/{self.kind}/{self.code}"


async def _place_in_url(request: web.Request, session: Any,
                        viewer: Viewer) -> Place | web.Response:  # fmt: skip
    """`_place` of the page's URL (`/<kind>/<code>`)."""
    return await _place(request, session, viewer, request.match_info["kind"],
                        request.match_info["code"])  # fmt: skip


async def _place(request: web.Request, session: Any, viewer: Viewer, kind: str,
                 code: str) -> Place | web.Response:  # fmt: skip
    """The subject named in the URL, or a 404 / 403 page (refusals are audited)."""
    rt = _rt(request)
    loc = rt.localities
    actor = viewer.actor
    unit: UnitRef | None = None
    if kind in ("p", "c"):
        if not code.isdigit() or len(code) > 6:
            return _message(404, labels()["not_found"], viewer)
        number = int(code)
        is_province = number in loc.province_codes
        if (kind == "p") != is_province or (kind == "c" and loc.get(number) is None):
            return _message(404, labels()["not_found"], viewer)
        subject = metrics.subject_of_locality(loc, number)
        allowed = policy.may_view_locality(actor, number)
        name = dict(loc.provinces())[number] if is_province else loc.get(number).name  # type: ignore[union-attr]
    elif kind == "u":
        found = await orgs.get_unit(session, code)
        if found is None:
            return _message(404, labels()["not_found"], viewer)
        unit = UnitRef.of(found)
        subject = metrics.subject_of(unit, loc)
        allowed = (policy.may_view_locality(actor, subject.locality_code)
                   if subject.unit is None and subject.locality_code is not None
                   else policy.may_view_unit(actor, unit))  # fmt: skip
        name = unit.name
    else:
        return _message(404, labels()["not_found"], viewer)
    if not allowed:
        async with rt.sessionmaker() as audit_session, audit_session.begin():
            audit.write(audit_session, viewer.who, "refused", f"{kind}:{code}"[:128],
                        at=rt.clock(), command="dashboard", reason=str(Refusal.OUT_OF_SCOPE))
        return _message(403, labels()["forbidden"], viewer)
    return Place(kind, code, name, subject, metrics.group_of(subject, loc), unit)


async def _children(session: Any, rt: Runtime, actor: Actor, place: Place) -> None:
    """The units or communes one level down that the officer may open."""
    loc = rt.localities
    subject = place.subject
    out: list[tuple[str, str, Group]] = []
    if subject.unit is not None:
        for child in await orgs.children(session, subject.unit.id):
            ref = UnitRef.of(child)
            if policy.may_view_unit(actor, ref):
                out.append((ref.name, f"/dashboard/u/{ref.code}", metrics.unit_group(ref, loc)))
        place.child_kind = "units"
    elif subject.locality_code in loc.province_codes:
        for commune in loc.communes():
            if commune.province_code == subject.locality_code and policy.may_view_locality(
                    actor, commune.code):  # fmt: skip
                out.append((commune.name, f"/dashboard/c/{commune.code}",
                            metrics.locality_group(loc, commune.code)))  # fmt: skip
        place.child_kind = "communes"
    else:
        assert subject.locality_code is not None
        for unit in await orgs.top_units(session, subject.locality_code):
            ref = UnitRef.of(unit)
            if ref.type != policy.MTTQ and policy.may_view_unit(actor, ref):
                out.append((ref.name, f"/dashboard/u/{ref.code}", metrics.unit_group(ref, loc)))
        place.child_kind = "units"
    place.children = out


def _period(request: web.Request, rt: Runtime) -> tuple[Period, str | None]:
    text = request.query.get("period", "").strip()[:40]
    if text:
        try:
            return metrics.parse_period(text), None
        except metrics.PeriodError as exc:
            problem = exc.localized()
    else:
        problem = None
    from bot.i18n import TZ

    return metrics.year_period(rt.clock().astimezone(TZ).year), problem


async def _refresh(rt: Runtime) -> None:
    async with rt.sessionmaker() as session, session.begin():
        await rollup.refresh(session, rt.localities, now=rt.clock())


def _nav(viewer: Viewer, place: Place | None, period: Period | None) -> dict[str, Any]:
    query = f"?period={period.label}" if period is not None else ""
    base = place.href if place is not None else "/dashboard"
    return {"viewer": viewer, "place": place, "period": period, "q": query,
            "links": {"overview": f"{base}{query}", "criteria": f"{base}/criteria{query}",
                      "campaigns": f"/dashboard/campaigns{query}",
                      "reports": f"{base}/reports{query}"}}  # fmt: skip


def _months(period: Period) -> list[int]:
    out: list[int] = []
    y, m = period.first_day.year, period.first_day.month
    while (y, m) <= (period.last_day.year, period.last_day.month) and len(out) < MAX_MONTHS:
        out.append(y * 100 + m)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


# ---------------------------------------------------------------------------- pages


@authed
async def home(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """/dashboard: the officer's own scope (or a choice when they hold several roles)."""
    rt = _rt(request)
    subjects: list[metrics.Subject] = []
    for grant in viewer.actor.grants:
        for subject in metrics.default_subjects(grant, rt.localities):
            if subject not in subjects:
                subjects.append(subject)
    links = []
    for s in subjects:
        if s.unit is not None:
            links.append((s.unit.name, f"/dashboard/u/{s.unit.code}"))
        else:
            kind = "p" if s.locality_code in rt.localities.province_codes else "c"
            code = s.locality_code or 0
            name = (dict(rt.localities.provinces()).get(code) if kind == "p"
                    else getattr(rt.localities.get(code), "name", str(code)))  # fmt: skip
            links.append((name or str(code), f"/dashboard/{kind}/{code}"))
    if len(links) == 1:
        raise web.HTTPSeeOther(links[0][1] + (f"?{request.query_string}"
                                              if request.query_string else ""))
    return _page("choose.html", links=links, **_nav(viewer, None, None))


@authed
async def overview(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    rt = _rt(request)
    period, problem = _period(request, rt)
    async with rt.sessionmaker() as session:
        place = await _place_in_url(request, session, viewer)
        if isinstance(place, web.Response):
            return place
        await _children(session, rt, viewer.actor, place)
    await _refresh(rt)
    async with rt.sessionmaker() as session:
        groups = [place.group, *(g for _n, _h, g in place.children)]
        values = await metrics.indicator_values(session, groups, period)
        months = _months(period)
        trend = await rollup.months(session, place.group, months[0], months[-1]) if months else {}
        by_gender = await metrics.breakdown(session, place.group, period, "gender")
        by_age = await metrics.breakdown(session, place.group, period, "age_band")
    from bot.reports.common import dimension_label

    own = values[place.group.key]
    rows = [(name, href, values[g.key].values) for name, href, g in place.children]
    trend_rows = [(f"{m % 100:02d}/{m // 100}", [trend.get(k, {}).get(m, 0) for k, _m in TRENDS])
                  for m in months]  # fmt: skip
    trend_chart = {
        "type": "line", "labels": [r[0] for r in trend_rows],
        "datasets": [{"label": _(metrics.INDICATORS[metric].label),
                      "data": [r[1][i] for r in trend_rows]}
                     for i, (_k, metric) in enumerate(TRENDS)],
    }  # fmt: skip
    best = sorted(rows, key=lambda r: -(r[2].get("active_learners") or 0))[:15]
    below_chart = {
        "type": "bar", "horizontal": True, "labels": [r[0] for r in best],
        "datasets": [{"label": _(metrics.INDICATORS["active_learners"].label),
                      "data": [r[2].get("active_learners") or 0 for r in best]}],
    }  # fmt: skip
    breakdowns = {
        "gender": [(dimension_label("gender", k), v) for k, v in sorted(by_gender.items())],
        "age_band": [(dimension_label("age_band", k), v) for k, v in sorted(by_age.items())],
    }
    return _page(
        "overview.html", own=own, key_figures=KEY_FIGURES, table_figures=TABLE_FIGURES,
        label=lambda m: _(metrics.INDICATORS[m].label), rows=rows, trend_rows=trend_rows,
        trend_heads=[_(metrics.INDICATORS[m].label) for _k, m in TRENDS],
        trend_chart=trend_chart, below_chart=below_chart, breakdowns=breakdowns,
        problem=problem, first=fmt_date(period.first_day), last=fmt_date(period.last_day),
        **_nav(viewer, place, period),
    )  # fmt: skip


def _scope_args(place: Place) -> dict[str, Any]:
    if place.kind == "u":
        return {"unit": place.code}
    return {"locality": int(place.code)}


@authed
async def criteria_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    from bot.reports import common
    from bot.services import reports
    from content import criteria

    rt = _rt(request)
    period, problem = _period(request, rt)
    async with rt.sessionmaker() as session:
        place = await _place_in_url(request, session, viewer)
    if isinstance(place, web.Response):
        return place
    await _refresh(rt)
    cset = criteria.for_year(period.year)
    async with rt.sessionmaker() as session:
        data = await reports.build(session, rt.localities, period, cset, **_scope_args(place),
                                   reaches=viewer.actor.reaches, now=rt.clock(), by=viewer.who)
    units = common.ordered_units(data)
    best = sorted(units, key=lambda u: -u["total"])[:15]
    chart = {"type": "bar", "horizontal": True, "labels": [u["name"] for u in best],
             "datasets": [{"label": labels()["total_score"], "data": [u["total"] for u in best]}]}
    return _page("criteria.html", data=data, units=units, chart=chart, problem=problem,
                 level=common.level_label, org=common.org_label,
                 score=common.fmt_score, **_nav(viewer, place, period))  # fmt: skip


@authed
async def campaigns_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    from bot.services import campaigns

    rt = _rt(request)
    period, problem = _period(request, rt)
    async with rt.sessionmaker() as session:
        found = await campaigns.visible(session, viewer.actor, limit=50)
        counts = await campaigns.counts(session, [c.id for c in found])
    rows = []
    for c in found:
        live = counts.get(c.id)
        final = c.status in ("done", "cancelled")
        figures = {
            "audience": c.audience_size or (live.audience if live else 0),
            "sent": max(c.sent, live.sent if live else 0) if final else (live.sent if live else 0),
            "delivered": live.delivered if live else 0,
            "failed": max(c.failed, live.failed if live else 0),
            "skipped": max(c.skipped, live.skipped if live else 0),
            "blocked": max(c.blocked, live.blocked if live else 0),
            "engaged": live.engaged if live else 0,
        }
        owner = c.unit.name if c.unit is not None else _place_name(rt, c.locality_code)
        rows.append({"id": c.id, "owner": owner, "text": c.text[:90], "status": c.status,
                     "created": fmt_datetime(c.created_at), **figures})  # fmt: skip
    latest = rows[:12][::-1]
    chart = {"type": "bar", "labels": [f"#{r['id']}" for r in latest],
             "datasets": [{"label": labels()["sent"], "data": [r["sent"] for r in latest]},
                          {"label": labels()["engaged"], "data": [r["engaged"] for r in latest]}]}
    return _page("campaigns.html", rows=rows, chart=chart, problem=problem,
                 **_nav(viewer, None, period))  # fmt: skip


def _place_name(rt: Runtime, code: int | None) -> str:
    if code is None:
        return "–"
    commune = rt.localities.get(code)
    if commune is not None:
        return commune.name
    return dict(rt.localities.provinces()).get(code, str(code))


# ---------------------------------------------------------------------------- reports


@dataclass(slots=True)
class Job:
    id: str
    session_id: int
    progress: int = 0
    stage: str = ""
    done: bool = False
    error: str | None = None
    filename: str = ""
    content_type: str = ""
    body: bytes = b""
    started: float = field(default_factory=time.monotonic)


# Export jobs of this process (a job's page and file are asked of the process that runs it;
# behind a load balancer, keep the dashboard's sessions sticky).
JOBS: dict[str, Job] = {}


def _jobs(_request: web.Request) -> dict[str, Job]:
    jobs = JOBS
    now = time.monotonic()
    for key in [k for k, j in jobs.items() if now - j.started > JOB_TTL]:
        jobs.pop(key, None)
    return jobs


def _run_job(job: Job, rt: Runtime, viewer: Viewer, place: Place, period: Period,
             fmt: str) -> None:  # fmt: skip
    """In a worker thread, with its own event loop and database engine: a long export never
    holds up the bot (on SQLite its connection runs statements on its loop's thread)."""
    from bot import reports as exports
    from bot.db.session import make_engine, make_sessionmaker
    from bot.services import reports
    from content import criteria

    async def work() -> None:
        engine = make_engine(rt.settings.database_url)
        try:
            sessions = make_sessionmaker(engine)
            job.progress, job.stage = 10, _("Bringing the figures up to date")
            async with sessions() as session, session.begin():
                await rollup.refresh(session, rt.localities, now=rt.clock())
            job.progress, job.stage = 35, _("Computing the indicators")
            async with sessions() as session:
                data = await reports.build(session, rt.localities, period,
                                           criteria.for_year(period.year), **_scope_args(place),
                                           reaches=viewer.actor.reaches, now=rt.clock(),
                                           by=viewer.who)  # fmt: skip
            job.progress, job.stage = 70, _("Writing the file")
            job.body = exports.render(data, fmt)
            job.filename = exports.filename(data, fmt)
            job.content_type = exports.CONTENT_TYPES[fmt]
            async with sessions() as session, session.begin():
                audit.write(session, viewer.who, "report_export", data["scope"]["code"],
                            at=rt.clock(), period=period.label, format=fmt, via="dashboard",
                            criteria=data["criteria"]["version"])  # fmt: skip
            job.progress, job.stage, job.done = 100, _("Done"), True
        finally:
            await engine.dispose()

    token = current_language.set("vi")
    try:
        asyncio.run(work())
    except Exception as exc:  # the job page says it failed; the log has why
        log.exception("dashboard report job %s failed", job.id)
        job.error, job.done = type(exc).__name__, True
    finally:
        current_language.reset(token)


@authed
async def reports_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    from bot import reports as exports
    from bot.services import reports

    rt = _rt(request)
    period, problem = _period(request, rt)
    async with rt.sessionmaker() as session:
        place = await _place_in_url(request, session, viewer)
        if isinstance(place, web.Response):
            return place
        scope = place.code if place.kind != "c" else f"{int(place.code):05d}"
        frozen = [(f, [(fmt, f"/dashboard/frozen/{f.id}.{fmt}") for fmt in exports.FORMATS])
                  for f in await reports.list_frozen(session, scope)]  # fmt: skip
    if request.method == "POST":
        form = await request.post()
        fmt = form.get("format")
        text = form.get("period")
        if fmt not in exports.FORMATS or not isinstance(text, str):
            return _message(400, labels()["bad_form"], viewer)
        try:
            period = metrics.parse_period(text[:40])
        except metrics.PeriodError as exc:
            return _page("reports.html", formats=exports.FORMATS, frozen=frozen,
                         problem=exc.localized(), fmt_dt=fmt_datetime,
                         **_nav(viewer, place, period))  # fmt: skip
        job = Job(secrets.token_urlsafe(16), viewer.session_id)
        _jobs(request)[job.id] = job
        task = asyncio.get_running_loop().run_in_executor(
            None, _run_job, job, rt, viewer, place, period, str(fmt))
        task.add_done_callback(lambda _f: None)
        raise web.HTTPSeeOther(f"/dashboard/jobs/{job.id}")
    return _page("reports.html", formats=exports.FORMATS, frozen=frozen, problem=problem,
                 fmt_dt=fmt_datetime, **_nav(viewer, place, period))  # fmt: skip


def _job_of(request: web.Request, viewer: Viewer) -> Job | None:
    job = _jobs(request).get(request.match_info["job"][:40])
    return job if job is not None and job.session_id == viewer.session_id else None


@authed
async def job_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    job = _job_of(request, viewer)
    if job is None:
        return _message(404, labels()["not_found"], viewer)
    return _page("job.html", job=job, **_nav(viewer, None, None))


@authed
async def job_file(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    job = _job_of(request, viewer)
    if job is None or not job.done or job.error:
        return _message(404, labels()["not_found"], viewer)
    response = web.Response(body=job.body, headers={
        "Content-Type": job.content_type,
        "Content-Disposition": f'attachment; filename="{job.filename}"'})  # fmt: skip
    _security_headers(response)
    return response


@authed
async def frozen_file(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """A frozen report again, in any format, if its scope is in the officer's."""
    from bot import reports as exports
    from bot.db.models import FrozenReport
    from bot.services import reports

    rt = _rt(request)
    fmt = request.match_info["fmt"]
    raw_id = request.match_info["id"]
    if fmt not in exports.FORMATS or not raw_id.isdigit() or len(raw_id) > 9:
        return _message(404, labels()["not_found"], viewer)
    async with rt.sessionmaker() as session:
        row = await session.get(FrozenReport, int(raw_id))
        if row is None:
            return _message(404, labels()["not_found"], viewer)
        scope = row.scope
        kind = {"province": "p", "commune": "c", "unit": "u"}.get(
            row.data.get("scope", {}).get("kind"), "all")
        place = (await _place(request, session, viewer, kind, str(int(scope)) if kind != "u"
                              else scope) if kind != "all" else None)  # fmt: skip
        allowed = isinstance(place, Place) or (kind == "all" and all(
            policy.may_view_locality(viewer.actor, int(p)) for p in scope.split(",")))
        if not allowed:
            return place if isinstance(place, web.Response) else _message(
                403, labels()["forbidden"], viewer)
        data = reports.frozen_data(row)
    body = exports.render(data, fmt)
    async with rt.sessionmaker() as session, session.begin():
        audit.write(session, viewer.who, "report_export", scope, at=rt.clock(),
                    period=row.period, format=fmt, frozen=row.id, via="dashboard")
    response = web.Response(body=body, headers={
        "Content-Type": exports.CONTENT_TYPES[fmt],
        "Content-Disposition": f'attachment; filename="{exports.filename(data, fmt)}"'})
    _security_headers(response)
    return response


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in STATIC_TYPES:
        raise web.HTTPNotFound()
    response = web.Response(body=(STATIC / name).read_bytes(),
                            headers={"Content-Type": STATIC_TYPES[name]})
    _security_headers(response, cache_static=True)
    return response


def routes() -> list[web.RouteDef]:
    return [
        web.get("/dashboard", home),
        web.get("/dashboard/login/{token}", login_page),
        web.post("/dashboard/login", login),
        web.post("/dashboard/logout", logout),
        web.get("/dashboard/static/{name}", static),
        web.get("/dashboard/campaigns", campaigns_page),
        web.get("/dashboard/jobs/{job}", job_page),
        web.get("/dashboard/jobs/{job}/file", job_file),
        web.get("/dashboard/frozen/{id}.{fmt}", frozen_file),
        web.get("/dashboard/{kind}/{code}", overview),
        web.get("/dashboard/{kind}/{code}/criteria", criteria_page),
        web.get("/dashboard/{kind}/{code}/reports", reports_page),
        web.post("/dashboard/{kind}/{code}/reports", reports_page),
    ]


__all__ = ["routes"]
