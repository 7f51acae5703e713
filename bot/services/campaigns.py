"""Campaign broadcasts: who receives them (in SQL, inside the officer's scope), the outbox,
starting, scheduling, cancelling, counting, and crediting people who then learn.

- Audience: the members of a unit and its subtree, or every registered citizen of a commune
  or province, narrowed by `policy.persons_filter` of the officer's reach; optional filters
  (has not completed module X, not active for N days, language). People who opted out of
  campaign messages, identities that blocked the bot or unfollowed, and channels no
  dispatcher serves are left out. One identity per person: the one they wrote from last.
- Outbox: one `Delivery` row per (campaign, identity), written by one INSERT ... SELECT (no
  recipient is ever loaded into memory), in the same transaction that moves the campaign out
  of `draft` / `scheduled` with a conditional UPDATE, so it happens once and never halfway.
- Counts are counted from the outbox (sent + failed + skipped + blocked = audience once
  nothing is pending); the campaign row keeps the final ones.
- Engagement (DESIGN.md "people engaged"): a person who starts a lesson within 7 days after
  a delivery is credited to the latest campaign delivered before that start (last touch),
  once per campaign: `campaign_engaged` event, credited to the campaign's unit.

Participation events of campaigns (`campaign_delivered`, `campaign_engaged`) carry the
person's snapshot like every event, and the campaign and its unit in `detail`.
Takes a session; never commits.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    Campaign,
    Delivery,
    Identity,
    LessonProgress,
    Membership,
    OrgUnit,
    ParticipationEvent,
    Person,
    UTCDateTime,
)
from bot.i18n import TZ
from bot.services import policy, privacy, progress
from bot.services.policy import Actor, Reach, UnitRef

if TYPE_CHECKING:
    from bot.localities import LocalityIndex
    from bot.settings import Settings
    from content.loader import Curriculum

MAX_TEXT = 2000  # fits one Zalo message
ENGAGE_WINDOW = timedelta(days=7)
MAX_ATTEMPTS = 3
DRAFT, SCHEDULED, SENDING, DONE, CANCELLED = "draft", "scheduled", "sending", "done", "cancelled"
OPEN = (DRAFT, SCHEDULED, SENDING)
PENDING, SENT, FAILED, SKIPPED, BLOCKED = "pending", "sent", "failed", "skipped", "blocked"
IDLE_CHOICES = (7, 30, 90)
_DATETIME_RES = (
    re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2})[:hH](\d{2})$"),  # 25/12/2026 08:00
    re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2})$"),  # 2026-12-25 08:00
)
_TIME_RE = re.compile(r"^(\d{1,2})[:hH](\d{2})$")


def dispatch_channels(settings: Settings) -> tuple[str, ...]:
    """The channels a dispatcher serves in this deployment (others get no deliveries)."""
    out = []
    if settings.telegram_token is not None:
        out.append("telegram")
    if settings.zalo_bot_token is not None:
        out.append("zalo-bot")
    if settings.zalo_oa_app_id is not None:
        out.append("zalo-oa")
    return tuple(out)


# ---------------------------------------------------------------------------- audience


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a campaign goes to: a unit's members (subtree) or a locality's citizens."""

    unit: str | None = None
    locality: int | None = None
    module: str | None = None
    idle_days: int | None = None
    language: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Audience:
        return cls(**{k: data.get(k) for k in ("unit", "locality", "module", "idle_days",
                                                 "language")})  # fmt: skip


class AudienceError(Exception):
    """The audience is outside the officer's scope or names nothing (the refusal in `reason`)."""

    def __init__(self, reason: policy.Refusal) -> None:
        super().__init__(str(reason))
        self.reason = reason


