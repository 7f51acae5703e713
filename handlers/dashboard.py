"""/dashboard: an officer gets a one-time link (10 minutes) that signs them in to the web
dashboard. Citizens get the ordinary unknown-command answer, like every officer command.

The link is sent as plain text; Telegram's channel sends every message with link previews
off, and the link page only consumes the token when "Đăng nhập" is pressed (a POST), so a
preview fetch by any chat app cannot burn it."""

from __future__ import annotations

from bot.i18n import _, fmt_datetime
from bot.services import audit, dashboard_auth, policy
from bot.services.policy import Refusal
from handlers.common import unknown_command
from handlers.context import Context
from handlers.types import Reply


def base_url(ctx: Context) -> str:
    s = ctx.settings
    if s.public_url:
        return s.public_url
    host = "127.0.0.1" if s.web_host in ("0.0.0.0", "::", "") else s.web_host
    return f"http://{host}:{s.web_port}"


async def command(ctx: Context, _arg: str = "") -> list[Reply]:
    actor = await policy.load_actor(ctx.session, ctx.msg.channel, ctx.msg.user_id,
                                    ctx.localities)  # fmt: skip
    if not actor.is_officer:
        if actor.revoked:
            from handlers.officer import refuse

            return refuse(ctx, actor, "dashboard", Refusal.REVOKED)
        return unknown_command("dashboard")
    token = await dashboard_auth.create_link(ctx.session, ctx.msg.channel, ctx.msg.user_id,
                                             ctx.now)  # fmt: skip
    audit.write(ctx.session, actor.who, "dashboard_link", None, at=ctx.now)
    link = f"{base_url(ctx)}/dashboard/login/{token}"
    until = fmt_datetime(ctx.now + dashboard_auth.LINK_TTL)
    return [Reply(_(
        "Your link to the dashboard, for you only, valid once until {until}:\n{link}\n\n"
        "Open it in your browser and press \"Sign in\". Do not forward it."
    ).format(until=until, link=link))]  # fmt: skip
