"""Report rollups: the indicator definitions of `bot.services.metrics`, folded per person into
small counter tables and refreshed incrementally, so a whole-year report over millions of
events reads a few thousand rows instead of scanning the events.

Why counters of year masks: most indicators count *distinct* people or (person, lesson)
pairs, which cannot be added up across months or groups. So each person's events are folded
into, per group they count for ("u:CODE" for the unit and every unit above it, "c:COMMUNE",
"p:PROVINCE"), one 63-bit mask per measure: bit y-2020 set if the person was active /
reached / engaged in year y, or registered / a member / trained at the end of year y. People
with the same masks are one counter row (`rollup_people.n`), so "distinct people of group G
active in 2025-2027" is `SUM(n) WHERE grp = G AND act & mask(2025..2027) != 0`, exact for
any run of whole years from 2020 to 2082. (Person, lesson) pairs fold the same way into
`rollup_pairs`; `rollup_communes` keeps active people per commune (communes covered);
`rollup_months` keeps monthly figures for trends; `rollup_campaigns` the years each
campaign delivered in.

Incremental refresh: what a person contributed is stored (`rollup_persons`), so a person
with new events is folded again from all their events and only the difference is applied.
New events are found by id; identity merges re-point `person_key` on past events, and a
database trigger records the keys involved in `rollup_dirty`. A unit moved in the tree (or
given another locality) changes what every event counts for: the rollups are then rebuilt
from scratch. `refresh` takes the rollup_state row lock first, so refreshes never overlap.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    and_,
    case,
    delete,
    func,
    literal,
    select,
    text,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    OrgUnit,
    ParticipationEvent,
    RollupCampaigns,
    RollupCommunes,
    RollupDims,
    RollupDirty,
    RollupMonths,
    RollupPairs,
    RollupPeople,
    RollupPerson,
    RollupPlaceGroup,
    RollupState,
    RollupUnitGroup,
)

if TYPE_CHECKING:
    from bot.localities import LocalityIndex
    from bot.services.metrics import Group

log = logging.getLogger(__name__)

FIRST_YEAR, LAST_YEAR = 2020, 2082  # bit 0 .. bit 62 of a year mask
# Vietnam has kept UTC+7 all year since 1975: local years and months of UTC moments.
LOCAL_OFFSET = timedelta(hours=7)
BATCH = 1000
# PostgreSQL may commit a lower id after a higher one: refold the people of the last ids.
PG_ID_MARGIN = 1000
ACTIVE_KINDS = ("lesson_started", "quiz_answered", "lesson_completed")
LEARN_KINDS = (*ACTIVE_KINDS, "quiz_finished", "certificate_issued")
CAMPAIGN_KINDS = ("campaign_delivered", "campaign_engaged")
ENDS_REGISTRATION = ("consent_withdrawn",)
E = ParticipationEvent.__table__
_COLUMNS = (E.c.id, E.c.at, E.c.kind, E.c.person_key, E.c.commune_code, E.c.unit_codes,
            E.c.memberships, E.c.gender, E.c.age_band, E.c.lesson_id, E.c.passed)  # fmt: skip


def bit(year: int) -> int:
    return 1 << (year - FIRST_YEAR) if FIRST_YEAR <= year <= LAST_YEAR else 0


def span(first: int, last: int) -> int:
    """The mask of the years first..last (clipped to the window)."""
    first, last = max(first, FIRST_YEAR), min(last, LAST_YEAR)
    if first > last:
        return 0
    return ((1 << (last - FIRST_YEAR + 1)) - 1) & ~((1 << (first - FIRST_YEAR)) - 1)


# ---------------------------------------------------------------------------- attribution


class Places:
    """What events count for: unit codes -> the groups of the unit and every unit above it;
    communes -> their commune and province groups. Built from org_units and the localities."""

    def __init__(self, units: Iterable[tuple[int, str, str, int]],
                 localities: LocalityIndex) -> None:  # fmt: skip
        rows = list(units)
        code_of = {uid: code for uid, code, _path, _loc in rows}
        self.up: dict[str, list[str]] = {}
        self.locality: dict[str, int] = {}
        for _uid, code, path, loc in rows:
            ids = [int(p) for p in path.strip("/").split("/") if p]
            chain = [code_of[i] for i in reversed(ids) if i in code_of] or [code]
            self.up[code] = [f"u:{c}" for c in chain]
            self.locality[code] = loc
        self.provinces = frozenset(localities.province_codes)
        self._province: dict[int, int | None] = {}
        self._localities = localities
        self._learning: dict[tuple[int | None, str | None], list[str]] = {}
        self._campaign: dict[tuple[str | None, int | None], list[str]] = {}

    def tree(self) -> dict[str, Any]:
        """What a rebuild depends on: each unit's chain up and its locality, and the
        provinces in scope."""
        out: dict[str, Any] = {code: [self.locality[code], *chain]
                               for code, chain in self.up.items()}  # fmt: skip
        out["#provinces"] = sorted(self.provinces)
        return out

    def place_rows(self) -> list[dict[str, Any]]:
        rows = [{"code": p, "grp": f"p:{p}"} for p in sorted(self.provinces)]
        for commune in self._localities.communes():
            rows += [{"code": commune.code, "grp": g} for g in self.of_locality(commune.code)]
        return rows

    def unit_rows(self) -> list[dict[str, Any]]:
        return [{"code": code, "grp": g} for code, chain in self.up.items() for g in chain]

    def province_of(self, commune: int) -> int | None:
        if commune not in self._province:
            found = self._localities.get(commune)
            self._province[commune] = found.province_code if found is not None else None
        return self._province[commune]

    def of_locality(self, code: int | None) -> list[str]:
        if code is None:
            return []
        if code in self.provinces:
            return [f"p:{code}"]
        province = self.province_of(code)
        return [f"c:{code}"] + ([f"p:{province}"] if province is not None else [])

    def of_units(self, codes: str | None) -> list[str]:
        out: list[str] = []
        for code in (codes or "").split(","):
            if code:
                out.extend(self.up.get(code, (f"u:{code}",)))
        return out

    def learning(self, commune: int | None, units: str | None) -> list[str]:
        """The groups an event of a person with this commune and these units counts for."""
        key = (commune, units)
        found = self._learning.get(key)
        if found is None:
            found = list(dict.fromkeys(self.of_units(units) + self.of_locality(commune)))
            self._learning[key] = found
        return found

    def campaign(self, unit: str | None, locality: int | None) -> list[str]:
        """A campaign's groups: its unit and those above it, and the unit's locality (or the
        administrator's locality for a campaign without a unit)."""
        key = (unit, locality)
        found = self._campaign.get(key)
        if found is None:
            loc = self.locality.get(unit) if unit is not None else None
            if loc is None:
                loc = locality
            groups = self.of_units(unit) if unit is not None else []
            found = list(dict.fromkeys(groups + self.of_locality(loc)))
            self._campaign[key] = found
        return found


async def load_places(session: AsyncSession, localities: LocalityIndex) -> Places:
    rows = await session.execute(
        select(OrgUnit.id, OrgUnit.code, OrgUnit.path, OrgUnit.locality_code)
    )
    return Places(((r[0], r[1], r[2], r[3]) for r in rows), localities)


# ---------------------------------------------------------------------------- folding


@dataclass(slots=True)
class Folded:
    """One person's contribution (JSON-ready lists) and their campaigns (OR-ed in)."""

    contrib: dict[str, list[list[Any]]]
    campaigns: dict[tuple[str, int], int]


def fold(rows: Sequence[Any], places: Places) -> Folded:
    """Fold one person's events, sorted by (at, id), into their counter rows.

    Events are first gathered per attribution (commune, units) - usually one or two per
    person - and only then spread over the groups each attribution counts for."""
    act: dict[tuple[Any, Any], int] = defaultdict(int)
    pairs: dict[tuple[Any, Any, str], list[int]] = {}
    certs: Counter[tuple[Any, Any, int]] = Counter()
    act_months: set[tuple[Any, Any, int]] = set()
    lesson_months: set[tuple[Any, Any, int, str]] = set()
    rch: dict[tuple[Any, Any], int] = defaultdict(int)
    eng: dict[tuple[Any, Any], int] = defaultdict(int)
    reach_months: set[tuple[Any, Any, int]] = set()
    campaign_years: dict[tuple[Any, Any, int], int] = defaultdict(int)
    first_reg: int | None = None
    first_cert: int | None = None
    segments: list[tuple[int, Any]] = []  # (year, last event of that year)
    for r in rows:
        local = r.at + LOCAL_OFFSET
        year = local.year
        month = year * 100 + local.month
        b = bit(year)
        kind = r.kind
        if kind in LEARN_KINDS:
            attr = (r.commune_code, r.unit_codes)
            if kind == "certificate_issued":
                certs[(*attr, month)] += 1
                if first_cert is None:
                    first_cert = year
            elif kind == "quiz_finished":
                pair = pairs.setdefault((*attr, r.lesson_id or ""), [0, 0, 0])
                pair[1] |= b
                if r.passed:
                    pair[2] |= b
            else:
                act[attr] |= b
                act_months.add((*attr, month))
                if kind == "lesson_completed":
                    lesson = r.lesson_id or ""
                    pairs.setdefault((*attr, lesson), [0, 0, 0])[0] |= b
                    lesson_months.add((*attr, month, lesson))
        elif kind in CAMPAIGN_KINDS:
            detail = r.detail if isinstance(r.detail, dict) else {}
            unit, loc = detail.get("unit"), detail.get("locality")
            cattr = (unit if isinstance(unit, str) else None,
                     loc if isinstance(loc, int) else None)
            if kind == "campaign_delivered":
                rch[cattr] |= b
                reach_months.add((*cattr, month))
                campaign = detail.get("campaign")
                if isinstance(campaign, int):
                    campaign_years[(*cattr, campaign)] |= b
            else:
                eng[cattr] |= b
        elif kind == "registered" and first_reg is None:
            first_reg = year
        state_year = year if year > FIRST_YEAR else FIRST_YEAR
        if segments and segments[-1][0] == state_year:
            segments[-1] = (state_year, r)
        else:
            segments.append((state_year, r))

    learning, campaign_groups = places.learning, places.campaign
    g_act: dict[str, int] = defaultdict(int)
    g_rch: dict[str, int] = defaultdict(int)
    g_eng: dict[str, int] = defaultdict(int)
    communes: dict[tuple[str, int], int] = defaultdict(int)
    for (commune, units), mask in act.items():
        for g in learning(commune, units):
            g_act[g] |= mask
            if commune is not None and mask:
                communes[(g, commune)] |= mask
    for key, mask in rch.items():
        for g in campaign_groups(*key):
            g_rch[g] |= mask
    for key, mask in eng.items():
        for g in campaign_groups(*key):
            g_eng[g] |= mask
    g_pairs: dict[tuple[str, str], list[int]] = {}
    for (commune, units, lesson), masks in pairs.items():
        for g in learning(commune, units):
            pair = g_pairs.setdefault((g, lesson), [0, 0, 0])
            pair[0] |= masks[0]
            pair[1] |= masks[1]
            pair[2] |= masks[2]
    month_sets: dict[str, set[tuple[str, int]] | set[tuple[str, int, str]]] = {
        "active": {(g, m) for c, u, m in act_months for g in learning(c, u)},
        "lessons": {(g, m, lesson) for c, u, m, lesson in lesson_months
                    for g in learning(c, u)},
        "reached": {(g, m) for un, loc, m in reach_months for g in campaign_groups(un, loc)},
    }  # fmt: skip
    months: Counter[tuple[str, int, str]] = Counter()
    for measure, seen in month_sets.items():
        for item in seen:
            months[(item[0], item[1], measure)] += 1
    for (commune, units, month), n in certs.items():
        for g in learning(commune, units):
            months[(g, month, "certificates")] += n
    campaigns: dict[tuple[str, int], int] = defaultdict(int)
    for (unit, loc, campaign), mask in campaign_years.items():
        if mask:
            for g in campaign_groups(unit, loc):
                campaigns[(g, campaign)] |= mask

    reg: dict[str, int] = defaultdict(int)
    mem: dict[str, int] = defaultdict(int)
    trn: dict[str, int] = defaultdict(int)
    for i, (start, snap) in enumerate(segments):
        end = segments[i + 1][0] - 1 if i + 1 < len(segments) else LAST_YEAR
        if first_reg is None or snap.kind in ENDS_REGISTRATION:
            continue
        lo = max(start, first_reg)
        bits = span(lo, end)
        if not bits:
            continue
        trained = span(max(lo, first_cert), end) if first_cert is not None else 0
        member_here = bool(snap.memberships)
        for g in learning(snap.commune_code, snap.unit_codes):
            reg[g] |= bits
            if member_here or g.startswith("u:"):
                mem[g] |= bits
                trn[g] |= trained
    last = rows[-1] if rows else None
    gender = (last.gender or "") if last is not None else ""
    age = (last.age_band or "") if last is not None else ""
    groups = [g for g in sorted(set(g_act) | set(g_rch) | set(g_eng) | set(reg))
              if g_act[g] or g_rch[g] or g_eng[g] or reg[g]]  # fmt: skip
    pair_rows: Counter[tuple[str, int, int, int]] = Counter(
        (g, m[0], m[1], m[2]) for (g, _lesson), m in g_pairs.items() if m[0] or m[1] or m[2]
    )
    contrib = {
        "p": [[g, g_act[g], g_rch[g], g_eng[g], reg[g], mem[g], trn[g], first_reg or 0]
              for g in groups],
        "d": [[g, g_act[g], reg[g], mem[g], trn[g], gender, age] for g in groups
              if g_act[g] or reg[g]],
        "q": [[*key, n] for key, n in sorted(pair_rows.items())],
        "c": [[g, c, m] for (g, c), m in sorted(communes.items())],
        "m": [[*key, n] for key, n in sorted(months.items())],
    }
    return Folded(contrib, dict(campaigns))


# ---------------------------------------------------------------------------- applying


class _Deltas:
    """Counter changes per table, summed before they are written."""

    def __init__(self) -> None:
        self.people: Counter[tuple[Any, ...]] = Counter()
        self.dims: Counter[tuple[Any, ...]] = Counter()
        self.pairs: Counter[tuple[Any, ...]] = Counter()
        self.communes: Counter[tuple[Any, ...]] = Counter()
        self.months: Counter[tuple[Any, ...]] = Counter()

    def add(self, contrib: dict[str, list[list[Any]]], sign: int) -> None:
        for row in contrib.get("p", ()):
            self.people[tuple(row)] += sign
        for row in contrib.get("d", ()):
            self.dims[tuple(row)] += sign
        for row in contrib.get("q", ()):
            self.pairs[tuple(row[:-1])] += sign * row[-1]
        for row in contrib.get("c", ()):
            self.communes[tuple(row)] += sign
        for row in contrib.get("m", ()):
            self.months[tuple(row[:-1])] += sign * row[-1]


_KEYS = {
    RollupPeople: ("grp", "act", "rch", "eng", "reg", "mem", "trn", "ry"),
    RollupDims: ("grp", "act", "reg", "mem", "trn", "gender", "age_band"),
    RollupPairs: ("grp", "cmp", "fin", "pas"),
    RollupCommunes: ("grp", "commune_code", "act"),
    RollupMonths: ("grp", "month", "measure"),
}


def _insert(dialect: str, model: Any) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model)


