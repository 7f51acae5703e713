"""One entry point for the conversation: `dispatch(ctx) -> list[Reply]`.

Order of resolution: odd input (group chats, stickers, edits, oversized text) -> commands ->
a typed number or label of the last buttons -> button payloads (checked against the state)
-> free text for the current step. Whatever cannot be understood gets a plain answer and the
current step again, never silence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.domain import LANGUAGE_NAMES
from bot.i18n import _, current_language
from bot.localities import normalize
from handlers import (
    activity,
    campaign,
    certificates,
    dashboard,
    learn,
    link,
    membership,
    officer,
    onboarding,
    privacy,
    quiz,
    reminders,
)
from handlers.common import unknown_command
from handlers.context import Context
from handlers.types import Button, Kind, Reply, rows

MAX_TEXT = 4096
Step = Callable[..., Awaitable[list[Reply]]]


# ---------------------------------------------------------------------------- small steps


async def help_(ctx: Context, _arg: str = "") -> list[Reply]:
    lines = [
        _("**How to use hocvuso**"),
        _("Tap the buttons under a message, or type the number of a choice."),
        "",
        _("/menu – the topics to learn"),
        _("/progress – what you have done and what comes next"),
        _("/certificates – your certificates"),
        _("/reminders – a daily reminder to learn (or turn it off)"),
        _("/verify CODE – check a certificate"),
        _("/join – join the branch of your organisation"),
        _("/link – use the same progress on Telegram and Zalo"),
        _("/privacy – your data and your rights"),
        _("/language – change the language"),
        _("/start – start again from the welcome"),
        _("/help – this help"),
    ]
    for extra in ctx.extras.get("help_lines", []):
        lines.append(_(extra))
    return [Reply("\n".join(lines))]


async def language(ctx: Context, _arg: str = "") -> list[Reply]:
    buttons = [Button(name, f"lang:{code}") for code, name in LANGUAGE_NAMES.items()]
    return [Reply(_("Choose a language:"), rows(*buttons, per_row=2))]


async def set_language(ctx: Context, code: str) -> list[Reply]:
    if code not in LANGUAGE_NAMES:
        return await language(ctx)
    ctx.identity.language = code
    if ctx.person is not None:
        ctx.person.language = code
    current_language.set(code)
    return [
        Reply(_("Language: {name}.").format(name=LANGUAGE_NAMES[code])),
        *await current_step(ctx),
    ]


async def menu(ctx: Context, _arg: str = "") -> list[Reply]:
    return await learn.menu(ctx)


async def progress_(ctx: Context, _arg: str = "") -> list[Reply]:
    return await learn.show_progress(ctx)


async def open_lesson(ctx: Context, lesson_id: str, restart: str = "") -> list[Reply]:
    return await learn.open_lesson(ctx, lesson_id, restart=restart == "0")


# Commands: name -> step(ctx, argument). Officer and later features register more.
COMMANDS: dict[str, Step] = {
    "start": onboarding.start,
    "menu": menu,
    "progress": progress_,
    "help": help_,
    "language": language,
    "certificates": certificates.list_certificates,
    "verify": certificates.verify,
    "reminders": reminders.choose,
    "privacy": privacy.show,
    "mydata": privacy.mydata,
    "correct": privacy.correct,
    "withdraw": privacy.ask_withdraw,
    "delete": privacy.ask_delete,
    "join": membership.join,
    "link": link.command,
    # Everyone may ask who they are (officers need it to be given a role); the officer
    # commands answer non-officers exactly like an unknown command.
    "whoami": officer.whoami,
    "stats": officer.stats,
    "grant": officer.grant,
    "members": officer.members,
    "confirm": officer.confirm,
    "remove": officer.remove,
    "campaign": campaign.start,
    "campaigns": campaign.list_campaigns,
    "activity": activity.command,
    "settings": campaign.settings,
    "dashboard": dashboard.command,
}
# Officer commands decide for themselves (an officer need not be a consenting learner).
OFFICER_COMMANDS = {"whoami", "stats", "grant", "members", "confirm", "remove"}
OFFICER_COMMANDS |= {"campaign", "campaigns", "activity"}
OFFICER_COMMANDS |= {"dashboard"}
# Commands that work before the person answered the consent question.
BEFORE_CONSENT = {"start", "help", "language", "verify", "privacy", "delete"} | OFFICER_COMMANDS
BEFORE_CONSENT |= {"link"}  # it explains itself that both apps must have agreed

# Payload prefix -> step(ctx, *parts).
PAYLOADS: dict[str, Step] = {
    "consent": onboarding.on_consent,
    "commune": onboarding.on_commune,
    "gender": onboarding.on_gender,
    "age": onboarding.on_age,
    "org": onboarding.on_org,
    "menu": menu,
    "progress": progress_,
    "mod": learn.open_module,
    "les": open_lesson,
    "card": learn.next_card,
    "quiz": quiz.start,
    "ans": quiz.answer,
    "lang": set_language,
    "cert": certificates.resend,
    "remind": reminders.set_hour,
    "fix": privacy.fix,
    "confirm": privacy.confirm,
    "join": membership.on_join,
    "ounit": membership.on_unit,
    "mem": officer.on_member_button,
    "camp": campaign.on_button,
    "act": activity.on_button,
}
BEFORE_CONSENT_PAYLOADS = {"consent", "lang", "confirm", "mem"}
BEFORE_CONSENT_PAYLOADS |= {"camp", "act"}  # officer buttons, and the campaign opt-out
# Buttons of a step only count while the person is at that step.
STEP_OF_PAYLOAD = {
    "commune": onboarding.COMMUNE,
    "gender": onboarding.GENDER,
    "age": onboarding.AGE,
    "org": onboarding.ORGS,
    "ounit": membership.ORG_UNIT,
    "card": learn.LESSON,
}
# Buttons that name a module or lesson: the id must exist in the course.
NAMES_MODULE = {"mod"}
NAMES_LESSON = {"les", "card", "quiz", "ans"}

# Free text in a step that expects it.
TEXT_STEPS: dict[str, Step] = {
    onboarding.COMMUNE: onboarding.on_commune_text,
    privacy.CORRECT_NAME: privacy.name_text,
    link.WAITING: link.on_text,
    campaign.TEXT: campaign.on_text,
    campaign.AT: campaign.on_when_text,
    campaign.TIME: campaign.on_when_text,
    **dict.fromkeys((activity.TITLE, activity.DAY, activity.PLACE, activity.PLANNED,
                     activity.COUNT), activity.on_text),
}
# Officers' wizards take text before (or without) the officer's own consent as a learner.
OFFICER_TEXT_STEPS = {campaign.TEXT, campaign.AT, campaign.TIME, activity.TITLE, activity.DAY,
                      activity.PLACE, activity.PLANNED, activity.COUNT}


async def current_step(ctx: Context) -> list[Reply]:
    """Show the person where they are, e.g. after input that did not fit."""
    if _consent_needed(ctx):
        return _ask_consent(ctx)
    state = ctx.state
    if state == onboarding.COMMUNE:
        return onboarding.commune_prompt(ctx)
    if state == onboarding.GENDER:
        return onboarding.gender_prompt(ctx)
    if state == onboarding.AGE:
        return onboarding.age_prompt(ctx)
    if state == onboarding.ORGS:
        return onboarding.orgs_prompt(ctx)
    if state == membership.ORG_UNIT:
        return await membership.unit_prompt(ctx)
    if state == learn.LESSON and (lesson := ctx.curriculum.lesson(ctx.data.get("lesson", ""))):
        return learn.show_card(ctx, lesson, int(ctx.data.get("card", 0)))
    if state == quiz.QUIZ and (lesson := ctx.curriculum.lesson(ctx.data.get("lesson", ""))):
        return quiz.show_question(ctx, lesson)
    return await learn.menu(ctx)


# ---------------------------------------------------------------------------- dispatch


def parse_command(text: str) -> tuple[str, str] | None:
    """'/start org_x' -> ('start', 'org_x'); '/menu@hocvuso_bot' -> ('menu', '')."""
    if not text.startswith("/") or len(text) < 2:
        return None
    head, _sep, arg = text[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    if not name.isascii() or not name.replace("_", "").isalnum():
        return None
    return name, arg.strip()


def typed_choice(ctx: Context, text: str) -> str | None:
    """A typed "2" or a typed label (accent-insensitive) of the last buttons -> its payload."""
    offered = ctx.data.get("_buttons") or []
    if not offered:
        return None
    t = text.strip().rstrip(".)")
    if t.isdigit() and 1 <= int(t) <= len(offered):
        return offered[int(t) - 1][1]
    wanted = normalize(text)
    if not wanted:
        return None
    for label_, payload in offered:
        if normalize(label_) == wanted:
            return payload
    return None


def _consent_needed(ctx: Context) -> bool:
    return ctx.identity.consent == "pending" or privacy.needs_new_consent(ctx)


def _ask_consent(ctx: Context) -> list[Reply]:
    if privacy.needs_new_consent(ctx):
        return [Reply(_("We have updated how we look after your data. Please read it again and "
                        "tell us whether you agree.")), *onboarding.consent_prompt()]
    return onboarding.consent_prompt()


def _payload_fits(ctx: Context, prefix: str, parts: list[str]) -> bool:
    """Is this button still meaningful where the person is now?"""
    step = STEP_OF_PAYLOAD.get(prefix)
    if step is not None and ctx.state != step:
        return False
    if prefix in NAMES_MODULE:
        return bool(parts) and ctx.curriculum.module(parts[0]) is not None
    if prefix in NAMES_LESSON:
        return bool(parts) and ctx.curriculum.lesson(parts[0]) is not None
    return True


async def run_payload(ctx: Context, payload: str) -> list[Reply]:
    prefix, *parts = payload.split(":")
    step = PAYLOADS.get(prefix)
    if step is None or len(parts) > 3 or len(payload) > 128:
        return [Reply(_("That button is no longer valid.")), *await current_step(ctx)]
    if _consent_needed(ctx) and prefix not in BEFORE_CONSENT_PAYLOADS:
        return _ask_consent(ctx)
    if not _payload_fits(ctx, prefix, parts):
        return [Reply(_("That button is no longer valid.")), *await current_step(ctx)]
    try:
        return await step(ctx, *parts)
    except TypeError:  # wrong number of parts: a forged or outdated payload
        return [Reply(_("That button is no longer valid.")), *await current_step(ctx)]


async def dispatch(ctx: Context) -> list[Reply]:
    msg = ctx.msg
    if msg.kind in (Kind.STICKER, Kind.MEDIA):
        return [
            Reply(
                _(
                    "I can only read text and buttons for now. Please tap a button or "
                    "type a message."
                )
            ),
            *await current_step(ctx),
        ]
    if msg.kind == Kind.EDITED:
        return [Reply(_("I do not read edited messages. Please send a new message instead."))]
    if msg.kind == Kind.FOLLOW:
        return await onboarding.start(ctx, "")
    if msg.kind == Kind.OTHER or msg.kind == Kind.UNFOLLOW:
        return []
    if msg.kind == Kind.BUTTON and msg.payload is not None:
        return await run_payload(ctx, msg.payload)
    text = msg.text.strip()
    if len(text) > MAX_TEXT:
        return [
            Reply(_("Your message is too long for me. Please send something shorter.")),
            *await current_step(ctx),
        ]
    if not text:
        return await current_step(ctx)
    command = parse_command(text)
    if command is not None:
        name, arg = command
        step = COMMANDS.get(name)
        if step is None:
            return unknown_command(name)
        if _consent_needed(ctx) and name not in BEFORE_CONSENT:
            return _ask_consent(ctx)
        return await step(ctx, arg)
    payload = typed_choice(ctx, text)
    if payload is not None:
        return await run_payload(ctx, payload)
    if _consent_needed(ctx) and ctx.state not in OFFICER_TEXT_STEPS:
        return [
            Reply(_("Please answer with the buttons below (or type 1 or 2).")),
            *_ask_consent(ctx),
        ]
    text_step = TEXT_STEPS.get(ctx.state)
    if text_step is not None:
        return await text_step(ctx, text)
    return [
        Reply(_("Sorry, I did not understand. Please tap one of the buttons, or type /help.")),
        *await current_step(ctx),
    ]
