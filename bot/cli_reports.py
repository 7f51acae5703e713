"""`hocvuso report ...` and `hocvuso demo seed`: criteria reports from the command line.

    hocvuso report --period 2026 [--unit CODE | --locality CODE] [--criteria FILE]
                   --format xlsx|csv|html|docx --out FILE
    hocvuso report freeze --period 2025-2027 [...] [--title T] [--by NAME]
    hocvuso report frozen                      # list frozen reports
    hocvuso report --frozen ID --format F --out FILE
    hocvuso report rollup [--rebuild]          # bring the rollups up to date
    hocvuso demo seed --citizens N --events N [--seed S]

Every export and every freeze is written to the audit log. Bad input: one line on stderr,
exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class CliError(Exception):
    """One-line problem with the input: exit code 2."""


def _run(action: Callable[[Any, Any, Any], Awaitable[int]]) -> int:
    """Settings, migrations, an engine; `action(sessionmaker, localities, settings)`."""
    from bot.cli import _settings, _upgrade
    from bot.db.session import make_engine, make_sessionmaker
    from bot.localities import LocalityIndex

    settings = _settings()
    _upgrade(settings.database_url)
    localities = LocalityIndex(province_codes=settings.provinces)

    async def main() -> int:
        engine = make_engine(settings.database_url)
        try:
            return await action(make_sessionmaker(engine), localities, settings)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except CliError as exc:
        print(f"hocvuso: {exc}", file=sys.stderr)
        return 2


def _criteria(path: str | None, year: int) -> Any:
    from content import criteria
    from content.loader import ContentError

    try:
        return criteria.load(Path(path)) if path else criteria.for_year(year)
    except ContentError as exc:
        raise CliError(f"the criteria set does not check:\n{exc}") from None


async def make_report(sessionmaker: Any, localities: Any, args: argparse.Namespace,
                      by: str) -> dict[str, Any]:  # fmt: skip
    """Refresh the rollups (their own transaction), then build the report."""
    from bot.services import metrics, reports, rollup

    try:
        period = metrics.parse_period(args.period)
    except metrics.PeriodError as exc:
        raise CliError(f"--period: {exc}") from None
    cset = _criteria(args.criteria, period.year)
    if metrics.year_range(period) is not None:
        async with sessionmaker() as session, session.begin():
            await rollup.refresh(session, localities)
    async with sessionmaker() as session:
        try:
            return await reports.build(session, localities, period, cset, unit=args.unit,
                                       locality=args.locality, now=datetime.now(UTC), by=by)
        except reports.ScopeError as exc:
            raise CliError(str(exc)) from None


def _write(path: str, body: bytes) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    tmp.write_bytes(body)
    tmp.replace(target)


def cmd_report(args: argparse.Namespace) -> int:
    from bot import reports as exports
    from bot.services import audit
    from bot.services import reports as service

    if args.report_command is not None:
        return int(args.func(args))
    if not args.format or not args.out:
        print("hocvuso: give --format and --out (and --period, or --frozen ID)", file=sys.stderr)
        return 2
    if (args.period is None) == (args.frozen is None):
        print("hocvuso: give --period, or --frozen ID for a frozen report", file=sys.stderr)
        return 2

    async def action(sessionmaker: Any, localities: Any, _settings: Any) -> int:
        who = audit.cli_actor()
        started = time.perf_counter()
        if args.frozen is not None:
            from bot.db.models import FrozenReport

            async with sessionmaker() as session:
                row = await session.get(FrozenReport, args.frozen)
                if row is None:
                    raise CliError(f"no frozen report {args.frozen}")
                try:
                    data = service.frozen_data(row)
                except ValueError as exc:
                    raise CliError(str(exc)) from None
        else:
            data = await make_report(sessionmaker, localities, args, who)
        body = exports.render(data, args.format)
        _write(args.out, body)
        async with sessionmaker() as session, session.begin():
            audit.write(session, who, "report_export", data["scope"]["code"],
                        period=data["period"]["label"], format=args.format,
                        criteria=data["criteria"]["version"],
                        frozen=(data.get("frozen") or {}).get("id"))  # fmt: skip
        print(f"{args.out}: {len(data['units'])} units, {len(data['communes'])} communes, "
              f"{data['period']['label']}, {time.perf_counter() - started:.2f} s")  # fmt: skip
        return 0

    return _run(action)


def cmd_report_freeze(args: argparse.Namespace) -> int:
    from bot.services import audit, reports

    async def action(sessionmaker: Any, localities: Any, _settings: Any) -> int:
        who = args.by or audit.cli_actor()
        data = await make_report(sessionmaker, localities, args, who)
        async with sessionmaker() as session, session.begin():
            row = await reports.freeze(session, data, by=who, now=datetime.now(UTC),
                                       title=args.title)  # fmt: skip
        print(f"frozen report {row.id}: {row.title}, {row.period}, criteria {row.criteria_version}"
              f", checksum {row.checksum[:12]}")  # fmt: skip
        print(f"produce it again: hocvuso report --frozen {row.id} --format xlsx --out FILE")
        return 0

    return _run(action)


def cmd_report_frozen(_args: argparse.Namespace) -> int:
    from bot.services import reports

    async def action(sessionmaker: Any, _localities: Any, _settings: Any) -> int:
        async with sessionmaker() as session:
            rows = await reports.list_frozen(session)
        print("id\tfrozen_at\tby\tperiod\tscope\tcriteria\ttitle")
        for r in rows:
            print(f"{r.id}\t{r.frozen_at.isoformat(timespec='seconds')}\t{r.frozen_by}\t{r.period}"
                  f"\t{r.scope}\t{r.criteria_version}\t{r.title}")  # fmt: skip
        return 0

    return _run(action)


def cmd_report_rollup(args: argparse.Namespace) -> int:
    from bot.services import rollup

    async def action(sessionmaker: Any, localities: Any, _settings: Any) -> int:
        started = time.perf_counter()
        async with sessionmaker() as session, session.begin():
            result = await rollup.refresh(session, localities, rebuild=args.rebuild)
        kind = "rebuilt" if result.rebuilt else "refreshed"
        print(f"rollups {kind}: {result.events} new events, {result.people} people folded, "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        return 0

    return _run(action)


def cmd_demo_seed(args: argparse.Namespace) -> int:
    from bot.services import demo
    from content.loader import load

    if not 1 <= args.citizens <= 10_000_000 or not 0 <= args.events <= 100_000_000:
        print("hocvuso: --citizens 1..10,000,000 and --events 0..100,000,000", file=sys.stderr)
        return 2

    async def action(sessionmaker: Any, localities: Any, _settings: Any) -> int:
        started = time.perf_counter()
        async with sessionmaker() as session, session.begin():
            result = await demo.seed(session, localities, load(), citizens=args.citizens,
                                     events=args.events, seed=args.seed)  # fmt: skip
        print(f"demo province: {result.units} units, {result.citizens} citizens, "
              f"{result.events} events, {result.campaigns} campaigns, {result.activities} "
              f"activities in {time.perf_counter() - started:.1f} s (rollups "
              f"{result.seconds_rollup:.1f} s)")  # fmt: skip
        return 0

    return _run(action)


def _report_args(p: argparse.ArgumentParser, *, period_required: bool) -> None:
    from bot.reports import FORMATS

    p.add_argument("--period", required=period_required,
                   help="2026, 2025-2027, 2025-2030 or YYYY-MM-DD..YYYY-MM-DD (both ends "
                        "included, Vietnam time)")  # fmt: skip
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--unit", help="a unit code: the unit and every unit below it")
    scope.add_argument("--locality", type=int, help="a province or commune code")
    p.add_argument("--criteria", help="a criteria set file (default: content/criteria, the "
                                      "period's year or default.yaml)")  # fmt: skip
    if not period_required:
        p.add_argument("--format", choices=FORMATS)
        p.add_argument("--out", help="the file to write")


def add_parsers(sub: Any) -> None:
    """Register `report` and `demo` on the main parser's subparsers."""
    report = sub.add_parser("report", help="criteria reports (XLSX, CSV, HTML, DOCX)")
    _report_args(report, period_required=False)
    report.add_argument("--frozen", type=int, help="produce a frozen report again")
    report.set_defaults(func=cmd_report)
    more = report.add_subparsers(dest="report_command")
    p = more.add_parser("freeze", help="store a report for a review, with its figures")
    _report_args(p, period_required=True)
    p.add_argument("--title", help="what it was submitted as (default: the scope's name)")
    p.add_argument("--by", help="who freezes it (default: cli:<user>)")
    p.set_defaults(func=cmd_report_freeze)
    p = more.add_parser("frozen", help="list frozen reports")
    p.set_defaults(func=cmd_report_frozen)
    p = more.add_parser("rollup", help="bring the report rollups up to date")
    p.add_argument("--rebuild", action="store_true", help="rebuild them from every event")
    p.set_defaults(func=cmd_report_rollup)
    demo = sub.add_parser("demo", help="demonstration data").add_subparsers(
        dest="demo_command", required=True)
    p = demo.add_parser("seed", help="fill the database with a synthetic province")
    p.add_argument("--citizens", type=int, default=1000)
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_demo_seed)