async def _upsert_counts(session: AsyncSession, model: Any, deltas: Counter[tuple[Any, ...]],
                         *, plain: bool = False) -> None:  # fmt: skip
    keys = _KEYS[model]
    rows = [dict(zip(keys, key, strict=True), n=n) for key, n in deltas.items() if n]
    if not rows:
        return
    dialect = session.bind.dialect.name
    stmt = _insert(dialect, model)
    if not plain:
        stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                          set_={"n": model.n + stmt.excluded.n})  # fmt: skip
    for i in range(0, len(rows), 5000):
        await session.execute(stmt, rows[i : i + 5000])


async def _upsert_campaigns(session: AsyncSession, campaigns: dict[tuple[str, int], int]) -> None:
    if not campaigns:
        return
    stmt = _insert(session.bind.dialect.name, RollupCampaigns)
    stmt = stmt.on_conflict_do_update(
        index_elements=["grp", "campaign_id"],
        set_={"years": RollupCampaigns.years.op("|")(stmt.excluded.years)},
    )
    rows = [{"grp": g, "campaign_id": c, "years": m} for (g, c), m in campaigns.items()]
    for i in range(0, len(rows), 5000):
        await session.execute(stmt, rows[i : i + 5000])


async def _apply(session: AsyncSession, deltas: _Deltas) -> None:
    await _upsert_counts(session, RollupPeople, deltas.people)
    await _upsert_counts(session, RollupDims, deltas.dims)
    await _upsert_counts(session, RollupPairs, deltas.pairs)
    await _upsert_counts(session, RollupCommunes, deltas.communes)
    await _upsert_counts(session, RollupMonths, deltas.months)
    for model in _KEYS:
        await session.execute(delete(model).where(model.n == 0))


