"""Offline activities in the chat: the officer's `/activity` (record a class or a visit, get
its check-in link and QR code, enter a head count) and the citizen's check-in through
`/start act_<code>` (an `activity_attended` event credited to the organising unit, and the
matching lesson offered).
"""

from __future__ import annotations

import re
from datetime import date

from bot.i18n import TZ, _, fmt_date, fmt_number
from bot.services import activities, audit, orgs, policy
from bot.services.policy import Actor, Refusal, UnitRef
from content.loader import text_for
from handlers import officer
from handlers.common import unknown_command
from handlers.context import Context
from handlers.learn import label
from handlers.types import Button, Reply, rows

TITLE, DAY, PLACE, PLANNED, LESSON, COUNT = (
    "act_title", "act_date", "act_place", "act_planned", "act_lesson", "act_count")
_DATE_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
LIST_SIZE = 5


def _stale() -> list[Reply]:
    return [Reply(_("That button is no longer valid."))]


async def command(ctx: Context, arg: str = "") -> list[Reply]:
    """/activity [UNIT CODE]: the activities of the officer's scope, or record a new one."""
    gate = await officer._officer(ctx, "activity")
    if not isinstance(gate, Actor):
        return gate
    actor = gate
    code = arg.strip().split()[0] if arg.strip() else ""
    if code:
        return await _begin(ctx, actor, code[:48])
    found = await activities.visible(ctx.session, actor, limit=LIST_SIZE)
    counts = await activities.checkins(ctx.session, [a.id for a in found])
    lines = [_("**Activities**")]
    buttons: list[Button] = []
    if not found:
        lines.append(_("No activities recorded yet."))
    for a in found:
        lines.append(_("#{id} {title} — {date}, {place}: {checkins} checked in, head count "
                       "{heads}").format(id=a.id, title=a.title, date=fmt_date(a.held_on),
                                         place=a.place, checkins=fmt_number(counts.get(a.id, 0)),
                                         heads=fmt_number(a.head_count)))  # fmt: skip
        buttons.append(Button(_("Head count #{id}").format(id=a.id), f"act:count:{a.id}"))
    units = [g.unit for g in actor.grants if g.unit is not None]
    for unit in units[:4]:
        buttons.append(Button(label(_("New activity: {unit}").format(unit=unit.name)),
                              f"act:new:{unit.code}"))  # fmt: skip
    lines.append("")
    lines.append(_("To record an activity of a unit in your scope: /activity UNIT_CODE"))
    return [Reply("\n".join(lines), rows(*buttons))]


async def _begin(ctx: Context, actor: Actor, code: str) -> list[Reply]:
    unit = await orgs.get_unit(ctx.session, code)
    if unit is None or not policy.may_view_unit(actor, UnitRef.of(unit)):
        return officer.refuse(ctx, actor, "activity", Refusal.OUT_OF_SCOPE, code)
    ctx.goto(TITLE, act={"unit": unit.code})
    return [Reply(_("**New activity of {unit}.** What is it called? For example: Lớp hướng "
                    "dẫn cài VNeID").format(unit=unit.name),
                  rows(Button(_("Cancel"), "act:quit")))]  # fmt: skip