async def resolve_target(
    session: AsyncSession, actor: Actor, audience: Audience, localities: LocalityIndex
) -> tuple[UnitRef | None, int | None]:
    """Check the audience against the officer's scope: (unit, locality) or AudienceError.

    A unit needs the unit in scope; a locality (a commune or a province) needs the whole
    locality in scope, as for /stats."""
    if not actor.is_officer:
        refusal = policy.Refusal.REVOKED if actor.revoked else policy.Refusal.NOT_OFFICER
        raise AudienceError(refusal)
    if audience.unit is not None:
        row = await session.scalar(select(OrgUnit).where(OrgUnit.code == audience.unit))
        if row is None:
            raise AudienceError(policy.Refusal.OUT_OF_SCOPE)
        unit = UnitRef.of(row)
        if not policy.may_view_unit(actor, unit):
            raise AudienceError(policy.Refusal.OUT_OF_SCOPE)
        return unit, None
    code = audience.locality
    if code is None or policy.province_of(localities, code) is None:
        raise AudienceError(policy.Refusal.OUT_OF_SCOPE)
    if not policy.may_view_locality(actor, code):
        raise AudienceError(policy.Refusal.OUT_OF_SCOPE)
    return None, code


def recipients(audience: Audience, unit: UnitRef | None, communes: frozenset[int] | None,
               reaches: tuple[Reach, ...], channels: tuple[str, ...], now: datetime,
               curriculum: Curriculum) -> Any:  # fmt: skip
    """SELECT identity id, channel: one reachable identity per person of the audience."""
    conds: list[Any] = [
        policy.persons_filter(reaches),
        Person.campaigns_opt_out.is_(False),
        Identity.consent == "given",
        Identity.unreachable_at.is_(None),
        Identity.channel.in_(channels) if channels else literal(False),
    ]
    if unit is not None:
        codes = select(OrgUnit.code).where(OrgUnit.path.startswith(unit.path))
        members = select(Membership.person_id).where(Membership.unit_code.in_(codes))
        conds.append(Person.id.in_(members))
    else:
        conds.append(Person.commune_code.in_(sorted(communes or ())))
    module = curriculum.module(audience.module) if audience.module else None
    if module is not None:
        done = (
            select(LessonProgress.person_id)
            .where(LessonProgress.module_id == module.id,
                   LessonProgress.quiz_passed_at.is_not(None))
            .group_by(LessonProgress.person_id)
            .having(func.count() >= len(module.lessons))
        )  # fmt: skip
        conds.append(Person.id.not_in(done))
    if audience.idle_days:
        conds.append(Person.last_active_at < now - timedelta(days=audience.idle_days))
    if audience.language:
        conds.append(Person.language == audience.language)
    rn = func.row_number().over(partition_by=Identity.person_id,
                                order_by=(Identity.last_inbound_at.desc(), Identity.id.desc()))
    ranked = (
        select(Identity.id.label("identity_id"), Identity.channel.label("channel"),
               rn.label("rn"))
        .join(Person, Person.id == Identity.person_id)
        .where(*conds)
        .subquery("ranked")
    )  # fmt: skip
    return select(ranked.c.identity_id, ranked.c.channel).where(ranked.c.rn == 1)


def _communes(localities: LocalityIndex, code: int | None) -> frozenset[int] | None:
    if code is None:
        return None
    return policy.locality_reach(localities, code).communes


async def audience_size(session: AsyncSession, actor: Actor, audience: Audience, *,
                        localities: LocalityIndex, curriculum: Curriculum,
                        channels: tuple[str, ...], now: datetime) -> int:  # fmt: skip
    unit, locality = await resolve_target(session, actor, audience, localities)
    query = recipients(audience, unit, _communes(localities, locality), actor.reaches,
                       channels, now, curriculum)  # fmt: skip
    return int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)


