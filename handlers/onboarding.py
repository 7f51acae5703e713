"""/start, consent, and the few questions about the person (commune, gender, age, groups).

Steps read like a table: each prompt function shows a step; each `on_*` takes the answer and
returns the next step. Nothing personal is stored until the person presses "Đồng ý".
"""

from __future__ import annotations

import re

from bot.db.models import Person
from bot.domain import AGE_BANDS, CONSENT_VERSION, GENDERS, ORG_TYPES
from bot.i18n import _
from bot.services import privacy
from handlers import activity, learn, membership, officer
from handlers.context import Context
from handlers.types import Button, Reply, rows

CONSENT, COMMUNE, GENDER, AGE, ORGS = "consent", "commune", "gender", "age", "orgs"
START_CODE_RE = re.compile(r"^(org|act|inv)_([A-Za-z0-9_-]{1,48})$")
MAX_NAME = 64


def consent_prompt() -> list[Reply]:
    text = _(
        "**Before we start, please read and agree**\n\n"
        "To keep your learning progress and give certificates, hocvuso stores: the name you "
        "use in this app, your commune, the organisations you belong to (if you tell us), "
        "your age group and gender (if you tell us), and the lessons and quizzes you do.\n\n"
        "**Why:** to remember where you stopped, to issue certificates, and to count "
        'participation for the "Bình dân học vụ số" movement.\n'
        "**Who sees it:** organisations see only totals; an officer of your own branch may "
        "see your name as a member. We never sell or share your data.\n"
        "**Your rights:** you can see, correct or delete your data, or withdraw consent, at "
        "any time.\n\n"
        "If you do not agree, you can still read the lessons; nothing about you is kept."
    )
    return [
        Reply(
            text,
            rows(
                Button(_("I agree"), "consent:yes"),
                Button(_("I do not agree"), "consent:no"),
                per_row=2,
            ),
        )
    ]


async def start(ctx: Context, arg: str) -> list[Reply]:
    """/start [org_CODE | act_CODE | inv_TOKEN]: welcome, join the unit of the link (or an
    officer invitation), ask consent once."""
    invite = START_CODE_RE.match(arg.strip()) if arg else None
    notes: list[Reply] = []
    if arg and not invite:
        notes.append(Reply(_("That invitation link is not valid; you can still use the bot.")))
    if invite and invite.group(1) == "org":
        notes.extend(await membership.join_by_link(ctx, invite.group(2)))
    elif invite and invite.group(1) == "act":
        notes.extend(await activity.check_in_link(ctx, invite.group(2)))
    elif invite and invite.group(1) == "inv":
        notes.extend(await officer.accept_invite(ctx, invite.group(2)))
    if ctx.identity.consent == "pending":
        ctx.goto(CONSENT)
        welcome = Reply(
            _(
                'Hello! I am **hocvuso**, the learning assistant of the "Bình dân học vụ số" '
                "(digital skills for everyone) movement.\n"
                "With me you learn, in a few minutes a day, to use your phone safely: VNeID, "
                "online public services, cashless payment, avoiding scams..."
            )
        )
        return [*notes, welcome, *consent_prompt()]
    resume = learn.resume_button(ctx)
    menu = await learn.menu(ctx)
    if resume:
        return [
            *notes,
            Reply(_("Welcome back! Continue where you left off?"), rows(resume)),
            *menu,
        ]
    return [*notes, Reply(_("Welcome back!")), *menu]