# ---------------------------------------------------------------------------- refreshing


@dataclass(slots=True)
class RefreshResult:
    people: int = 0  # people folded again
    events: int = 0  # new events since the last refresh
    rebuilt: bool = False


def _history(keys: Sequence[str]) -> Any:
    detail = case((E.c.kind.in_(CAMPAIGN_KINDS), E.c.detail), else_=None).label("detail")
    return (
        select(*_COLUMNS, detail)
        .where(E.c.person_key.in_(keys))
        .order_by(E.c.person_key, E.c.at, E.c.id)
    )


async def _lock_state(session: AsyncSession) -> RollupState:
    """The one state row, locked for this transaction (created on first use)."""
    stmt = _insert(session.bind.dialect.name, RollupState).values(
        id=1, last_event_id=0, tree={}, version=0
    ).on_conflict_do_nothing()  # fmt: skip
    await session.execute(stmt)
    await session.execute(update(RollupState).where(RollupState.id == 1)
                          .values(version=RollupState.version + 1))  # fmt: skip
    state = await session.get(RollupState, 1, populate_existing=True)
    assert state is not None
    return state


def _tree_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Units that existed moved or changed locality (new units change nothing folded)."""
    return any(new.get(code) != entry for code, entry in old.items())


async def refresh(session: AsyncSession, localities: LocalityIndex, *, rebuild: bool = False,
                  now: datetime | None = None) -> RefreshResult:  # fmt: skip
    """Fold new events (and re-pointed people) into the rollups. Run it in a transaction of
    its own before reading; it does little when nothing changed."""
    state = await _lock_state(session)
    places = await load_places(session, localities)
    tree = places.tree()
    top = int(await session.scalar(select(func.coalesce(func.max(E.c.id), 0))) or 0)
    if (state.tree or {}) != tree:
        await _write_groups(session, places)
    if rebuild or state.last_event_id == 0 or _tree_changed(state.tree or {}, tree):
        result = await _rebuild(session, places, top)
    else:
        result = await _incremental(session, places, state.last_event_id, top)
    state.last_event_id = top
    if state.tree != tree:
        state.tree = tree
    state.refreshed_at = now or datetime.now(UTC)
    await session.flush()
    return result


async def _write_groups(session: AsyncSession, places: Places) -> None:
    """The attribution tables the raw-event queries join (small: a few thousand rows)."""
    await session.execute(delete(RollupUnitGroup))
    await session.execute(delete(RollupPlaceGroup))
    for model, rows in ((RollupUnitGroup, places.unit_rows()),
                        (RollupPlaceGroup, places.place_rows())):  # fmt: skip
        for i in range(0, len(rows), 5000):
            await session.execute(model.__table__.insert(), rows[i : i + 5000])
    if session.bind.dialect.name == "sqlite":
        await session.execute(text("ANALYZE rollup_unit_groups"))
        await session.execute(text("ANALYZE rollup_place_groups"))


async def _incremental(session: AsyncSession, places: Places, last: int,
                       top: int) -> RefreshResult:  # fmt: skip
    result = RefreshResult(events=top - last)
    since = last - PG_ID_MARGIN if session.bind.dialect.name == "postgresql" else last
    keys: set[str] = set()
    if top > last:  # (a late commit below `last` is folded with the next new events)
        found = await session.scalars(
            select(E.c.person_key).where(E.c.id > since, E.c.id <= top).distinct()
        )
        keys.update(found)
    dirty = list(await session.scalars(select(RollupDirty.person_key)))
    if dirty:
        keys.update(dirty)
        await session.execute(delete(RollupDirty).where(RollupDirty.person_key.in_(dirty)))
    ordered = sorted(keys)
    for i in range(0, len(ordered), BATCH):
        await _refold(session, places, ordered[i : i + BATCH])
    result.people = len(ordered)
    return result


async def _refold(session: AsyncSession, places: Places, keys: list[str]) -> None:
    old = {
        key: contrib for key, contrib in await session.execute(
            select(RollupPerson.person_key, RollupPerson.contrib)
            .where(RollupPerson.person_key.in_(keys)))
    }  # fmt: skip
    history: dict[str, list[Any]] = defaultdict(list)
    for row in await session.execute(_history(keys)):
        history[row.person_key].append(row)
    deltas = _Deltas()
    campaigns: dict[tuple[str, int], int] = defaultdict(int)
    changed: list[dict[str, Any]] = []
    gone: list[str] = []
    for key in keys:
        folded = fold(history.get(key, []), places)
        previous = old.get(key)
        if previous == folded.contrib:
            continue
        if previous is not None:
            deltas.add(previous, -1)
        deltas.add(folded.contrib, +1)
        for k, m in folded.campaigns.items():
            campaigns[k] |= m
        if any(folded.contrib.values()):
            changed.append({"person_key": key, "contrib": folded.contrib})
        else:
            gone.append(key)
    await _apply(session, deltas)
    await _upsert_campaigns(session, campaigns)
    touched = [c["person_key"] for c in changed] + gone
    if touched:
        await session.execute(delete(RollupPerson).where(RollupPerson.person_key.in_(touched)))
    if changed:
        await session.execute(RollupPerson.__table__.insert(), changed)


async def _rebuild(session: AsyncSession, places: Places, top: int) -> RefreshResult:
    """Everything from scratch, a thousand people at a time (bounded memory): their
    contributions are written as they are folded, the counters (few rows) at the end."""
    for model in (*_KEYS, RollupCampaigns, RollupPerson, RollupDirty):
        await session.execute(delete(model))
    keys = sorted(await session.scalars(select(E.c.person_key).where(E.c.id <= top).distinct()))
    totals = _Deltas()
    campaigns: dict[tuple[str, int], int] = defaultdict(int)
    for i in range(0, len(keys), BATCH):
        chunk = keys[i : i + BATCH]
        history: dict[str, list[Any]] = defaultdict(list)
        for row in await session.execute(_history(chunk).where(E.c.id <= top)):
            history[row.person_key].append(row)
        contribs = []
        for key in chunk:
            folded = fold(history.get(key, []), places)
            totals.add(folded.contrib, +1)
            for k, m in folded.campaigns.items():
                campaigns[k] |= m
            if any(folded.contrib.values()):
                contribs.append({"person_key": key, "contrib": folded.contrib})
        if contribs:
            await session.execute(RollupPerson.__table__.insert(), contribs)
    await _upsert_counts(session, RollupPeople, totals.people, plain=True)
    await _upsert_counts(session, RollupDims, totals.dims, plain=True)
    await _upsert_counts(session, RollupPairs, totals.pairs, plain=True)
    await _upsert_counts(session, RollupCommunes, totals.communes, plain=True)
    await _upsert_counts(session, RollupMonths, totals.months, plain=True)
    await _upsert_campaigns(session, campaigns)
    # Fresh statistics for the planners (PostgreSQL's autovacuum would come later).
    for model in (*_KEYS, RollupCampaigns):
        await session.execute(text(f"ANALYZE {model.__tablename__}"))
    return RefreshResult(people=len(keys), events=top, rebuilt=True)


# ---------------------------------------------------------------------------- reading


def _has(col: Any, mask: int) -> Any:
    return col.op("&")(literal(mask, BigInteger)) != 0


async def read(session: AsyncSession, groups: Sequence[Group], years: tuple[int, int], *,
               min_active: int) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The counts `metrics.finish_values` needs, per group, for the years first..last."""
    first, last = years
    r, e = span(first, last), bit(last)
    keys = sorted({g.key for g in groups})
    wanted = set(keys)
    P = RollupPeople

    def only(column: Any) -> Any:
        # A report of a whole province asks for nearly every group: reading them all is
        # cheaper than binding a thousand keys, and the extra ones are dropped below.
        return column.in_(keys) if len(keys) <= 200 else true()

    def people_sum(cond: Any) -> Any:
        return func.sum(case((cond, P.n), else_=0))

    out: dict[str, dict[str, Any]] = defaultdict(dict)
    member = _has(P.mem, e)
    query = (
        select(P.grp, people_sum(_has(P.act, r)), people_sum(_has(P.rch, r)),
               people_sum(_has(P.eng, r)), people_sum(_has(P.reg, e)), people_sum(member),
               people_sum(and_(member, _has(P.trn, e))),
               people_sum(and_(_has(P.reg, e), P.ry >= first, P.ry <= last)))
        .where(only(P.grp)).group_by(P.grp)
    )  # fmt: skip
    for grp, active, reached, engaged, reg, mem, trained, new in await session.execute(query):
        out[grp].update(active_learners=active, people_reached=reached, people_engaged=engaged,
                        registered=reg, members=mem, members_trained=trained,
                        learners_registered=new)  # fmt: skip
    Q = RollupPairs

    def pairs_sum(col: Any) -> Any:
        return func.sum(case((_has(col, r), Q.n), else_=0))

    query = (
        select(Q.grp, pairs_sum(Q.cmp), pairs_sum(Q.pas), pairs_sum(Q.fin))
        .where(only(Q.grp)).group_by(Q.grp)
    )  # fmt: skip
    for grp, lessons, passed, finished in await session.execute(query):
        out[grp].update(lessons_completed=lessons, quizzes_passed=passed,
                        quizzes_finished=finished)  # fmt: skip
    M = RollupMonths
    query = (
        select(M.grp, func.sum(M.n))
        .where(only(M.grp), M.measure == "certificates", M.month >= first * 100,
               M.month <= last * 100 + 12)
        .group_by(M.grp)
    )  # fmt: skip
    for grp, certificates in await session.execute(query):
        out[grp]["certificates"] = certificates
    C = RollupCommunes
    active = func.sum(case((_has(C.act, r), C.n), else_=0))
    query = (
        select(C.grp, C.commune_code).where(only(C.grp))
        .group_by(C.grp, C.commune_code).having(active >= min_active)
    )  # fmt: skip
    for grp, commune in await session.execute(query):
        out[grp].setdefault("_covered", set()).add(int(commune))
    K = RollupCampaigns
    query = select(K.grp, func.count()).where(only(K.grp), _has(K.years, r)).group_by(K.grp)
    for grp, run in await session.execute(query):
        out[grp]["campaigns_run"] = run
    return {grp: figures for grp, figures in out.items() if grp in wanted}


