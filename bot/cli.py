"""The `hocvuso` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Coroutine
from typing import Any

from bot.settings import SettingsError, load_settings


def _settings():
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"hocvuso: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(_args: argparse.Namespace) -> int:
    from bot.app import serve
    from bot.logs import setup_logging

    settings = _settings()
    setup_logging(settings.log_level, settings.secrets(), settings.log_format)
    _upgrade(settings.database_url)
    run_loop(serve(settings), settings.event_loop)
    return 0


def run_loop(main: Coroutine[Any, Any, None], kind: str) -> None:
    """Run the bot on uvloop (libuv's sockets, timers and callbacks: less CPU per update
    than asyncio's own loop in bench/updates.py), unless asked for asyncio's loop or uvloop
    is not installed (it has no Windows build)."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            logging.getLogger(__name__).warning("uvloop is not installed: asyncio's loop instead")
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def cmd_chat(_args: argparse.Namespace) -> int:
    from bot.app import chat
    from bot.logs import setup_logging

    settings = _settings()
    setup_logging("WARNING", settings.secrets())
    _upgrade(settings.database_url)
    asyncio.run(chat(settings))
    return 0


def _upgrade(url: str) -> None:
    from bot.db.migrate import upgrade

    upgrade(url)


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    settings = _settings()
    _upgrade(settings.database_url)
    print("database is up to date")
    return 0


def cmd_db_backup(args: argparse.Namespace) -> int:
    """Copy a live SQLite database with SQLite's online backup API (consistent while the bot
    runs). PostgreSQL: use pg_dump (see README)."""
    import sqlite3
    from pathlib import Path

    from sqlalchemy.engine import make_url

    settings = _settings()
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        print("hocvuso: db backup copies SQLite databases; for PostgreSQL use pg_dump "
              "(see the README's Deploying section)", file=sys.stderr)
        return 2
    source = Path(url.database or "")
    if not source.is_file():
        print(f"hocvuso: no database at {source}", file=sys.stderr)
        return 1
    target = Path(args.file)
    if target.exists() and not args.force:
        print(f"hocvuso: {target} exists (add --force to overwrite)", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    with sqlite3.connect(source) as src, sqlite3.connect(tmp) as dst:
        src.backup(dst)
    tmp.replace(target)
    print(f"backed up {source} to {target}")
    return 0


def cmd_content_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from content import criteria
    from content.loader import MODULES_DIR, check

    directory = Path(args.dir) if args.dir else MODULES_DIR
    curriculum, problems = check(directory)
    criteria_sets, criteria_problems = criteria.check(
        Path(args.criteria) if args.criteria else criteria.CRITERIA_DIR
    )
    problems = [*problems, *criteria_problems]
    for problem in problems:
        print(problem)
    if curriculum is None or criteria_problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    s = curriculum.stats()
    print(
        f"content OK: {s['modules']} modules, {s['lessons']} lessons, {s['questions']} questions"
        f", {len(criteria_sets)} criteria set(s)"
    )
    return 0


def cmd_content_stats(args: argparse.Namespace) -> int:
    from pathlib import Path

    from content.loader import MODULES_DIR, check

    curriculum, problems = check(Path(args.dir) if args.dir else MODULES_DIR)
    if curriculum is None:
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1
    stats = curriculum.stats()
    if args.json:
        print(json.dumps(stats, ensure_ascii=False))
    else:
        for key, value in stats.items():
            print(f"{key}: {value}")
    return 0


def cmd_privacy_erase(args: argparse.Namespace) -> int:
    """Erase a person on request by letter: by channel and platform user id."""
    from sqlalchemy import select

    from bot.db.models import Identity
    from bot.db.session import make_engine, make_sessionmaker
    from bot.engine import utc_now
    from bot.services import privacy

    settings = _settings()
    _upgrade(settings.database_url)

    async def run() -> bool:
        db = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(db)() as session, session.begin():
                identity = await session.scalar(select(Identity).where(
                    Identity.channel == args.channel, Identity.external_id == args.user_id))
                if identity is None:
                    return False
                await privacy.erase_identity(session, identity, utc_now())
                return True
        finally:
            await db.dispose()

    if not asyncio.run(run()):
        print(f"hocvuso: no one with {args.channel} user id {args.user_id}", file=sys.stderr)
        return 1
    print(f"erased: {args.channel} user {args.user_id} (and every identity linked to them)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hocvuso", description="hocvuso chatbot")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the bot (Telegram, web server, scheduler)").set_defaults(
        func=cmd_serve
    )
    sub.add_parser("chat", help="talk to the bot in this terminal").set_defaults(func=cmd_chat)
    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)
    backup = db.add_parser("backup", help="copy the SQLite database while the bot runs")
    backup.add_argument("file", help="where to write the copy")
    backup.add_argument("--force", action="store_true", help="overwrite an existing file")
    backup.set_defaults(func=cmd_db_backup)
    content = sub.add_parser("content", help="the curriculum").add_subparsers(
        dest="content_command", required=True
    )
    chk = content.add_parser("check", help="validate every content file")
    chk.add_argument("--dir", help="modules folder (default: the shipped content)")
    chk.add_argument("--criteria", help="criteria sets folder (default: content/criteria)")
    chk.set_defaults(func=cmd_content_check)
    st = content.add_parser("stats", help="counts of modules, lessons, questions")
    st.add_argument("--json", action="store_true", help="one JSON object")
    st.add_argument("--dir", help="modules folder (default: the shipped content)")
    st.set_defaults(func=cmd_content_stats)
    priv = sub.add_parser("privacy", help="data protection requests").add_subparsers(
        dest="privacy_command", required=True)
    erase = priv.add_parser("erase", help="erase a person (a request that came by letter)")
    erase.add_argument("--channel", required=True,
                       choices=["telegram", "zalo-bot", "zalo-oa", "console"])
    erase.add_argument("--user-id", required=True, help="the person's id on that channel")
    erase.set_defaults(func=cmd_privacy_erase)
    from bot.cli_orgs import add_parsers as add_org_parsers

    add_org_parsers(sub)  # org, admin, audit
    from bot.cli_reports import add_parsers as add_report_parsers

    add_report_parsers(sub)  # report, demo
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
