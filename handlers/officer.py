"""Officer commands: /stats, /grant, /members, /confirm, /remove (and their buttons);
/whoami for everyone; officer invitations (`/start inv_<token>`).

Every question "may this officer ..." goes to `bot.services.policy`, and every query runs
with the officer's reach in SQL. Someone who is not an officer gets exactly the answer to an
unknown command (or an unknown button), so nothing reveals that these commands exist.
Refusals get a plain message, change nothing and are written to the audit log.
"""

from __future__ import annotations

import logging
import re

from bot.db.models import OrgUnit
from bot.domain import ALL_ORG_TYPES
from bot.i18n import TZ, _, fmt_date, fmt_number
from bot.services import audit, metrics, officers, orgs, policy
from bot.services.policy import Actor, Refusal, UnitRef
from handlers.common import unknown_command
from handlers.context import Context
from handlers.types import Button, Reply, rows

log = logging.getLogger(__name__)

MAX_ROWS = 15
MAX_SUBJECTS = 3
PAGE_SIZE = 20
_LOCALITY_RE = re.compile(r"^\d{2}$|^\d{5}$")
_USER_RE = re.compile(r"^([a-z][a-z-]{0,15}):([A-Za-z0-9_.-]{1,64})$")


def _refusal_text(reason: Refusal) -> str:
    if reason in (Refusal.NOT_OFFICER, Refusal.REVOKED):
        return _("You no longer have an officer role, so this is not possible.")
    if reason == Refusal.ABOVE_ROLE:
        return _("You cannot give a role above your own.")
    if reason == Refusal.INVITE_ONLY:
        return _(
            "Only a province administrator can grant a role directly. Send the command "
            "without the user id to get a one-time invitation link instead."
        )
    if reason == Refusal.NO_NAMES:
        return _(
            "Members' names can be seen only by the administrator of their unit or of a unit "
            "above it in the same organisation."
        )
    return _("That is outside your scope, so it is not possible.")


def refuse(ctx: Context, actor: Actor, command: str, reason: Refusal,
           target: str | None = None) -> list[Reply]:  # fmt: skip
    """A plain refusal, written to the audit log; nothing else changes."""
    audit.write(ctx.session, actor.who, "refused", target, at=ctx.now, command=command,
                reason=str(reason))  # fmt: skip
    log.info("refused %s for %s: %s %s", command, actor.who, reason, target or "")
    return [Reply(_refusal_text(reason))]


async def _actor(ctx: Context) -> Actor:
    return await policy.load_actor(ctx.session, ctx.msg.channel, ctx.msg.user_id,
                                   ctx.localities)  # fmt: skip


async def _officer(ctx: Context, command: str) -> Actor | list[Reply]:
    """The asker as an officer, or the reply for someone who is not (any more) one."""
    actor = await _actor(ctx)
    if actor.is_officer:
        return actor
    if actor.revoked:
        return refuse(ctx, actor, command, Refusal.REVOKED)
    return unknown_command(command)


def _locality_name(ctx: Context, code: int) -> str:
    commune = ctx.localities.get(code)
    if commune is not None:
        return commune.name
    return dict(ctx.localities.provinces()).get(code, f"{code:05d}")


def _scope_label(ctx: Context, unit: OrgUnit | UnitRef | None, locality: int | None) -> str:
    if unit is not None:
        return unit.name
    if locality is not None:
        return _locality_name(ctx, locality)
    return ", ".join(name for _code, name in ctx.localities.provinces())


def _role_label(role: str) -> str:
    return _(policy.ROLE_LABELS[role])


async def _target(ctx: Context, token: str) -> tuple[UnitRef | None, int | None, bool]:
    """A command argument naming a unit (its code) or a locality (2 or 5 digits):
    (unit, locality, found). Unknown codes are reported like out-of-scope ones."""
    if _LOCALITY_RE.match(token):
        code = int(token)
        return None, code, policy.province_of(ctx.localities, code) is not None
    unit = await orgs.get_unit(ctx.session, token)
    return (UnitRef.of(unit) if unit is not None else None), None, unit is not None


# ---------------------------------------------------------------------------- /whoami


async def whoami(ctx: Context, _arg: str = "") -> list[Reply]:
    who = f"{ctx.msg.channel}:{ctx.msg.user_id}"
    return [Reply(_(
        "Your channel: **{channel}**\nYour id: **{user_id}**\n\nIf you are an officer, send "
        "this line to your administrator to be given a role: {who}"
    ).format(channel=ctx.msg.channel, user_id=ctx.msg.user_id, who=who))]  # fmt: skip


# ---------------------------------------------------------------------------- /stats