async def _materialise(session: AsyncSession, campaign: Campaign, actor: Actor, *,
                       localities: LocalityIndex, curriculum: Curriculum,
                       channels: tuple[str, ...], now: datetime) -> int:  # fmt: skip
    """Write the campaign's outbox with one INSERT ... SELECT; returns the rows written."""
    audience = Audience.from_json(campaign.audience)
    unit, locality = await resolve_target(session, actor, audience, localities)
    query = recipients(audience, unit, _communes(localities, locality), actor.reaches,
                       channels, now, curriculum).subquery("recipients")  # fmt: skip
    rows = select(
        literal(campaign.id).label("campaign_id"), query.c.identity_id, query.c.channel,
        literal(PENDING).label("status"), literal(0).label("attempts"),
        literal(now, UTCDateTime()).label("next_attempt_at"),
    ).where(query.c.identity_id.is_not(None))  # fmt: skip
    columns = ["campaign_id", "identity_id", "channel", "status", "attempts", "next_attempt_at"]
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(Delivery).from_select(columns, rows).on_conflict_do_nothing()
    written = int((await session.execute(stmt)).rowcount or 0)
    campaign.audience_size = (campaign.audience_size or 0) + written
    return written


# ---------------------------------------------------------------------------- schedule


class ScheduleError(Exception):
    """A date or time that cannot be used ("past", "format")."""


def parse_when(text: str, now: datetime) -> datetime:
    """'25/12/2026 08:00' or '2026-12-25 08:00' (Vietnam time) -> UTC; refuses the past."""
    t = text.strip()
    for i, pattern in enumerate(_DATETIME_RES):
        m = pattern.match(t)
        if m is None:
            continue
        a, b, c, hh, mm = (int(g) for g in m.groups())
        day, month, year = (a, b, c) if i == 0 else (c, b, a)
        try:
            local = datetime(year, month, day, hh, mm, tzinfo=TZ)
        except ValueError:
            raise ScheduleError("format") from None
        when = local.astimezone(now.tzinfo)
        if when <= now:
            raise ScheduleError("past")
        return when
    raise ScheduleError("format")


