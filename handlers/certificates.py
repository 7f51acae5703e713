"""Certificates in the chat: the congratulation when a module is passed, /certificates to get
them again, and /verify CODE for anyone who wants to check one."""

from __future__ import annotations

import functools

from bot.i18n import _, current_language, fmt_date
from bot.localities import LocalityIndex
from bot.services import certificates
from bot.settings import Settings
from content.loader import Module, text_for
from handlers.context import Context
from handlers.types import Button, Reply, rows


def place_for(localities: LocalityIndex) -> str:
    """Where certificates are signed: the (first) province in scope, without "Tỉnh"."""
    provinces = localities.provinces()
    name = provinces[0][1] if provinces else ""
    for prefix in ("Tỉnh ", "Thành phố "):
        name = name.removeprefix(prefix)
    return name


def verify_hint_for(settings: Settings, cert: certificates.Certificate) -> str:
    """The line on the certificate that says how to check it, in its language."""
    token = current_language.set(cert.language)
    try:
        if settings.public_url:
            return _("Check it at {url}/verify/{code} or send /verify {code} to the bot").format(
                url=settings.public_url, code=cert.code)
        return _("Check it by sending /verify {code} to the bot").format(code=cert.code)
    finally:
        current_language.reset(token)


def certificate_reply(ctx: Context, cert: certificates.Certificate, module: Module,
                      text: str) -> Reply:
    make = functools.partial(
        certificates.ensure_image, ctx.settings.data_dir, cert, module,
        place=place_for(ctx.localities), verify_hint=verify_hint_for(ctx.settings, cert))
    path = certificates.image_path(ctx.settings.data_dir, cert)
    return Reply(text, image=path, image_name=f"{cert.code}.png", make_image=make)


async def on_module_passed(ctx: Context, module: Module) -> list[Reply]:
    """Called by the quiz when the last quiz of a module is passed."""
    title = text_for(module.title, ctx.identity.language)
    if not ctx.consented or ctx.person is None:
        return [Reply(_("🏆 You have finished the topic \"{module}\"! To receive a certificate, "
                        "type /start and agree to let us keep your progress.").format(
                            module=title))]
    cert, _new = await certificates.issue(ctx.session, ctx.person, module, ctx.now,
                                          channel=ctx.msg.channel)
    text = _("🏆 Congratulations! You have finished the topic \"{module}\". Here is your "
             "certificate. Verification code: **{code}**").format(module=title, code=cert.code)
    return [certificate_reply(ctx, cert, module, text)]


async def list_certificates(ctx: Context, _arg: str = "") -> list[Reply]:
    if not ctx.consented or ctx.person is None:
        return [Reply(_("Certificates are kept only for people who agreed to let us keep their "
                        "progress. Type /start if you want to agree."))]
    certs = await certificates.of_person(ctx.session, ctx.person.id)
    if not certs:
        return [Reply(_("You have no certificate yet. Pass every quiz of a topic to receive "
                        "one."), rows(Button(_("⬅ Back to topics"), "menu")))]
    lines = [_("**Your certificates**")]
    buttons = []
    for cert in certs:
        module = ctx.curriculum.module(cert.module_id)
        title = text_for(module.title, ctx.identity.language) if module else cert.module_id
        lines.append(_("• {module} — {date} — code {code}").format(
            module=title, date=fmt_date(cert.issued_at), code=cert.code))
        if module is not None:
            buttons.append(Button(_("Get it again: {n}").format(n=len(buttons) + 1),
                                  f"cert:{cert.code}"))
    return [Reply("\n".join(lines), rows(*buttons))]


async def resend(ctx: Context, code: str) -> list[Reply]:
    cert = await certificates.find(ctx.session, code)
    person = ctx.person
    if cert is None or person is None or cert.person_id != person.id or cert.revoked_at:
        return [Reply(_("That certificate is not yours or no longer valid."))]
    module = ctx.curriculum.module(cert.module_id)
    if module is None:
        return [Reply(_("That topic is no longer available."))]
    return [certificate_reply(ctx, cert, module, _("Your certificate, code **{code}**").format(
        code=cert.code))]


async def verify(ctx: Context, arg: str = "") -> list[Reply]:
    """/verify CODE: anyone may check a code; only name, topic and date are shown."""
    if not arg.strip():
        return [Reply(_("Type /verify followed by the code printed on the certificate, for "
                        "example: /verify HVS-7K3MQ-9TX2A"))]
    cert = await certificates.find(ctx.session, arg[:64])
    if cert is None:
        return [Reply(_("No certificate has this code. Please check the code and try again."))]
    if cert.revoked_at is not None:
        return [Reply(_("The certificate {code} is no longer valid.").format(code=cert.code))]
    module = ctx.curriculum.module(cert.module_id)
    title = text_for(module.title, ctx.identity.language) if module else cert.module_id
    return [Reply(_("✅ Valid certificate {code}\nHolder: {name}\nTopic: {module}\nDate: {date}")
                  .format(code=cert.code, name=cert.holder_name, module=title,
                          date=fmt_date(cert.issued_at)))]
