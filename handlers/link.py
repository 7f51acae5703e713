"""/link: one person on several apps (Telegram and Zalo).

On one app, /link gives a code of 8 digits, valid 10 minutes. On the other app, `/link CODE`
(or just the code, right after typing /link there too) joins the two accounts: progress,
certificates and organisations are kept together and count once. Both accounts must have
agreed to let us keep their progress; wrong codes are limited per account.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from bot.domain import CONSENT_VERSION
from bot.i18n import _
from bot.services import identity as links
from handlers import learn
from handlers.context import Context
from handlers.types import Button, Reply, rows

log = logging.getLogger(__name__)
WAITING = "link"
MAX_FAILS = 5
FAIL_WINDOW = timedelta(minutes=30)


def _agreed(ctx: Context) -> bool:
    """Agreed, to the consent text as it is now."""
    return (
        ctx.consented
        and ctx.person is not None
        and (ctx.person.consent_version == CONSENT_VERSION)
    )


def _back() -> tuple[tuple[Button, ...], ...]:
    return rows(Button(_("⬅ Back to topics"), "menu"))


def _agree_first() -> list[Reply]:
    return [
        Reply(
            _(
                "To link your apps, first agree to let us keep your progress on this app: type "
                '/start and tap "I agree". Then try again; a code stays valid for 10 minutes.'
            )
        )
    ]


async def command(ctx: Context, arg: str = "") -> list[Reply]:
    """/link gives a code; /link CODE uses one."""
    if arg.strip():
        return await redeem(ctx, arg)
    if not _agreed(ctx):
        return _agree_first()
    code = await links.new_link_code(ctx.session, ctx.identity, ctx.now)
    ctx.goto(WAITING)
    text = _(
        "**Use hocvuso on both Telegram and Zalo**\n\n"
        "Your code: **{code}** (valid for 10 minutes)\n\n"
        "Open hocvuso in the other app and send there:\n/link {code}\n\n"
        "Did the other app give you a code? Then just type that code here."
    ).format(code=links.pretty_code(code))
    return [Reply(text, _back())]


async def on_text(ctx: Context, text: str) -> list[Reply]:
    """Typed text while waiting: a code, or a reminder of what to do."""
    if links.normalize_code(text) is not None:
        return await redeem(ctx, text)
    return [Reply(_("Please type the 8-digit code from the other app, for example: 1234 5678"),
                  _back())]  # fmt: skip


def _recent_fails(ctx: Context) -> list[str]:
    cutoff = ctx.now - FAIL_WINDOW
    return [t for t in ctx.data.get("_link_fails", [])
            if isinstance(t, str) and datetime.fromisoformat(t) > cutoff]  # fmt: skip


async def redeem(ctx: Context, raw: str) -> list[Reply]:
    code = links.normalize_code(raw)
    if code is None:
        return [Reply(_("A link code has 8 digits, for example: /link 1234 5678"))]
    fails = _recent_fails(ctx)
    if len(fails) >= MAX_FAILS:
        return [Reply(_("Too many wrong codes. Please wait 30 minutes, then try again."))]
    if not _agreed(ctx) or ctx.person is None:
        return _agree_first()
    owner = await links.code_owner(ctx.session, code, ctx.now)
    if owner is None:
        ctx.remember(_link_fails=[*fails, ctx.now.isoformat()])
        return [
            Reply(
                _(
                    "This code is wrong or has expired (codes last 10 minutes). "
                    "Please check it, or type /link in the other app to get a new one."
                ),
                _back(),
            )
        ]
    if owner.id == ctx.identity.id:
        return [Reply(_("This is the code of this app. Type it in the other app, not here."),
                      _back())]  # fmt: skip
    other = owner.person
    if owner.consent != "given" or other is None or other.consent_version != CONSENT_VERSION:
        return [
            Reply(
                _(
                    "The account that made this code has not agreed to let us keep its "
                    "progress, so it cannot be linked. In that app, type /start and tap "
                    '"I agree" first.'
                )
            )
        ]
    ctx.remember(_link_fails=[])
    if other.id == ctx.person.id:
        await links.consume_code(ctx.session, code, ctx.now)
        ctx.goto(learn.MENU)
        return [Reply(_("These two apps are already linked.")), *await learn.menu(ctx)]
    keep, drop = links.survivor(ctx.person, other)
    try:
        async with ctx.session.begin_nested():
            if not await links.consume_code(ctx.session, code, ctx.now):
                return [Reply(_("This code was just used. Type /link in the other app to get "
                                "a new one."))]  # fmt: skip
            result = await links.merge_persons(ctx.session, keep, drop, ctx.now)
    except IntegrityError:
        log.exception("link: merging person %s into %s failed", drop.id, keep.id)
        await ctx.session.refresh(ctx.identity)  # the savepoint's rollback expired it
        return [Reply(_("Sorry, these accounts could not be linked. Nothing was changed."))]
    log.info("link: merged a person: %s", result)
    ctx.record("profile_changed", detail={"field": "linked_accounts"})
    ctx.goto(learn.MENU)
    done = _(
        "Done! Your accounts are now linked. Your lessons, quizzes, certificates and "
        "organisations are kept together and count once. You can continue in either app."
    )
    return [Reply(done), *await learn.menu(ctx)]
