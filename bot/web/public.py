"""Public pages: certificate verification and certificate images (by their random code)."""

from __future__ import annotations

import functools

import jinja2
from aiohttp import web

from bot.i18n import _, current_language, fmt_date
from bot.runtime import Runtime
from bot.services import certificates
from content.loader import text_for

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("bot.web", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
)


def _runtime(request: web.Request) -> Runtime:
    from bot.web.server import RUNTIME

    return request.app[RUNTIME]


def _lang(request: web.Request) -> str:
    wanted = request.query.get("lang", "")
    if wanted in ("vi", "en"):
        return wanted
    accept = request.headers.get("Accept-Language", "")
    return "en" if accept.lower().startswith("en") else "vi"


async def verify_page(request: web.Request) -> web.Response:
    """GET /verify/<code> (or /verify?code=...): name, topic and date, or "not found"."""
    rt = _runtime(request)
    code = request.match_info.get("code") or request.query.get("code", "")
    token = current_language.set(_lang(request))
    try:
        cert = None
        if code:
            async with rt.sessionmaker() as session:
                cert = await certificates.find(session, code[:64])
        if cert is not None and cert.revoked_at is not None:
            cert = None
        module = rt.curriculum.module(cert.module_id) if cert else None
        html = TEMPLATES.get_template("verify.html").render(
            lang=current_language.get(), title=_("Check a hocvuso certificate"), cert=cert,
            module_title=text_for(module.title, current_language.get()) if module else
            (cert.module_id if cert else ""),
            date=fmt_date(cert.issued_at) if cert else "",
            valid_text=_("This certificate is valid."),
            invalid_text=(_("No valid certificate has this code.") if code else
                          _("Type the code printed on the certificate.")),
            label_code=_("Code"), label_holder=_("Holder"), label_module=_("Topic"),
            label_date=_("Date"), check_text=_("Check"),
            disclaimer=_("A hocvuso certificate confirms completing a course on hocvuso. It is "
                         "not the official confirmation of basic digital skills under Decision "
                         "757/QĐ-BKHCN."),
        )
    finally:
        current_language.reset(token)
    status = 200 if cert is not None or not code else 404
    return web.Response(text=html, content_type="text/html", status=status,
                        headers={"Cache-Control": "no-store",
                                 "Content-Security-Policy": "default-src 'none'; "
                                 "style-src 'unsafe-inline'; form-action 'self'"})


async def certificate_image(request: web.Request) -> web.StreamResponse:
    """GET /certificates/<code>.png: the picture (for channels that send images by URL)."""
    rt = _runtime(request)
    async with rt.sessionmaker() as session:
        cert = await certificates.find(session, request.match_info["code"][:64])
    if cert is None or cert.revoked_at is not None:
        raise web.HTTPNotFound()
    module = rt.curriculum.module(cert.module_id)
    if module is None:
        raise web.HTTPNotFound()
    from handlers.certificates import place_for, verify_hint_for

    path = await rt.engine.draw(functools.partial(
        certificates.ensure_image, rt.settings.data_dir, cert, module,
        place=place_for(rt.localities), verify_hint=verify_hint_for(rt.settings, cert)))
    return web.FileResponse(path, headers={"Content-Type": "image/png",
                                           "Cache-Control": "private, max-age=86400"})


async def download(request: web.Request) -> web.Response:
    """GET /download/<token>: a person's data export, once, within an hour of asking."""
    import json

    from bot.services import privacy

    rt = _runtime(request)
    token = request.match_info["token"][:64]
    async with rt.sessionmaker() as session, session.begin():
        person = await privacy.redeem_download(session, token, rt.clock())
        data = await privacy.export(session, person) if person is not None else None
    if data is None:
        raise web.HTTPNotFound(text="This link is used or expired. / Đường link đã dùng hoặc "
                                    "hết hạn.")
    return web.Response(
        body=json.dumps(data, ensure_ascii=False, indent=2).encode(),
        content_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="hocvuso-du-lieu-cua-toi.json"',
                 "Cache-Control": "no-store"})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/download/{token}", download),
        web.get("/verify", verify_page),
        web.get("/verify/{code}", verify_page),
        web.get("/certificates/{code}.png", certificate_image),
    ]
