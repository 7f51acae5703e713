"""Citizens and units: joining by deep link (`/start org_<code>`), choosing the unit of their
commune after choosing organisation types in onboarding, and /join later.

Memberships are self-declared; officers confirm or remove them (handlers/officer.py).
"""

from __future__ import annotations

import logging

from bot.db.models import Membership, OrgUnit
from bot.domain import ALL_ORG_TYPES
from bot.i18n import _
from bot.services import orgs
from handlers.context import Context
from handlers.learn import label
from handlers.types import Button, Reply, rows

log = logging.getLogger(__name__)

ORG_UNIT = "org_unit"
MAX_CHOICES = 7


def _joined_text(outcome: str, unit: OrgUnit) -> str:
    if outcome == "already":
        return _("You are already a member of {unit}.").format(unit=unit.name)
    if outcome == "moved":
        return _("Your membership now belongs to {unit}.").format(unit=unit.name)
    if outcome == "front":
        return _("Welcome! You came through {unit}.").format(unit=unit.name)
    return _("You joined {unit}. Its officers may confirm your membership.").format(
        unit=unit.name
    )


async def join_by_link(ctx: Context, code: str) -> list[Reply]:
    """`/start org_<join code>` or `/join <join code>`: join now if they consented, else
    remember it and join right after they agree."""
    unit = await orgs.unit_by_join_code(ctx.session, code)
    if unit is None:
        log.info("refused join code %r from %s:%s", code[:48], ctx.msg.channel, ctx.msg.user_id)
        return [Reply(_("That invitation link is not valid; you can still use the bot."))]
    if ctx.consented and ctx.person is not None:
        outcome = await orgs.join_unit(ctx.session, ctx.person, unit, now=ctx.now,
                                       channel=ctx.msg.channel)  # fmt: skip
        return [Reply(_joined_text(outcome, unit))]
    ctx.remember(_invited_by=unit.code, _join=unit.join_code)
    if ctx.identity.consent == "declined":
        return [Reply(_("To join {unit}, hocvuso needs your agreement to keep your data: type "
                        "/start and tap \"I agree\".").format(unit=unit.name))]  # fmt: skip
    return []


async def join_remembered(ctx: Context) -> list[Reply]:
    """Right after consent: join the unit of the deep link they came through, if any."""
    code = ctx.data.get("_join")
    if not code or ctx.person is None:
        return []
    kept = {k: v for k, v in ctx.data.items() if k != "_join"}
    ctx.identity.state_data = kept
    unit = await orgs.unit_by_join_code(ctx.session, code)
    if unit is None:  # removed since the link was opened
        return []
    outcome = await orgs.join_unit(ctx.session, ctx.person, unit, now=ctx.now,
                                   channel=ctx.msg.channel)  # fmt: skip
    return [Reply(_joined_text(outcome, unit))]


async def join(ctx: Context, arg: str = "") -> list[Reply]:
    """/join [CODE]: join a unit by its code, or choose among the units of your commune."""
    if not ctx.consented or ctx.person is None:
        return [Reply(_("To join a unit, first agree to let hocvuso keep your data: type "
                        "/start."))]  # fmt: skip
    if arg.strip():
        return await join_by_link(ctx, arg.strip().split()[0])
    commune = ctx.person.commune_code
    units: list[OrgUnit] = []
    if commune is not None:
        for org_type in ALL_ORG_TYPES:
            if org_type != "mttq":
                units.extend(await orgs.candidates(ctx.session, commune, org_type))
    if not units:
        return [Reply(_("There are no units of your commune in hocvuso yet. If your branch "
                        "gave you a link or a code, open the link or type /join CODE."))]
    buttons = [Button(label(u.name), f"join:{u.join_code}") for u in units[:MAX_CHOICES * 2]]
    return [Reply(_("Which unit do you want to join? (You can be in one unit of each "
                    "organisation.)"), rows(*buttons))]  # fmt: skip


async def on_join(ctx: Context, code: str) -> list[Reply]:
    return await join_by_link(ctx, code)