def _figure_lines(report: metrics.Report) -> list[str]:
    t = report.total
    lines = [_("People registered: {n}").format(n=fmt_number(t.registered))]
    types = sorted(set(t.members) | set(report.official), key=list(ALL_ORG_TYPES).index)
    if types:
        lines.append(_("Members per organisation:"))
    for org_type in types:
        name = _(ALL_ORG_TYPES.get(org_type, org_type))
        line = _("• {org}: {n} registered").format(org=name, n=fmt_number(t.members.get(org_type,
                                                                                       0)))
        if org_type in report.official:
            line += " " + _("(official: {n})").format(n=fmt_number(report.official[org_type]))
        lines.append(line)
    lines += [
        _("Active in the last 30 days: {n}").format(n=fmt_number(t.active)),
        _("Lessons completed: {n}").format(n=fmt_number(t.lessons_completed)),
        _("Quizzes passed: {n}").format(n=fmt_number(t.quizzes_passed)),
        _("Certificates: {n}").format(n=fmt_number(t.certificates)),
    ]
    return lines


def _row_line(row: metrics.Row) -> str:
    f = row.figures
    name = _("{unit} (its own members)").format(unit=row.label) if row.own else row.label
    text = _("• {name}: {registered} registered · {active} active · {lessons} lessons · "
             "{quizzes} quizzes")
    return text.format(
        name=name, registered=fmt_number(f.registered), active=fmt_number(f.active),
        lessons=fmt_number(f.lessons_completed), quizzes=fmt_number(f.quizzes_passed),
    )


def _render(ctx: Context, report: metrics.Report) -> list[Reply]:
    subject = report.subject
    title = subject.unit.name if subject.unit is not None else _locality_name(
        ctx, subject.locality_code or 0
    )
    period = report.period
    head = _("**📊 {title}**\nPeriod: {first} – {last}").format(
        title=title, first=fmt_date(period.first_day), last=fmt_date(period.last_day)
    )
    replies = [Reply("\n".join([head, "", *_figure_lines(report)]))]
    if not report.rows:
        return replies
    ordered = sorted(report.rows, key=lambda r: (
        -r.figures.registered, -r.figures.active, -r.figures.lessons_completed, r.label
    ))  # fmt: skip
    shown = [r for r in ordered if r.figures != metrics.Figures()][:MAX_ROWS]
    by_commune = subject.unit is None and subject.locality_code not in subject.communes
    heading = _("**By commune:**") if by_commune else _("**By unit directly below:**")
    lines = [heading, *(_row_line(r) for r in shown)]
    rest = len(report.rows) - len(shown)
    if rest and by_commune:
        lines.append(_("…and {n} more communes with nothing recorded yet, or smaller "
                       "figures.").format(n=fmt_number(rest)))  # fmt: skip
    elif rest:
        lines.append(_("…and {n} more units with nothing recorded yet, or smaller "
                       "figures.").format(n=fmt_number(rest)))  # fmt: skip
    replies.append(Reply("\n".join(lines)))
    return replies


async def stats(ctx: Context, arg: str = "") -> list[Reply]:
    """/stats [UNIT or COMMUNE CODE] [PERIOD]: figures for the officer's scope."""
    gate = await _officer(ctx, "stats")
    if not isinstance(gate, Actor):
        return gate
    actor = gate
    tokens = arg.split()
    periods = [t for t in tokens if metrics.is_period(t)]
    targets = [t for t in tokens if not metrics.is_period(t)]
    if len(periods) > 1 or len(targets) > 1:
        return [Reply(_("Usage: /stats [unit or commune code] [period]") + "\n"
                      + _(metrics.PERIOD_HELP))]  # fmt: skip
    try:
        if periods:
            period = metrics.parse_period(periods[0])
        else:
            period = metrics.year_period(ctx.now.astimezone(TZ).year)
    except metrics.PeriodError as exc:
        return [Reply(exc.localized() + "\n" + _(metrics.PERIOD_HELP))]
    if targets:
        unit, locality, found = await _target(ctx, targets[0])
        if unit is not None:
            subject = metrics.subject_of(unit, ctx.localities)
        else:
            subject = metrics.subject_of_locality(ctx.localities, locality or 0)
        # A unit needs the unit in scope; a locality (also an MTTQ unit's) the locality.
        allowed = found and (
            policy.may_view_locality(actor, subject.locality_code)
            if subject.unit is None and subject.locality_code is not None
            else unit is not None and policy.may_view_unit(actor, unit)
        )
        if not allowed:
            return refuse(ctx, actor, "stats", Refusal.OUT_OF_SCOPE, targets[0][:64])
        subjects = [subject]
    else:
        subjects = []
        for grant in actor.grants:
            for subject in metrics.default_subjects(grant, ctx.localities):
                if subject not in subjects:
                    subjects.append(subject)
    replies: list[Reply] = []
    for subject in subjects[:MAX_SUBJECTS]:
        report = await metrics.compute(
            ctx.session, subject, period, active=metrics.last_days(ctx.now),
            reaches=actor.reaches, localities=ctx.localities,
        )  # fmt: skip
        replies.extend(_render(ctx, report))
    return replies


