"""Organisation units and memberships: create, import, seed, join, confirm, remove.

Units of one type form a tree that follows the locality tree: a unit's locality is its
parent's locality or lies inside it (a province unit has commune units below it; a commune
unit has chi hội / chi đoàn of a thôn or a workplace below it, in the same commune). Checks
here keep that true for every way a unit is made (`add_unit`, `import_csv`, `seed_defaults`).
Functions take a session and never commit.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Membership, OrgUnit, Person, UnitYear, utcnow
from bot.domain import ALL_ORG_TYPES
from bot.services import audit, policy, progress

if TYPE_CHECKING:
    from bot.localities import LocalityIndex

CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,48}$")
MAX_NAME = 200
MAX_DEPTH = 6
COLUMNS = ("type", "name", "locality_code", "parent_code", "code")

# Codes and names of the default units `seed_defaults` creates, per type.
SEED_PREFIX = {
    "mttq": "MTTQ", "doan": "DOAN", "hoi_phu_nu": "HPN", "hoi_nong_dan": "HND",
    "hoi_ccb": "HCCB", "cong_doan": "CD",
}  # fmt: skip
SEED_NAME = {
    "mttq": "Ủy ban MTTQ Việt Nam", "doan": "Đoàn TNCS Hồ Chí Minh",
    "hoi_phu_nu": "Hội Liên hiệp Phụ nữ", "hoi_nong_dan": "Hội Nông dân",
    "hoi_ccb": "Hội Cựu chiến binh", "cong_doan": "Công đoàn",
}  # fmt: skip


class OrgError(ValueError):
    """Bad input for a unit; the message is one line, fit to print as is."""


@dataclass(frozen=True, slots=True)
class UnitSpec:
    type: str
    name: str
    locality_code: int
    parent_code: str | None
    code: str


@dataclass(slots=True)
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# ---------------------------------------------------------------------------- lookups


async def get_unit(session: AsyncSession, code: str) -> OrgUnit | None:
    if not isinstance(code, str) or not CODE_RE.match(code):
        return None
    return await session.scalar(select(OrgUnit).where(OrgUnit.code == code))


async def unit_by_join_code(session: AsyncSession, join_code: str) -> OrgUnit | None:
    if not isinstance(join_code, str) or not CODE_RE.match(join_code):
        return None
    return await session.scalar(select(OrgUnit).where(OrgUnit.join_code == join_code))


async def list_units(session: AsyncSession, *, type_: str | None = None,
                     locality: int | None = None, where: Any = None) -> list[OrgUnit]:  # fmt: skip
    """Units, tree order. `locality`: a province (everything in it) or a commune."""
    query = select(OrgUnit).order_by(OrgUnit.province_code, OrgUnit.type, OrgUnit.path)
    if type_ is not None:
        query = query.where(OrgUnit.type == type_)
    if locality is not None:
        query = query.where(
            (OrgUnit.locality_code == locality) | (OrgUnit.province_code == locality)
        )
    if where is not None:
        query = query.where(where)
    return list(await session.scalars(query))


async def children(session: AsyncSession, unit_id: int, where: Any = None) -> list[OrgUnit]:
    query = select(OrgUnit).where(OrgUnit.parent_id == unit_id).order_by(OrgUnit.name)
    if where is not None:
        query = query.where(where)
    return list(await session.scalars(query))


async def top_units(session: AsyncSession, locality_code: int,
                    where: Any = None) -> list[OrgUnit]:  # fmt: skip
    """The units located in a locality whose parent is not (a commune's units of each type,
    or a province's province-level units)."""
    parent = OrgUnit.__table__.alias("parent")
    query = (
        select(OrgUnit)
        .outerjoin(parent, parent.c.id == OrgUnit.parent_id)
        .where(OrgUnit.locality_code == locality_code)
        .where((parent.c.id.is_(None)) | (parent.c.locality_code != locality_code))
        .order_by(OrgUnit.type, OrgUnit.name)
    )
    if where is not None:
        query = query.where(where)
    return list(await session.scalars(query))


async def candidates(session: AsyncSession, commune_code: int, org_type: str) -> list[OrgUnit]:
    """Units of one type in a commune a resident can choose from, the commune's own first."""
    query = (
        select(OrgUnit)
        .where(OrgUnit.locality_code == commune_code, OrgUnit.type == org_type)
        .order_by(func.length(OrgUnit.path), OrgUnit.name)
    )
    return list(await session.scalars(query))


# ---------------------------------------------------------------------------- validation


def _contains(localities: LocalityIndex, outer: int, inner: int) -> bool:
    """Does locality `outer` contain `inner` (equal, or a province and one of its communes)?"""
    if outer == inner:
        return True
    commune = localities.get(inner)
    return outer in localities.province_codes and commune is not None and (
        commune.province_code == outer
    )


def _locality_problem(localities: LocalityIndex, code: int) -> str | None:
    if policy.province_of(localities, code) is None:
        return f"locality {code} is not a province or commune in scope"
    return None


def _parse_row(cells: Sequence[str]) -> tuple[UnitSpec | None, list[str]]:
    problems: list[str] = []
    if len(cells) != len(COLUMNS):
        return None, [f"expected {len(COLUMNS)} columns ({', '.join(COLUMNS)}), got {len(cells)}"]
    type_, name, locality, parent, code = (c.strip() for c in cells)
    if type_ not in ALL_ORG_TYPES:
        problems.append(f"unknown type {type_[:40]!r} (use {', '.join(ALL_ORG_TYPES)})")
    if not name:
        problems.append("name is empty")
    elif len(name) > MAX_NAME:
        problems.append(f"name is longer than {MAX_NAME} characters")
    if not locality.isdigit():
        problems.append(f"locality code {locality[:20]!r} is not a number")
    if not CODE_RE.match(code):
        problems.append(f"code {code[:60]!r} must be 1-48 of A-Z a-z 0-9 _ -")
    elif code.isdigit():  # digits name localities (and years) in commands such as /stats
        problems.append(f"code {code} must contain a letter")
    if parent and not CODE_RE.match(parent):
        problems.append(f"parent code {parent[:60]!r} must be 1-48 of A-Z a-z 0-9 _ -")
    if problems:
        return None, problems
    return UnitSpec(type_, name, int(locality), parent or None, code), []


def _check_tree(final: dict[str, UnitSpec], touched: set[str],
                localities: LocalityIndex) -> dict[str, list[str]]:  # fmt: skip
    """Problems per code, for every touched unit and every edge that touches one."""
    problems: dict[str, list[str]] = {}

    def add(code: str, text: str) -> None:
        problems.setdefault(code, []).append(text)

    for code in touched:
        spec = final[code]
        if (p := _locality_problem(localities, spec.locality_code)) is not None:
            add(code, p)
    for code, spec in final.items():
        if spec.parent_code is None or (code not in touched and spec.parent_code not in touched):
            continue
        parent = final.get(spec.parent_code)
        owner = code if code in touched else spec.parent_code
        if parent is None:
            add(owner, f"parent {spec.parent_code} does not exist")
            continue
        if parent.type != spec.type:
            add(owner, f"parent {parent.code} is a {parent.type} unit, not {spec.type}")
        known = all(policy.province_of(localities, c) is not None
                    for c in (parent.locality_code, spec.locality_code))
        if known and not _contains(localities, parent.locality_code, spec.locality_code):
            add(owner, f"locality {spec.locality_code} of {code} is not inside locality "
                       f"{parent.locality_code} of its parent {parent.code}")
    for code in touched:  # cycles and depth
        seen = [code]
        current = final[code]
        while current.parent_code is not None and current.parent_code in final:
            if current.parent_code in seen:
                add(code, f"parent chain loops back to {code}")
                break
            seen.append(current.parent_code)
            current = final[current.parent_code]
        else:
            if len(seen) > MAX_DEPTH:
                add(code, f"more than {MAX_DEPTH} levels of units")
    return problems


def _spec_of(unit: OrgUnit, by_id: dict[int, OrgUnit]) -> UnitSpec:
    parent = by_id.get(unit.parent_id) if unit.parent_id is not None else None
    return UnitSpec(unit.type, unit.name, unit.locality_code, parent.code if parent else None,
                    unit.code)  # fmt: skip


async def _all_units(session: AsyncSession) -> tuple[dict[str, OrgUnit], dict[int, OrgUnit]]:
    units = list(await session.scalars(select(OrgUnit)))
    return {u.code: u for u in units}, {u.id: u for u in units}


# ---------------------------------------------------------------------------- writing


async def _rebuild_paths(session: AsyncSession, by_id: dict[int, OrgUnit]) -> None:
    """Recompute every unit's path from its parent chain (parents are few levels deep)."""
    await session.flush()
    cache: dict[int, str] = {}

    def path(unit: OrgUnit) -> str:
        if unit.id not in cache:
            prefix = path(by_id[unit.parent_id]) if unit.parent_id in by_id else "/"
            cache[unit.id] = f"{prefix}{unit.id}/"
        return cache[unit.id]

    for unit in by_id.values():
        new = path(unit)
        if unit.path != new:
            unit.path = new
    await session.flush()


def _apply(unit: OrgUnit, spec: UnitSpec, parent: OrgUnit | None,
           localities: LocalityIndex) -> bool:  # fmt: skip
    """Copy a spec onto a unit; True if anything changed."""
    province = policy.province_of(localities, spec.locality_code)
    assert province is not None
    values = {
        "type": spec.type, "name": spec.name, "locality_code": spec.locality_code,
        "province_code": province, "parent_id": parent.id if parent is not None else None,
    }  # fmt: skip
    changed = False
    for key, value in values.items():
        if getattr(unit, key) != value:
            setattr(unit, key, value)
            changed = True
    return changed


def _problems(specs: Sequence[UnitSpec], by_code: dict[str, OrgUnit],
              by_id: dict[int, OrgUnit], localities: LocalityIndex) -> list[tuple[str, str]]:
    """(code, problem) for specs applied on top of the existing units."""
    final = {code: _spec_of(u, by_id) for code, u in by_code.items()}
    found: list[tuple[str, str]] = []
    for spec in specs:
        old = by_code.get(spec.code)
        if old is not None and old.type != spec.type:
            found.append((spec.code, f"is a {old.type} unit; the type of a unit cannot change"))
        final[spec.code] = spec
    touched = {s.code for s in specs}
    for code, texts in sorted(_check_tree(final, touched, localities).items()):
        found.extend((code, t) for t in texts)
    return found


async def check_specs(session: AsyncSession, specs: Sequence[UnitSpec],
                      localities: LocalityIndex) -> list[tuple[str, str]]:  # fmt: skip
    by_code, by_id = await _all_units(session)
    return _problems(specs, by_code, by_id, localities)


async def save_specs(session: AsyncSession, specs: Sequence[UnitSpec],
                     localities: LocalityIndex) -> ImportResult:  # fmt: skip
    """Create or update units from already parsed specs, all or nothing (problems are
    reported per code, nothing is written if there is any)."""
    by_code, by_id = await _all_units(session)
    result = ImportResult()
    result.problems = [f"{c}: {t}" for c, t in _problems(specs, by_code, by_id, localities)]
    if result.problems:
        return result
    final = {code: _spec_of(u, by_id) for code, u in by_code.items()}
    final.update({s.code: s for s in specs})
    touched = {s.code for s in specs}
    # Parents first, so every parent has an id when its children are written.
    depth = {code: _depth(final, code) for code in touched}
    for spec in sorted(specs, key=lambda s: depth[s.code]):
        parent = by_code.get(spec.parent_code) if spec.parent_code else None
        unit = by_code.get(spec.code)
        if unit is None:
            unit = OrgUnit(code=spec.code, join_code=spec.code, path="", created_at=utcnow())
            _apply(unit, spec, parent, localities)
            session.add(unit)
            await session.flush()
            by_code[unit.code], by_id[unit.id] = unit, unit
            result.created += 1
        elif _apply(unit, spec, parent, localities):
            result.updated += 1
        else:
            result.unchanged += 1
    await _rebuild_paths(session, by_id)
    return result


def _depth(final: dict[str, UnitSpec], code: str) -> int:
    n, current = 0, final[code]
    while current.parent_code is not None and current.parent_code in final and n <= MAX_DEPTH:
        n, current = n + 1, final[current.parent_code]
    return n


class CsvSyntaxError(ValueError):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line, self.reason = line, reason


def _rows(text: str) -> tuple[list[tuple[int, list[str]]], bool]:
    """(line number, cells) of every non-empty row; whether a header row was found."""
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample.splitlines()[0] if sample else "", ",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    rows: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise CsvSyntaxError(reader.line_num + 1, str(exc)) from None
    header = bool(rows) and [
        c.strip().lower().replace(" ", "_") for c in rows[0][1]
    ] == list(COLUMNS)
    return (rows[1:] if header else rows), header


async def import_csv(session: AsyncSession, text: str, localities: LocalityIndex, *,
                     actor: str, source: str = "") -> ImportResult:  # fmt: skip
    """Create or update units from CSV text (columns: type, name, locality_code,
    parent_code, code; an optional header row with these names).

    Every row is checked first; if any is bad, nothing changes and `problems` holds
    "line N: problem" for each. Importing the same file again changes nothing.
    """
    try:
        rows, _header = _rows(text.lstrip("\ufeff"))
    except CsvSyntaxError as exc:
        return ImportResult(problems=[f"line {exc.line}: not valid CSV ({exc.reason})"])
    problems: list[tuple[int, str]] = []
    specs: list[UnitSpec] = []
    line_of: dict[str, int] = {}
    for line, cells in rows:
        spec, found = _parse_row(cells)
        problems.extend((line, p) for p in found)
        if spec is None:
            continue
        if spec.code in line_of:
            problems.append((line, f"code {spec.code} is already on line {line_of[spec.code]}"))
            continue
        line_of[spec.code] = line
        specs.append(spec)
    if not rows:
        problems.append((1, "the file has no rows"))
    # The tree is checked for the rows that parsed too, so one run reports every problem.
    for code, text_ in await check_specs(session, specs, localities):
        problems.append((line_of.get(code, 0), f"{code}: {text_}"))
    if problems:
        result = ImportResult()
        result.problems = [f"line {n}: {p}" for n, p in sorted(problems, key=lambda x: x[0])]
        return result
    saved = await save_specs(session, specs, localities)
    if saved.problems:  # cannot happen after check_specs; kept as a guard
        return saved
    if saved.created or saved.updated:
        audit.write(session, actor, "org_import", source or None,
                    created=saved.created, updated=saved.updated)  # fmt: skip
    return saved


async def add_unit(session: AsyncSession, spec: UnitSpec, localities: LocalityIndex, *,
                   actor: str) -> OrgUnit:  # fmt: skip
    """Add one unit; OrgError (one line) if the code exists or the unit does not fit."""
    spec_ok, problems = _parse_row([spec.type, spec.name, str(spec.locality_code),
                                    spec.parent_code or "", spec.code])  # fmt: skip
    if problems:
        raise OrgError("; ".join(problems))
    assert spec_ok is not None
    if await get_unit(session, spec.code) is not None:
        raise OrgError(f"unit {spec.code} already exists (use `org import` to change it)")
    result = await save_specs(session, [spec_ok], localities)
    if result.problems:
        raise OrgError("; ".join(result.problems))
    unit = await get_unit(session, spec.code)
    assert unit is not None
    audit.write(session, actor, "org_add", unit.code, type=unit.type, name=unit.name)
    return unit


async def delete_unit(session: AsyncSession, unit: OrgUnit, *, actor: str) -> None:
    """Remove a unit made by mistake. Refused (OrgError) while units, members or officers
    (even revoked ones: their history stays) refer to it. Past events keep its code."""
    from bot.db.models import Officer

    checks = (
        (select(func.count()).where(OrgUnit.parent_id == unit.id), "units below it"),
        (select(func.count()).select_from(Membership).where(Membership.unit_code == unit.code),
         "members"),
        (select(func.count()).select_from(Officer).where(Officer.unit_id == unit.id),
         "officers (current or past)"),
    )  # fmt: skip
    for query, what in checks:
        if await session.scalar(query):
            raise OrgError(f"unit {unit.code} has {what}; it cannot be removed")
    audit.write(session, actor, "org_remove", unit.code, type=unit.type, name=unit.name)
    await session.delete(unit)
    await session.flush()


def _place(name: str) -> str:
    """ "Xã Hải Hậu" -> "xã Hải Hậu", as it reads after an organisation's name."""
    return name[:1].lower() + name[1:]


async def seed_defaults(session: AsyncSession, localities: LocalityIndex, *,
                        actor: str) -> int:  # fmt: skip
    """For each province in scope, its six province units and one unit of each type per
    commune, below the province unit. Existing codes are left as they are. Returns how many
    units were created."""
    by_code, by_id = await _all_units(session)
    created: list[OrgUnit] = []

    def make(code: str, type_: str, name: str, locality: int, province: int,
             parent: OrgUnit | None) -> OrgUnit | None:  # fmt: skip
        if code in by_code:
            existing = by_code[code]
            if existing.type != type_:
                raise OrgError(f"unit {code} exists with type {existing.type}, not {type_}")
            return None
        unit = OrgUnit(code=code, join_code=code, type=type_, name=name[:MAX_NAME],
                       locality_code=locality, province_code=province, path="",
                       parent_id=parent.id if parent is not None else None,
                       created_at=utcnow())  # fmt: skip
        session.add(unit)
        by_code[code] = unit
        created.append(unit)
        return unit

    for province, province_name in localities.provinces():
        for type_, prefix in SEED_PREFIX.items():
            make(f"{prefix}-{province}", type_, f"{SEED_NAME[type_]} {_place(province_name)}",
                 province, province, None)  # fmt: skip
        await session.flush()
        for commune in localities.communes():
            if commune.province_code != province:
                continue
            for type_, prefix in SEED_PREFIX.items():
                parent = by_code[f"{prefix}-{province}"]
                make(f"{prefix}-{commune.code}", type_,
                     f"{SEED_NAME[type_]} {_place(commune.name)}", commune.code, province,
                     parent)  # fmt: skip
    await session.flush()
    for unit in created:
        by_id[unit.id] = unit
    await _rebuild_paths(session, by_id)
    if created:
        audit.write(session, actor, "org_seed_defaults", None, created=len(created))
    return len(created)


async def set_unit_year(session: AsyncSession, unit: OrgUnit, year: int, *,
                        member_count: int | None, target: int | None, actor: str) -> UnitYear:
    """Enter the official member count and/or target of a unit for a year."""
    if not 2000 <= year <= 2100:
        raise OrgError(f"year {year} is out of range (2000-2100)")
    for label, value in (("member count", member_count), ("target", target)):
        if value is not None and value < 0:
            raise OrgError(f"{label} cannot be negative")
    row = await session.scalar(
        select(UnitYear).where(UnitYear.unit_id == unit.id, UnitYear.year == year)
    )
    if row is None:
        row = UnitYear(unit_id=unit.id, year=year, updated_by=actor)
        session.add(row)
    if member_count is not None:
        row.member_count = member_count
    if target is not None:
        row.target = target
    row.updated_by, row.updated_at = actor, utcnow()
    audit.write(session, actor, "unit_year", unit.code, year=year, member_count=member_count,
                member_target=target)  # fmt: skip
    await session.flush()
    return row


# ---------------------------------------------------------------------------- memberships


async def join_unit(session: AsyncSession, person: Person, unit: OrgUnit, *, now: datetime,
                    channel: str | None) -> str:  # fmt: skip
    """Make `person` a (self-declared) member of `unit`, replacing their unit of the same
    type. Returns "joined", "moved", "already", or "front" (MTTQ: everyone belongs to the
    Front; nobody joins it as a member, the link only records who invited them)."""
    person.invited_by = person.invited_by or unit.code
    if unit.type == policy.MTTQ:
        return "front"
    current = next((m for m in person.memberships if m.org_type == unit.type), None)
    if current is not None and current.unit_code == unit.code:
        return "already"
    outcome = "joined"
    if current is None:
        person.memberships.append(Membership(org_type=unit.type, unit_code=unit.code, since=now))
    else:
        outcome = "moved"
        current.unit_code, current.confirmed_at, current.confirmed_by = unit.code, None, None
    await session.flush()
    progress.record(session, person, "joined_org", at=now, channel=channel,
                    detail={"org_type": unit.type, "unit": unit.code})  # fmt: skip
    return outcome


@dataclass(frozen=True, slots=True)
class MemberRow:
    membership_id: int
    name: str | None
    unit_code: str
    unit_name: str
    confirmed: bool


async def members_page(session: AsyncSession, actor: policy.Actor, unit: policy.UnitRef, *,
                       page: int = 1, size: int = 20) -> tuple[list[MemberRow], int]:
    """Consented members of `unit` and its subtree whose names `actor` may see (the filter is
    in SQL). The caller writes the view to the audit log."""
    where = (
        OrgUnit.path.startswith(unit.path),
        policy.names_filter(actor),
        policy.consented_filter(),
    )
    base = (
        select(Membership.id, Person.display_name, OrgUnit.code, OrgUnit.name,
               Membership.confirmed_at)
        .join(Person, Person.id == Membership.person_id)
        .join(OrgUnit, OrgUnit.code == Membership.unit_code)
        .where(*where)
    )  # fmt: skip
    total = await session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = await session.execute(
        base.order_by(Person.display_name, Membership.id).limit(size).offset((page - 1) * size)
    )
    return [MemberRow(i, n, c, un, at is not None) for i, n, c, un, at in rows], int(total)


async def managed_membership(session: AsyncSession, actor: policy.Actor,
                             membership_id: int) -> tuple[Membership, OrgUnit] | None:
    """The membership if `actor` may manage it (filtered in SQL), else None: an unknown id and
    one outside the scope look the same."""
    row = (await session.execute(
        select(Membership, OrgUnit)
        .join(OrgUnit, OrgUnit.code == Membership.unit_code)
        .join(Person, Person.id == Membership.person_id)
        .where(Membership.id == membership_id, policy.names_filter(actor),
               policy.consented_filter())
    )).first()  # fmt: skip
    return (row[0], row[1]) if row is not None else None


async def confirm_membership(session: AsyncSession, membership: Membership, unit: OrgUnit, *,
                             actor: str, now: datetime) -> bool:
    """Mark a membership confirmed; False if it already was."""
    if membership.confirmed_at is not None:
        return False
    membership.confirmed_at, membership.confirmed_by = now, actor[:96]
    audit.write(session, actor, "membership_confirm", unit.code, at=now,
                membership=membership.id)  # fmt: skip
    await session.flush()
    return True


async def remove_membership(session: AsyncSession, membership: Membership, unit: OrgUnit, *,
                            actor: str, now: datetime) -> None:
    """An officer says this person is not a member: the membership goes, a left_org event
    is recorded (past events keep the unit), and the audit log says who did it."""
    person = await session.get(Person, membership.person_id)
    assert person is not None
    person.memberships.remove(membership)
    await session.flush()
    progress.record(session, person, "left_org", at=now,
                    detail={"org_type": unit.type, "unit": unit.code, "by": "officer"})
    audit.write(session, actor, "membership_remove", unit.code, at=now,
                membership=membership.id)  # fmt: skip
