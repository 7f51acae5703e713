"""The one aiohttp web server of `hocvuso serve`: webhooks of every channel, health, and the
public pages."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from bot.runtime import Runtime

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)


async def healthz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        async with rt.db.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # any failure means "not healthy"
        return web.json_response({"ok": False, "database": False}, status=503)
    return web.json_response({"ok": True, "database": True})


def make_web_app(rt: Runtime, routes: list[web.RouteDef]) -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    app[RUNTIME] = rt
    from bot.web import media, public

    app.add_routes([
        web.get("/healthz", healthz), web.get(media.ROUTE, media.serve), *public.routes(),
        *routes,
    ])  # fmt: skip
    return app
