"""Criteria reports: every export opened again and checked (openpyxl reads the XLSX, the CSV
parses, python-docx reads the DOCX, the HTML parses), scores and ranks, freezing, the CLI,
the criteria checker and `hocvuso demo seed`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import reports as exports
from bot.cli import main
from bot.db.models import AuditLog, FrozenReport, OrgUnit, ParticipationEvent
from bot.db.session import make_engine, make_sessionmaker
from bot.localities import LocalityIndex
from bot.services import metrics, reports, rollup
from content import criteria
from tests import reportdata
from tests.orgdata import A

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


@pytest.fixture
async def db(db_url: str, localities: LocalityIndex) -> AsyncIterator[
        async_sessionmaker[AsyncSession]]:  # fmt: skip
    engine = make_engine(db_url)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as s, s.begin():
        await reportdata.build(s, localities)
    async with sessionmaker() as s, s.begin():
        await rollup.refresh(s, localities)
    yield sessionmaker
    await engine.dispose()


async def build(db: async_sessionmaker[AsyncSession], localities: LocalityIndex,
                period: str = "2026", **scope: Any) -> dict[str, Any]:  # fmt: skip
    async with db() as s:
        return await reports.build(s, localities, metrics.parse_period(period),
                                   criteria.for_year(2026), now=NOW, by="test", **scope)


def unit_row(data: dict[str, Any], code: str) -> dict[str, Any]:
    return next(u for u in data["units"] if u["code"] == code)


async def test_scores_and_ranks(db: async_sessionmaker[AsyncSession],
                                localities: LocalityIndex) -> None:
    data = await build(db, localities)
    hpn_a = unit_row(data, "HPN-A")
    # HPN-A in 2026 (commune level): campaigns 1 of 4, reached 1 of 300, engaged 1 of 60,
    # activities 1 of 6, attendance 14 of 150 -> criterion 1 = weighted mean of those.
    c1 = (0.25 * 20 + (1 / 300) * 25 + (1 / 60) * 25 + (1 / 6) * 15 + (14 / 150) * 15) / 100
    assert hpn_a["scores"]["van-dong"] == pytest.approx(round(100 * c1, 2))
    # Criterion 2: registered in 2026 0/150, trained 1/80, share 100% >= 50%, pass rate 100%
    # >= 80%, certificates 1/100, communes covered 0% (one active learner; 5 needed).
    c2 = (0 + (1 / 80) * 20 + 1 * 20 + 1 * 15 + (1 / 100) * 15 + 0) / 100
    assert hpn_a["scores"]["hoc-tap-so"] == pytest.approx(round(100 * c2, 2))
    assert hpn_a["total"] == pytest.approx(round((100 * c1 * 40 + 100 * c2 * 60) / 100, 2),
                                           abs=0.02)  # fmt: skip
    # Peers: commune-level Women's Unions (HPN-A, HPN-B); province units ranked together.
    assert (hpn_a["rank"], hpn_a["peers"]) == (1, 2)
    assert (unit_row(data, "HPN-B")["rank"], unit_row(data, "HPN-B")["peers"]) == (2, 2)
    assert {unit_row(data, c)["peer_group"] for c in ("HPN-37", "DOAN-37", "MTTQ-37")} == {
        "province"}
    assert unit_row(data, "MTTQ-37")["peers"] == 3
    assert unit_row(data, "HPN-A-X1")["level"] == "branch"
    # The MTTQ of a commune is measured over its whole commune, as in /stats.
    assert unit_row(data, "MTTQ-A")["values"]["active_learners"] == 1
    # Over 2025-2027 the yearly target of a flow is tripled, a rate's is not.
    mid = await build(db, localities, "2025-2027")
    details = unit_row(mid, "HPN-A")["details"]
    assert details["campaigns_run"]["target"] == 12 and details["quiz_pass_rate"]["target"] == 80


async def test_xlsx_opens_and_reads_right(db: async_sessionmaker[AsyncSession],
                                          localities: LocalityIndex) -> None:
    from openpyxl import load_workbook

    data = await build(db, localities)
    book = load_workbook(io.BytesIO(exports.render(data, "xlsx")))
    assert book.sheetnames[0] == "Tổng hợp" and book.sheetnames[-2:] == [
        "Theo xã, phường", "Thông tin báo cáo"]
    assert [n for n in book.sheetnames if n.startswith("Tiêu chí")] == [
        "Tiêu chí 1 - Hoạt động tuyên tr", "Tiêu chí 2 - Lan tỏa phong trào"]
    summary = book["Tổng hợp"]
    assert "BÁO CÁO KẾT QUẢ THỰC HIỆN PHONG TRÀO THI ĐUA" in summary["A1"].value
    header_row = next(r for r in range(1, 10) if summary.cell(r, 1).value == "STT")
    heads = [c.value for c in summary[header_row]]
    assert heads[:5] == ["STT", "Mã đơn vị", "Đơn vị", "Tổ chức", "Cấp"]
    assert heads[-3:] == ["Tổng điểm", "Xếp hạng", "Số đơn vị cùng nhóm"]
    assert summary.freeze_panes == f"D{header_row + 1}"
    rows = {summary.cell(r, 2).value: [c.value for c in summary[r]]
            for r in range(header_row + 1, summary.max_row + 1) if summary.cell(r, 2).value}
    hpn_a = rows["HPN-A"]
    col = heads.index("Số người được tiếp cận qua chiến dịch")
    assert hpn_a[col] == 1
    share = heads.index("Tỷ lệ hội viên được bồi dưỡng")
    assert hpn_a[share] == 1.0
    assert summary.cell(header_row + 1 + list(rows).index("HPN-A"), share + 1).number_format == (
        "0.0%")
    assert hpn_a[heads.index("Tổng điểm")] == unit_row(data, "HPN-A")["total"]
    assert hpn_a[heads.index("Xếp hạng")] == 1
    assert summary.column_dimensions["C"].width > 15  # unit names fit
    communes = book["Theo xã, phường"]
    first = next(r for r in range(1, 10) if communes.cell(r, 1).value == "STT") + 1
    names = [communes.cell(r, 3).value for r in range(first, communes.max_row + 1)]
    assert "Xã Hải Hậu" in names and len(names) == 129
    about = [c.value for row in book["Thông tin báo cáo"].iter_rows() for c in row if c.value]
    assert any("Hội đồng Thi đua" in str(v) for v in about)
    assert "từ ngày 01/01/2026 đến ngày 31/12/2026" in about


async def test_csv_is_one_tidy_table(db: async_sessionmaker[AsyncSession],
                                     localities: LocalityIndex) -> None:
    data = await build(db, localities)
    body = exports.render(data, "csv")
    assert body.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert list(rows[0]) == ["unit_code", "unit_name", "locality_code", "locality_name",
                             "indicator", "period", "value"]  # fmt: skip
    assert {r["period"] for r in rows} == {"2026"}
    by = {(r["unit_code"], r["locality_code"], r["indicator"]): r["value"] for r in rows}
    assert by[("", "37", "active_learners")] == "4"
    assert by[("", "37", "quiz_pass_rate")] == "0.75"
    assert by[("HPN-A", f"{A:05d}", "people_reached")] == "1"
    assert by[("HPN-A", f"{A:05d}", "rank")] == "1"
    assert by[("", f"{A:05d}", "registered")] == "1"  # the commune's own row
    assert by[("", "13579", "quiz_pass_rate")] == "0.5"
    assert by[("", "14218", "quiz_pass_rate")] == ""  # a rate over nothing is empty
    assert next(r for r in rows if r["unit_code"] == "HPN-A")["unit_name"] == (
        "Hội LHPN xã Hải Hậu")


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: dict[str, str] = {}
        self._script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs).get("id") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self.scripts[self._script] = self.scripts.get(self._script, "") + data
        else:
            self.text.append(data)


async def test_html_is_a_printable_administrative_report(db: async_sessionmaker[AsyncSession],
                                                         localities: LocalityIndex) -> None:
    data = await build(db, localities)
    parser = _Html()
    parser.feed(exports.render(data, "html").decode())
    text = " ".join(parser.text)
    for words in ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc",
                  "BÁO CÁO KẾT QUẢ THỰC HIỆN PHONG TRÀO THI ĐUA", "Tiêu chí 1", "Tiêu chí 2",
                  "từ ngày 01/01/2026 đến ngày 31/12/2026", "Xếp hạng", "Hội đồng Thi đua",
                  "NGƯỜI LẬP BÁO CÁO", "Hội LHPN xã Hải Hậu", "75%"):  # fmt: skip
        assert words in text, words
    tables = [t for t, a in parser.tags if t == "table" and a.get("class") == "data"]
    assert len(tables) >= 4
    canvases = [a for t, a in parser.tags if t == "canvas"]
    assert len(canvases) == 4 and all(a.get("role") == "img" and a.get("aria-label")
                                      for a in canvases)  # fmt: skip
    charts = json.loads(parser.scripts["report-charts"])
    assert charts["scores"][0][1] == max(u["total"] for u in data["units"])
    assert "@page { size: A4" in exports.render(data, "html").decode()


async def test_docx_opens_and_reads_right(db: async_sessionmaker[AsyncSession],
                                          localities: LocalityIndex) -> None:
    from docx import Document

    data = await build(db, localities, "2025-2027")
    doc = Document(io.BytesIO(exports.render(data, "docx")))
    paragraphs = "\n".join(p.text for p in doc.paragraphs)
    assert "BÁO CÁO KẾT QUẢ THỰC HIỆN PHONG TRÀO THI ĐUA" in paragraphs
    assert "từ ngày 01/01/2025 đến ngày 31/12/2027" in paragraphs
    assert "Hội đồng Thi đua" in paragraphs
    cells = [c.text for t in doc.tables for row in t.rows for c in row.cells]
    assert ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập - Tự do - Hạnh phúc\n"
            "Ninh Bình, ngày 26 tháng 11 năm 2026") in cells
    assert "Hội LHPN xã Hải Hậu" in cells and "Tổng điểm" in cells
    assert len(doc.inline_shapes) == 3  # a chart per criterion and one of the total scores
    section = doc.sections[0]
    assert round(section.page_width.mm) == 210 and round(section.left_margin.mm) == 30


async def test_exports_keep_names_and_figures_intact(db: async_sessionmaker[AsyncSession],
                                                     localities: LocalityIndex) -> None:
    """The writers escape names (HTML, XML) and keep every figure; DOCX drops the control
    characters XML forbids; a chart is drawn again when its figures change (they are cached)."""
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from openpyxl import load_workbook

    data = await build(db, localities)
    odd = 'Hội <b>"A&B"</b> – xã \'Hải Hậu\''
    long_name = " ".join(["Chi hội"] * 2400)
    unit_row(data, "HPN-A")["name"] = odd
    unit_row(data, "HPN-B")["name"] = long_name

    book = load_workbook(io.BytesIO(exports.render(data, "xlsx")))
    summary = book["Tổng hợp"]
    rows = {r[1]: r for r in summary.iter_rows(values_only=True) if r[1]}
    assert rows["HPN-A"][2] == odd and rows["HPN-B"][2] == long_name
    assert rows["HPN-A"][0] == 1 + [u["code"] for u in ordered(data)].index("HPN-A")
    heads = next(r for r in summary.iter_rows(values_only=True) if r[0] == "STT")
    for code in ("HPN-A", "HPN-B", "MTTQ-37"):
        assert rows[code][heads.index("Tổng điểm")] == unit_row(data, code)["total"]
    assert rows["HPN-B"][heads.index("Xếp hạng")] == unit_row(data, "HPN-B")["rank"]

    doc = Document(io.BytesIO(exports.render(data, "docx")))
    cells = [c for t in doc.tables for row in t.rows for c in row.cells]
    assert odd in [c.text for c in cells] and long_name in [c.text for c in cells]
    number = next(c for c in cells if c.text == f"{unit_row(data, 'HPN-A')['rank']}/2")
    style = number.paragraphs[0].style
    assert style.name == "ReportNumber"
    assert style.paragraph_format.alignment == WD_ALIGN_PARAGRAPH.RIGHT
    assert style.base_style.name == "ReportTable" and style.base_style.font.size.pt == 9
    pictures = [doc.part.related_parts[r].blob for r in doc.part.rels
                if "image" in doc.part.rels[r].reltype]  # fmt: skip
    unit_row(data, "HPN-B")["total"] = 99.0  # another chart of the total scores
    again = Document(io.BytesIO(exports.render(data, "docx")))
    pictures_again = [again.part.related_parts[r].blob for r in again.part.rels
                      if "image" in again.part.rels[r].reltype]  # fmt: skip
    assert len(set(pictures) - set(pictures_again)) == 1

    parser = _Html()
    parser.feed(exports.render(data, "html").decode())
    assert odd in " ".join(parser.text) and "b" not in {t for t, _a in parser.tags}


async def test_docx_drops_characters_xml_forbids(db: async_sessionmaker[AsyncSession],
                                                localities: LocalityIndex) -> None:
    from docx import Document

    data = await build(db, localities)
    unit_row(data, "HPN-A")["name"] = "Hội\x01 <LHPN> & xã"
    doc = Document(io.BytesIO(exports.render(data, "docx")))
    cells = {c.text for t in doc.tables for row in t.rows for c in row.cells}
    assert "Hội <LHPN> & xã" in cells


def ordered(data: dict[str, Any]) -> list[dict[str, Any]]:
    from bot.reports import common

    return common.ordered_units(data)


async def test_a_frozen_report_stays_as_submitted(db: async_sessionmaker[AsyncSession],
                                                  localities: LocalityIndex) -> None:
    data = await build(db, localities, "2025-2027")
    async with db() as s, s.begin():
        row = await reports.freeze(s, data, by="telegram:42", now=NOW, title="Sơ kết 2027")
    frozen_csv = exports.render(reports.frozen_data(row), "csv")
    # Later corrections: a new learner in 2026 (the figures move), then a merger of units.
    async with db() as s, s.begin():
        s.add(reportdata.ev("k8", "registered", reportdata.utc(2026, 9, 1), A, "HPN-A",
                            "hoi_phu_nu"))  # fmt: skip
    async with db() as s, s.begin():
        await rollup.refresh(s, localities)
    again = await build(db, localities, "2025-2027")
    assert again["totals"][0]["values"]["registered"] == data["totals"][0]["values"][
        "registered"] + 1
    async with db() as s:
        stored = await s.get(FrozenReport, row.id)
        assert stored is not None
        reproduced = reports.frozen_data(stored)
    assert exports.render(reproduced, "csv") == frozen_csv
    assert reproduced["units"] == data["units"]
    html = exports.render(reproduced, "html").decode()
    assert f"Báo cáo đã chốt số {row.id}" in html and "telegram:42" in html
    async with db() as s:
        audit = await s.scalar(select(AuditLog).where(AuditLog.action == "report_frozen"))
    assert audit is not None and audit.actor == "telegram:42"
    # Figures changed in the database behind the report's back are refused.
    tampered = FrozenReport(id=row.id, period=row.period, scope=row.scope, title=row.title,
                            criteria_version=row.criteria_version, checksum=row.checksum,
                            data={**row.data, "units": []}, frozen_at=row.frozen_at,
                            frozen_by=row.frozen_by)  # fmt: skip
    with pytest.raises(ValueError):
        reports.frozen_data(tampered)


async def test_an_officers_reach_limits_the_report(db: async_sessionmaker[AsyncSession],
                                                   localities: LocalityIndex) -> None:
    from bot.services import policy

    reach = (policy.locality_reach(localities, A),)
    data = await build(db, localities, locality=A)
    assert {u["code"] for u in data["units"]} == {"HPN-A", "HPN-A-X1", "DOAN-A", "MTTQ-A"}
    unit_scoped = await build(db, localities, unit="HPN-37")
    assert {u["code"] for u in unit_scoped["units"]} == {"HPN-37", "HPN-A", "HPN-A-X1",
                                                         "HPN-B"}  # fmt: skip
    async with db() as s:
        narrowed = await reports.build(s, localities, metrics.parse_period("2026"),
                                       criteria.for_year(2026), unit="HPN-37", reaches=reach,
                                       now=NOW, by="test")  # fmt: skip
    assert {u["code"] for u in narrowed["units"]} == {"HPN-A", "HPN-A-X1"}
    assert [c["code"] for c in narrowed["communes"]] == [A]
    with pytest.raises(reports.ScopeError):
        await build(db, localities, unit="NOPE")


def write_criteria(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "default.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_criteria_follow_the_plan() -> None:
    sets, problems = criteria.check()
    assert problems == []
    (cset,) = sets
    assert [c.id for c in cset.criteria] == ["van-dong", "hoc-tap-so"]
    assert cset.criteria[0].title.startswith("Tổ chức được các hoạt động cụ thể, thiết thực")
    assert cset.criteria[1].title.startswith("Có sáng kiến, giải pháp triển khai sâu rộng")
    metrics_used = [i.metric for c in cset.criteria for i in c.indicators]
    assert metrics_used == ["campaigns_run", "people_reached", "people_engaged",
                            "activities_held", "attendance", "learners_registered",
                            "members_trained", "share_trained", "quiz_pass_rate",
                            "certificates", "communes_covered"]  # fmt: skip
    assert criteria.CriteriaSet.from_json(cset.to_json()) == cset


def test_the_criteria_checker_reports_file_and_line(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    text = (criteria.CRITERIA_DIR / "default.yaml").read_text(encoding="utf-8")
    text = text.replace("metric: attendance", "metric: attendence", 1)
    text = text.replace("target: 80\n", "target: 180\n", 1)
    text = text.replace("target: {province: 12, commune: 4, branch: 2}",
                        "target: {province: 12, commune: 4}", 1)
    folder = tmp_path / "criteria"
    path = write_criteria(folder, text)
    lines = text.splitlines()
    _found, problems = criteria.check_file(path)
    shown = {(p.line, p.message.split(":")[0]) for p in problems}
    assert (lines.index("      - metric: attendence") + 1, "metric") in shown
    assert any(p.message.startswith("target: expected a percentage") for p in problems)
    assert any("missing the target for level 'branch'" in p.message for p in problems)
    assert main(["content", "check", "--criteria", str(folder)]) == 1
    out = capsys.readouterr().out
    assert f"{path.name}:" in out and "attendence" in out


def test_cli_report_freeze_and_reproduce(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("HOCVUSO_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "seed", "--citizens", "300", "--events", "4000", "--seed", "3"]) == 0
    seeded = capsys.readouterr().out
    assert "300 citizens" in seeded
    out = tmp_path / "r.xlsx"
    assert main(["report", "--period", "2026", "--format", "xlsx", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert main(["report", "--period", "2025-2027", "--locality", "37", "--format", "csv",
                 "--out", str(tmp_path / "r.csv")]) == 0  # fmt: skip
    assert main(["report", "--period", "2027-2025", "--format", "csv", "--out",
                 str(tmp_path / "x.csv")]) == 2  # fmt: skip
    assert main(["report", "--period", "2026", "--unit", "NOPE", "--format", "csv", "--out",
                 str(tmp_path / "x.csv")]) == 2  # fmt: skip
    assert not (tmp_path / "x.csv").exists()
    capsys.readouterr()
    assert main(["report", "freeze", "--period", "2025-2027", "--by", "cli:tester"]) == 0
    frozen_id = int(capsys.readouterr().out.split()[2].rstrip(":"))
    first, second = tmp_path / "f1.csv", tmp_path / "f2.csv"
    assert main(["report", "--frozen", str(frozen_id), "--format", "csv", "--out",
                 str(first)]) == 0  # fmt: skip
    assert main(["report", "--frozen", str(frozen_id), "--format", "csv", "--out",
                 str(second)]) == 0  # fmt: skip
    assert first.read_bytes() == second.read_bytes()
    assert main(["report", "frozen"]) == 0
    assert "cli:tester" in capsys.readouterr().out

    async def check() -> tuple[int, int, int]:
        engine = make_engine(url)
        async with make_sessionmaker(engine)() as s:
            units = await s.scalar(select(func.count()).select_from(OrgUnit))
            events = await s.scalar(select(func.count()).select_from(ParticipationEvent))
            exports_done = await s.scalar(select(func.count()).select_from(AuditLog).where(
                AuditLog.action == "report_export"))
        await engine.dispose()
        return int(units or 0), int(events or 0), int(exports_done or 0)

    import asyncio

    units, events, done = asyncio.run(check())
    assert units >= 780 and 4000 <= events <= 4100
    assert done == 4  # every export is audited (refused ones wrote nothing)
