"""Campaign broadcasts in the chat: the officer's `/campaign` wizard and `/campaigns`, and
the citizen's side (the one-tap "Không nhận tin chiến dịch" button, `/settings`).

Wizard: audience within the officer's scope -> filters (size shown at every step) ->
message text (<= 2,000 characters) -> optional lesson or module button -> a preview sent to
the officer -> when (now, a date and time, weekly) -> confirm with the audience size. The
campaign is a draft row until "Send" is pressed; pressing it moves the draft with a
conditional UPDATE, so two presses (or two officers) send it once. Every scope question goes
to `bot.services.policy` and every query runs with the officer's reach; refusals are audited.
Non-officers get the ordinary unknown-command answer.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bot.db.models import Campaign
from bot.domain import LANGUAGE_NAMES
from bot.i18n import N_, TZ, _, fmt_datetime, fmt_number
from bot.services import audit, campaigns, policy
from bot.services.campaigns import Audience, AudienceError
from bot.services.policy import Actor, Refusal
from content.loader import text_for
from handlers import officer
from handlers.common import unknown_command
from handlers.context import Context
from handlers.learn import label
from handlers.types import Button, Reply, rows
from scheduler.dispatch import campaign_reply

AUDIENCE, FILTERS, TEXT, BUTTON, WHEN, AT, DAYS, TIME, CONFIRM = (
    "camp_aud", "camp_filters", "camp_text", "camp_button", "camp_when", "camp_at",
    "camp_days", "camp_time", "camp_confirm",
)  # fmt: skip
WIZARD = {AUDIENCE, FILTERS, TEXT, BUTTON, WHEN, AT, DAYS, TIME, CONFIRM}
DAY_NAMES = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))
_LOCALITY_RE = re.compile(r"^\d{2}$|^\d{5}$")
LIST_SIZE = 8


def campaign_channels(ctx: Context) -> tuple[str, ...]:
    """The channels campaigns go to: those whose dispatcher runs (set by the server), else
    those configured."""
    return tuple(ctx.extras.get("campaign_channels") or campaigns.dispatch_channels(ctx.settings))


def _day_name(day: int) -> str:
    return _(DAY_NAMES[day])


def _stale() -> list[Reply]:
    return [Reply(_("That button is no longer valid."))]


async def _gate(ctx: Context, command: str) -> Actor | list[Reply]:
    return await officer._officer(ctx, command)


def _refusal(ctx: Context, actor: Actor, reason: Refusal, target: str | None) -> list[Reply]:
    return officer.refuse(ctx, actor, "campaign", reason, target)


def _audience_label(ctx: Context, audience: Audience, unit_name: str | None) -> str:
    if audience.unit is not None:
        return _("members of {unit} (and the units below it)").format(unit=unit_name or
                                                                       audience.unit)
    return _("people registered in {place}").format(
        place=officer._locality_name(ctx, audience.locality or 0))


def _filters_text(ctx: Context, audience: Audience) -> str:
    parts = []
    if audience.module and (module := ctx.curriculum.module(audience.module)):
        parts.append(_("has not finished the topic \"{topic}\"").format(
            topic=text_for(module.title, ctx.identity.language)))
    if audience.idle_days:
        parts.append(_("not active for {n} days").format(n=audience.idle_days))
    if audience.language:
        parts.append(_("language: {language}").format(
            language=LANGUAGE_NAMES.get(audience.language, audience.language)))
    return "; ".join(parts) if parts else _("none")


# ---------------------------------------------------------------------------- /campaign


async def start(ctx: Context, arg: str = "") -> list[Reply]:
    """/campaign [UNIT or COMMUNE CODE]: start the wizard."""
    gate = await _gate(ctx, "campaign")
    if not isinstance(gate, Actor):
        return gate
    actor = gate
    token = arg.strip().split()[0] if arg.strip() else ""
    if token:
        if _LOCALITY_RE.match(token):
            return await _choose(ctx, actor, Audience(locality=int(token)))
        return await _choose(ctx, actor, Audience(unit=token[:48]))
    buttons: list[Button] = []
    for grant in actor.grants:
        if grant.unit is not None:
            buttons.append(Button(label(grant.unit.name), f"camp:aud:u:{grant.unit.code}"))
            if grant.unit.type == policy.MTTQ:
                name = officer._locality_name(ctx, grant.unit.locality_code)
                buttons.append(Button(label(_("Everyone in {place}").format(place=name)),
                                      f"camp:aud:l:{grant.unit.locality_code}"))  # fmt: skip
        elif grant.locality_code is not None:
            name = officer._locality_name(ctx, grant.locality_code)
            buttons.append(Button(label(_("Everyone in {place}").format(place=name)),
                                  f"camp:aud:l:{grant.locality_code}"))  # fmt: skip
        else:
            for code, name in ctx.localities.provinces():
                buttons.append(Button(label(_("Everyone in {place}").format(place=name)),
                                      f"camp:aud:l:{code}"))  # fmt: skip
    unique = list({b.payload: b for b in buttons}.values())[:8]
    ctx.goto(AUDIENCE)
    return [Reply(_(
        "**New campaign** — who should receive it? Choose below, or type /campaign CODE with "
        "the code of a unit or a commune in your scope."
    ), rows(*unique, Button(_("Cancel"), "camp:quit")))]  # fmt: skip


async def _choose(ctx: Context, actor: Actor, audience: Audience) -> list[Reply]:
    try:
        await campaigns.resolve_target(ctx.session, actor, audience, ctx.localities)
    except AudienceError as exc:
        return _refusal(ctx, actor, exc.reason, audience.unit or str(audience.locality))
    ctx.goto(FILTERS, camp={"aud": audience.to_json()})
    return await _filters_prompt(ctx, actor)


async def _size(ctx: Context, actor: Actor, audience: Audience) -> int:
    return await campaigns.audience_size(
        ctx.session, actor, audience, localities=ctx.localities, curriculum=ctx.curriculum,
        channels=campaign_channels(ctx), now=ctx.now,
    )  # fmt: skip


async def _unit_name(ctx: Context, audience: Audience) -> str | None:
    if audience.unit is None:
        return None
    from bot.services import orgs

    unit = await orgs.get_unit(ctx.session, audience.unit)
    return unit.name if unit is not None else None


async def _filters_prompt(ctx: Context, actor: Actor) -> list[Reply]:
    audience = Audience.from_json(ctx.data["camp"]["aud"])
    size = await _size(ctx, actor, audience)
    text = "\n".join([
        _("**Audience:** {who}").format(who=_audience_label(ctx, audience,
                                                            await _unit_name(ctx, audience))),
        _("**Filters:** {filters}").format(filters=_filters_text(ctx, audience)),
        _("**Reachable now:** {n} people (not counting people who turned campaign messages "
          "off or blocked the bot).").format(n=fmt_number(size)),
        "",
        _("Add a filter, or continue."),
    ])  # fmt: skip
    idle = audience.idle_days
    next_idle = next((d for d in campaigns.IDLE_CHOICES if idle is None or d > idle), None)
    buttons = [
        Button(_("Continue ▶"), "camp:next"),
        Button(_("Has not finished a topic…"), "camp:f:mod"),
        Button(_("Not active for {n} days").format(n=next_idle) if next_idle
               else _("Any activity"), f"camp:fi:{next_idle or 0}"),
        Button(_("Only Vietnamese speakers"), "camp:fl:vi"),
        Button(_("Only English speakers"), "camp:fl:en"),
        Button(_("Clear filters"), "camp:f:clear"),
        Button(_("Cancel"), "camp:quit"),
    ]  # fmt: skip
    return [Reply(text, rows(*buttons))]


async def _set_filter(ctx: Context, actor: Actor, **change: Any) -> list[Reply]:
    data = dict(ctx.data["camp"])
    audience = {**data["aud"], **change}
    data["aud"] = {k: v for k, v in audience.items() if v not in (None, 0, "")}
    ctx.goto(FILTERS, camp=data)
    return await _filters_prompt(ctx, actor)


async def _module_choices(ctx: Context, prefix: str, note: str) -> list[Reply]:
    lang = ctx.identity.language
    buttons = [Button(label(text_for(m.title, lang)), f"{prefix}:{m.id}")
               for m in ctx.curriculum.modules]  # fmt: skip
    return [Reply(note, rows(*buttons, Button(_("Cancel"), "camp:quit")))]


async def _to_text(ctx: Context, actor: Actor) -> list[Reply]:
    audience = Audience.from_json(ctx.data["camp"]["aud"])
    if await _size(ctx, actor, audience) == 0:
        return [Reply(_("No one in this audience can receive a campaign message now. Change "
                        "the filters or choose another audience.")),
                *await _filters_prompt(ctx, actor)]  # fmt: skip
    ctx.goto(TEXT, camp=ctx.data["camp"])
    return [Reply(_("Type the message to send (at most {n} characters). **Bold** works: put "
                    "two stars on each side.").format(n=fmt_number(campaigns.MAX_TEXT)),
                  rows(Button(_("Cancel"), "camp:quit")))]  # fmt: skip


async def on_text(ctx: Context, text: str) -> list[Reply]:
    """The message text (a free-text step)."""
    actor = await officer._actor(ctx)
    if not actor.is_officer:
        ctx.goto("")
        return unknown_command("campaign")
    if len(text) > campaigns.MAX_TEXT:
        return [Reply(_("That message has {n} characters; a campaign message can have at "
                        "most {max} (so that it fits Zalo). Please shorten it and send it "
                        "again.").format(n=fmt_number(len(text)),
                                         max=fmt_number(campaigns.MAX_TEXT)))]  # fmt: skip
    ctx.goto(BUTTON, camp={**ctx.data["camp"], "text": text})
    lang = ctx.identity.language
    buttons = [Button(label(text_for(m.title, lang)), f"camp:btn:m:{m.id}")
               for m in ctx.curriculum.modules]  # fmt: skip
    return [Reply(_("Add a button that opens a topic or a lesson? Choose the topic, or send "
                    "it without a button."),
                  rows(Button(_("No button"), "camp:btn:none"), *buttons))]  # fmt: skip


async def _preview(ctx: Context) -> list[Reply]:
    data = ctx.data["camp"]
    draft = Campaign(text=data["text"], button_kind=(data.get("button") or [None, None])[0],
                     button_target=(data.get("button") or [None, None])[1])  # fmt: skip
    draft.id = 0
    preview = campaign_reply(draft, ctx.identity.language, ctx.curriculum)
    ctx.goto(WHEN, camp=data)
    return [
        Reply(_("**Preview** — this is what people will receive:")),
        Reply(preview.text, preview.buttons),
        Reply(_("When should it be sent?"), rows(
            Button(_("Now"), "camp:when:now"),
            Button(_("At a date and time"), "camp:when:at"),
            Button(_("Every week"), "camp:when:weekly"),
            Button(_("Cancel"), "camp:quit"),
        )),
    ]  # fmt: skip


async def on_when_text(ctx: Context, text: str) -> list[Reply]:
    """A date and time (state AT) or a time of day (state TIME)."""
    actor = await officer._actor(ctx)
    if not actor.is_officer:
        ctx.goto("")
        return unknown_command("campaign")
    data = dict(ctx.data["camp"])
    try:
        if ctx.state == AT:
            data["at"] = campaigns.parse_when(text, ctx.now).isoformat()
        else:
            data["time"] = campaigns.parse_time(text)
    except campaigns.ScheduleError as exc:
        if str(exc) == "past":
            return [Reply(_("That moment has already passed. Please give a date and time in "
                            "the future, for example {example}.").format(
                                example=_example(ctx)))]  # fmt: skip
        if ctx.state == AT:
            return [Reply(_("Please write the date and time like this: {example}").format(
                example=_example(ctx)))]
        return [Reply(_("Please write the time like this: 08:30"))]
    ctx.goto(CONFIRM, camp=data)
    return await _confirm_prompt(ctx, actor)


def _example(ctx: Context) -> str:
    return (ctx.now.astimezone(TZ).replace(hour=8, minute=0)).strftime("%d/%m/%Y 08:00")


def _days_prompt(ctx: Context) -> list[Reply]:
    chosen = set(ctx.data["camp"].get("days", []))
    buttons = [Button(("✅ " if d in chosen else "") + _day_name(d), f"camp:day:{d}")
               for d in range(7)]  # fmt: skip
    return [Reply(_("On which days of the week? Tap to choose, then Done."),
                  rows(*buttons, per_row=4) + rows(Button(_("Done ▶"), "camp:days:done"),
                                                   Button(_("Cancel"), "camp:quit")))]


def _schedule_text(data: dict[str, Any]) -> str:
    when = data.get("when")
    if when == "at" and data.get("at"):
        return _("on {moment}").format(moment=fmt_datetime(datetime.fromisoformat(data["at"])))
    if when == "weekly":
        days = ", ".join(_day_name(d) for d in sorted(data.get("days", [])))
        return _("every week on {days} at {time}").format(days=days, time=data.get("time"))
    return _("now")


async def _confirm_prompt(ctx: Context, actor: Actor) -> list[Reply]:
    data = ctx.data["camp"]
    audience = Audience.from_json(data["aud"])
    try:
        unit, locality = await campaigns.resolve_target(ctx.session, actor, audience,
                                                        ctx.localities)  # fmt: skip
    except AudienceError as exc:
        ctx.goto("")
        return _refusal(ctx, actor, exc.reason, audience.unit or str(audience.locality))
    size = await _size(ctx, actor, audience)
    when = data.get("when", "now")
    draft = campaigns.new_draft(
        actor, audience, unit, locality, text=data["text"],
        button=tuple(data["button"]) if data.get("button") else None,  # type: ignore[arg-type]
        schedule=when, send_at=datetime.fromisoformat(data["at"]) if data.get("at") else None,
        weekly_days=data.get("days"), weekly_time=data.get("time"), now=ctx.now,
    )  # fmt: skip
    ctx.session.add(draft)
    await ctx.session.flush()
    ctx.goto("")
    text = "\n".join([
        _("**Ready to send campaign #{id}**").format(id=draft.id),
        _("To: {who}").format(who=_audience_label(ctx, audience, unit.name if unit else None)),
        _("Filters: {filters}").format(filters=_filters_text(ctx, audience)),
        _("Reachable now: {n} people").format(n=fmt_number(size)),
        _("When: {when}").format(when=_schedule_text(data)),
    ])  # fmt: skip
    return [Reply(text, rows(Button(_("✅ Send"), f"camp:go:{draft.id}"),
                             Button(_("Discard"), f"camp:drop:{draft.id}")))]  # fmt: skip


# ---------------------------------------------------------------------------- sending


async def _go(ctx: Context, actor: Actor, raw_id: str) -> list[Reply]:
    campaign = await _visible(ctx, actor, raw_id)
    if campaign is None:
        return _refusal(ctx, actor, Refusal.OUT_OF_SCOPE, f"campaign:{raw_id[:12]}")
    if campaign.status != campaigns.DRAFT:
        return [Reply(_already(campaign))]
    try:
        outcome = await campaigns.confirm(
            ctx.session, campaign, actor, localities=ctx.localities, curriculum=ctx.curriculum,
            channels=campaign_channels(ctx), now=ctx.now,
        )  # fmt: skip
    except AudienceError as exc:
        return _refusal(ctx, actor, exc.reason, f"campaign:{campaign.id}")
    if outcome == "empty":
        return [Reply(_("No one in this audience can receive a campaign message now, so "
                        "nothing was sent. Start again with /campaign and change the "
                        "audience or the filters."))]  # fmt: skip
    if outcome == "past":
        return [Reply(_("The time chosen for campaign #{id} has already passed, so it was "
                        "not scheduled. Start again with /campaign.").format(id=campaign.id))]
    if outcome == "gone":
        await ctx.session.refresh(campaign)
        return [Reply(_already(campaign))]
    audit.write(ctx.session, actor.who, "campaign_" + ("send" if outcome == campaigns.SENDING
                                                        else "schedule"),
                f"campaign:{campaign.id}", at=ctx.now, audience=campaign.audience,
                size=campaign.audience_size, schedule=campaign.schedule)  # fmt: skip
    wake = ctx.extras.get("campaign_started")
    if outcome == campaigns.SENDING:
        if wake is not None:
            wake()
        return [Reply(_("Campaign #{id} is being sent to {n} people. Follow it with "
                        "/campaigns.").format(id=campaign.id,
                                              n=fmt_number(campaign.audience_size or 0)))]
    when = campaign.next_run_at or ctx.now
    return [Reply(_("Campaign #{id} is scheduled; the first sending is on {moment}. Follow "
                    "it with /campaigns.").format(id=campaign.id,
                                                  moment=fmt_datetime(when)))]  # fmt: skip


def _already(campaign: Campaign) -> str:
    if campaign.status == campaigns.CANCELLED:
        return _("Campaign #{id} was cancelled; it cannot be sent again. Start a new one with "
                 "/campaign.").format(id=campaign.id)
    if campaign.status == campaigns.DONE:
        return _("Campaign #{id} has already been sent; it cannot be sent again. Start a new "
                 "one with /campaign.").format(id=campaign.id)
    return _("Campaign #{id} has already been started (perhaps by another officer); it is "
             "sent only once.").format(id=campaign.id)


async def _visible(ctx: Context, actor: Actor, raw_id: str) -> Campaign | None:
    if not raw_id.isdigit() or len(raw_id) > 12:
        return None
    return await campaigns.get_visible(ctx.session, actor, int(raw_id))


async def _stop(ctx: Context, actor: Actor, raw_id: str) -> list[Reply]:
    campaign = await _visible(ctx, actor, raw_id)
    if campaign is None:
        return _refusal(ctx, actor, Refusal.OUT_OF_SCOPE, f"campaign:{raw_id[:12]}")
    if not await campaigns.cancel(ctx.session, campaign, by=actor.who, now=ctx.now):
        return [Reply(_("Campaign #{id} has already ended; there is nothing to "
                        "cancel.").format(id=campaign.id))]  # fmt: skip
    audit.write(ctx.session, actor.who, "campaign_cancel", f"campaign:{campaign.id}",
                at=ctx.now)  # fmt: skip
    return [Reply(_("Campaign #{id} is cancelled: nothing more will be sent.").format(
        id=campaign.id))]


# ---------------------------------------------------------------------------- /campaigns


def _status_label(campaign: Campaign) -> str:
    return {
        campaigns.DRAFT: _("draft"), campaigns.SCHEDULED: _("scheduled"),
        campaigns.SENDING: _("sending"), campaigns.DONE: _("finished"),
        campaigns.CANCELLED: _("cancelled"),
    }.get(campaign.status, campaign.status)  # fmt: skip


async def list_campaigns(ctx: Context, _arg: str = "") -> list[Reply]:
    """/campaigns: the officer's campaigns with their counts, and cancel buttons."""
    gate = await _gate(ctx, "campaigns")
    if not isinstance(gate, Actor):
        return gate
    actor = gate
    found = await campaigns.visible(ctx.session, actor, limit=LIST_SIZE)
    if not found:
        return [Reply(_("No campaigns yet. Start one with /campaign."))]
    counts = await campaigns.counts(ctx.session, [c.id for c in found])
    lines = [_("**Campaigns**")]
    buttons: list[Button] = []
    for c in found:
        n = counts.get(c.id, campaigns.Counts())
        preview = c.text.replace("\n", " ")
        preview = preview[:40] + ("…" if len(preview) > 40 else "")
        lines.append("")
        lines.append(_("#{id} ({status}) — {text}").format(id=c.id, status=_status_label(c),
                                                          text=preview))  # fmt: skip
        if c.schedule == "weekly" and c.status == campaigns.SCHEDULED and c.next_run_at:
            lines.append(_("Next sending: {moment}").format(moment=fmt_datetime(c.next_run_at)))
        elif c.status == campaigns.SCHEDULED and c.next_run_at:
            lines.append(_("Sending on: {moment}").format(moment=fmt_datetime(c.next_run_at)))
        if n.audience:
            lines.append(_(
                "{total} recipients: {sent} sent ({delivered} delivered), {failed} failed, "
                "{skipped} skipped, {blocked} blocked, {pending} waiting · {engaged} then "
                "started a lesson"
            ).format(total=fmt_number(n.audience), sent=fmt_number(n.sent),
                     delivered=fmt_number(n.delivered), failed=fmt_number(n.failed),
                     skipped=fmt_number(n.skipped), blocked=fmt_number(n.blocked),
                     pending=fmt_number(n.pending), engaged=fmt_number(n.engaged)))  # fmt: skip
        if c.status == campaigns.DRAFT:
            buttons.append(Button(_("✅ Send #{id}").format(id=c.id), f"camp:go:{c.id}"))
        if c.status in campaigns.OPEN:
            buttons.append(Button(_("✖ Cancel #{id}").format(id=c.id), f"camp:stop:{c.id}"))
    return [Reply("\n".join(lines), rows(*buttons[:10], per_row=2))]