async def on_consent(ctx: Context, answer: str) -> list[Reply]:
    if answer == "no":
        if ctx.identity.consent == "given" and ctx.person is not None:
            if ctx.person.consent_version == CONSENT_VERSION:
                return [Reply(_("You have already agreed. To withdraw, type /withdraw."))]
            await privacy.withdraw(ctx.session, ctx.identity, ctx.now)
        ctx.identity.consent = "declined"
        ctx.goto(learn.MENU)
        return [
            Reply(
                _(
                    "No problem. Nothing about you is kept. You can still read the "
                    "lessons; if you change your mind, type /start."
                )
            ),
            *await learn.menu(ctx),
        ]
    if answer != "yes":
        return consent_prompt()
    if ctx.consented and ctx.person is not None and ctx.person.consent_version != CONSENT_VERSION:
        ctx.person.consent_version = CONSENT_VERSION
        ctx.person.consented_at = ctx.now
        ctx.record("consent_renewed", detail={"consent_version": CONSENT_VERSION})
        return [Reply(_("Thank you! Let us continue.")), *await learn.menu(ctx)]
    if ctx.identity.consent != "given" or ctx.person is None:
        name = (ctx.msg.display_name or "").strip()[:MAX_NAME] or None
        person = Person(
            display_name=name, language=ctx.identity.language, consent_version=CONSENT_VERSION,
            consented_at=ctx.now, invited_by=ctx.data.get("_invited_by"), created_at=ctx.now,
            last_active_at=ctx.now,
        )  # fmt: skip
        person.memberships = []
        ctx.session.add(person)
        await ctx.session.flush()
        ctx.identity.person = person
        ctx.identity.person_id = person.id
        ctx.identity.consent = "given"
        ctx.record(
            "registered",
            detail={"consent_version": CONSENT_VERSION, "invited_by": person.invited_by},
        )
    joined = await membership.join_remembered(ctx)
    joined += await activity.check_in_remembered(ctx)
    return [
        *joined,
        Reply(_("Thank you! Just a few quick questions so the lessons fit you.")),
        *commune_prompt(ctx),
    ]


# ---------------------------------------------------------------------------- commune


def commune_prompt(ctx: Context, note: str | None = None) -> list[Reply]:
    ctx.goto(COMMUNE)
    text = _(
        "Which commune or ward do you live in? Type its name, for example: "
        "**Hải Hậu** or **Giao Thủy**."
    )
    return [
        Reply(
            f"{note}\n\n{text}" if note else text,
            rows(Button(_("I live in another province"), "commune:other")),
        )
    ]


async def on_commune_text(ctx: Context, text: str) -> list[Reply]:
    matches = ctx.localities.search(text)
    if not matches:
        province = ctx.localities.resolve_province(text)
        if province is not None:
            note = _(
                "{old} is now part of {province}. Please type the name of your commune or ward."
            ).format(old=text.strip()[:40], province=province[1])
        else:
            note = _(
                'I could not find "{text}". Please check the spelling and type the '
                "commune or ward name again."
            ).format(text=text.strip()[:40])
        return commune_prompt(ctx, note)
    if len(matches) == 1 and matches[0].via is None:
        return await _set_commune(ctx, matches[0].commune.code)
    buttons = [Button(m.commune.button_label, f"commune:{m.commune.code}") for m in matches]
    ctx.goto(COMMUNE, options=[m.commune.code for m in matches])
    lines = [_("Which one is yours?")]
    for m in matches:
        if m.via:
            old = m.via.removesuffix(" (cũ)")
            line = _("• {new} (formerly part of {old})")
            lines.append(line.format(new=m.commune.label, old=old))
    buttons.append(Button(_("None of these"), "commune:retry"))
    return [Reply("\n".join(lines), rows(*buttons))]


async def on_commune(ctx: Context, value: str) -> list[Reply]:
    if value == "retry":
        return commune_prompt(ctx)
    if value == "other":
        return await _set_commune(ctx, None)
    if not value.isdigit() or ctx.localities.get(int(value)) is None:
        return commune_prompt(ctx, _("That choice is no longer valid."))
    return await _set_commune(ctx, int(value))


async def _set_commune(ctx: Context, code: int | None) -> list[Reply]:
    person = ctx.person
    if person is None:  # declined consent: we keep nothing, so nothing to ask
        return await learn.menu(ctx)
    changed = person.commune_code != code
    person.commune_code = code
    if changed:
        ctx.record("profile_changed", detail={"field": "commune"})
    commune = ctx.localities.get(code) if code is not None else None
    done = (
        _("Saved: {commune}.").format(commune=commune.label)
        if commune
        else _("Saved: you live in another province.")
    )
    if ctx.data.get("_editing"):
        ctx.goto(learn.MENU)
        ctx.remember(_editing=False)
        return [Reply(done), *await learn.menu(ctx)]
    return [Reply(done), *gender_prompt(ctx)]


