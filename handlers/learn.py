"""The menu, modules, lesson cards and /progress.

Where someone is in a lesson lives in the identity's state (for everyone) and in
`lesson_progress` (for people who consented), so leaving and coming back resumes at the card.
"""

from __future__ import annotations

from bot.db.models import LessonProgress
from bot.i18n import TZ, _, ngettext
from bot.services import progress
from content.loader import Lesson, Module, text_for
from handlers.context import Context
from handlers.types import Button, Reply, rows

MENU, LESSON = "menu", "lesson"
BUTTON_MAX = 35


def label(text: str, prefix: str = "") -> str:
    """A button label of at most 35 characters (Zalo OA cuts longer ones)."""
    full = prefix + text
    if len(full) <= BUTTON_MAX:
        return full
    cut = full[: BUTTON_MAX - 1].rsplit(" ", 1)[0]
    return cut + "…"


def lang(ctx: Context) -> str:
    return ctx.identity.language


async def _rows(ctx: Context) -> dict[str, LessonProgress]:
    if ctx.consented and ctx.person is not None:
        return await progress.lesson_rows(ctx.session, ctx.person.id)
    return {}


async def menu(ctx: Context) -> list[Reply]:
    resume = resume_button(ctx)
    ctx.goto(MENU)
    done = await _rows(ctx)
    buttons = [resume] if resume else []
    for module in ctx.curriculum.modules:
        n = progress.passed_count(module, done)
        mark = "✅ " if n == len(module.lessons) else ("▶ " if n else "")
        buttons.append(Button(label(text_for(module.short_title, lang(ctx)), mark),
                              f"mod:{module.id}"))
    buttons.append(Button(_("📊 My progress"), "progress"))
    return [Reply(_("**Choose a topic to learn:**"), rows(*buttons))]


async def open_module(ctx: Context, module_id: str) -> list[Reply]:
    module = ctx.curriculum.module(module_id)
    if module is None:
        return [Reply(_("That topic is no longer available.")), *await menu(ctx)]
    done = await _rows(ctx)
    buttons = []
    for lesson in module.lessons:
        row = done.get(lesson.id)
        mark = "✅ " if row and row.quiz_passed_at else ""
        buttons.append(Button(label(text_for(lesson.title, lang(ctx)), mark), f"les:{lesson.id}"))
    buttons.append(Button(_("⬅ Back to topics"), "menu"))
    text = f"**{text_for(module.title, lang(ctx))}**\n{text_for(module.summary, lang(ctx))}"
    ctx.goto(MENU)
    return [Reply(text, rows(*buttons))]


async def open_lesson(ctx: Context, lesson_id: str, restart: bool = False) -> list[Reply]:
    """Open a lesson where the person left it (or from the start)."""
    lesson = ctx.curriculum.lesson(lesson_id)
    if lesson is None:
        return [Reply(_("That lesson is no longer available.")), *await menu(ctx)]
    card = 0
    resume = ctx.data.get("_resume") or {}
    if resume.get("lesson") == lesson.id:
        card = int(resume.get("card", 0))
    if ctx.consented and ctx.person is not None:
        row = await progress.lesson_row(ctx.session, ctx.person.id, lesson.id)
        if row is None:
            row = LessonProgress(
                person_id=ctx.person.id,
                lesson_id=lesson.id,
                module_id=lesson.module_id,
                card=0,
                started_at=ctx.now,
            )
            ctx.session.add(row)
            await _started(ctx, lesson)
        elif restart or (row.quiz_passed_at is not None and row.card >= len(lesson.cards) - 1):
            row.card = 0
            await _started(ctx, lesson)
        card = row.card
    if restart:
        card = 0
    card = max(0, min(card, len(lesson.cards) - 1))
    return show_card(ctx, lesson, card)


async def _started(ctx: Context, lesson: Lesson) -> None:
    """Record a lesson start and credit the campaign that led to it (if one did)."""
    ctx.record("lesson_started", module_id=lesson.module_id, lesson_id=lesson.id)
    if ctx.consented and ctx.person is not None:
        from bot.services import campaigns

        await campaigns.credit_lesson_start(ctx.session, ctx.person, at=ctx.now,
                                            channel=ctx.msg.channel)  # fmt: skip


