"""The one aiohttp web server of `hocvuso serve`: webhooks of every channel, health, metrics,
and the public pages."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from sqlalchemy import text

from bot import observability
from bot.runtime import Runtime

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)
HEALTH: web.AppKey[Callable[[], dict[str, object]]] = web.AppKey("health")


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers, every channel is connected and the scheduler runs."""
    rt = request.app[RUNTIME]
    try:
        async with rt.db.connect() as conn:
            await conn.execute(text("SELECT 1"))
        database = True
    except Exception:  # any failure means "not healthy"
        database = False
    report: dict[str, object] = {"database": database}
    extra = request.app.get(HEALTH)
    ok = database
    if extra is not None:
        details = extra()
        ok = ok and bool(details.pop("ok", True))
        report.update(details)
    report["ok"] = ok
    return web.json_response(report, status=200 if ok else 503)


async def metrics(_request: web.Request) -> web.Response:
    body, content_type = await observability.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


def make_web_app(rt: Runtime, routes: list[web.RouteDef], *,
                 health: Callable[[], dict[str, object]] | None = None) -> web.Application:
    from bot.web import dashboard, media, public

    app = web.Application(client_max_size=1 << 20)
    app[RUNTIME] = rt
    if health is not None:
        app[HEALTH] = health
    app.add_routes([
        web.get("/healthz", healthz), web.get("/metrics", metrics),
        web.get(media.ROUTE, media.serve), *public.routes(), *dashboard.routes(), *routes,
    ])  # fmt: skip
    return app