# ---------------------------------------------------------------------------- citizens


async def _opt(ctx: Context, off: bool) -> list[Reply]:
    if not ctx.consented or ctx.person is None:
        return [Reply(_("You do not receive campaign messages: hocvuso keeps no data about "
                        "you."))]  # fmt: skip
    await campaigns.set_opt_out(ctx.session, ctx.person, off)
    if off:
        return [Reply(_("Done: you will no longer receive campaign messages from "
                        "organisations. To receive them again, type /settings."))]  # fmt: skip
    return [Reply(_("Done: you will receive campaign messages from organisations again."))]


async def settings(ctx: Context, _arg: str = "") -> list[Reply]:
    """/settings: campaign messages on or off (and where the other settings are)."""
    if not ctx.consented or ctx.person is None:
        return [Reply(_("Settings are kept only for people who agreed to let us keep their "
                        "data. Type /start if you want to agree."))]  # fmt: skip
    off = ctx.person.campaigns_opt_out
    state = _("off") if off else _("on")
    text = "\n".join([
        _("**Your settings**"),
        _("Campaign messages from organisations: **{state}**").format(state=state),
        _("Daily reminder: /reminders · Language: /language"),
    ])  # fmt: skip
    button = (Button(_("Receive campaign messages"), "camp:on") if off
              else Button(_("Stop campaign messages"), "camp:off"))  # fmt: skip
    return [Reply(text, rows(button))]


