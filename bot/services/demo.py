"""`hocvuso demo seed`: a synthetic but realistic province for demonstrations and benchmarks.

The communes of the provinces in scope; the Front and the five organisations at province and
commune level (`org seed-defaults`) plus chi hội / chi đoàn in some communes; citizens with a
commune, gender and age band and the memberships people of that age and gender hold;
learners who take the real course's lessons and quizzes (some pass whole modules and get
certificates); campaigns of units and communes delivered to their members, some of whom then
start learning; offline activities with check-ins and head counts; a few people who move
commune, and a few who are erased. Everything happens between 1 January 2025 and 31 December
2027 (Vietnam time), registrations growing over time.

Rows are generated in memory per kind and written with bulk inserts (COPY on PostgreSQL,
executemany on SQLite), then the report rollups are rebuilt. Deterministic for a given
--seed (apart from the random person keys' database ids).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Activity, Campaign, Identity, Membership, OrgUnit, Person
from bot.i18n import TZ
from bot.services import orgs, rollup

if TYPE_CHECKING:
    from bot.localities import LocalityIndex
    from content.loader import Curriculum

START = datetime(2025, 1, 1, tzinfo=TZ).astimezone(UTC)
END = datetime(2028, 1, 1, tzinfo=TZ).astimezone(UTC)
SPAN = (END - START).total_seconds()
GENDERS = (("female", 0.52), ("male", 0.46), ("other", 0.02))
AGES = (("u16", 0.06), ("16-30", 0.27), ("31-45", 0.3), ("46-60", 0.24), ("60+", 0.13))
EVENT_COLUMNS = ("at", "kind", "person_key", "channel", "commune_code", "memberships",
                 "unit_codes", "gender", "age_band", "module_id", "lesson_id", "question_id",
                 "score", "total", "passed", "detail")  # fmt: skip
BRANCH_COMMUNES = 40  # communes whose Women's and Youth Unions get two branches each


@dataclass(slots=True)
class Citizen:
    key: str
    commune: int
    gender: str
    age: str
    joined: datetime
    units: dict[str, str] = field(default_factory=dict)  # org type -> unit code
    moved_to: int | None = None
    moved_at: datetime | None = None
    erased_at: datetime | None = None

    def snapshot(self, at: datetime) -> tuple[int, str | None, str | None]:
        commune = self.moved_to if self.moved_at is not None and at >= self.moved_at else (
            self.commune)  # fmt: skip
        types = ",".join(sorted(self.units)) or None
        codes = ",".join(sorted(self.units.values())) or None
        assert commune is not None
        return commune, types, codes


@dataclass(slots=True)
class SeedResult:
    units: int = 0
    citizens: int = 0
    events: int = 0
    campaigns: int = 0
    activities: int = 0
    seconds_rollup: float = 0.0


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([k for k, _w in weighted], [w for _k, w in weighted])[0]


def _when(rng: random.Random, after: datetime | None = None,
          days: float | None = None) -> datetime:  # fmt: skip
    """A moment in 2025-2027 (growing over time), or within `days` after `after`."""
    if after is not None:
        at = after + timedelta(seconds=rng.random() * (days or 30) * 86400)
        return min(at, END - timedelta(seconds=1))
    return START + timedelta(seconds=SPAN * (rng.random() ** 0.7))


async def _units(session: AsyncSession, localities: LocalityIndex,
                 rng: random.Random) -> dict[tuple[int, str], list[str]]:  # fmt: skip
    """Default units plus branches; (commune, org type) -> unit codes members can join."""
    await orgs.seed_defaults(session, localities, actor="demo")
    communes = [c.code for c in localities.communes()]
    lines = ["type,name,locality_code,parent_code,code"]
    for commune in rng.sample(communes, min(BRANCH_COMMUNES, len(communes))):
        for type_, prefix, name in (("hoi_phu_nu", "HPN", "Chi hội Phụ nữ"),
                                    ("doan", "DOAN", "Chi đoàn")):  # fmt: skip
            parent = f"{prefix}-{commune}"
            lines += [f"{type_},{name} xóm {n},{commune},{parent},{parent}-X{n}" for n in (1, 2)]
    found = await orgs.import_csv(session, "\n".join(lines) + "\n", localities, actor="demo")
    if not found.ok:
        raise ValueError("; ".join(found.problems[:3]))
    out: dict[tuple[int, str], list[str]] = {}
    for unit in await session.scalars(select(OrgUnit)):
        if unit.locality_code in localities.province_codes or unit.type == "mttq":
            continue
        out.setdefault((unit.locality_code, unit.type), []).append(unit.code)
    return out


def _memberships(rng: random.Random, gender: str, age: str) -> list[str]:
    chances = {
        "hoi_phu_nu": 0.45 if gender == "female" and age != "u16" else 0.0,
        "doan": 0.5 if age == "16-30" else (0.15 if age == "u16" else 0.0),
        "hoi_nong_dan": 0.3 if age not in ("u16", "16-30") else 0.08,
        "hoi_ccb": 0.25 if gender == "male" and age in ("46-60", "60+") else 0.0,
        "cong_doan": 0.18 if age in ("16-30", "31-45", "46-60") else 0.0,
    }
    return [t for t, p in chances.items() if rng.random() < p]


class _Events:
    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def add(self, c: Citizen, kind: str, at: datetime, *, module: str | None = None,
            lesson: str | None = None, question: str | None = None, score: int | None = None,
            total: int | None = None, passed: bool | None = None,
            detail: dict[str, Any] | None = None) -> None:  # fmt: skip
        commune, types, codes = c.snapshot(at)
        self.rows.append((at, kind, c.key, "telegram", commune, types, codes, c.gender, c.age,
                          module, lesson, question, score, total, passed,
                          json.dumps(detail) if detail is not None else None))  # fmt: skip


async def seed(session: AsyncSession, localities: LocalityIndex, curriculum: Curriculum, *,
               citizens: int, events: int, seed: int = 1) -> SeedResult:  # fmt: skip
    """Fill the database (in this session's transaction). About `events` events in all."""
    import time

    rng = random.Random(seed)
    result = SeedResult()
    unit_choices = await _units(session, localities, rng)
    result.units = int(await session.scalar(select(func.count()).select_from(OrgUnit)) or 0)
    communes = [c.code for c in localities.communes()]
    weights = [rng.paretovariate(1.6) for _ in communes]
    people: list[Citizen] = []
    for _ in range(citizens):
        c = Citizen(key=f"{rng.getrandbits(128):032x}", commune=rng.choices(communes, weights)[0],
                    gender=_pick(rng, GENDERS), age=_pick(rng, AGES), joined=_when(rng))
        for org_type in _memberships(rng, c.gender, c.age):
            options = unit_choices.get((c.commune, org_type))
            if options:
                c.units[org_type] = rng.choice(options)
        if rng.random() < 0.02:
            c.moved_to, c.moved_at = rng.choice(communes), _when(rng, c.joined, 300)
        if rng.random() < 0.01:
            c.erased_at = _when(rng, c.joined, 400)
        people.append(c)
    ev = _Events()
    for c in people:
        ev.add(c, "registered", c.joined, detail={"consent_version": "2026-11"})
        ev.add(c, "profile_changed", c.joined + timedelta(seconds=20), detail={"field": "commune"})
        ev.add(c, "profile_changed", c.joined + timedelta(seconds=40), detail={"field": "gender"})
        for org_type in sorted(c.units):
            ev.add(c, "joined_org", c.joined + timedelta(seconds=60),
                   detail={"org_type": org_type})  # fmt: skip
        if c.moved_at is not None:
            ev.add(c, "profile_changed", c.moved_at, detail={"field": "commune"})
    # Campaigns: units (mostly communes') and commune administrators, sent to members.
    members_of: dict[str, list[Citizen]] = {}
    residents: dict[int, list[Citizen]] = {}
    for c in people:
        for code in c.units.values():
            members_of.setdefault(code, []).append(c)
        residents.setdefault(c.commune, []).append(c)
    units = {u.code: u for u in await session.scalars(select(OrgUnit))}
    below: dict[str, list[str]] = {}
    for code in members_of:
        for other in units.values():
            if units[code].path.startswith(other.path):
                below.setdefault(other.code, []).append(code)
    senders = sorted(below)
    campaign_budget = int(events * 0.15)
    engaged: dict[int, datetime] = {}
    sent = 0
    while sent < campaign_budget and senders:
        at = _when(rng)
        if rng.random() < 0.8:
            code: str | None = rng.choice(senders)
            assert code is not None
            unit: OrgUnit | None = units[code]
            audience = [p for sub in below[code] for p in members_of[sub]]
            locality = units[code].locality_code
        else:
            locality = rng.choice(communes)
            audience, unit, code = residents.get(locality, []), None, None
        audience = [p for p in audience if p.joined < at and (p.erased_at is None or
                                                              p.erased_at > at)]  # fmt: skip
        if not audience:
            continue
        campaign = Campaign(unit_id=unit.id if unit is not None else None,
                            locality_code=None if unit is not None else locality,
                            created_by="demo", created_at=at, audience={},
                            text="Mời bạn học bài mới trên hocvuso", schedule="now",
                            status="done", audience_size=len(audience), started_at=at,
                            finished_at=at + timedelta(minutes=10), sent=len(audience))
        session.add(campaign)
        await session.flush()
        result.campaigns += 1
        detail = {"campaign": campaign.id, "unit": code, "locality": locality}
        for p in audience:
            ev.add(p, "campaign_delivered", at + timedelta(seconds=rng.random() * 600),
                   detail=detail)  # fmt: skip
            if rng.random() < 0.08 and id(p) not in engaged:
                when = _when(rng, at, 7)
                ev.add(p, "campaign_engaged", when, detail=detail)
                engaged[id(p)] = when
        sent += len(audience)
    # Offline activities of units, with check-ins and head counts.
    with_members = sorted(members_of)
    for code in rng.sample(with_members, min(len(with_members), citizens // 200 + 1)):
        held = _when(rng)
        activity = Activity(code=f"D{rng.getrandbits(40):010X}", unit_id=units[code].id,
                            title="Hướng dẫn cài đặt và dùng VNeID", held_on=held,
                            place="Nhà văn hóa", head_count=rng.randint(0, 40),
                            created_by="demo")  # fmt: skip
        session.add(activity)
        await session.flush()
        result.activities += 1
        for p in rng.sample(members_of[code], min(len(members_of[code]), rng.randint(3, 25))):
            if p.joined < held:
                ev.add(p, "activity_attended", held + timedelta(hours=1),
                       detail={"activity": activity.id, "unit": code})  # fmt: skip
    for c in people:
        if c.erased_at is not None:
            ev.add(c, "consent_withdrawn", c.erased_at, detail={"erased": True})
    # Learning: lessons of the real course, many for a few people, few for most.
    plans = [_Learner(c, rng, curriculum, engaged.get(id(c))) for c in people]
    budget = max(0, events - len(ev.rows))
    per_lesson = 4 + 5
    wants = [min(rng.paretovariate(1.1), 60.0) if rng.random() < 0.7 else 0.0 for _ in plans]
    lo, hi = 0.0, 64.0
    for _ in range(40):  # how many lessons a weight of 1 is worth, to spend the budget
        mid = (lo + hi) / 2
        need = sum(min(int(w * mid), plan.left) for w, plan in zip(wants, plans, strict=True))
        lo, hi = (mid, hi) if need * per_lesson < budget else (lo, mid)
    for w, plan in zip(wants, plans, strict=True):
        plan.learn(ev, min(int(w * lo), plan.left))
    open_plans = [p for p in plans if p.left]
    while len(ev.rows) < events and open_plans:
        plan = rng.choice(open_plans)
        plan.learn(ev, 1)
        if not plan.left:
            open_plans.remove(plan)
    await _people(session, [c for c in people if c.erased_at is None])
    await _write_events(session, ev.rows)
    result.citizens, result.events = citizens, len(ev.rows)
    started = time.perf_counter()
    await rollup.refresh(session, localities, rebuild=True)
    result.seconds_rollup = time.perf_counter() - started
    return result


class _Learner:
    """One person working through the course in their own order of modules."""

    def __init__(self, c: Citizen, rng: random.Random, curriculum: Curriculum,
                 start: datetime | None) -> None:  # fmt: skip
        self.c, self.rng = c, rng
        modules = list(curriculum.modules)
        rng.shuffle(modules)
        self.steps = [(m, i) for m in modules for i in range(len(m.lessons))]
        self.done = 0
        self.at = start or _when(rng, c.joined, 120)
        self.failed: set[str] = set()

    @property
    def left(self) -> int:
        end = self.c.erased_at or END - timedelta(days=1)
        return len(self.steps) - self.done if self.at < end else 0

    def learn(self, ev: _Events, n: int) -> None:
        rng, c = self.rng, self.c
        for _ in range(n):
            if not self.left:
                return
            module, index = self.steps[self.done]
            lesson = module.lessons[index]
            questions = len(lesson.quiz) or 5
            ev.add(c, "lesson_started", self.at, module=module.id, lesson=lesson.id)
            self.at += timedelta(minutes=rng.randint(3, 15))
            ev.add(c, "lesson_completed", self.at, module=module.id, lesson=lesson.id)
            right = 0
            for q in range(questions):
                ok = rng.random() < 0.82
                right += ok
                ev.add(c, "quiz_answered", self.at + timedelta(seconds=30 * q),
                       module=module.id, lesson=lesson.id, question=lesson.quiz[q].id
                       if q < len(lesson.quiz) else f"q{q + 1}", passed=ok)  # fmt: skip
            passed = right >= lesson.pass_score
            self.at += timedelta(minutes=4)
            ev.add(c, "quiz_finished", self.at, module=module.id, lesson=lesson.id, score=right,
                   total=questions, passed=passed)  # fmt: skip
            if not passed:
                self.failed.add(module.id)
            if index == len(module.lessons) - 1 and module.id not in self.failed:
                ev.add(c, "certificate_issued", self.at + timedelta(seconds=5), module=module.id,
                       detail={"code": f"HVS-DEMO-{rng.getrandbits(32):08X}"})  # fmt: skip
            self.done += 1
            self.at += timedelta(hours=rng.random() * 24 * rng.choice((0.05, 0.5, 2, 8, 30)))


async def _people(session: AsyncSession, people: list[Citizen]) -> None:
    """Person, Identity and Membership rows (reports do not read them; the dashboard and
    campaigns look real with them)."""
    now = datetime.now(UTC)
    ids: dict[str, int] = {}
    for i in range(0, len(people), 5000):
        part = people[i : i + 5000]
        rows = [{"person_key": c.key, "display_name": f"Người học {c.key[:6]}",
                 "commune_code": c.moved_to if c.moved_to is not None else c.commune,
                 "gender": c.gender, "age_band": c.age, "language": "vi",
                 "consent_version": "2026-11", "consented_at": c.joined, "created_at": c.joined,
                 "last_active_at": now, "campaigns_opt_out": False} for c in part]  # fmt: skip
        found = await session.execute(
            Person.__table__.insert().returning(Person.id, Person.person_key), rows)
        ids.update({key: pid for pid, key in found})
    identities = [{"channel": "telegram", "external_id": f"demo-{c.key[:24]}",
                   "chat_id": f"demo-{c.key[:24]}", "person_id": ids[c.key], "consent": "given",
                   "language": "vi", "state": "", "state_data": {}, "created_at": c.joined,
                   "last_inbound_at": now} for c in people]  # fmt: skip
    memberships = [{"person_id": ids[c.key], "org_type": t, "unit_code": code, "since": c.joined}
                   for c in people for t, code in c.units.items()]  # fmt: skip
    for model, rows in ((Identity, identities), (Membership, memberships)):
        for i in range(0, len(rows), 5000):
            await session.execute(model.__table__.insert(), rows[i : i + 5000])


async def _write_events(session: AsyncSession, rows: list[tuple[Any, ...]]) -> None:
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        for i in range(0, len(rows), 100_000):
            await driver.copy_records_to_table("participation_events",
                                               records=rows[i : i + 100_000],
                                               columns=list(EVENT_COLUMNS))  # fmt: skip
        await conn.execute(text("ANALYZE participation_events"))
        return
    # SQLite stores UTC datetimes as naive text (bot.db.models.UTCDateTime).
    sql = (f"INSERT INTO participation_events ({', '.join(EVENT_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})")  # fmt: skip
    for i in range(0, len(rows), 50_000):
        part = [(r[0].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"), *r[1:])
                for r in rows[i : i + 50_000]]  # fmt: skip
        await conn.exec_driver_sql(sql, part)
    await conn.execute(text("ANALYZE"))