# ---------------------------------------------------------------------------- gender, age


def gender_prompt(ctx: Context) -> list[Reply]:
    ctx.goto(GENDER)
    buttons = [Button(_(label), f"gender:{key}") for key, label in GENDERS.items()]
    return [
        Reply(
            _("Are you male or female? (used only in totals, you may skip)"),
            (tuple(buttons), (Button(_("Skip"), "gender:skip"),)),
        )
    ]


async def on_gender(ctx: Context, value: str) -> list[Reply]:
    if value not in GENDERS and value != "skip":
        return gender_prompt(ctx)
    if ctx.person is not None and value != "skip" and ctx.person.gender != value:
        ctx.person.gender = value
        ctx.record("profile_changed", detail={"field": "gender"})
    if ctx.data.get("_editing"):
        return await _edited(ctx)
    return age_prompt(ctx)


def age_prompt(ctx: Context) -> list[Reply]:
    ctx.goto(AGE)
    buttons = [Button(_(label), f"age:{key}") for key, label in AGE_BANDS.items()]
    return [
        Reply(
            _("How old are you? (used only in totals, you may skip)"),
            (*rows(*buttons, per_row=3), (Button(_("Skip"), "age:skip"),)),
        )
    ]


async def on_age(ctx: Context, value: str) -> list[Reply]:
    if value not in AGE_BANDS and value != "skip":
        return age_prompt(ctx)
    if ctx.person is not None and value != "skip" and ctx.person.age_band != value:
        ctx.person.age_band = value
        ctx.record("profile_changed", detail={"field": "age_band"})
    if ctx.data.get("_editing"):
        return await _edited(ctx)
    return orgs_prompt(ctx)


async def _edited(ctx: Context) -> list[Reply]:
    """End of a /correct step: back to the menu."""
    ctx.goto(learn.MENU)
    ctx.remember(_editing=False)
    return [Reply(_("Saved.")), *await learn.menu(ctx)]



# ---------------------------------------------------------------------------- memberships


def orgs_prompt(ctx: Context) -> list[Reply]:
    chosen = (
        set(ctx.data.get("chosen", []))
        if ctx.state == ORGS
        else {m.org_type for m in (ctx.person.memberships if ctx.person else [])}
    )
    ctx.goto(ORGS, chosen=sorted(chosen))
    buttons = [
        Button(("☑ " if key in chosen else "☐ ") + _(label), f"org:{key}")
        for key, label in ORG_TYPES.items()
    ]
    buttons.append(Button(_("Done") if chosen else _("I am not a member"), "org:done"))
    return [
        Reply(
            _(
                "Are you a member of any of these organisations? Tap each one that "
                'applies, then tap "Done".'
            ),
            rows(*buttons),
        )
    ]


async def on_org(ctx: Context, value: str) -> list[Reply]:
    if ctx.state != ORGS:
        return orgs_prompt(ctx)
    chosen = set(ctx.data.get("chosen", []))
    if value in ORG_TYPES:
        chosen ^= {value}
        ctx.remember(chosen=sorted(chosen))
        return orgs_prompt(ctx)
    if value != "done":
        return orgs_prompt(ctx)
    person = ctx.person
    if person is not None:
        current = {m.org_type: m for m in person.memberships}
        for org_type in sorted(chosen - current.keys()):
            person.memberships.append(await membership.new_membership(ctx, org_type))
            await ctx.session.flush()
            ctx.record("joined_org", detail={"org_type": org_type})
        for org_type in sorted(current.keys() - chosen):
            person.memberships.remove(current[org_type])
            await ctx.session.flush()
            ctx.record("left_org", detail={"org_type": org_type})
    asked = await membership.ask_units(ctx)
    return asked if asked is not None else await finish_orgs(ctx)


async def finish_orgs(ctx: Context) -> list[Reply]:
    """After the memberships (and their branches): on to the topics."""
    if ctx.data.get("_editing"):
        return await _edited(ctx)
    ctx.goto(learn.MENU)
    return [
        Reply(
            _(
                "All set! Here are the topics. Each lesson takes about 3 minutes and ends "
                "with a short quiz."
            )
        ),
        *await learn.menu(ctx),
    ]