def parse_time(text: str) -> str:
    m = _TIME_RE.match(text.strip())
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ScheduleError("format")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def next_weekly(days: list[int], hhmm: str, after: datetime) -> datetime:
    """The first moment after `after` that falls on one of `days` (Monday = 0) at hh:mm
    Vietnam time, in UTC."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    local = after.astimezone(TZ)
    for offset in range(8):
        day: date = local.date() + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        moment = datetime.combine(day, time(hour, minute), tzinfo=TZ)
        if moment > local:
            return moment.astimezone(after.tzinfo)
    raise ScheduleError("format")


# ---------------------------------------------------------------------------- lifecycle


def new_draft(actor: Actor, audience: Audience, unit: UnitRef | None, locality: int | None, *,
              text: str, button: tuple[str, str] | None, schedule: str,
              send_at: datetime | None, weekly_days: list[int] | None,
              weekly_time: str | None, now: datetime) -> Campaign:  # fmt: skip
    """A draft campaign (not yet sent). The unit it is credited to is the audience's unit,
    else the officer's own unit when they have one, else the audience's locality."""
    credit = unit.id if unit is not None else next(
        (g.unit.id for g in actor.grants if g.unit is not None
         and locality is not None and g.reach.has_locality(locality)), None)  # fmt: skip
    return Campaign(
        unit_id=credit, locality_code=locality, created_by=actor.who, created_at=now,
        audience=audience.to_json(), text=text,
        button_kind=button[0] if button else None, button_target=button[1] if button else None,
        schedule=schedule, send_at=send_at,
        weekly_days=",".join(str(d) for d in sorted(weekly_days)) if weekly_days else None,
        weekly_time=weekly_time, status=DRAFT, sent=0, failed=0, skipped=0, blocked=0,
    )  # fmt: skip


async def _move(session: AsyncSession, campaign_id: int, frm: tuple[str, ...],
                **values: Any) -> bool:  # fmt: skip
    """Conditional UPDATE on status: True for the one caller that made the move."""
    result = await session.execute(
        update(Campaign).where(Campaign.id == campaign_id, Campaign.status.in_(frm))
        .values(**values).execution_options(synchronize_session=False)
    )  # fmt: skip
    return bool(result.rowcount)


async def confirm(session: AsyncSession, campaign: Campaign, actor: Actor, *,
                  localities: LocalityIndex, curriculum: Curriculum,
                  channels: tuple[str, ...], now: datetime) -> str:  # fmt: skip
    """Send or schedule a draft, once: 'sending' / 'scheduled', or why not ('empty',
    'gone' when someone else already did it or it was cancelled, 'past')."""
    if campaign.schedule == "now":
        size = await audience_size(session, actor, Audience.from_json(campaign.audience),
                                   localities=localities, curriculum=curriculum,
                                   channels=channels, now=now)  # fmt: skip
        if size == 0:
            return "empty"
        if not await _move(session, campaign.id, (DRAFT,), status=SENDING, started_at=now):
            return "gone"
        await session.refresh(campaign)
        await _materialise(session, campaign, actor, localities=localities,
                           curriculum=curriculum, channels=channels, now=now)  # fmt: skip
        return SENDING
    if campaign.schedule == "at":
        when = campaign.send_at
        if when is None or when <= now:
            return "past"
    else:
        when = next_weekly([int(d) for d in (campaign.weekly_days or "").split(",") if d],
                           campaign.weekly_time or "08:00", now)  # fmt: skip
    if not await _move(session, campaign.id, (DRAFT,), status=SCHEDULED, next_run_at=when):
        return "gone"
    await session.refresh(campaign)
    return SCHEDULED


async def fire_due(session: AsyncSession, *, localities: LocalityIndex,
                   curriculum: Curriculum, channels: tuple[str, ...],
                   now: datetime) -> list[int]:  # fmt: skip
    """Start the scheduled campaigns that are due (the scheduler leader's job). Each is
    moved with a conditional UPDATE, so it fires once even if two processes try. Returns
    the ids of the campaigns that started sending (weekly runs: the new run's id)."""
    due = list(await session.scalars(
        select(Campaign).where(Campaign.status == SCHEDULED, Campaign.next_run_at <= now)
        .order_by(Campaign.next_run_at).limit(20)
    ))  # fmt: skip
    started: list[int] = []
    for campaign in due:
        who = campaign.created_by.partition(":")
        actor = await policy.load_actor(session, who[0], who[2], localities)
        if not actor.is_officer:  # the creator's role was revoked: nothing is sent
            await _move(session, campaign.id, (SCHEDULED,), status=CANCELLED, cancelled_at=now,
                        cancelled_by="system:role_revoked")  # fmt: skip
            continue
        if campaign.schedule == "weekly":
            days = [int(d) for d in (campaign.weekly_days or "").split(",") if d]
            following = next_weekly(days, campaign.weekly_time or "08:00", now)
            moved = await session.execute(
                update(Campaign).where(Campaign.id == campaign.id, Campaign.status == SCHEDULED,
                                       Campaign.next_run_at == campaign.next_run_at)
                .values(next_run_at=following).execution_options(synchronize_session=False)
            )  # fmt: skip
            if not moved.rowcount:
                continue
            run = Campaign(
                parent_id=campaign.id, unit_id=campaign.unit_id,
                locality_code=campaign.locality_code, created_by=campaign.created_by,
                created_at=now, audience=campaign.audience, text=campaign.text,
                button_kind=campaign.button_kind, button_target=campaign.button_target,
                schedule="now", status=SENDING, started_at=now, sent=0, failed=0, skipped=0,
                blocked=0,
            )  # fmt: skip
            session.add(run)
            await session.flush()
            target = run
        else:
            if not await _move(session, campaign.id, (SCHEDULED,), status=SENDING,
                               started_at=now, next_run_at=None):  # fmt: skip
                continue
            await session.refresh(campaign)
            target = campaign
        try:
            await _materialise(session, target, actor, localities=localities,
                               curriculum=curriculum, channels=channels, now=now)  # fmt: skip
        except AudienceError:  # the audience left the creator's scope since
            target.status, target.cancelled_at = CANCELLED, now
            target.cancelled_by = "system:out_of_scope"
            continue
        started.append(target.id)
    return started


async def cancel(session: AsyncSession, campaign: Campaign, *, by: str, now: datetime) -> bool:
    """Stop a campaign (and the current run of a weekly one): nothing more is sent; what is
    still pending is counted as skipped (cancelled). False if it had already ended."""
    if not await _move(session, campaign.id, OPEN, status=CANCELLED, cancelled_at=now,
                       cancelled_by=by[:96], next_run_at=None):  # fmt: skip
        return False
    ids = [campaign.id, *await session.scalars(
        select(Campaign.id).where(Campaign.parent_id == campaign.id,
                                  Campaign.status.in_(OPEN)))]  # fmt: skip
    if len(ids) > 1:
        await session.execute(
            update(Campaign).where(Campaign.id.in_(ids[1:]), Campaign.status.in_(OPEN))
            .values(status=CANCELLED, cancelled_at=now, cancelled_by=by[:96])
            .execution_options(synchronize_session=False)
        )  # fmt: skip
    await session.execute(
        update(Delivery).where(Delivery.campaign_id.in_(ids), Delivery.status == PENDING)
        .values(status=SKIPPED, reason="cancelled")
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    await _write_counts(session, ids)
    await session.refresh(campaign)
    return True


def _count_of(campaign_id: Any, status: str) -> Any:
    return (
        select(func.count()).select_from(Delivery)
        .where(Delivery.campaign_id == campaign_id, Delivery.status == status)
        .scalar_subquery()
    )  # fmt: skip


async def _write_counts(session: AsyncSession, ids: list[int]) -> None:
    await session.execute(
        update(Campaign).where(Campaign.id.in_(ids)).values(
            sent=_count_of(Campaign.id, SENT), failed=_count_of(Campaign.id, FAILED),
            skipped=_count_of(Campaign.id, SKIPPED), blocked=_count_of(Campaign.id, BLOCKED),
        ).execution_options(synchronize_session=False)
    )  # fmt: skip


async def finish(session: AsyncSession, now: datetime) -> int:
    """Mark campaigns with nothing pending as done (with their final counts). Rows whose
    identity was deleted in the meantime (withdrawn consent) are skipped first."""
    sending = list(await session.scalars(select(Campaign.id).where(Campaign.status == SENDING)))
    if not sending:  # nothing written: an idle process never takes SQLite's write lock
        return 0
    orphans = await session.scalar(select(Delivery.id).where(
        Delivery.campaign_id.in_(sending), Delivery.status == PENDING,
        Delivery.identity_id.is_(None)).limit(1))  # fmt: skip
    if orphans is not None:
        await session.execute(
            update(Delivery).where(Delivery.campaign_id.in_(sending), Delivery.status == PENDING,
                                   Delivery.identity_id.is_(None))
            .values(status=SKIPPED, reason="erased").execution_options(synchronize_session=False)
        )  # fmt: skip
    pending = exists().where(Delivery.campaign_id == Campaign.id, Delivery.status == PENDING)
    ids = list(await session.scalars(
        select(Campaign.id).where(Campaign.id.in_(sending), ~pending)))  # fmt: skip
    if not ids:
        return 0
    moved = 0
    for campaign_id in ids:
        if await _move(session, campaign_id, (SENDING,), status=DONE, finished_at=now):
            moved += 1
    await _write_counts(session, ids)
    return moved


# ---------------------------------------------------------------------------- counts


@dataclass(slots=True)
class Counts:
    audience: int = 0
    pending: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    skipped: int = 0
    blocked: int = 0
    engaged: int = 0


async def counts(session: AsyncSession, campaign_ids: list[int]) -> dict[int, Counts]:
    """Live counts per campaign; a weekly campaign's include all its runs."""
    if not campaign_ids:
        return {}
    owner = func.coalesce(Campaign.parent_id, Campaign.id)
    query = (
        select(owner.label("owner"), Delivery.status, func.count(),
               func.count(Delivery.delivered_at), func.count(Delivery.engaged_at))
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(or_(Campaign.id.in_(campaign_ids), Campaign.parent_id.in_(campaign_ids)))
        .group_by(owner, Delivery.status)
    )  # fmt: skip
    out = {cid: Counts() for cid in campaign_ids}
    for owner_id, status, n, delivered, engaged in await session.execute(query):
        c = out.setdefault(owner_id, Counts())
        c.audience += n
        c.delivered += delivered
        c.engaged += engaged
        if status in (PENDING, SENT, FAILED, SKIPPED, BLOCKED):
            setattr(c, status, getattr(c, status) + n)
    return out


def visible_filter(actor: Actor) -> Any:
    """Campaigns an officer may follow and cancel: their own, and those credited to a unit
    or a locality in their reach."""
    reaches = actor.reaches
    _provinces, communes, _paths = policy._all(reaches)
    units = select(OrgUnit.id).where(policy.units_filter(reaches))
    parts = [Campaign.created_by == actor.who, Campaign.unit_id.in_(units)]
    if communes:
        parts.append(and_(Campaign.unit_id.is_(None), Campaign.locality_code.in_(communes)))
    provinces = sorted({p for r in reaches for p in r.provinces})
    if provinces:
        parts.append(and_(Campaign.unit_id.is_(None), Campaign.locality_code.in_(provinces)))
    return or_(*parts)


async def visible(session: AsyncSession, actor: Actor, *, limit: int = 10) -> list[Campaign]:
    query = (
        select(Campaign).where(Campaign.parent_id.is_(None), visible_filter(actor))
        .order_by(case((Campaign.status.in_(OPEN), 0), else_=1), Campaign.id.desc())
        .limit(limit)
    )  # fmt: skip
    return list(await session.scalars(query))


async def get_visible(session: AsyncSession, actor: Actor, campaign_id: int) -> Campaign | None:
    return await session.scalar(
        select(Campaign).where(Campaign.id == campaign_id, visible_filter(actor)))


# ---------------------------------------------------------------------------- engagement


async def credit_lesson_start(session: AsyncSession, person: Person, *, at: datetime,
                              channel: str | None) -> int | None:  # fmt: skip
    """Called when `person` starts a lesson: credit the latest campaign delivered to them in
    the 7 days before (once per campaign). Returns the campaign id credited, or None."""
    mine = select(Identity.id).where(Identity.person_id == person.id)
    latest = await session.execute(
        select(Delivery.id, Delivery.campaign_id, Delivery.engaged_at)
        .where(Delivery.identity_id.in_(mine), Delivery.status == SENT,
               Delivery.sent_at >= at - ENGAGE_WINDOW, Delivery.sent_at <= at)
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc()).limit(1)
    )  # fmt: skip
    row = latest.first()
    if row is None or row.engaged_at is not None:
        return None
    campaign = await session.get(Campaign, row.campaign_id)
    if campaign is None:
        return None
    await session.execute(
        update(Delivery).where(Delivery.id == row.id).values(engaged_at=at)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    progress.record(session, person, "campaign_engaged", at=at, channel=channel,
                    detail=_detail(campaign))  # fmt: skip
    return campaign.id


def _detail(campaign: Campaign) -> dict[str, Any]:
    owner = campaign.parent_id or campaign.id
    return {"campaign": owner, "unit": campaign.unit.code if campaign.unit else None,
            "locality": campaign.locality_code}  # fmt: skip


async def delivered_events(session: AsyncSession, sent: list[tuple[int, int, datetime]],
                           channel: str) -> None:  # fmt: skip
    """`campaign_delivered` events for (campaign id, identity id, sent at) rows, written in
    one executemany with each person's snapshot. Plain columns, no ORM objects: a broadcast
    at 1,000/s writes these for every send."""
    if not sent:
        return
    identity_ids = {i for _c, i, _t in sent}
    people: dict[int, Any] = {}
    by_person: dict[int, Any] = {}
    for r in await session.execute(
        select(Identity.id, Person.id.label("pid"), Person.person_key, Person.commune_code,
               Person.gender, Person.age_band)
        .join(Person, Person.id == Identity.person_id).where(Identity.id.in_(identity_ids))
    ):  # fmt: skip
        person = by_person.get(r.pid)
        if person is None:
            person = by_person[r.pid] = SimpleNamespace(
                person_key=r.person_key, commune_code=r.commune_code, gender=r.gender,
                age_band=r.age_band, memberships=[])  # fmt: skip
        people[r.id] = person
    if by_person:
        for m in await session.execute(
            select(Membership.person_id, Membership.org_type, Membership.unit_code)
            .where(Membership.person_id.in_(list(by_person)))
        ):  # fmt: skip
            by_person[m.person_id].memberships.append(m)
    details = {
        r.id: {"campaign": r.parent_id or r.id, "unit": r.code, "locality": r.locality_code}
        for r in await session.execute(
            select(Campaign.id, Campaign.parent_id, Campaign.locality_code, OrgUnit.code)
            .outerjoin(OrgUnit, OrgUnit.id == Campaign.unit_id)
            .where(Campaign.id.in_({c for c, _i, _t in sent})))
    }  # fmt: skip
    rows = []
    snapshots: dict[int, dict[str, Any]] = {}
    for campaign_id, identity_id, at in sent:
        person = people.get(identity_id)
        detail = details.get(campaign_id)
        if person is None or detail is None:
            continue
        snap = snapshots.get(id(person))
        if snap is None:
            snap = snapshots[id(person)] = progress.snapshot(person)
        rows.append({"kind": "campaign_delivered", "at": at, "person_key": person.person_key,
                     "channel": channel, **snap, "detail": detail})  # fmt: skip
    if rows:
        from sqlalchemy import insert

        await session.execute(insert(ParticipationEvent), rows)


# ---------------------------------------------------------------------------- opt-out


async def set_opt_out(session: AsyncSession, person: Person, off: bool) -> bool:
    """Turn campaign messages off (True) or on; False if nothing changed."""
    if person.campaigns_opt_out == off:
        return False
    person.campaigns_opt_out = off
    return True


# ---------------------------------------------------------------------------- privacy


async def _erase_identity(session: AsyncSession, identity: Identity, now: datetime) -> None:
    """/delete: nothing more goes to this identity, and no delivery points to it any more."""
    await session.execute(
        update(Delivery).where(Delivery.identity_id == identity.id, Delivery.status == PENDING)
        .values(status=SKIPPED, reason="erased").execution_options(synchronize_session=False)
    )  # fmt: skip
    await session.execute(
        update(Delivery).where(Delivery.identity_id == identity.id)
        .values(identity_id=None, message_id=None).execution_options(synchronize_session=False)
    )  # fmt: skip


async def _export(session: AsyncSession, person: Person) -> dict[str, Any]:
    """/mydata: the campaign messages this person received."""
    mine = select(Identity.id).where(Identity.person_id == person.id)
    rows = await session.execute(
        select(Delivery.sent_at, Delivery.channel, Campaign.id, Campaign.text, OrgUnit.name)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .outerjoin(OrgUnit, OrgUnit.id == Campaign.unit_id)
        .where(Delivery.identity_id.in_(mine), Delivery.status == SENT)
        .order_by(Delivery.sent_at)
    )  # fmt: skip
    received = [
        {"campaign": cid, "from": unit_name, "channel": channel,
         "sent_at": sent_at.isoformat() if sent_at else None, "text": text}
        for sent_at, channel, cid, text, unit_name in rows
    ]  # fmt: skip
    return {"campaigns_received": received,
            "campaign_messages": "off" if person.campaigns_opt_out else "on"}  # fmt: skip


if _erase_identity not in privacy.IDENTITY_ERASERS:
    privacy.IDENTITY_ERASERS.append(_erase_identity)
if _export not in privacy.EXPORTERS:
    privacy.EXPORTERS.append(_export)