async def on_text(ctx: Context, text: str) -> list[Reply]:
    """The free-text steps: title, date, place, planned participants, head count."""
    actor = await officer._actor(ctx)
    if not actor.is_officer:
        ctx.goto("")
        return unknown_command("activity")
    data = dict(ctx.data.get("act") or {})
    text = text.strip()
    state = ctx.state
    if state == TITLE:
        if not 3 <= len(text) <= activities.MAX_TITLE:
            return [Reply(_("Please give a title of 3 to {n} characters.").format(
                n=activities.MAX_TITLE))]
        ctx.goto(DAY, act={**data, "title": text})
        return [Reply(_("On which day? For example: {example}").format(
            example=ctx.now.astimezone(TZ).strftime("%d/%m/%Y")))]
    if state == DAY:
        day = _parse_day(text)
        if day is None:
            return [Reply(_("Please write the day like this: {example}").format(
                example=ctx.now.astimezone(TZ).strftime("%d/%m/%Y")))]
        ctx.goto(PLACE, act={**data, "day": day.isoformat()})
        return [Reply(_("Where? For example: Nhà văn hóa xóm 1"))]
    if state == PLACE:
        if not 2 <= len(text) <= activities.MAX_PLACE:
            return [Reply(_("Please give a place of 2 to {n} characters.").format(
                n=activities.MAX_PLACE))]
        ctx.goto(PLANNED, act={**data, "place": text})
        return [Reply(_("How many participants are planned? Type a number (0 if you do not "
                        "know)."))]  # fmt: skip
    if state == PLANNED:
        if not text.isdigit() or int(text) > activities.MAX_HEAD_COUNT:
            return [Reply(_("Please type a number, for example 30."))]
        ctx.goto(LESSON, act={**data, "planned": int(text) or None})
        lang = ctx.identity.language
        buttons = [Button(label(text_for(m.title, lang)), f"act:m:{m.id}")
                   for m in ctx.curriculum.modules]  # fmt: skip
        return [Reply(_("Which topic does it teach? People who check in are offered its "
                        "first lesson."), rows(*buttons, Button(_("None"), "act:les:none")))]
    if state == COUNT:
        return await _head_count(ctx, actor, data, text)
    return _stale()


def _parse_day(text: str) -> date | None:
    m = _DATE_RE.match(text)
    if m is None:
        return None
    try:
        return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    except ValueError:
        return None


async def _create(ctx: Context, actor: Actor, lesson_id: str | None) -> list[Reply]:
    data = ctx.data.get("act") or {}
    unit = await orgs.get_unit(ctx.session, data.get("unit", ""))
    if unit is None or not policy.may_view_unit(actor, UnitRef.of(unit)):
        ctx.goto("")
        return officer.refuse(ctx, actor, "activity", Refusal.OUT_OF_SCOPE, data.get("unit"))
    activity = await activities.create(
        ctx.session, unit=unit, title=data["title"], held_on=date.fromisoformat(data["day"]),
        place=data["place"], planned=data.get("planned"), lesson_id=lesson_id, by=actor.who,
        now=ctx.now,
    )  # fmt: skip
    audit.write(ctx.session, actor.who, "activity_create", f"activity:{activity.id}",
                at=ctx.now, unit=unit.code, title=activity.title)  # fmt: skip
    ctx.goto("")
    username = ctx.settings.telegram_bot_username
    link = activities.deep_link(activity.code, username)
    image = activities.qr_png(link, ctx.settings.data_dir / "activities", activity.code)
    text = "\n".join([
        _("**Activity #{id} recorded:** {title}, {date}, {place}.").format(
            id=activity.id, title=activity.title, date=fmt_date(activity.held_on),
            place=activity.place),
        _("Participants check in by scanning this QR code, or by opening {link} (in the "
          "app: /start act_{code}).").format(link=link, code=activity.code),
        _("For people without a phone, enter a head count afterwards."),
    ])  # fmt: skip
    return [Reply(text, rows(Button(_("Enter head count"), f"act:count:{activity.id}")),
                  image=image, image_name=f"activity-{activity.code}.png")]


async def _head_count(ctx: Context, actor: Actor, data: dict[str, object],
                      text: str) -> list[Reply]:  # fmt: skip
    if not text.isdigit() or int(text) > activities.MAX_HEAD_COUNT:
        return [Reply(_("Please type a number, for example 30."))]
    activity = await activities.get_visible(ctx.session, actor, int(str(data.get("id", 0))))
    if activity is None:
        ctx.goto("")
        return officer.refuse(ctx, actor, "activity", Refusal.OUT_OF_SCOPE,
                              f"activity:{data.get('id')}")  # fmt: skip
    activity.head_count = int(text)
    audit.write(ctx.session, actor.who, "activity_head_count", f"activity:{activity.id}",
                at=ctx.now, head_count=activity.head_count)  # fmt: skip
    ctx.goto("")
    checked = (await activities.checkins(ctx.session, [activity.id])).get(activity.id, 0)
    return [Reply(_("Saved: head count {heads} for activity #{id}; {checkins} people checked "
                    "in with their phone.").format(heads=fmt_number(activity.head_count),
                                                   id=activity.id,
                                                   checkins=fmt_number(checked)))]


