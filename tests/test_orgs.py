"""Organisation units: seeding, CSV import (bad rows change nothing), the CLI, and citizens
joining units (deep link, onboarding, /join). SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main as cli
from bot.db.models import AuditLog, Membership, Officer, OrgUnit, ParticipationEvent
from bot.db.session import make_engine, make_sessionmaker
from bot.engine import Engine
from bot.localities import LocalityIndex
from bot.services import orgs
from tests import orgdata
from tests.conftest import Chat
from tests.orgdata import A, B


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def all_units(db: async_sessionmaker[AsyncSession]) -> dict[str, tuple[object, ...]]:
    """Every unit as comparable values (to prove that nothing changed)."""
    async with db() as s:
        units = list(await s.scalars(select(OrgUnit)))
        code_of = {u.id: u.code for u in units}
        return {u.code: (u.type, u.name, u.locality_code, code_of.get(u.parent_id), u.path,
                         u.join_code) for u in units}  # fmt: skip


async def test_seed_defaults_builds_the_ninh_binh_tree(db: async_sessionmaker[AsyncSession],
                                                       localities: LocalityIndex) -> None:
    async with db() as s, s.begin():
        assert await orgs.seed_defaults(s, localities, actor="test") == 6 + 129 * 6
    units = await all_units(db)
    assert len(units) == 780
    for prefix in orgs.SEED_PREFIX.values():
        province = units[f"{prefix}-37"]
        assert province[2] == 37 and province[3] is None
        children = [code for code, u in units.items() if u[3] == f"{prefix}-37"]
        assert len(children) == 129
        for code in children:
            assert units[code][4].startswith(province[4])  # the subtree is a path prefix
    assert units[f"HPN-{A}"][1] == "Hội Liên hiệp Phụ nữ xã Hải Hậu"
    assert units["MTTQ-37"][1] == "Ủy ban MTTQ Việt Nam tỉnh Ninh Bình"
    async with db() as s, s.begin():
        assert await orgs.seed_defaults(s, localities, actor="test") == 0
    assert await all_units(db) == units
    async with db() as s:
        assert await s.scalar(select(func.count()).select_from(AuditLog)) == 1


async def test_the_audit_log_is_append_only(db: async_sessionmaker[AsyncSession]) -> None:
    from bot.services import audit

    async with db() as s, s.begin():
        audit.write(s, "test", "grant", "x")
    for statement in (update(AuditLog).values(actor="someone else"), delete(AuditLog)):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db() as s, s.begin():
                await s.execute(statement)
    async with db() as s:
        assert await s.scalar(select(AuditLog.actor)) == "test"


BAD_ROWS = [
    # (row, expected problem)
    ("hoi_phu_nu,X,14215", "expected 5 columns"),
    ("hoi_xyz,X,14215,,X1", "unknown type"),
    ("hoi_phu_nu,,14215,,X1", "name is empty"),
    ("hoi_phu_nu," + "n" * 201 + ",14215,,X1", "longer than 200"),
    ("hoi_phu_nu,X,Hải Hậu,,X1", "is not a number"),
    ("hoi_phu_nu,X,99999,,X1", "not a province or commune in scope"),
    ("hoi_phu_nu,X,1,,X1", "not a province or commune in scope"),  # another province
    ("hoi_phu_nu,X,14215,,bad code!", "must be 1-48"),
    ("hoi_phu_nu,X,14215,,14216", "must contain a letter"),
    ("hoi_phu_nu,X,14215,HPN 37,X1", "parent code"),
    ("hoi_phu_nu,X,14215,NOPE,X1", "parent NOPE does not exist"),
    ("doan,X,14215,HPN-37,X1", "is a hoi_phu_nu unit, not doan"),
    (f"hoi_phu_nu,X,{B},HPN-A,X1", "is not inside locality"),
    ("hoi_phu_nu,X,37,HPN-A,X1", "is not inside locality"),  # a province unit below a commune
    ("doan,X,14215,DOAN-37,HPN-A", "the type of a unit cannot change"),
    ("hoi_phu_nu,X,14215,HPN-A-X1,HPN-A", "loops back"),
]


async def test_import_refuses_every_kind_of_bad_row_and_changes_nothing(
    db: async_sessionmaker[AsyncSession], localities: LocalityIndex
) -> None:
    async with db() as s, s.begin():
        await orgdata.add_units(s, localities)
    before = await all_units(db)
    header = "type,name,locality_code,parent_code,code\n"
    good = f"hoi_phu_nu,Chi hội xóm 2,{A},HPN-A,HPN-A-X2\n"
    for row, problem in BAD_ROWS:
        async with db() as s, s.begin():
            result = await orgs.import_csv(s, header + good + row + "\n", localities,
                                           actor="test")  # fmt: skip
        assert not result.ok, row
        assert any(p.startswith("line 3: ") and problem in p for p in result.problems), (
            row, result.problems)  # fmt: skip
        assert await all_units(db) == before, row  # not even the good row was imported
    async with db() as s, s.begin():
        duplicate = await orgs.import_csv(s, header + good + good, localities, actor="test")
        empty = await orgs.import_csv(s, "", localities, actor="test")
    assert duplicate.problems == ["line 3: code HPN-A-X2 is already on line 2"]
    assert empty.problems == ["line 1: the file has no rows"]
    async with db() as s:
        assert await s.scalar(select(func.count()).select_from(AuditLog)) == 1  # the setup


async def test_import_twice_changes_nothing_and_updates_move_subtrees(
    db: async_sessionmaker[AsyncSession], localities: LocalityIndex
) -> None:
    async with db() as s, s.begin():
        first = await orgs.import_csv(s, orgdata.UNITS_CSV, localities, actor="test")
    assert (first.created, first.updated) == (9, 0)
    units = await all_units(db)
    async with db() as s, s.begin():
        again = await orgs.import_csv(s, orgdata.UNITS_CSV, localities, actor="test")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 9)
    assert await all_units(db) == units
    # Without a header, with semicolons (as spreadsheet programs often save): move chi hội
    # X1 below a new commune-level unit, which moves its path too.
    moved = (f"hoi_phu_nu;Hội LHPN (mới);{A};HPN-37;HPN-A2\n"
             f"hoi_phu_nu;Chi hội Phụ nữ xóm 1;{A};HPN-A2;HPN-A-X1\n")  # fmt: skip
    async with db() as s, s.begin():
        result = await orgs.import_csv(s, moved, localities, actor="test")
    assert (result.created, result.updated) == (1, 1), result.problems
    after = await all_units(db)
    assert after["HPN-A-X1"][3] == "HPN-A2"
    assert after["HPN-A-X1"][4].startswith(after["HPN-A2"][4])
    async with db() as s:
        actions = list(await s.scalars(select(AuditLog.action)))
    assert actions.count("org_import") == 2  # the import that changed nothing is not logged


async def test_add_unit_checks_the_tree(db: async_sessionmaker[AsyncSession],
                                        localities: LocalityIndex) -> None:
    async with db() as s, s.begin():
        await orgdata.add_units(s, localities)
    spec = orgs.UnitSpec("hoi_phu_nu", "Chi hội xóm 3", A, "HPN-A", "HPN-A-X3")
    async with db() as s, s.begin():
        unit = await orgs.add_unit(s, spec, localities, actor="test")
        assert unit.join_code == "HPN-A-X3" and unit.province_code == 37
    for bad in (spec, orgs.UnitSpec("hoi_phu_nu", "Y", B, "HPN-A", "HPN-Y")):
        with pytest.raises(orgs.OrgError):
            async with db() as s, s.begin():
                await orgs.add_unit(s, bad, localities, actor="test")


def test_the_command_line(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOCVUSO_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("HOCVUSO_TELEGRAM_BOT_USERNAME", "hocvuso_test_bot")
    units = tmp_path / "units.csv"
    units.write_text(orgdata.UNITS_CSV, encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("type,name,locality_code,parent_code,code\nhoi_xyz,X,14215,,X1\n"
                   "hoi_phu_nu,Y,99999,,X2\n", encoding="utf-8")  # fmt: skip

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    assert run("org", "import", str(units))[1] == "units.csv: 9 created, 0 updated, 0 unchanged\n"
    assert "0 created, 0 updated, 9 unchanged" in run("org", "import", str(units))[1]
    code, _out, err = run("org", "import", str(bad))
    assert code == 2
    assert "line 2: unknown type" in err and "line 3: X2: locality 99999" in err
    assert "nothing changed" in err
    code, out, _err = run("org", "add", "--type", "doan", "--name", "Chi đoàn xóm 1",
                          "--locality", str(A), "--parent", "DOAN-A", "--code", "DOAN-A-X1")
    assert code == 0 and "org_DOAN-A-X1" in out
    assert run("org", "add", "--type", "doan", "--name", "Z", "--locality", str(B), "--parent",
               "DOAN-A", "--code", "DOAN-Z")[0] == 2  # fmt: skip
    assert run("org", "remove", "HPN-A")[0] == 2  # it has units below it
    assert run("org", "remove", "DOAN-A-X1") == (0, "removed DOAN-A-X1\n", "")
    code, out, _err = run("org", "list", "--locality", str(A), "--type", "hoi_phu_nu")
    assert out.splitlines()[1:] == [
        f"HPN-A\thoi_phu_nu\t{A}\tHPN-37\tHPN-A\tHội LHPN xã Hải Hậu",
        f"HPN-A-X1\thoi_phu_nu\t{A}\tHPN-A\tHPN-A-X1\tChi hội Phụ nữ xóm 1",
    ]
    code, out, _err = run("admin", "grant", "--channel", "telegram", "--user-id", "42",
                          "--role", "org_admin", "--unit", "HPN-A")
    assert code == 0 and "org_admin@HPN-A" in out
    for argv in (("--role", "org_admin", "--locality", str(A)),  # needs a unit
                 ("--role", "locality_admin", "--locality", "37"),  # a province
                 ("--role", "org_admin", "--unit", "NOPE"),
                 ("--role", "province_admin", "--unit", "HPN-A")):
        assert run("admin", "grant", "--channel", "telegram", "--user-id", "43", *argv)[0] == 2
    code, out, _err = run("admin", "invite", "--role", "locality_admin", "--locality", str(A))
    assert code == 0 and "https://t.me/hocvuso_test_bot?start=inv_" in out
    code, out, _err = run("admin", "list")
    assert "telegram:42\torg_admin\torg_admin@HPN-A" in out
    assert run("admin", "revoke", "--channel", "telegram", "--user-id", "43")[0] == 2
    assert run("admin", "revoke", "--channel", "telegram", "--user-id", "42")[0] == 0
    assert "telegram:42" not in run("admin", "list")[1]
    code, out, _err = run("audit", "--limit", "20")
    actions = [line.split("\t")[2] for line in out.splitlines()[1:]]
    assert actions == ["revoke", "invite", "grant", "org_remove", "org_add", "org_import"]
    assert run("org", "set-year", "--unit", "HPN-A", "--year", "2026", "--members", "340")[0] == 0
    assert run("org", "set-year", "--unit", "HPN-A", "--year", "1990", "--members", "1")[0] == 2


# ---------------------------------------------------------------------------- joining


async def test_onboarding_attaches_the_communes_unit_or_asks_which(core: Engine) -> None:
    async with core.sessionmaker() as s, s.begin():
        await orgdata.add_units(s, core.localities)
    lan = Chat(core, "lan")
    await lan.say("/start")
    await lan.press("consent:yes")
    await lan.say("hai hau")
    await lan.press(next(p for label, p in lan.buttons if label == "Xã Hải Hậu"))
    await lan.press("gender:skip")
    await lan.press("age:skip")
    await lan.press("org:hoi_phu_nu")
    await lan.press("org:doan")
    replies = await lan.press("org:done")
    # The Youth Union has one unit in Hải Hậu: attached. The Women's Union has two: asked.
    assert "chi hội, chi đoàn nào của Hội Liên hiệp Phụ nữ" in lan.text(replies)
    assert [p for _label, p in lan.buttons] == ["ounit:HPN-A", "ounit:HPN-A-X1", "ounit:skip"]
    replies = await lan.payload("ounit:HPN-B")  # another commune's unit: not offered
    assert "không còn dùng được" in lan.text(replies)
    await lan.press("ounit:HPN-A-X1")
    assert any(p.startswith("mod:") for _label, p in lan.buttons)
    async with core.sessionmaker() as s:
        units = dict((await s.execute(select(Membership.org_type, Membership.unit_code))).all())
        last = await s.scalar(select(ParticipationEvent).order_by(ParticipationEvent.id.desc())
                              .limit(1))  # fmt: skip
    assert units == {"hoi_phu_nu": "HPN-A-X1", "doan": "DOAN-A"}
    assert last is not None and last.unit_codes == "DOAN-A,HPN-A-X1"  # events carry units
    # /join later: the units of the commune, and a forged code.
    replies = await lan.say("/join")
    assert "join:HPN-A" in [p for _label, p in lan.buttons]
    await lan.press("join:HPN-A")
    replies = await lan.say("/join NOT-A-UNIT")
    assert "không đúng" in lan.text(replies)
    async with core.sessionmaker() as s:
        units = dict((await s.execute(select(Membership.org_type, Membership.unit_code))).all())
        officers = await s.scalar(select(func.count()).select_from(Officer))
    assert units["hoi_phu_nu"] == "HPN-A" and officers == 0


async def test_deep_link_before_and_after_consent(core: Engine) -> None:
    async with core.sessionmaker() as s, s.begin():
        await orgdata.add_units(s, core.localities)
    mai = Chat(core, "mai")
    await mai.say("/start org_HPN-B")
    replies = await mai.press("consent:yes")
    assert "Bạn đã tham gia Hội LHPN xã Bắc Lý" in mai.text(replies)
    replies = await mai.say("/start org_HPN-B")
    assert "đã là hội viên" in mai.text(replies)
    replies = await mai.say("/start org_HPN-A-X1")  # the same organisation: she moves
    assert "chuyển sinh hoạt" in mai.text(replies)
    replies = await mai.say("/start org_MTTQ-B")  # the Front: nobody joins it as a member
    assert "MTTQ" in mai.text(replies)
    replies = await mai.say("/start org_FORGED-37")  # a forged code: refused, nothing changes
    assert "không đúng" in mai.text(replies)
    async with core.sessionmaker() as s:
        units = list(await s.scalars(select(Membership.unit_code)))
        kinds = list(await s.scalars(
            select(ParticipationEvent.kind).order_by(ParticipationEvent.id)))
    assert units == ["HPN-A-X1"]
    assert kinds == ["registered", "joined_org", "joined_org"]  # joined, then moved
    declined = Chat(core, "declined")
    await declined.say("/start")
    await declined.press("consent:no")
    replies = await declined.say("/start org_HPN-B")
    assert "cần bạn đồng ý" in declined.text(replies)