# ---------------------------------------------------------------------------- buttons

OFFICER_ACTIONS = {"aud", "f", "fm", "fi", "fl", "next", "btn", "when", "day", "days", "go",
                   "drop", "stop", "quit"}  # fmt: skip
# Each wizard button belongs to a step; pressed at another step it is stale.
STEP_OF_ACTION = {"aud": AUDIENCE, "f": FILTERS, "fm": FILTERS, "fi": FILTERS, "fl": FILTERS,
                  "next": FILTERS, "btn": BUTTON, "when": WHEN, "day": DAYS,
                  "days": DAYS}  # fmt: skip


async def on_button(ctx: Context, action: str, a: str = "", b: str = "") -> list[Reply]:
    """Every `camp:*` button."""
    if action == "off":
        return await _opt(ctx, True)
    if action == "on":
        return await _opt(ctx, False)
    if action not in OFFICER_ACTIONS:
        return _stale()
    actor = await officer._actor(ctx)
    if not actor.is_officer:
        if actor.revoked:
            return officer.refuse(ctx, actor, "campaign", Refusal.REVOKED)
        from handlers.router import current_step

        return [*_stale(), *await current_step(ctx)]
    step = STEP_OF_ACTION.get(action)
    if step is not None and (ctx.state != step or ("camp" not in ctx.data and step != AUDIENCE)):
        return _stale()
    if action == "quit":
        ctx.goto("")
        return [Reply(_("Campaign discarded; nothing was sent."))]
    if action == "aud":
        if a == "u":
            return await _choose(ctx, actor, Audience(unit=b[:48]))
        if a == "l" and b.isdigit():
            return await _choose(ctx, actor, Audience(locality=int(b)))
        return _stale()
    if action == "f" and a == "mod":
        return await _module_choices(ctx, "camp:fm", _("Only people who have not finished "
                                                        "this topic:"))  # fmt: skip
    if action == "f" and a == "clear":
        return await _set_filter(ctx, actor, module=None, idle_days=None, language=None)
    if action == "fm":
        if ctx.curriculum.module(a) is None:
            return _stale()
        return await _set_filter(ctx, actor, module=a)
    if action == "fi" and a.isdigit():
        days = int(a)
        return await _set_filter(ctx, actor,
                                 idle_days=days if days in campaigns.IDLE_CHOICES else None)
    if action == "fl" and a in LANGUAGE_NAMES:
        return await _set_filter(ctx, actor, language=a)
    if action == "next":
        return await _to_text(ctx, actor)
    if action == "btn":
        return await _button_step(ctx, a, b)
    if action == "when":
        return await _when_step(ctx, actor, a)
    if action == "day" and a.isdigit() and 0 <= int(a) <= 6:
        chosen = set(ctx.data["camp"].get("days", []))
        chosen ^= {int(a)}
        ctx.goto(DAYS, camp={**ctx.data["camp"], "days": sorted(chosen)})
        return _days_prompt(ctx)
    if action == "days":
        if not ctx.data["camp"].get("days"):
            return [Reply(_("Choose at least one day.")), *_days_prompt(ctx)]
        ctx.goto(TIME, camp=ctx.data["camp"])
        return [Reply(_("At what time (Vietnam time)? For example: 08:30"))]
    if action == "go":
        return await _go(ctx, actor, a)
    if action == "drop":
        campaign = await _visible(ctx, actor, a)
        if campaign is None:
            return _refusal(ctx, actor, Refusal.OUT_OF_SCOPE, f"campaign:{a[:12]}")
        if campaign.status == campaigns.DRAFT and await campaigns.cancel(
                ctx.session, campaign, by=actor.who, now=ctx.now):  # fmt: skip
            return [Reply(_("Campaign discarded; nothing was sent."))]
        return [Reply(_already(campaign))]
    if action == "stop":
        return await _stop(ctx, actor, a)
    return _stale()


