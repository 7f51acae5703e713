"""One person, several apps: /link codes and merging two people into one.

A code is 8 random digits, valid 10 minutes, deleted when used: easy to type from one phone
screen into another, and with wrong tries limited per account (handlers.link) not guessable
in practice. Merging keeps the person who registered first and moves everything of the other
onto them: learning progress (the best of both per lesson), memberships (the union),
certificates, accounts, and the participation events (only their person key changes, the one
edit events allow), so every report counts the person once.

Takes a session and never commits; the caller's transaction makes the merge all or nothing.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from bot.db.models import (
    Base,
    Certificate,
    Identity,
    LessonProgress,
    LinkCode,
    Membership,
    ParticipationEvent,
    Person,
)

CODE_DIGITS = 8
CODE_TTL = timedelta(minutes=10)
_NOT_DIGITS = re.compile(r"[\s.\-_]+")
# Tables handled one by one below; any other table pointing at persons is simply re-pointed.
_HANDLED = {"identities", "memberships", "lesson_progress", "certificates"}


def normalize_code(text: str) -> str | None:
    """'1234 5678', '1234-5678' -> '12345678'; None if it cannot be a code."""
    digits = _NOT_DIGITS.sub("", text.strip())
    return digits if len(digits) == CODE_DIGITS and digits.isascii() and digits.isdigit() else None


def pretty_code(code: str) -> str:
    return f"{code[:4]} {code[4:]}"


async def new_link_code(session: AsyncSession, identity: Identity, now: datetime) -> str:
    """A fresh code for this account (its older codes and every expired code are dropped)."""
    await session.execute(delete(LinkCode).where(
        (LinkCode.expires_at <= now) | (LinkCode.identity_id == identity.id)))  # fmt: skip
    while True:
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        if await session.get(LinkCode, code) is None:
            break
    session.add(LinkCode(code=code, identity_id=identity.id, created_at=now,
                         expires_at=now + CODE_TTL))  # fmt: skip
    await session.flush()
    return code


async def code_owner(session: AsyncSession, code: str, now: datetime) -> Identity | None:
    """The account that made this code, if the code is still valid."""
    return await session.scalar(
        select(Identity).join(LinkCode, LinkCode.identity_id == Identity.id)
        .where(LinkCode.code == code, LinkCode.expires_at > now)
    )  # fmt: skip


async def consume_code(session: AsyncSession, code: str, now: datetime) -> bool:
    """Use the code up; False if someone else used it first (or it just expired)."""
    result = await session.execute(
        delete(LinkCode).where(LinkCode.code == code, LinkCode.expires_at > now)
    )
    return result.rowcount == 1


def survivor(a: Person, b: Person) -> tuple[Person, Person]:
    """(kept, merged away): the one who registered first stays."""
    return (a, b) if (a.created_at, a.id) <= (b.created_at, b.id) else (b, a)


@dataclass(frozen=True, slots=True)
class MergeResult:
    kept_id: int
    removed_key: str
    lessons_moved: int
    lessons_combined: int
    memberships_moved: int
    events_repointed: int
    certificates_moved: int
    certificates_revoked: int


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(x for x in (a, b) if x is not None) if a or b else None


def _fill_gaps(target: Any, source: Any, skip: set[str]) -> None:
    """Copy every column the target lacks (None) from the source."""
    for column in type(target).__table__.columns:
        key = column.key
        if key not in skip and getattr(target, key) is None:
            value = getattr(source, key)
            if value is not None:
                setattr(target, key, value)


async def merge_persons(
    session: AsyncSession, keep: Person, drop: Person, now: datetime
) -> MergeResult:
    """Move everything of `drop` onto `keep`, then delete `drop`."""
    assert keep.id != drop.id
    removed_key = drop.person_key

    # The profile: what one of them did not say, the other may have.
    _fill_gaps(keep, drop, {"id", "person_key"})
    keep.created_at = min(keep.created_at, drop.created_at)
    keep.consented_at = min(keep.consented_at, drop.consented_at)
    keep.last_active_at = max(keep.last_active_at, drop.last_active_at)

    # Lessons: one row per lesson; where both have one, the best of both.
    mine = {r.lesson_id: r for r in await session.scalars(
        select(LessonProgress).where(LessonProgress.person_id == keep.id))}  # fmt: skip
    theirs = list(await session.scalars(
        select(LessonProgress).where(LessonProgress.person_id == drop.id)))  # fmt: skip
    moved = combined = 0
    for row in theirs:
        own = mine.get(row.lesson_id)
        if own is None:
            moved += 1
            continue
        combined += 1
        own.card = max(own.card, row.card)
        own.started_at = min(own.started_at, row.started_at)
        own.completed_at = _earliest(own.completed_at, row.completed_at)
        own.quiz_passed_at = _earliest(own.quiz_passed_at, row.quiz_passed_at)
        own.quiz_attempts += row.quiz_attempts
        own.quiz_best = max((x for x in (own.quiz_best, row.quiz_best) if x is not None),
                            default=None)  # fmt: skip
        own.quiz_total = own.quiz_total or row.quiz_total

    # Memberships: the union; a duplicate keeps what either side knew (unit, confirmation).
    own_orgs = {m.org_type: m for m in keep.memberships}
    memberships_moved = 0
    for membership in list(drop.memberships):
        own_m = own_orgs.get(membership.org_type)
        if own_m is None:
            memberships_moved += 1
            continue
        _fill_gaps(own_m, membership, {"id", "person_id"})
        own_m.since = min(own_m.since, membership.since)
    await session.flush()

    # From here on plain UPDATEs: the ORM must forget the rows it held for `drop`.
    for row in theirs:
        session.expunge(row)
    session.expunge(drop)  # cascades to its memberships

    keep_lessons = set(mine)
    await session.execute(
        update(LessonProgress)
        .where(LessonProgress.person_id == drop.id, LessonProgress.lesson_id.not_in(keep_lessons))
        .values(person_id=keep.id)
    )  # fmt: skip
    await session.execute(delete(LessonProgress).where(LessonProgress.person_id == drop.id))
    await session.execute(
        update(Membership)
        .where(Membership.person_id == drop.id, Membership.org_type.not_in(set(own_orgs)))
        .values(person_id=keep.id)
    )  # fmt: skip
    await session.execute(delete(Membership).where(Membership.person_id == drop.id))

    # Certificates: one per (person, module). Of two valid ones for the same module the
    # earlier stays and the later is revoked; revoked ones that would clash are detached (and
    # keep no name). Everything else of `drop` moves over.
    certs = (await session.execute(
        select(Certificate.id, Certificate.person_id, Certificate.module_id,
               Certificate.issued_at, Certificate.revoked_at)
        .where(Certificate.person_id.in_([keep.id, drop.id]))
        .order_by(Certificate.issued_at, Certificate.id)
    )).all()  # fmt: skip
    staying: dict[str, Any] = {}  # module -> the certificate that stays with `keep`
    leaving: list[Any] = []
    for cert in sorted(certs, key=lambda c: (c.revoked_at is not None, c.issued_at, c.id)):
        if cert.module_id in staying:
            leaving.append(cert)
        else:
            staying[cert.module_id] = cert
    certs_revoked = sum(1 for cert in leaving if cert.revoked_at is None)
    for cert in leaving:  # detach first, so nothing clashes when the others move
        await session.execute(update(Certificate).where(Certificate.id == cert.id).values(
            person_id=None, holder_name="—", revoked_at=cert.revoked_at or now))  # fmt: skip
    moving = [c.id for c in staying.values() if c.person_id == drop.id]
    certs_moved = sum(1 for c in staying.values() if c.person_id == drop.id and not c.revoked_at)
    if moving:
        await session.execute(
            update(Certificate).where(Certificate.id.in_(moving)).values(person_id=keep.id)
        )

    # Any other table that points at a person (added later by other features) is re-pointed.
    for table in Base.metadata.sorted_tables:
        if table.name in _HANDLED:
            continue
        for fk in table.foreign_keys:
            if fk.column.table.name == "persons" and fk.column.name == "id":
                await session.execute(
                    table.update().where(fk.parent == drop.id).values({fk.parent.name: keep.id})
                )

    # Accounts, and the events: only the person key changes. (Accounts already loaded in
    # this session are noted first: the UPDATE below also refreshes their person_id.)
    loaded = [obj for obj in session.identity_map.values()
              if isinstance(obj, Identity) and obj.person_id == drop.id]  # fmt: skip
    await session.execute(
        update(Identity).where(Identity.person_id == drop.id).values(person_id=keep.id)
    )
    events = await session.execute(
        update(ParticipationEvent).where(ParticipationEvent.person_key == removed_key)
        .values(person_key=keep.person_key)
    )  # fmt: skip
    await session.execute(delete(Person).where(Person.id == drop.id))

    for obj in loaded:  # now belong to `keep`
        set_committed_value(obj, "person_id", keep.id)
        set_committed_value(obj, "person", keep)
    await session.refresh(keep, attribute_names=["memberships"])
    return MergeResult(
        kept_id=keep.id, removed_key=removed_key, lessons_moved=moved,
        lessons_combined=combined, memberships_moved=memberships_moved,
        events_repointed=int(events.rowcount or 0), certificates_moved=certs_moved,
        certificates_revoked=certs_revoked,
    )  # fmt: skip