async def read_breakdown(session: AsyncSession, group: Group, years: tuple[int, int],
                         dimension: str) -> dict[str, dict[str, int]]:  # fmt: skip
    first, last = years
    r, e = span(first, last), bit(last)
    P = RollupDims
    dim = P.gender if dimension == "gender" else P.age_band

    def people_sum(cond: Any) -> Any:
        return func.sum(case((cond, P.n), else_=0))

    query = (
        select(dim, people_sum(_has(P.reg, e)), people_sum(_has(P.act, r)),
               people_sum(and_(_has(P.mem, e), _has(P.trn, e))))
        .where(P.grp == group.key).group_by(dim)
    )  # fmt: skip
    out: dict[str, dict[str, int]] = {}
    for value, reg, active, trained in await session.execute(query):
        figures = {"registered": int(reg), "active_learners": int(active),
                   "members_trained": int(trained)}  # fmt: skip
        if any(figures.values()):
            out[value] = figures
    return out


async def months(session: AsyncSession, group: Group, first: int,
                 last: int) -> dict[str, dict[int, int]]:  # fmt: skip
    """Monthly figures (yyyymm -> n) of one group: active, lessons, certificates, reached."""
    M = RollupMonths
    query = select(M.measure, M.month, M.n).where(
        M.grp == group.key, M.month >= first, M.month <= last
    )
    out: dict[str, dict[int, int]] = defaultdict(dict)
    for measure, month, n in await session.execute(query):
        out[measure][month] = int(n)
    return out