async def _button_step(ctx: Context, kind: str, target: str) -> list[Reply]:
    data = dict(ctx.data["camp"])
    if kind == "none":
        data["button"] = None
    elif kind == "m" and (module := ctx.curriculum.module(target)):
        lang = ctx.identity.language
        buttons = [Button(label(text_for(module.title, lang), "📚 "), f"camp:btn:mod:{module.id}")]
        buttons += [Button(label(text_for(lesson.title, lang), "▶ "),
                           f"camp:btn:les:{lesson.id}") for lesson in module.lessons]
        return [Reply(_("The whole topic, or one lesson?"), rows(*buttons))]
    elif kind == "mod" and ctx.curriculum.module(target):
        data["button"] = ["mod", target]
    elif kind == "les" and ctx.curriculum.lesson(target):
        data["button"] = ["les", target]
    else:
        return _stale()
    ctx.goto(BUTTON, camp=data)
    return await _preview(ctx)


async def _when_step(ctx: Context, actor: Actor, when: str) -> list[Reply]:
    data = {**ctx.data["camp"], "when": when}
    if when == "now":
        ctx.goto(CONFIRM, camp=data)
        return await _confirm_prompt(ctx, actor)
    if when == "at":
        ctx.goto(AT, camp=data)
        return [Reply(_("Type the date and time (Vietnam time), for example: {example}").format(
            example=_example(ctx)))]
    if when == "weekly":
        ctx.goto(DAYS, camp={**data, "days": []})
        return _days_prompt(ctx)
    return _stale()
