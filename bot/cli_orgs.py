"""`hocvuso org ...`, `hocvuso admin ...` and `hocvuso audit`: units, officers, the audit log.

Bad input gets one clear line on stderr and exit code 2, and changes nothing: each command
runs in one transaction that is rolled back on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.domain import ALL_ORG_TYPES

ROLES = ("province_admin", "locality_admin", "org_admin")
CHANNELS = ("telegram", "zalo-bot", "zalo-oa")


class CliError(Exception):
    """A one-line problem with the command's input: exit code 2, nothing changed."""


def _run(args: argparse.Namespace,
         action: Callable[[Any, Any, Any], Awaitable[int]]) -> int:  # fmt: skip
    """Settings, migrations, one session and transaction; CliError -> stderr, exit 2."""
    from bot.cli import _settings, _upgrade
    from bot.db.session import make_engine, make_sessionmaker
    from bot.localities import LocalityIndex

    settings = _settings()
    _upgrade(settings.database_url)
    localities = LocalityIndex(province_codes=settings.provinces)

    async def main() -> int:
        engine = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                return await action(session, localities, settings)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except CliError as exc:
        print(f"hocvuso: {exc}", file=sys.stderr)
        return 2


def _now() -> datetime:
    return datetime.now(UTC)


def _locality_text(code: int | None) -> str:
    if code is None:
        return "-"
    return f"{code:02d}" if code < 100 else f"{code:05d}"


async def _unit(session: Any, code: str | None) -> Any:
    from bot.services import orgs

    if code is None:
        return None
    unit = await orgs.get_unit(session, code)
    if unit is None:
        raise CliError(f"unknown unit {code[:60]!r}")
    return unit


# ---------------------------------------------------------------------------- org