def show_card(ctx: Context, lesson: Lesson, index: int) -> list[Reply]:
    ctx.goto(LESSON, lesson=lesson.id, card=index)
    ctx.remember(_resume={"lesson": lesson.id, "card": index})
    module = ctx.curriculum.module_of(lesson)
    head = _("📖 {lesson} · card {n}/{total}").format(
        lesson=text_for(lesson.title, lang(ctx)), n=index + 1, total=len(lesson.cards)
    )
    card = lesson.cards[index]
    last = index == len(lesson.cards) - 1
    nav = (
        Button(_("Take the quiz ✍"), f"quiz:{lesson.id}")
        if last
        else Button(_("Next ▶"), f"card:{lesson.id}:{index}")
    )
    back = Button(_("⬅ Topic"), f"mod:{module.id}")
    return [
        Reply(
            f"**{head}**\n\n{text_for(card.text, lang(ctx))}", ((nav,), (back,)), image=card.image
        )
    ]


async def next_card(ctx: Context, lesson_id: str, index: str) -> list[Reply]:
    """ "Next" pressed on card `index`. A stale button re-shows where the person really is."""
    lesson = ctx.curriculum.lesson(lesson_id)
    if lesson is None:
        return [Reply(_("That lesson is no longer available.")), *await menu(ctx)]
    here = ctx.state == LESSON and ctx.data.get("lesson") == lesson.id
    if not here:
        return await open_lesson(ctx, lesson.id)
    current = int(ctx.data.get("card", 0))
    if not index.isdigit() or int(index) != current:
        return show_card(ctx, lesson, current)
    new = current + 1
    if new >= len(lesson.cards):
        return show_card(ctx, lesson, current)
    if ctx.consented and ctx.person is not None:
        row = await progress.lesson_row(ctx.session, ctx.person.id, lesson.id)
        if row is not None:
            row.card = new
            if new == len(lesson.cards) - 1 and row.completed_at is None:
                row.completed_at = ctx.now
                ctx.record("lesson_completed", module_id=lesson.module_id, lesson_id=lesson.id)
    return show_card(ctx, lesson, new)


def resume_button(ctx: Context) -> Button | None:
    """A button back into the lesson the person left unfinished, if any."""
    lesson = ctx.curriculum.lesson(str((ctx.data.get("_resume") or {}).get("lesson", "")))
    if lesson is None:
        return None
    return Button(label(text_for(lesson.title, lang(ctx)), _("▶ Continue: ")), f"les:{lesson.id}")


async def show_progress(ctx: Context) -> list[Reply]:
    if not ctx.consented:
        return [
            Reply(
                _(
                    "Your progress is not saved because you have not agreed to let us keep "
                    "it. Type /start if you want to agree."
                )
            ),
            *await menu(ctx),
        ]
    done = await _rows(ctx)
    lines = [_("**Your progress**")]
    for module in ctx.curriculum.modules:
        n = progress.passed_count(module, done)
        mark = "✅" if n == len(module.lessons) else ("▶" if n else "○")
        lines.append(
            _("{mark} {module}: {n}/{total} lessons passed").format(
                mark=mark, module=text_for(module.title, lang(ctx)), n=n, total=len(module.lessons)
            )
        )
    days = await progress.streak(ctx.session, ctx.person.person_key, ctx.now.astimezone(TZ).date())
    if days:
        lines.append(ngettext("🔥 Learning streak: {n} day in a row",
                              "🔥 Learning streak: {n} days in a row", days).format(n=days))
    next_id = progress.suggest_next(ctx.curriculum, done)
    buttons: list[Button] = []
    if next_id:
        lesson = ctx.curriculum.lessons[next_id]
        lines.append("")
        lines.append(_("Next: **{lesson}**").format(lesson=text_for(lesson.title, lang(ctx))))
        buttons.append(Button(label(text_for(lesson.title, lang(ctx)), "▶ "), f"les:{next_id}"))
    else:
        lines.append(_("You have passed every lesson. Congratulations!"))
    buttons.append(Button(_("⬅ Back to topics"), "menu"))
    return [Reply("\n".join(lines), rows(*buttons))]


def module_title(module: Module, ctx: Context) -> str:
    return text_for(module.title, lang(ctx))
