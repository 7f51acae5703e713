"""The database schema (SQLAlchemy 2 typed declarative).

Personal data lives only in `persons` (and `memberships`), created at consent. Before that an
`identities` row keeps just what the conversation needs: the platform id and the step.
`participation_events` is append-only and refers to people by an opaque `person_key`, so
erasing a person (deleting the row that maps key -> person) leaves true aggregates behind.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_person_key() -> str:
    return secrets.token_hex(16)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(AsyncAttrs, DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012


class Person(Base):
    """Someone who consented. Every column here is personal data covered by the consent."""

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_key: Mapped[str] = mapped_column(String(32), unique=True, default=new_person_key)
    display_name: Mapped[str | None] = mapped_column(String(128))
    commune_code: Mapped[int | None] = mapped_column(Integer, index=True)
    gender: Mapped[str | None] = mapped_column(String(16))
    age_band: Mapped[str | None] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8), default="vi")
    consent_version: Mapped[str] = mapped_column(String(32))
    consented_at: Mapped[datetime]
    invited_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_active_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Daily reminder at this local hour (7-20), None = off. Opt-in only.
    reminder_hour: Mapped[int | None] = mapped_column(Integer)
    last_reminded_at: Mapped[datetime | None]

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="person", cascade="all, delete-orphan", lazy="selectin"
    )


class Identity(Base):
    """One account on one channel (Telegram user, Zalo user) and its conversation state."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("persons.id", ondelete="SET NULL"), index=True
    )
    # pending (asked, no answer yet) | given | declined
    consent: Mapped[str] = mapped_column(String(16), default="pending")
    language: Mapped[str] = mapped_column(String(8), default="vi")
    state: Mapped[str] = mapped_column(String(32), default="")
    state_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_inbound_at: Mapped[datetime] = mapped_column(default=utcnow)
    unreachable_at: Mapped[datetime | None]

    person: Mapped[Person | None] = relationship(lazy="selectin")


