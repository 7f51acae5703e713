"""Learning progress and the participation events it produces. Takes a session; never commits."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Identity, LessonProgress, ParticipationEvent, Person
from bot.i18n import TZ
from content.loader import Curriculum, Module


def snapshot(person: Person) -> dict[str, Any]:
    """What an event carries about the person at the time: commune, memberships, groups."""
    types = sorted({m.org_type for m in person.memberships})
    units = sorted({m.unit_code for m in person.memberships if m.unit_code})
    return {
        "commune_code": person.commune_code,
        "memberships": ",".join(types) or None,
        "unit_codes": ",".join(units) or None,
        "gender": person.gender,
        "age_band": person.age_band,
    }


def record(
    session: AsyncSession,
    person: Person,
    kind: str,
    *,
    at: datetime,
    channel: str | None = None,
    **fields: Any,
) -> ParticipationEvent:
    event = ParticipationEvent(
        kind=kind, at=at, person_key=person.person_key, channel=channel,
        **snapshot(person), **fields,
    )  # fmt: skip
    session.add(event)
    return event


async def lesson_rows(session: AsyncSession, person_id: int) -> dict[str, LessonProgress]:
    rows = await session.scalars(
        select(LessonProgress).where(LessonProgress.person_id == person_id)
    )
    return {r.lesson_id: r for r in rows}


async def lesson_row(
    session: AsyncSession, person_id: int, lesson_id: str
) -> LessonProgress | None:
    return await session.get(LessonProgress, (person_id, lesson_id))


def module_passed(module: Module, rows: dict[str, LessonProgress]) -> bool:
    return all(
        rows.get(lesson.id) is not None and rows[lesson.id].quiz_passed_at is not None
        for lesson in module.lessons
    )


def passed_count(module: Module, rows: dict[str, LessonProgress]) -> int:
    return sum(
        1 for lesson in module.lessons
        if lesson.id in rows and rows[lesson.id].quiz_passed_at is not None
    )  # fmt: skip


def suggest_next(curriculum: Curriculum, rows: dict[str, LessonProgress]) -> str | None:
    """The next lesson to learn: the first unpassed one of the module the person worked on
    last, else the first unpassed one in course order."""

    def unpassed(lesson_id: str) -> bool:
        row = rows.get(lesson_id)
        return row is None or row.quiz_passed_at is None

    if rows:
        latest = max(rows.values(), key=lambda r: r.started_at)
        module = curriculum.module(latest.module_id)
        for lesson in module.lessons if module else ():
            if unpassed(lesson.id):
                return lesson.id
    for module in curriculum.modules:
        for lesson in module.lessons:
            if unpassed(lesson.id):
                return lesson.id
    return None


async def identities_of(session: AsyncSession, person_id: int) -> list[Identity]:
    return list(await session.scalars(select(Identity).where(Identity.person_id == person_id)))


async def streak(session: AsyncSession, person_key: str, today: date) -> int:
    """Days in a row, ending today or yesterday (local time), with a finished lesson."""
    since = datetime.combine(today - timedelta(days=400), time.min, TZ)
    rows = await session.scalars(select(ParticipationEvent.at).where(
        ParticipationEvent.person_key == person_key,
        ParticipationEvent.kind.in_(("lesson_completed", "quiz_finished")),
        ParticipationEvent.at >= since,
    ))
    days = {at.astimezone(TZ).date() for at in rows}
    day = today if today in days else today - timedelta(days=1)
    count = 0
    while day in days:
        count += 1
        day -= timedelta(days=1)
    return count
