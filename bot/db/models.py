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
from sqlalchemy import text as sql_text
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
    # "Không nhận tin chiến dịch": no campaign broadcasts until /settings turns them back on.
    campaigns_opt_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

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


class Campaign(Base):
    """A broadcast of one unit (or a commune / province administrator) to an audience.

    `audience` is the spec the wizard built ({"unit": code} or {"locality": code}, plus the
    filters "module", "idle_days", "language"); it is resolved in SQL when the campaign is
    sent, never stored as a list. A weekly campaign is a template: each week it spawns a run
    (a child campaign with `parent_id`) that has its own deliveries.
    """

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_status_next_run_at", "status", "next_run_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    # Who the campaign is credited to: a unit, else the commune / province of the officer.
    unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("org_units.id", ondelete="RESTRICT"), index=True
    )
    locality_code: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    text: Mapped[str] = mapped_column(Text)
    # Optional button: "les" (a lesson) or "mod" (a module) and its id.
    button_kind: Mapped[str | None] = mapped_column(String(8))
    button_target: Mapped[str | None] = mapped_column(String(32))
    # now | at | weekly; weekly_days "0,3" (Monday = 0), weekly_time "08:30" (Vietnam time)
    schedule: Mapped[str] = mapped_column(String(8), default="now")
    send_at: Mapped[datetime | None]
    weekly_days: Mapped[str | None] = mapped_column(String(16))
    weekly_time: Mapped[str | None] = mapped_column(String(5))
    next_run_at: Mapped[datetime | None]
    # draft | scheduled | sending | done | cancelled
    status: Mapped[str] = mapped_column(String(16), default="draft")
    audience_size: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(96))
    # Final counts, written when the campaign is done or cancelled (live ones are counted).
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    blocked: Mapped[int] = mapped_column(Integer, default=0)

    unit: Mapped[OrgUnit | None] = relationship(lazy="selectin")


