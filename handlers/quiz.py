"""A lesson's quiz: one question at a time, right/wrong at once with the explanation, the
score at the end. An answer button only counts for the question it was shown with."""

from __future__ import annotations

from bot.i18n import _
from bot.services import progress
from content.loader import Lesson, text_for
from handlers import certificates, learn
from handlers.context import Context
from handlers.types import Button, Reply, rows

QUIZ = "quiz"


async def start(ctx: Context, lesson_id: str) -> list[Reply]:
    lesson = ctx.curriculum.lesson(lesson_id)
    if lesson is None:
        return [Reply(_("That lesson is no longer available.")), *await learn.menu(ctx)]
    ctx.goto(QUIZ, lesson=lesson.id, q=0, right=0)
    intro = Reply(
        _("✍ Quiz: {n} questions. You pass with {need} right answers.").format(
            n=len(lesson.quiz), need=lesson.pass_score
        )
    )
    return [intro, *show_question(ctx, lesson)]


def show_question(ctx: Context, lesson: Lesson) -> list[Reply]:
    index = int(ctx.data.get("q", 0))
    question = lesson.quiz[index]
    lang = ctx.identity.language
    buttons = [
        Button(text_for(option, lang), f"ans:{lesson.id}:{question.id}:{n}")
        for n, option in enumerate(question.options, 1)
    ]
    head = _("Question {n}/{total}").format(n=index + 1, total=len(lesson.quiz))
    return [Reply(f"**{head}**\n{text_for(question.text, lang)}", rows(*buttons))]


async def answer(ctx: Context, lesson_id: str, question_id: str, option: str) -> list[Reply]:
    lesson = ctx.curriculum.lesson(lesson_id)
    if lesson is None:
        return [Reply(_("That lesson is no longer available.")), *await learn.menu(ctx)]
    in_quiz = ctx.state == QUIZ and ctx.data.get("lesson") == lesson.id
    index = int(ctx.data.get("q", 0)) if in_quiz else -1
    if not in_quiz or index >= len(lesson.quiz) or lesson.quiz[index].id != question_id:
        # An old keyboard: say so, and show where the person really is.
        note = Reply(_("That question has already been answered."))
        if ctx.state == QUIZ and (current := ctx.curriculum.lesson(ctx.data.get("lesson", ""))):
            return [note, *show_question(ctx, current)]
        return [note]
    question = lesson.quiz[index]
    if not option.isdigit() or not 1 <= int(option) <= len(question.options):
        return show_question(ctx, lesson)
    lang = ctx.identity.language
    correct = int(option) - 1 == question.answer
    right = int(ctx.data.get("right", 0)) + (1 if correct else 0)
    ctx.record(
        "quiz_answered",
        module_id=lesson.module_id,
        lesson_id=lesson.id,
        question_id=question.id,
        passed=correct,
    )
    if correct:
        verdict = _("✅ Correct!")
    else:
        verdict = _("❌ Not quite. The right answer: **{answer}**").format(
            answer=text_for(question.options[question.answer], lang)
        )
    feedback = Reply(f"{verdict}\n{text_for(question.explain, lang)}")
    if index + 1 < len(lesson.quiz):
        ctx.goto(QUIZ, lesson=lesson.id, q=index + 1, right=right)
        return [feedback, *show_question(ctx, lesson)]
    return [feedback, *await finish(ctx, lesson, right)]


async def finish(ctx: Context, lesson: Lesson, right: int) -> list[Reply]:
    total = len(lesson.quiz)
    passed = right >= lesson.pass_score
    ctx.record(
        "quiz_finished",
        module_id=lesson.module_id,
        lesson_id=lesson.id,
        score=right,
        total=total,
        passed=passed,
    )
    module = ctx.curriculum.module_of(lesson)
    module_done_now = False
    if ctx.consented and ctx.person is not None:
        rows_ = await progress.lesson_rows(ctx.session, ctx.person.id)
        was_done = progress.module_passed(module, rows_)
        row = rows_.get(lesson.id)
        if row is not None:
            row.quiz_attempts += 1
            row.quiz_total = total
            row.quiz_best = max(row.quiz_best or 0, right)
            if passed and row.quiz_passed_at is None:
                row.quiz_passed_at = ctx.now
        module_done_now = not was_done and progress.module_passed(module, rows_)
    ctx.goto(learn.MENU)
    if passed:
        ctx.remember(_resume=None)
    score = _("You got {right}/{total} right.").format(right=right, total=total)
    replies: list[Reply] = []
    if passed:
        nxt = ctx.curriculum.next_lesson(lesson)
        buttons = []
        if nxt is not None:
            buttons.append(
                Button(
                    learn.label(text_for(nxt.title, ctx.identity.language), "▶ "), f"les:{nxt.id}"
                )
            )
        buttons.append(Button(_("⬅ Back to topics"), "menu"))
        replies.append(Reply(f"🎉 {score} " + _("You passed this lesson!"), rows(*buttons)))
    else:
        replies.append(
            Reply(
                f"{score} "
                + _(
                    "You need {need} to pass. Read the lesson again and retry — you can do it!"
                ).format(need=lesson.pass_score),
                rows(
                    Button(_("Retry the quiz"), f"quiz:{lesson.id}"),
                    Button(_("Read the lesson again"), f"les:{lesson.id}:0"),
                    Button(_("⬅ Back to topics"), "menu"),
                ),
            )
        )
    if module_done_now:
        replies.extend(await certificates.on_module_passed(ctx, module))
    return replies