# ---------------------------------------------------------------------------- /grant


def _grant_usage() -> list[Reply]:
    return [Reply(_(
        "Usage: /grant ROLE [UNIT or COMMUNE CODE] [channel:id]\n"
        "Roles: province_admin, locality_admin (a commune code), org_admin (a unit code).\n"
        "Without channel:id you get a one-time invitation link to send to the new officer."
    ))]  # fmt: skip


async def grant(ctx: Context, arg: str = "") -> list[Reply]:
    """/grant ROLE [CODE] [channel:id]: a direct grant (province admins) or a one-time link."""
    gate = await _officer(ctx, "grant")
    if not isinstance(gate, Actor):
        return gate
    actor = gate
    tokens = arg.split()
    if not tokens or tokens[0] not in policy.ROLES or len(tokens) > 3:
        return _grant_usage()
    role, rest = tokens[0], tokens[1:]
    user = next((t for t in rest if _USER_RE.match(t)), None)
    scope = [t for t in rest if t != user]
    if len(scope) > 1:
        return _grant_usage()
    unit: UnitRef | None = None
    locality: int | None = None
    if scope:
        unit, locality, found = await _target(ctx, scope[0])
        if not found:
            return refuse(ctx, actor, "grant", Refusal.OUT_OF_SCOPE, scope[0][:64])
    if policy.check_role_target(role, unit, locality, ctx.localities) is not None:
        return _grant_usage()
    refusal = policy.may_grant(actor, role, unit=unit, locality=locality, direct=user is not None)
    target = officers.scope_text(role, unit, locality)
    if refusal is not None:
        return refuse(ctx, actor, "grant", refusal, target)
    unit_row = await orgs.get_unit(ctx.session, unit.code) if unit is not None else None
    label = _scope_label(ctx, unit, locality)
    if user is not None:
        match = _USER_RE.match(user)
        assert match is not None
        channel, external_id = match.group(1), match.group(2)
        if channel not in (*officers.CHANNELS, ctx.msg.channel):
            return _grant_usage()
        await officers.grant(
            ctx.session, channel=channel, external_id=external_id, role=role, unit=unit_row,
            locality=locality, by=actor.who, now=ctx.now, localities=ctx.localities,
        )  # fmt: skip
        return [Reply(_("Done: {who} is now {role} of {scope}.").format(
            who=user, role=_role_label(role), scope=label))]  # fmt: skip
    # The grant that allows it is recorded, so the link dies if that grant is revoked.
    by_officer = next(
        (g.officer_id for g in actor.grants
         if policy.may_grant(Actor(actor.who, (g,)), role, unit=unit, locality=locality) is None),
        None,
    )  # fmt: skip
    token, invite = await officers.create_invite(
        ctx.session, role=role, unit=unit_row, locality=locality, by=actor.who,
        by_officer_id=by_officer, now=ctx.now,
    )  # fmt: skip
    username = ctx.settings.telegram_bot_username if ctx.msg.channel == "telegram" else None
    link = officers.invite_link(token, username)
    return [Reply(_(
        "One-time link that makes whoever opens it {role} of {scope}, valid until {date}:\n"
        "{link}\nSend it only to the new officer."
    ).format(role=_role_label(role), scope=label, date=fmt_date(invite.expires_at),
             link=link))]  # fmt: skip


async def accept_invite(ctx: Context, token: str) -> list[Reply]:
    """`/start inv_<token>`: make this account the invited officer, once."""
    officer = await officers.use_invite(
        ctx.session, token, channel=ctx.msg.channel, external_id=ctx.msg.user_id, now=ctx.now,
        localities=ctx.localities,
    )  # fmt: skip
    if officer is None:
        return [Reply(_(
            "This officer invitation is not valid: it was already used, has expired or was "
            "withdrawn."
        ))]  # fmt: skip
    label = _scope_label(ctx, officer.unit, officer.locality_code)
    return [Reply(_(
        "You are now {role} of {scope}. Type /stats to see the figures of your scope."
    ).format(role=_role_label(officer.role), scope=label))]  # fmt: skip


# ---------------------------------------------------------------------------- members


