"""Offline activities (a class at the commune cultural house, a door-to-door visit): the
record, the check-in link and its QR code, check-ins and head counts.

A citizen who opens `/start act_<code>` (or scans the QR code) is checked in once: an
`activity_attended` event with their snapshot, and the activity and its unit in `detail`
(credited to the unit). Officers add a head count for people without phones; attendance =
check-ins + head count. Takes a session; never commits.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Activity, Attendance, OrgUnit, Person
from bot.i18n import TZ
from bot.services import policy, privacy, progress
from bot.services.policy import Actor

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at a class
CODE_LENGTH = 8
MAX_TITLE = 200
MAX_PLACE = 200
MAX_HEAD_COUNT = 100_000


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def day_start(day: date) -> datetime:
    """00:00 of `day` in Vietnam, as the stored (UTC) moment."""
    return datetime.combine(day, time(0, 0), tzinfo=TZ)


async def create(session: AsyncSession, *, unit: OrgUnit, title: str, held_on: date,
                 place: str, planned: int | None, lesson_id: str | None, by: str,
                 now: datetime) -> Activity:  # fmt: skip
    activity = Activity(
        code=new_code(), unit_id=unit.id, title=title[:MAX_TITLE], held_on=day_start(held_on),
        place=place[:MAX_PLACE], planned=planned, lesson_id=lesson_id, head_count=0,
        created_by=by[:96], created_at=now,
    )  # fmt: skip
    activity.unit = unit
    session.add(activity)
    await session.flush()
    return activity


async def by_code(session: AsyncSession, code: str) -> Activity | None:
    code = code.strip().upper()
    if not code or len(code) > 16 or not all(c in CODE_ALPHABET for c in code):
        return None
    return await session.scalar(select(Activity).where(Activity.code == code))


async def check_in(session: AsyncSession, activity: Activity, person: Person, *,
                   now: datetime, channel: str | None) -> bool:  # fmt: skip
    """Check the person in (once); True the first time."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    result = await session.execute(insert(Attendance).values(
        activity_id=activity.id, person_id=person.id, at=now).on_conflict_do_nothing())
    if not result.rowcount:
        return False
    progress.record(session, person, "activity_attended", at=now, channel=channel, detail={
        "activity": activity.id, "unit": activity.unit.code if activity.unit else None})
    return True


async def checkins(session: AsyncSession, activity_ids: list[int]) -> dict[int, int]:
    if not activity_ids:
        return {}
    rows = await session.execute(
        select(Attendance.activity_id, func.count()).where(
            Attendance.activity_id.in_(activity_ids)).group_by(Attendance.activity_id))
    return {a: n for a, n in rows}


def visible_filter(actor: Actor) -> Any:
    """Activities of units in the officer's reach."""
    return Activity.unit_id.in_(select(OrgUnit.id).where(policy.units_filter(actor.reaches)))


async def visible(session: AsyncSession, actor: Actor, *, limit: int = 5) -> list[Activity]:
    return list(await session.scalars(
        select(Activity).where(visible_filter(actor))
        .order_by(Activity.held_on.desc(), Activity.id.desc()).limit(limit)))  # fmt: skip


async def get_visible(session: AsyncSession, actor: Actor, activity_id: int) -> Activity | None:
    return await session.scalar(
        select(Activity).where(Activity.id == activity_id, visible_filter(actor)))


def deep_link(code: str, telegram_username: str | None) -> str:
    """What to put in the QR code: the t.me link when the bot's username is known, else the
    command to type."""
    if telegram_username:
        return f"https://t.me/{telegram_username.lstrip('@')}?start=act_{code}"
    return f"/start act_{code}"


def qr_png(link: str, directory: Path, code: str) -> Path:
    """A QR code PNG of `link` (kept in the data folder, one file per activity)."""
    import qrcode

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"activity-{code}.png"
    if not path.exists():
        image = qrcode.make(link, box_size=10, border=4)
        tmp = path.with_suffix(".tmp")
        image.save(tmp, format="PNG")
        tmp.replace(path)
    return path


async def _export(session: AsyncSession, person: Person) -> dict[str, Any]:
    rows = await session.execute(
        select(Attendance.at, Activity.title, Activity.place, Activity.held_on)
        .join(Activity, Activity.id == Attendance.activity_id)
        .where(Attendance.person_id == person.id).order_by(Attendance.at))  # fmt: skip
    return {"activities_attended": [
        {"title": title, "place": place, "date": held_on.astimezone(TZ).date().isoformat(),
         "checked_in_at": at.isoformat()} for at, title, place, held_on in rows]}  # fmt: skip


if _export not in privacy.EXPORTERS:
    privacy.EXPORTERS.append(_export)