async def on_button(ctx: Context, action: str, a: str = "") -> list[Reply]:
    """`act:*` buttons (officers only)."""
    actor = await officer._actor(ctx)
    if not actor.is_officer:
        if actor.revoked:
            return officer.refuse(ctx, actor, "activity", Refusal.REVOKED)
        from handlers.router import current_step

        return [*_stale(), *await current_step(ctx)]
    if action == "quit":
        ctx.goto("")
        return [Reply(_("Nothing was recorded."))]
    if action == "new":
        return await _begin(ctx, actor, a[:48])
    if action == "count" and a.isdigit():
        activity = await activities.get_visible(ctx.session, actor, int(a))
        if activity is None:
            return officer.refuse(ctx, actor, "activity", Refusal.OUT_OF_SCOPE, f"activity:{a}")
        ctx.goto(COUNT, act={"id": activity.id})
        return [Reply(_("How many people without a phone took part in \"{title}\"? Type a "
                        "number.").format(title=activity.title))]  # fmt: skip
    if ctx.state != LESSON:
        return _stale()
    if action == "m" and (module := ctx.curriculum.module(a)):
        lang = ctx.identity.language
        buttons = [Button(label(text_for(lesson.title, lang), "▶ "), f"act:les:{lesson.id}")
                   for lesson in module.lessons]  # fmt: skip
        return [Reply(_("Which lesson?"), rows(*buttons))]
    if action == "les" and a == "none":
        return await _create(ctx, actor, None)
    if action == "les" and ctx.curriculum.lesson(a):
        return await _create(ctx, actor, a)
    return _stale()


# ---------------------------------------------------------------------------- check-in


async def check_in_link(ctx: Context, code: str) -> list[Reply]:
    """`/start act_<code>`: check in now if they consented, else right after they agree."""
    activity = await activities.by_code(ctx.session, code)
    if activity is None:
        return [Reply(_("That check-in link is not valid; you can still use the bot."))]
    if not ctx.consented or ctx.person is None:
        ctx.remember(_act=activity.code)
        if ctx.identity.consent == "declined":
            return [Reply(_("To check in at \"{title}\", hocvuso needs your agreement to keep "
                            "your data: type /start and tap \"I agree\".").format(
                                title=activity.title))]  # fmt: skip
        return []
    return await _checked_in(ctx, activity)


async def _checked_in(ctx: Context, activity: activities.Activity) -> list[Reply]:
    assert ctx.person is not None
    new = await activities.check_in(ctx.session, activity, ctx.person, now=ctx.now,
                                    channel=ctx.msg.channel)  # fmt: skip
    unit = activity.unit.name if activity.unit else ""
    text = (_("✅ You are checked in at \"{title}\" ({unit}). Thank you for coming!")
            if new else _("You were already checked in at \"{title}\" ({unit}).")).format(
                title=activity.title, unit=unit)  # fmt: skip
    lesson = ctx.curriculum.lesson(activity.lesson_id or "")
    if lesson is None:
        return [Reply(text)]
    title = text_for(lesson.title, ctx.identity.language)
    return [Reply(text + "\n" + _("The lesson that goes with it: **{lesson}**").format(
        lesson=title), rows(Button(label(title, "▶ "), f"les:{lesson.id}")))]


async def check_in_remembered(ctx: Context) -> list[Reply]:
    """Right after consent: check in at the activity whose link they opened, if any."""
    code = ctx.data.get("_act")
    if not code or ctx.person is None:
        return []
    ctx.identity.state_data = {k: v for k, v in ctx.data.items() if k != "_act"}
    activity = await activities.by_code(ctx.session, code)
    if activity is None:
        return []
    return await _checked_in(ctx, activity)
