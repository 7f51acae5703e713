"""The person's rights in the chat: /privacy, /mydata, /correct, /withdraw, /delete.

Every request is answered at once. Withdrawing and deleting ask for a confirmation first; the
confirmation button only works right after it was offered.
"""

from __future__ import annotations

import json

from bot.domain import CONSENT_VERSION
from bot.i18n import _, fmt_datetime
from bot.services import privacy
from handlers import learn, onboarding
from handlers.context import Context
from handlers.types import Button, Reply, rows

CORRECT_NAME, CONFIRM = "correct_name", "confirm"
MAX_NAME = 64


def _not_consented() -> list[Reply]:
    return [Reply(_("We keep nothing about you: you have not agreed to let us keep your data. "
                    "Only your chat id and where you are in the conversation are kept while "
                    "you use the bot."))]


async def show(ctx: Context, _arg: str = "") -> list[Reply]:
    """/privacy: what is kept, why, who sees it, for how long, and the person's commands."""
    lines = [
        _("**Your data and your rights**"),
        _("**What we keep:** the name you use in this app, your commune, the organisations you "
          "chose, your age group and gender if you gave them, and the lessons and quizzes you "
          "did."),
        _("**Why:** to remember your progress, issue certificates and count participation in "
          "the \"Bình dân học vụ số\" movement."),
        _("**Who sees it:** organisations see totals only; an officer of your own branch may see "
          "your name as a member, and every such view is recorded."),
        _("**How long:** until you delete it; if you do not use the bot for {years} years, we "
          "remove everything that points to you.").format(
              years=ctx.settings.retention_days // 365),
    ]
    if ctx.consented and ctx.person is not None:
        lines.append(_("You agreed to version {version} on {when}.").format(
            version=ctx.person.consent_version, when=fmt_datetime(ctx.person.consented_at)))
    else:
        lines.append(_("You have not agreed, so we keep nothing about you."))
    lines += [
        "",
        _("/mydata – get a copy of your data"),
        _("/correct – correct your name, commune, organisations, age group or gender"),
        _("/withdraw – withdraw your consent (you can still read the lessons)"),
        _("/delete – delete all your data"),
    ]
    return [Reply("\n".join(lines))]


async def mydata(ctx: Context, _arg: str = "") -> list[Reply]:
    if not ctx.consented or ctx.person is None:
        return _not_consented()
    data = await privacy.export(ctx.session, ctx.person)
    body = json.dumps(data, ensure_ascii=False, indent=2).encode()
    text = _("Here is a copy of all the data we keep about you (a JSON file).")
    if ctx.settings.public_url:
        token = await privacy.download_link(ctx.session, ctx.person, ctx.now)
        text += "\n" + _("If you cannot open the file here, use this link once within an hour: "
                         "{url}").format(url=f"{ctx.settings.public_url}/download/{token}")
    return [Reply(text, document=body, document_name="hocvuso-du-lieu-cua-toi.json")]


async def correct(ctx: Context, _arg: str = "") -> list[Reply]:
    if not ctx.consented or ctx.person is None:
        return _not_consented()
    ctx.goto(learn.MENU)
    buttons = [
        Button(_("Name"), "fix:name"),
        Button(_("Commune"), "fix:commune"),
        Button(_("Organisations"), "fix:orgs"),
        Button(_("Age group"), "fix:age"),
        Button(_("Gender"), "fix:gender"),
    ]
    person = ctx.person
    commune = ctx.localities.get(person.commune_code) if person.commune_code else None
    text = _("What would you like to correct?\nName: {name}\nCommune: {commune}").format(
        name=person.display_name or "—", commune=commune.label if commune else "—")
    return [Reply(text, rows(*buttons, per_row=2))]


async def fix(ctx: Context, what: str) -> list[Reply]:
    if not ctx.consented or ctx.person is None:
        return _not_consented()
    ctx.remember(_editing=True)
    if what == "name":
        ctx.goto(CORRECT_NAME)
        return [Reply(_("Type the name you want us to use (at most {n} characters).").format(
            n=MAX_NAME))]
    if what == "commune":
        return onboarding.commune_prompt(ctx)
    if what == "orgs":
        ctx.goto("")
        return onboarding.orgs_prompt(ctx)
    if what == "age":
        return onboarding.age_prompt(ctx)
    if what == "gender":
        return onboarding.gender_prompt(ctx)
    return await correct(ctx)


async def name_text(ctx: Context, text: str) -> list[Reply]:
    name = " ".join(text.split())
    if not name or len(name) > MAX_NAME or name.startswith("/"):
        return [Reply(_("Type the name you want us to use (at most {n} characters).").format(
            n=MAX_NAME))]
    assert ctx.person is not None
    ctx.person.display_name = name
    ctx.goto(learn.MENU)
    ctx.remember(_editing=False)
    ctx.record("profile_changed", detail={"field": "display_name"})
    return [Reply(_("Saved: {name}.").format(name=name)), *await learn.menu(ctx)]


async def ask_withdraw(ctx: Context, _arg: str = "") -> list[Reply]:
    if not ctx.consented:
        return _not_consented()
    ctx.goto(CONFIRM, action="withdraw")
    return [Reply(_("Withdraw your consent? We will stop recording your learning and erase your "
                    "name, commune, organisations, progress and certificates. You can still "
                    "read the lessons."),
                  rows(Button(_("Yes, withdraw"), "confirm:withdraw"),
                       Button(_("No, keep my data"), "confirm:cancel")))]


async def ask_delete(ctx: Context, _arg: str = "") -> list[Reply]:
    if ctx.identity.person is None and ctx.identity.consent == "pending":
        return _not_consented()
    ctx.goto(CONFIRM, action="delete")
    return [Reply(_("Delete all your data? Your profile, progress and certificates will be "
                    "erased on every app you linked, and this cannot be undone. Totals that "
                    "were already counted stay, without anything that points to you."),
                  rows(Button(_("Yes, delete everything"), "confirm:delete"),
                       Button(_("No, keep my data"), "confirm:cancel")))]


async def confirm(ctx: Context, action: str) -> list[Reply]:
    if ctx.state != CONFIRM or action not in ("withdraw", "delete", "cancel") or (
        action != "cancel" and ctx.data.get("action") != action
    ):
        return [Reply(_("That button is no longer valid.")), *await learn.menu(ctx)]
    if action == "cancel":
        return [Reply(_("Nothing was changed.")), *await learn.menu(ctx)]
    if action == "withdraw":
        await privacy.withdraw(ctx.session, ctx.identity, ctx.now)
        ctx.goto(learn.MENU)
        return [Reply(_("Your consent is withdrawn and your personal data erased. You can keep "
                        "reading the lessons; type /start if you ever want to agree again.")),
                *await learn.menu(ctx)]
    if ctx.identity.person is not None:
        await privacy.erase(ctx.session, ctx.identity.person, ctx.now)
    else:
        await privacy.erase_identity(ctx.session, ctx.identity, ctx.now)
    return [Reply(_("All your data has been deleted. Thank you for learning with us. If you "
                    "write again, we will start as strangers."))]


def needs_new_consent(ctx: Context) -> bool:
    """The consent text changed materially since the person agreed: ask again first."""
    return (ctx.consented and ctx.person is not None
            and ctx.person.consent_version != CONSENT_VERSION)