class Delivery(Base):
    """The outbox: one row per (campaign, identity). pending -> sent | failed | skipped
    (reason) | blocked. Dispatchers claim pending rows with a lease (`claimed_by`,
    `claimed_until`), so a killed process's rows are taken up again when the lease ends."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "identity_id"),
        # The dispatcher's claim: pending rows of one channel in id order (partial index).
        Index("ix_deliveries_pending", "channel", "id",
              sqlite_where=sql_text("status = 'pending'"),
              postgresql_where=sql_text("status = 'pending'")),
        Index("ix_deliveries_campaign_id_status", "campaign_id", "status"),
        Index("ix_deliveries_identity_id_sent_at", "identity_id", "sent_at"),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # NULL once the person was erased (the row keeps counting, linked to no one).
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("identities.id", ondelete="SET NULL")
    )
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(40))
    claimed_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    # When the platform confirmed it reached the chat: its answer to the send with a message
    # id (the bot listens to no later receipts, e.g. Zalo OA's user_received_message).
    delivered_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(64))
    # Set when the person then started a lesson within 7 days (credited here, last touch).
    engaged_at: Mapped[datetime | None]


class Activity(Base):
    """An offline class or visit of a unit. Citizens check in through `/start act_<code>`;
    officers add a head count for people without phones."""

    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id", ondelete="RESTRICT"),
                                         index=True)  # fmt: skip
    title: Mapped[str] = mapped_column(String(200))
    held_on: Mapped[datetime]  # the day (00:00 Vietnam time), as UTC
    place: Mapped[str] = mapped_column(String(200))
    planned: Mapped[int | None] = mapped_column(Integer)
    lesson_id: Mapped[str | None] = mapped_column(String(32))
    head_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    unit: Mapped[OrgUnit] = relationship(lazy="selectin")


class Attendance(Base):
    """One check-in of a person at an activity (once per person)."""

    __tablename__ = "attendances"
    __table_args__ = (UniqueConstraint("activity_id", "person_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"),
                                           index=True)  # fmt: skip
    at: Mapped[datetime] = mapped_column(default=utcnow)


# ---------------------------------------------------------------------------- reports


class RollupState(Base):
    """Where the report rollups stand (one row, id 1): the last participation event folded
    in, and the unit tree (code -> its ancestors) they were built with, so a re-parented
    unit triggers a rebuild. See bot/services/rollup.py."""

    __tablename__ = "rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    tree: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=0)
    refreshed_at: Mapped[datetime | None]


class RollupDirty(Base):
    """Person keys whose past events changed (identity merges re-point `person_key`);
    written by database triggers, folded in and emptied by the next rollup refresh."""

    __tablename__ = "rollup_dirty"

    person_key: Mapped[str] = mapped_column(String(32), primary_key=True)


class RollupUnitGroup(Base):
    """Unit code -> the groups its events count for ("u:" + itself and every unit above it),
    rewritten by the rollup refresh whenever the unit tree changes; the raw-event queries of
    the reports join it (an indexed table the query planners know, unlike a path LIKE join)."""

    __tablename__ = "rollup_unit_groups"

    code: Mapped[str] = mapped_column(String(48), primary_key=True)
    grp: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class RollupPlaceGroup(Base):
    """Commune or province code -> its groups ("c:" itself, "p:" its province)."""

    __tablename__ = "rollup_place_groups"

    code: Mapped[int] = mapped_column(Integer, primary_key=True)
    grp: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class RollupPerson(Base):
    """What one person contributes to the rollup counters, so that recomputing them (new
    events, a merge) can take the old contribution back out exactly."""

    __tablename__ = "rollup_persons"

    person_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    contrib: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RollupPeople(Base):
    """How many people of a group have each combination of year masks (bit y-2020): active,
    reached, engaged, registered / member / trained at the end of year y; and the year they
    registered. Counts of distinct people per group for any run of whole years are sums over
    this table."""

    __tablename__ = "rollup_people"
    __table_args__ = ({"sqlite_with_rowid": False},)  # clustered by group in SQLite

    grp: Mapped[str] = mapped_column(String(64), primary_key=True)
    act: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    rch: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    eng: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reg: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    mem: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    trn: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ry: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class RollupDims(Base):
    """The same people by the gender and age band they gave most recently ("" = not given),
    for the breakdowns of one group at a time."""

    __tablename__ = "rollup_dims"
    __table_args__ = ({"sqlite_with_rowid": False},)  # clustered by group in SQLite

    grp: Mapped[str] = mapped_column(String(64), primary_key=True)
    act: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reg: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    mem: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    trn: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    gender: Mapped[str] = mapped_column(String(16), primary_key=True)
    age_band: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class RollupPairs(Base):
    """How many (person, lesson) pairs of a group have each combination of year masks:
    lesson completed, quiz finished, quiz passed."""

    __tablename__ = "rollup_pairs"
    __table_args__ = ({"sqlite_with_rowid": False},)  # clustered by group in SQLite

    grp: Mapped[str] = mapped_column(String(64), primary_key=True)
    cmp: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    fin: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    pas: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class RollupCommunes(Base):
    """Active people of a group per commune they learned in, by year mask (communes
    covered)."""

    __tablename__ = "rollup_communes"
    __table_args__ = ({"sqlite_with_rowid": False},)  # clustered by group in SQLite

    grp: Mapped[str] = mapped_column(String(64), primary_key=True)
    commune_code: Mapped[int] = mapped_column(Integer, primary_key=True)
    act: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class RollupMonths(Base):
    """Per group and month (yyyymm, local time): new registrations, distinct active
    learners, lessons completed, certificates, people reached (trends)."""

    __tablename__ = "rollup_months"
    __table_args__ = ({"sqlite_with_rowid": False},)  # clustered by group in SQLite

    grp: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    measure: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class RollupCampaigns(Base):
    """The years (mask) in which each campaign had a delivery, per group it is credited to."""

    __tablename__ = "rollup_campaigns"
    __table_args__ = ({"sqlite_with_rowid": False},)  # clustered by group in SQLite

    grp: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    years: Mapped[int] = mapped_column(BigInteger, default=0)


class FrozenReport(Base):
    """A report submitted for a review (2027 mid-term, 2030 final), stored with its figures
    and the criteria set used, so it reads the same after later corrections or mergers."""

    __tablename__ = "frozen_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    criteria_version: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    checksum: Mapped[str] = mapped_column(String(64))
    frozen_at: Mapped[datetime] = mapped_column(default=utcnow)
    frozen_by: Mapped[str] = mapped_column(String(96))


class DashboardLink(Base):
    """A one-time dashboard login link sent in the chat (/dashboard). Only a hash of the token
    is stored; it is consumed by a POST, so a link preview cannot burn it."""

    __tablename__ = "dashboard_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class DashboardSession(Base):
    """A signed-in dashboard browser: a hash of the cookie's token, the officer account and
    the CSRF token of its forms. The officer's roles are checked again on every request."""

    __tablename__ = "dashboard_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]
