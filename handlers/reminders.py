"""Opt-in daily reminders: the person picks an hour (never at night) or turns them off."""

from __future__ import annotations

from bot.i18n import _
from handlers.context import Context
from handlers.types import Button, Reply, rows

HOURS = (7, 12, 17, 19, 20)  # local time; quiet hours are 21:00-07:00


async def choose(ctx: Context, _arg: str = "") -> list[Reply]:
    if not ctx.consented or ctx.person is None:
        return [Reply(_("Reminders are only for people who agreed to let us keep their "
                        "progress. Type /start if you want to agree."))]
    current = ctx.person.reminder_hour
    status = (_("Now: every day at {hour}:00 when you have not learned for 2 days.").format(
        hour=current) if current is not None else _("Now: reminders are off."))
    buttons = [Button(_("At {hour}:00").format(hour=h), f"remind:{h}") for h in HOURS]
    buttons.append(Button(_("Turn reminders off"), "remind:off"))
    return [Reply(_("When should I remind you to learn? I only write when you have not "
                    "learned for 2 days, at most once a day, never at night.") + "\n" + status,
                  rows(*buttons, per_row=3))]


async def set_hour(ctx: Context, value: str) -> list[Reply]:
    if not ctx.consented or ctx.person is None:
        return await choose(ctx)
    if value == "off":
        ctx.person.reminder_hour = None
        return [Reply(_("Reminders are off. Type /reminders to turn them on again."))]
    if not value.isdigit() or int(value) not in HOURS:
        return await choose(ctx)
    ctx.person.reminder_hour = int(value)
    return [Reply(_("Done! I will remind you at {hour}:00 when you have not learned for 2 "
                    "days.").format(hour=int(value)))]