# ---------------------------------------------------------------------------- onboarding


async def new_membership(ctx: Context, org_type: str) -> Membership:
    """A membership chosen in onboarding, attached to the commune's unit of that type when
    there is exactly one (several: `ask_units` asks which)."""
    unit_code = None
    person = ctx.person
    if person is not None and person.commune_code is not None:
        found = await orgs.candidates(ctx.session, person.commune_code, org_type)
        if len(found) == 1:
            unit_code = found[0].code
    return Membership(org_type=org_type, unit_code=unit_code, since=ctx.now)


async def _pending(ctx: Context) -> tuple[Membership, list[OrgUnit]] | None:
    person = ctx.person
    if person is None or person.commune_code is None:
        return None
    asked = set(ctx.data.get("asked", [])) if ctx.state == ORG_UNIT else set()
    for m in sorted(person.memberships, key=lambda m: m.org_type):
        if m.unit_code is None and m.org_type not in asked:
            found = await orgs.candidates(ctx.session, person.commune_code, m.org_type)
            if len(found) > 1:
                return m, found
    return None


async def ask_units(ctx: Context) -> list[Reply] | None:
    """After the organisation types: for a membership without a unit whose commune has
    several units of that type, ask which one; None when there is nothing to ask."""
    pending = await _pending(ctx)
    if pending is None:
        return None
    membership, found = pending
    before = ctx.data.get("asked", []) if ctx.state == ORG_UNIT else []
    asked = sorted({*before, membership.org_type})
    ctx.goto(ORG_UNIT, org_type=membership.org_type, asked=asked)
    buttons = [Button(label(u.name), f"ounit:{u.join_code}") for u in found[:MAX_CHOICES]]
    buttons.append(Button(_("Not sure"), "ounit:skip"))
    org = _(ALL_ORG_TYPES[membership.org_type])
    return [Reply(_("Which branch of the {org} are you in?").format(org=org), rows(*buttons))]


async def unit_prompt(ctx: Context) -> list[Reply]:
    """Show the branch question again (after input that did not fit)."""
    org_type = ctx.data.get("org_type")
    person = ctx.person
    if person is None or person.commune_code is None or org_type not in ALL_ORG_TYPES:
        from handlers import onboarding

        return await onboarding.finish_orgs(ctx)
    found = await orgs.candidates(ctx.session, person.commune_code, org_type)
    buttons = [Button(label(u.name), f"ounit:{u.join_code}") for u in found[:MAX_CHOICES]]
    buttons.append(Button(_("Not sure"), "ounit:skip"))
    org = _(ALL_ORG_TYPES[org_type])
    return [Reply(_("Which branch of the {org} are you in?").format(org=org), rows(*buttons))]


async def on_unit(ctx: Context, code: str) -> list[Reply]:
    """The branch chosen (or "Not sure": the commune's own unit when there is one)."""
    from handlers import onboarding

    person = ctx.person
    org_type = ctx.data.get("org_type")
    memberships = person.memberships if person is not None else []
    membership = next((m for m in memberships if m.org_type == org_type), None)
    if person is None or membership is None or person.commune_code is None:
        return await onboarding.finish_orgs(ctx)
    found = await orgs.candidates(ctx.session, person.commune_code, org_type)
    if code == "skip":
        ids = {u.id for u in found}
        tops = [u for u in found if u.parent_id not in ids]
        unit = tops[0] if len(tops) == 1 else None
    else:
        unit = next((u for u in found if u.join_code == code), None)
        if unit is None:  # a forged or outdated button: ask again
            return [Reply(_("That choice is no longer valid.")), *await unit_prompt(ctx)]
    if unit is not None and membership.unit_code != unit.code:
        membership.unit_code = unit.code
        await ctx.session.flush()
        ctx.record("joined_org", detail={"org_type": org_type, "unit": unit.code})
    more = await ask_units(ctx)
    return more if more is not None else await onboarding.finish_orgs(ctx)