def cmd_org_import(args: argparse.Namespace) -> int:
    from bot.services import audit, orgs

    path = Path(args.file)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        print(f"hocvuso: {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print(f"hocvuso: {path}: not UTF-8 text (save the CSV as UTF-8)", file=sys.stderr)
        return 2

    async def action(session: Any, localities: Any, _settings: Any) -> int:
        result = await orgs.import_csv(session, text, localities, actor=audit.cli_actor(),
                                       source=path.name)  # fmt: skip
        if result.problems:
            for problem in result.problems:
                print(problem, file=sys.stderr)
            raise CliError(f"{len(result.problems)} problem(s) in {path.name}; nothing changed")
        print(f"{path.name}: {result.created} created, {result.updated} updated, "
              f"{result.unchanged} unchanged")  # fmt: skip
        return 0

    return _run(args, action)


def cmd_org_add(args: argparse.Namespace) -> int:
    from bot.services import audit, orgs

    async def action(session: Any, localities: Any, _settings: Any) -> int:
        spec = orgs.UnitSpec(args.type, args.name.strip(), args.locality, args.parent, args.code)
        try:
            unit = await orgs.add_unit(session, spec, localities, actor=audit.cli_actor())
        except orgs.OrgError as exc:
            raise CliError(str(exc)) from None
        print(f"added {unit.code} ({unit.type}, {_locality_text(unit.locality_code)}): "
              f"{unit.name}; join link code: org_{unit.join_code}")  # fmt: skip
        return 0

    return _run(args, action)


def cmd_org_remove(args: argparse.Namespace) -> int:
    from bot.services import audit, orgs

    async def action(session: Any, _localities: Any, _settings: Any) -> int:
        unit = await _unit(session, args.code)
        try:
            await orgs.delete_unit(session, unit, actor=audit.cli_actor())
        except orgs.OrgError as exc:
            raise CliError(str(exc)) from None
        print(f"removed {args.code}")
        return 0

    return _run(args, action)


def cmd_org_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from bot.db.models import OrgUnit
    from bot.services import orgs

    async def action(session: Any, _localities: Any, _settings: Any) -> int:
        units = await orgs.list_units(session, type_=args.type, locality=args.locality)
        codes = dict((await session.execute(select(OrgUnit.id, OrgUnit.code))).all())
        print("code\ttype\tlocality\tparent\tjoin_code\tname")
        for u in units:
            parent = codes.get(u.parent_id, "-") if u.parent_id else "-"
            print(f"{u.code}\t{u.type}\t{_locality_text(u.locality_code)}\t{parent}\t"
                  f"{u.join_code}\t{u.name}")  # fmt: skip
        print(f"{len(units)} unit(s)", file=sys.stderr)
        return 0

    return _run(args, action)


def cmd_org_seed(args: argparse.Namespace) -> int:
    from bot.services import audit, orgs

    async def action(session: Any, localities: Any, _settings: Any) -> int:
        try:
            created = await orgs.seed_defaults(session, localities, actor=audit.cli_actor())
        except orgs.OrgError as exc:
            raise CliError(str(exc)) from None
        provinces = ", ".join(name for _code, name in localities.provinces())
        print(f"{provinces}: {created} unit(s) created")
        return 0

    return _run(args, action)


def cmd_org_year(args: argparse.Namespace) -> int:
    from bot.services import audit, orgs

    if args.members is None and args.target is None:
        print("hocvuso: give --members and/or --target", file=sys.stderr)
        return 2

    async def action(session: Any, _localities: Any, _settings: Any) -> int:
        unit = await _unit(session, args.unit)
        try:
            await orgs.set_unit_year(session, unit, args.year, member_count=args.members,
                                     target=args.target, actor=audit.cli_actor())  # fmt: skip
        except orgs.OrgError as exc:
            raise CliError(str(exc)) from None
        print(f"{unit.code} {args.year}: members {args.members}, target {args.target}")
        return 0

    return _run(args, action)


# ---------------------------------------------------------------------------- admin


def cmd_admin_grant(args: argparse.Namespace) -> int:
    from bot.services import audit, officers

    async def action(session: Any, localities: Any, _settings: Any) -> int:
        unit = await _unit(session, args.unit)
        try:
            officer, created = await officers.grant(
                session, channel=args.channel, external_id=args.user_id, role=args.role,
                unit=unit, locality=args.locality, by=audit.cli_actor(), now=_now(),
                localities=localities,
            )  # fmt: skip
        except officers.GrantError as exc:
            raise CliError(str(exc)) from None
        scope = officers.scope_text(officer.role, unit, officer.locality_code)
        verb = "granted" if created else "already granted"
        print(f"{verb}: #{officer.id} {scope} to {args.channel}:{officer.external_id}")
        return 0

    return _run(args, action)


def cmd_admin_revoke(args: argparse.Namespace) -> int:
    from bot.services import audit, officers

    async def action(session: Any, _localities: Any, _settings: Any) -> int:
        unit = await _unit(session, args.unit)
        count = await officers.revoke(
            session, channel=args.channel, external_id=args.user_id, role=args.role, unit=unit,
            locality=args.locality, by=audit.cli_actor(), now=_now(),
        )  # fmt: skip
        if not count:
            raise CliError(f"no active grant of {args.channel}:{args.user_id} matches")
        print(f"revoked {count} grant(s) of {args.channel}:{args.user_id}")
        return 0

    return _run(args, action)


def cmd_admin_list(args: argparse.Namespace) -> int:
    from bot.services import officers

    async def action(session: Any, _localities: Any, _settings: Any) -> int:
        rows = await officers.list_officers(session, include_revoked=args.all)
        print("id\taccount\trole\tscope\tgranted_by\tgranted_at\trevoked_at")
        for o in rows:
            scope = officers.scope_text(o.role, o.unit, o.locality_code)
            revoked = o.revoked_at.isoformat(timespec="seconds") if o.revoked_at else "-"
            print(f"{o.id}\t{o.channel}:{o.external_id}\t{o.role}\t{scope}\t{o.granted_by}\t"
                  f"{o.granted_at.isoformat(timespec='seconds')}\t{revoked}")  # fmt: skip
        return 0

    return _run(args, action)


def cmd_admin_invite(args: argparse.Namespace) -> int:
    from bot.services import audit, officers, policy

    if not 1 <= args.days <= 90:
        print("hocvuso: --days must be between 1 and 90", file=sys.stderr)
        return 2

    async def action(session: Any, localities: Any, settings: Any) -> int:
        unit = await _unit(session, args.unit)
        ref = policy.UnitRef.of(unit) if unit is not None else None
        problem = policy.check_role_target(args.role, ref, args.locality, localities)
        if problem is not None:
            raise CliError(problem)
        token, invite = await officers.create_invite(
            session, role=args.role, unit=unit, locality=args.locality, by=audit.cli_actor(),
            by_officer_id=None, now=_now(), days=args.days,
        )  # fmt: skip
        link = officers.invite_link(token, settings.telegram_bot_username)
        scope = officers.scope_text(args.role, unit, args.locality)
        print(f"one-time invitation for {scope}, valid until "
              f"{invite.expires_at.isoformat(timespec='minutes')}:")  # fmt: skip
        if settings.telegram_bot_username:
            print(link)
        else:
            print(f"send this to the bot (set HOCVUSO_TELEGRAM_BOT_USERNAME for a link): {link}")
        return 0

    return _run(args, action)


def cmd_audit(args: argparse.Namespace) -> int:
    from bot.services import audit

    if not 1 <= args.limit <= 10_000:
        print("hocvuso: --limit must be between 1 and 10000", file=sys.stderr)
        return 2

    async def action(session: Any, _localities: Any, _settings: Any) -> int:
        print("at\tactor\taction\ttarget\tdetail")
        for e in await audit.recent(session, args.limit):
            detail = json.dumps(e.detail, ensure_ascii=False, sort_keys=True) if e.detail else ""
            print(f"{e.at.isoformat(timespec='seconds')}\t{e.actor}\t{e.action}\t"
                  f"{e.target or '-'}\t{detail}")  # fmt: skip
        return 0

    return _run(args, action)


# ---------------------------------------------------------------------------- parsers


def _scope_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--unit", help="unit code (org_admin)")
    group.add_argument("--locality", type=int, help="commune code (locality_admin)")


def add_parsers(sub: Any) -> None:
    """Register `org`, `admin` and `audit` on the main parser's subparsers."""
    org = sub.add_parser("org", help="organisation units").add_subparsers(
        dest="org_command", required=True
    )
    p = org.add_parser("import", help="create or update units from a CSV file")
    p.add_argument("file", help="CSV: type,name,locality_code,parent_code,code")
    p.set_defaults(func=cmd_org_import)
    p = org.add_parser("add", help="add one unit")
    p.add_argument("--type", required=True, choices=list(ALL_ORG_TYPES))
    p.add_argument("--name", required=True)
    p.add_argument("--locality", required=True, type=int, help="province or commune code")
    p.add_argument("--parent", help="parent unit code")
    p.add_argument("--code", required=True, help="1-48 of A-Z a-z 0-9 _ -")
    p.set_defaults(func=cmd_org_add)
    p = org.add_parser("remove", help="remove a unit made by mistake (nothing may refer to it)")
    p.add_argument("code")
    p.set_defaults(func=cmd_org_remove)
    p = org.add_parser("list", help="list units")
    p.add_argument("--type", choices=list(ALL_ORG_TYPES))
    p.add_argument("--locality", type=int, help="a province (all in it) or a commune code")
    p.set_defaults(func=cmd_org_list)
    p = org.add_parser("seed-defaults", help="province units and one unit per type and commune")
    p.set_defaults(func=cmd_org_seed)
    p = org.add_parser("set-year", help="official member count and target of a unit for a year")
    p.add_argument("--unit", required=True)
    p.add_argument("--year", required=True, type=int)
    p.add_argument("--members", type=int, help="official member count")
    p.add_argument("--target", type=int, help="target (members to train)")
    p.set_defaults(func=cmd_org_year)

    admin = sub.add_parser("admin", help="officers and their roles").add_subparsers(
        dest="admin_command", required=True
    )
    p = admin.add_parser("grant", help="give an account an officer role")
    p.add_argument("--channel", required=True, choices=CHANNELS)
    p.add_argument("--user-id", required=True, help="the id /whoami shows")
    p.add_argument("--role", required=True, choices=ROLES)
    _scope_args(p)
    p.set_defaults(func=cmd_admin_grant)
    p = admin.add_parser("revoke", help="take roles away (all of the account's without --role)")
    p.add_argument("--channel", required=True, choices=CHANNELS)
    p.add_argument("--user-id", required=True)
    p.add_argument("--role", choices=ROLES)
    _scope_args(p)
    p.set_defaults(func=cmd_admin_revoke)
    p = admin.add_parser("list", help="active officers")
    p.add_argument("--all", action="store_true", help="include revoked roles")
    p.set_defaults(func=cmd_admin_list)
    p = admin.add_parser("invite", help="a one-time link that makes whoever opens it an officer")
    p.add_argument("--role", required=True, choices=ROLES)
    _scope_args(p)
    p.add_argument("--days", type=int, default=7, help="valid for this many days (default 7)")
    p.set_defaults(func=cmd_admin_invite)

    p = sub.add_parser("audit", help="the audit log, newest first")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_audit)