async def members(ctx: Context, arg: str = "") -> list[Reply]:
    """/members [UNIT CODE] [PAGE]: names of consented members (org admins; audited)."""
    gate = await _officer(ctx, "members")
    if not isinstance(gate, Actor):
        return gate
    actor = gate
    tokens = arg.split()
    page = 1
    if tokens and tokens[-1].isdigit() and len(tokens[-1]) < 5:
        page = max(1, int(tokens.pop()))
    if len(tokens) > 1:
        return [Reply(_("Usage: /members [unit code] [page]"))]
    if tokens:
        unit, _locality, found = await _target(ctx, tokens[0])
        if not found or unit is None:
            return refuse(ctx, actor, "members", Refusal.OUT_OF_SCOPE, tokens[0][:64])
    else:
        unit = next((g.unit for g in actor.grants if g.role == policy.ORG_ADMIN), None)
        if unit is None:
            return refuse(ctx, actor, "members", Refusal.NO_NAMES)
    if not policy.may_see_names(actor, unit):
        reason = Refusal.NO_NAMES if policy.may_view_unit(actor, unit) else Refusal.OUT_OF_SCOPE
        return refuse(ctx, actor, "members", reason, unit.code)
    found_rows, total = await orgs.members_page(ctx.session, actor, unit, page=page,
                                                size=PAGE_SIZE)  # fmt: skip
    audit.write(ctx.session, actor.who, "view_names", unit.code, at=ctx.now, page=page,
                names=len(found_rows))  # fmt: skip
    lines = [_("**Members of {unit}** ({n})").format(unit=unit.name, n=fmt_number(total))]
    if not found_rows:
        lines.append(_("No members who agreed to be listed yet."))
    for row in found_rows:
        name = row.name or _("(no name)")
        mark = "✔" if row.confirmed else _("(not confirmed)")
        where = f" — {row.unit_name}" if row.unit_code != unit.code else ""
        lines.append(f"#{row.membership_id} {name}{where} {mark}")
    if found_rows:
        lines += ["", _("Confirm: /confirm NUMBER · remove: /remove NUMBER")]
    if page * PAGE_SIZE < total:
        lines.append(_("Next page: /members {code} {page}").format(code=unit.code, page=page + 1))
    buttons = [
        Button(("✔ " + (r.name or f"#{r.membership_id}"))[:35], f"mem:ok:{r.membership_id}")
        for r in found_rows if not r.confirmed
    ][:5]
    return [Reply("\n".join(lines), rows(*buttons))]


async def _membership_action(ctx: Context, command: str, action: str,
                             raw_id: str) -> list[Reply]:  # fmt: skip
    actor = await _actor(ctx)
    if not actor.is_officer:
        if actor.revoked:
            return refuse(ctx, actor, command, Refusal.REVOKED, raw_id[:32])
        if command == "mem":  # a button: answered like any unknown button
            from handlers.router import current_step

            return [Reply(_("That button is no longer valid.")), *await current_step(ctx)]
        return unknown_command(command)
    if not raw_id.strip().lstrip("#").isdigit() or len(raw_id) > 12:
        return [Reply(_("Usage: /{command} NUMBER (the number shown by /members)").format(
            command="confirm" if action == "ok" else "remove"))]  # fmt: skip
    membership_id = int(raw_id.strip().lstrip("#"))
    found = await orgs.managed_membership(ctx.session, actor, membership_id)
    if found is None:
        return refuse(ctx, actor, command, Refusal.OUT_OF_SCOPE, f"membership:{membership_id}")
    membership, unit = found
    if action == "ok":
        done = await orgs.confirm_membership(ctx.session, membership, unit, actor=actor.who,
                                             now=ctx.now)  # fmt: skip
        if not done:
            return [Reply(_("Membership #{n} was already confirmed.").format(n=membership_id))]
        return [Reply(_("Confirmed: membership #{n} of {unit}.").format(
            n=membership_id, unit=unit.name))]  # fmt: skip
    await orgs.remove_membership(ctx.session, membership, unit, actor=actor.who, now=ctx.now)
    return [Reply(_("Removed: membership #{n} of {unit}.").format(n=membership_id,
                                                                  unit=unit.name))]


async def confirm(ctx: Context, arg: str = "") -> list[Reply]:
    return await _membership_action(ctx, "confirm", "ok", arg)


async def remove(ctx: Context, arg: str = "") -> list[Reply]:
    return await _membership_action(ctx, "remove", "rm", arg)


async def on_member_button(ctx: Context, action: str, raw_id: str) -> list[Reply]:
    """Buttons under /members: mem:ok:ID."""
    if action not in ("ok", "rm"):
        return await _membership_action(ctx, "mem", "ok", "x")
    return await _membership_action(ctx, "mem", action, raw_id)
