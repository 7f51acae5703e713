"""The citizen's journey from /start to a passed quiz, written once and driven through any
channel: the neutral core (tests.conftest.Chat), Telegram over HTTP, the console."""

from __future__ import annotations

from typing import Protocol

from content.loader import Curriculum


class Driver(Protocol):
    buttons: list[tuple[str, str]]  # (label, payload) of the last message with buttons

    async def say(self, text: str) -> object: ...

    async def press(self, what: str) -> object: ...


async def onboard(d: Driver, commune: str = "hai hau") -> None:
    """/start, consent, commune by typing, gender, age, two memberships."""
    await d.say("/start")
    assert ("Đồng ý", "consent:yes") in d.buttons, d.buttons
    await d.press("consent:yes")
    await d.say(commune)
    # "hai hau" matches the current commune and the old district: pick the commune itself.
    if any(p.startswith("commune:") and p != "commune:other" for _, p in d.buttons):
        payload = next(p for label, p in d.buttons if label == "Xã Hải Hậu")
        await d.press(payload)
    await d.press("gender:female")
    await d.press("age:46-60")
    await d.press("org:hoi_phu_nu")
    await d.press("org:hoi_nong_dan")
    await d.press("org:done")
    assert any(p.startswith("mod:") for _, p in d.buttons), d.buttons


async def learn_and_pass(d: Driver, curriculum: Curriculum, lesson_id: str,
                         wrong: int = 0) -> None:
    """Open the lesson from the menu, read every card, answer the quiz (`wrong` answers
    deliberately wrong, the rest right)."""
    lesson = curriculum.lessons[lesson_id]
    if not any(p == f"mod:{lesson.module_id}" for _, p in d.buttons):
        await d.press("menu")
    await d.press(f"mod:{lesson.module_id}")
    await d.press(f"les:{lesson.id}")
    for i in range(len(lesson.cards) - 1):
        await d.press(f"card:{lesson.id}:{i}")
    await d.press(f"quiz:{lesson.id}")
    for n, question in enumerate(lesson.quiz):
        choice = question.answer + 1
        if n < wrong:
            choice = 1 if question.answer != 0 else 2
        await d.press(f"ans:{lesson.id}:{question.id}:{choice}")
