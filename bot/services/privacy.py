"""A person's rights under Law 91/2025/QH15: access (export), withdrawal and erasure.

Erasure deletes the person, their identities and everything that links back to them; their
participation events stay as pseudonymous rows (an opaque key no table maps to anyone any
more), so last year's aggregates do not change. Takes a session; never commits.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    Base,
    Certificate,
    DownloadToken,
    Identity,
    LessonProgress,
    ParticipationEvent,
    Person,
)

ERASED_NAME = "—"
DOWNLOAD_TTL = timedelta(hours=1)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def export(session: AsyncSession, person: Person) -> dict[str, Any]:
    """Everything hocvuso holds about the person, as plain JSON-ready data."""
    identities = await session.scalars(select(Identity).where(Identity.person_id == person.id))
    progress = await session.scalars(
        select(LessonProgress).where(LessonProgress.person_id == person.id))
    events = await session.scalars(select(ParticipationEvent).where(
        ParticipationEvent.person_key == person.person_key).order_by(ParticipationEvent.at))
    certs = await session.scalars(select(Certificate).where(Certificate.person_id == person.id))
    data: dict[str, Any] = {
        "profile": {
            "display_name": person.display_name,
            "commune_code": person.commune_code,
            "gender": person.gender,
            "age_band": person.age_band,
            "language": person.language,
            "consent_version": person.consent_version,
            "consented_at": _iso(person.consented_at),
            "invited_by": person.invited_by,
            "reminder_hour": person.reminder_hour,
            "created_at": _iso(person.created_at),
            "last_active_at": _iso(person.last_active_at),
        },
        "identities": [
            {"channel": i.channel, "user_id": i.external_id, "since": _iso(i.created_at),
             "last_message_at": _iso(i.last_inbound_at)} for i in identities
        ],
        "memberships": [
            {"organisation": m.org_type, "unit": m.unit_code, "since": _iso(m.since)}
            for m in person.memberships
        ],
        "progress": [
            {"lesson": p.lesson_id, "module": p.module_id, "card": p.card,
             "started_at": _iso(p.started_at), "completed_at": _iso(p.completed_at),
             "quiz_attempts": p.quiz_attempts, "quiz_best": p.quiz_best,
             "quiz_total": p.quiz_total, "quiz_passed_at": _iso(p.quiz_passed_at)}
            for p in progress
        ],
        "events": [
            {"at": _iso(e.at), "kind": e.kind, "channel": e.channel, "commune_code":
             e.commune_code, "memberships": e.memberships, "module": e.module_id,
             "lesson": e.lesson_id, "question": e.question_id, "score": e.score,
             "total": e.total, "passed": e.passed}
            for e in events
        ],
        "certificates": [
            {"code": c.code, "module": c.module_id, "holder_name": c.holder_name,
             "issued_at": _iso(c.issued_at), "revoked_at": _iso(c.revoked_at)}
            for c in certs
        ],
    }
    for extra in EXPORTERS:
        data.update(await extra(session, person))
    return data


async def _unlink(session: AsyncSession, person: Person, now: datetime, *,
                 erased: bool) -> None:
    """Record that consent ended (registrations are counted up to that moment), revoke and
    anonymise certificates, run the erasers other features registered, and delete the person
    (memberships and progress go with it)."""
    from bot.services import progress

    progress.record(session, person, "consent_withdrawn", at=now,
                    detail={"erased": erased})
    await session.execute(
        update(Certificate).where(Certificate.person_id == person.id)
        .values(revoked_at=now, holder_name=ERASED_NAME, person_id=None)
    )  # fmt: skip
    for eraser in ERASERS:
        await eraser(session, person, now)
    await session.execute(delete(DownloadToken).where(DownloadToken.person_id == person.id))
    await session.execute(delete(Person).where(Person.id == person.id))


async def withdraw(session: AsyncSession, identity: Identity, now: datetime) -> None:
    """Withdraw consent: stop processing and erase personal fields. The identity stays (the
    person can keep reading lessons anonymously); all their other identities are forgotten."""
    person = identity.person
    identity.consent = "declined"
    identity.person = None
    identity.person_id = None
    identity.state_data = {}
    if person is None:
        return
    await session.execute(delete(Identity).where(
        Identity.person_id == person.id, Identity.id != identity.id))
    await _unlink(session, person, now, erased=False)


async def erase(session: AsyncSession, person: Person, now: datetime) -> int:
    """Erase the person entirely: profile and every identity deleted, events pseudonymous.
    Returns how many identities were deleted."""
    identities = list(await session.scalars(
        select(Identity).where(Identity.person_id == person.id)))
    for identity in identities:
        for eraser in IDENTITY_ERASERS:
            await eraser(session, identity, now)
        await session.delete(identity)
    await session.flush()
    await _unlink(session, person, now, erased=True)
    return len(identities)


async def erase_identity(session: AsyncSession, identity: Identity, now: datetime) -> None:
    """Erase a person by one of their identities, or just the identity if they never
    consented (a request that came by letter may name either)."""
    if identity.person is not None:
        await erase(session, identity.person, now)
    else:
        for eraser in IDENTITY_ERASERS:
            await eraser(session, identity, now)
        await session.delete(identity)


# Other features (campaign deliveries, officer roles, channel inboxes) register here what
# they hold about a person or an identity, so export and erasure stay complete.
EXPORTERS: list[Any] = []
ERASERS: list[Any] = []
IDENTITY_ERASERS: list[Any] = []


# ---------------------------------------------------------------------------- downloads


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def download_link(session: AsyncSession, person: Person, now: datetime) -> str:
    """A one-time token for /download/<token>, valid an hour. Only its hash is stored."""
    token = secrets.token_urlsafe(24)
    session.add(DownloadToken(token_hash=_hash(token), person_id=person.id, created_at=now,
                              expires_at=now + DOWNLOAD_TTL))
    return token


async def redeem_download(session: AsyncSession, token: str, now: datetime) -> Person | None:
    """The person whose export the token opens, consuming it; None if unknown, used or old."""
    row = await session.scalar(select(DownloadToken).where(
        DownloadToken.token_hash == _hash(token)).with_for_update())
    if row is None or row.used_at is not None or row.expires_at < now:
        return None
    row.used_at = now
    return await session.get(Person, row.person_id)


def registered_tables() -> list[str]:
    """Names of every table (for tests that look for leftovers after an erasure)."""
    return [t.name for t in Base.metadata.sorted_tables]