class Membership(Base):
    """A person's self-declared membership of a mass organisation (and, later, a unit)."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("person_id", "org_type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    org_type: Mapped[str] = mapped_column(String(32))
    unit_code: Mapped[str | None] = mapped_column(String(64), index=True)
    since: Mapped[datetime] = mapped_column(default=utcnow)
    # Self-declared until an officer of the unit confirms it (who: "channel:id" or "cli:user").
    confirmed_at: Mapped[datetime | None]
    confirmed_by: Mapped[str | None] = mapped_column(String(96))

    person: Mapped[Person] = relationship(back_populates="memberships")


class LessonProgress(Base):
    """Where a person is in a lesson; one row per (person, lesson)."""

    __tablename__ = "lesson_progress"

    person_id: Mapped[int] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True
    )
    lesson_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    module_id: Mapped[str] = mapped_column(String(32))
    card: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    quiz_attempts: Mapped[int] = mapped_column(Integer, default=0)
    quiz_best: Mapped[int | None] = mapped_column(Integer)
    quiz_total: Mapped[int | None] = mapped_column(Integer)
    quiz_passed_at: Mapped[datetime | None]


class ParticipationEvent(Base):
    """Append-only record of what counts. Carries the commune and memberships at the time."""

    __tablename__ = "participation_events"
    __table_args__ = (
        Index("ix_participation_events_kind_at", "kind", "at"),
        Index("ix_participation_events_person_key_at", "person_key", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    person_key: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(16))
    commune_code: Mapped[int | None] = mapped_column(Integer)
    # Sorted, comma-separated organisation types at the time, e.g. "doan,hoi_phu_nu".
    memberships: Mapped[str | None] = mapped_column(String(255))
    unit_codes: Mapped[str | None] = mapped_column(Text)
    gender: Mapped[str | None] = mapped_column(String(16))
    age_band: Mapped[str | None] = mapped_column(String(16))
    module_id: Mapped[str | None] = mapped_column(String(32))
    lesson_id: Mapped[str | None] = mapped_column(String(32))
    question_id: Mapped[str | None] = mapped_column(String(32))
    score: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int | None] = mapped_column(Integer)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ProcessedUpdate(Base):
    """Platform update ids already handled: a redelivered update changes nothing."""

    __tablename__ = "processed_updates"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    update_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Certificate(Base):
    """A certificate of completing a module. The code is random (not sequential) and is all a
    verifier needs; the holder's name is copied at issue time, as on paper."""

    __tablename__ = "certificates"
    __table_args__ = (UniqueConstraint("person_id", "module_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("persons.id", ondelete="SET NULL"), index=True
    )
    holder_name: Mapped[str] = mapped_column(String(128))
    module_id: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8), default="vi")
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class OrgUnit(Base):
    """A branch of the Fatherland Front or of a mass organisation.

    Units of one type form a tree that follows the locality tree (province unit -> commune
    units -> chi hội / chi đoàn of a thôn, or a workplace). `path` holds the ids from the root
    ("/1/7/42/"), so "this unit and everything below it" is one prefix match in SQL.
    Participation events carry `code`; `join_code` is what deep links use (`/start org_...`)
    and can be changed without touching history.
    """

    __tablename__ = "org_units"
    __table_args__ = (Index("ix_org_units_type_locality_code", "type", "locality_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(48), unique=True)
    join_code: Mapped[str] = mapped_column(String(48), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    # A province or commune code (a trade union's is its workplace's commune).
    locality_code: Mapped[int] = mapped_column(Integer, index=True)
    province_code: Mapped[int] = mapped_column(Integer, index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("org_units.id", ondelete="RESTRICT"), index=True
    )
    path: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UnitYear(Base):
    """Per unit and year, what its officers entered: the official member count (the
    denominator of "share of members trained" when present) and the target."""

    __tablename__ = "unit_years"
    __table_args__ = (UniqueConstraint("unit_id", "year"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id", ondelete="CASCADE"))
    year: Mapped[int] = mapped_column(Integer)
    member_count: Mapped[int | None] = mapped_column(Integer)
    target: Mapped[int | None] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(96))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Officer(Base):
    """A role granted to one chat account (channel + platform id): province_admin,
    org_admin of a unit, or locality_admin of a commune. Revoking keeps the row."""

    __tablename__ = "officers"
    __table_args__ = (Index("ix_officers_channel_external_id", "channel", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(24))
    unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("org_units.id", ondelete="RESTRICT"), index=True
    )
    locality_code: Mapped[int | None] = mapped_column(Integer)
    granted_by: Mapped[str] = mapped_column(String(96))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(96))

    unit: Mapped[OrgUnit | None] = relationship(lazy="selectin")


class OfficerInvite(Base):
    """A one-time link that makes whoever opens it an officer. Only a hash of the token is
    stored, so a copy of the database cannot be used to claim a role."""

    __tablename__ = "officer_invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(24))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id", ondelete="CASCADE"))
    locality_code: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(96))
    # The inviting officer's grant, re-checked when the link is used (None: from the CLI).
    created_by_officer_id: Mapped[int | None] = mapped_column(
        ForeignKey("officers.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_by: Mapped[str | None] = mapped_column(String(96))
    used_at: Mapped[datetime | None]


class AuditLog(Base):
    """Append-only record of officer actions that change or export something, of every view
    of members' names, and of refused officer requests. Nothing in the app updates or deletes
    a row; the migration adds triggers that refuse it."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(96))
    action: Mapped[str] = mapped_column(String(48))
    target: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ZaloOAToken(Base):
    """The Zalo OA's current token pair. The refresh token is single-use and rotates, so only
    one refresher may use it: whoever takes the lease (compare-and-swap on `version` and
    `lease_until`) refreshes, and the new pair replaces the old in one statement."""

    __tablename__ = "zalo_oa_tokens"

    app_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None]
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None]


class ZaloOAInbox(Base):
    """Zalo OA webhook events, stored before the webhook answers 200 and processed after.
    `dedup_key` (the msg_id) makes a redelivered event a no-op; `raw` is cleared once the
    event was processed, so message text does not linger."""

    __tablename__ = "zalo_oa_inbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(128), unique=True)
    event_name: Mapped[str] = mapped_column(String(64))
    raw: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class MediaLink(Base):
    """An unguessable public name for a file the bot sends by URL (Zalo fetches images and
    files from our web server): content images, certificate images."""

    __tablename__ = "media_links"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(512), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LinkCode(Base):
    """A one-time code from /link: typed in another app, it joins both accounts into one
    person. Valid for minutes; deleted when used."""

    __tablename__ = "link_codes"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("identities.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class DownloadToken(Base):
    """A one-time link to a person's data export (for channels that cannot send files)."""

    __tablename__ = "download_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
