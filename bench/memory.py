"""Resident memory of `hocvuso serve`: idle, and with 100,000 registered citizens after a
campaign to all of them.

1. idle: `hocvuso serve` (polling the Bot API stand-in of bench/standin.py, SQLite, empty
   database) once it is polling and has settled: `idle_rss_mb`;
2. 100,000 citizens: the database gets 100,000 registered citizens (person, Telegram identity,
   membership; bulk inserts as tests/campaigndata.py makes them) with their participation
   events (registered, profile changed, joined an organisation, a lesson started and its quiz
   finished: 500,000 rows), and a campaign to all of them confirmed the way an officer
   confirms one (its outbox written). `hocvuso serve` then starts and its campaign
   dispatcher sends the campaign through the stand-in to every citizen. `rss_100k_mb` is the
   bot's resident memory once the campaign is done, `peak_rss_100k_mb` the most it held.

The bot runs alone on core 1, the stand-in on core 0. Prints one JSON line; `make bench` runs
it, `make test` does not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.standin import JSONDict, StandIn  # noqa: E402
from bench.updates import TOKEN, BotProcess, bot_env, wait_ready  # noqa: E402

CITIZENS = 100_000
EVENTS_EACH = 5


async def idle(standin: StandIn, work: Path, settle: float) -> float:
    url = f"sqlite+aiosqlite:///{work}/idle.db"
    bot = BotProcess([sys.executable, "-m", "bot.cli", "serve"],
                     bot_env(standin, url, work), work)  # fmt: skip
    try:
        await wait_ready(standin, bot)
        await asyncio.sleep(settle)
        return bot.memory_mb()[0]
    finally:
        await bot.stop()


async def seed(url: str, citizens: int) -> tuple[int, int]:
    """Citizens with their events and a confirmed campaign to all of them; returns (events,
    campaign recipients)."""
    from bot.app import build_runtime
    from bot.settings import Settings
    from tests import campaigndata, orgdata

    rt = build_runtime(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    try:
        await campaigndata.seed(rt.sessionmaker, rt.localities, citizens)
        lesson = rt.curriculum.modules[0].lessons[0]
        base = orgdata.NOW - timedelta(days=20)
        kinds = (("registered", {}), ("profile_changed", {"field": "commune"}),
                 ("joined_org", {"org_type": "hoi_phu_nu"}),
                 ("lesson_started", {"module_id": lesson.module_id, "lesson_id": lesson.id}),
                 ("quiz_finished", {"module_id": lesson.module_id, "lesson_id": lesson.id,
                                    "score": 5, "total": 5, "passed": True}))  # fmt: skip
        path = url.split(":///", 1)[1]
        events = await asyncio.to_thread(write_events, path, citizens, kinds, base, orgdata.A)
        campaign = await campaigndata.start_campaign(
            rt.sessionmaker, rt.localities, rt.curriculum, now=datetime.now(UTC)
        )
        outbox = await campaigndata.statuses(rt.sessionmaker, campaign.id)
        return events, sum(outbox.values())
    finally:
        await rt.close()


def write_events(path: str, citizens: int, kinds: tuple[tuple[str, dict[str, object]], ...],
                 base: datetime, commune: int) -> int:  # fmt: skip
    """The citizens' participation events, straight through sqlite3 (half a million rows
    through the ORM would take minutes); timestamps as SQLAlchemy stores them."""
    columns = ("at", "kind", "person_key", "channel", "commune_code", "memberships",
               "unit_codes", "module_id", "lesson_id", "score", "total", "passed")  # fmt: skip
    stamps = [(base + timedelta(minutes=n)).strftime("%Y-%m-%d %H:%M:%S.%f")
              for n in range(len(kinds))]  # fmt: skip
    rows = (
        (stamps[n], kind, f"k{i + 1:030d}", "telegram", commune, "hoi_phu_nu", "HPN-A",
         fields.get("module_id"), fields.get("lesson_id"), fields.get("score"),
         fields.get("total"), fields.get("passed"))
        for i in range(citizens)
        for n, (kind, fields) in enumerate(kinds)
    )  # fmt: skip
    sql = (f"INSERT INTO participation_events ({', '.join(columns)}) "
           f"VALUES ({', '.join('?' * len(columns))})")  # fmt: skip
    conn = sqlite3.connect(path, timeout=30)
    try:
        with conn:
            conn.executemany(sql, rows)
    finally:
        conn.close()
    return citizens * len(kinds)


async def with_citizens(standin: StandIn, work: Path, args: argparse.Namespace) -> JSONDict:
    from bot.db.migrate import upgrade
    from tests.campaigndata import FIRST_CHAT

    url = f"sqlite+aiosqlite:///{work}/hocvuso.db"
    await asyncio.to_thread(upgrade, url)
    started = time.monotonic()
    events, recipients = await seed(url, args.citizens)
    seeded = time.monotonic() - started
    delivered: set[int] = set()
    done = asyncio.Event()

    def on_send(chat_id: int, _message: JSONDict, _at: float) -> None:
        if chat_id >= FIRST_CHAT:
            delivered.add(chat_id)
            if len(delivered) >= recipients:
                done.set()

    standin.reset()
    standin.on_send = on_send
    env = bot_env(standin, url, work)
    env["HOCVUSO_TELEGRAM_PAID_BROADCAST"] = "1"  # up to 1,000 sends a second (rate below)
    env["HOCVUSO_TELEGRAM_RATE"] = str(args.rate)
    bot = BotProcess([sys.executable, "-m", "bot.cli", "serve"], env, work)
    try:
        await wait_ready(standin, bot)
        sending = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), args.limit)
        sent_in = time.monotonic() - sending
        await asyncio.sleep(args.settle)
        rss, peak = bot.memory_mb()
    finally:
        log = await bot.stop()
    return {
        "citizens": args.citizens,
        "events": events,
        "campaign": "real: confirmed by the campaign service, sent by the bot's dispatcher",
        "campaign_recipients": recipients,
        "campaign_delivered": len(delivered),
        "campaign_seconds": round(sent_in, 1),
        "rss_100k_mb": round(rss, 1),
        "peak_rss_100k_mb": round(peak, 1),
        "seed_seconds": round(seeded, 1),
        "bot_errors_logged": log.count(" ERROR "),
    }


async def main(args: argparse.Namespace) -> JSONDict:
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    standin = StandIn(TOKEN, rtt=args.rtt_ms / 1000)
    await standin.start()
    try:
        with tempfile.TemporaryDirectory(prefix="hocvuso-bench-memory-") as tmp:
            work = Path(tmp)
            (work / "idle").mkdir()
            (work / "full").mkdir()
            idle_rss = await idle(standin, work / "idle", args.settle)
            full = await with_citizens(standin, work / "full", args)
    finally:
        await standin.stop()
    return {
        "bench": "memory",
        "idle_rss_mb": round(idle_rss, 1),
        **full,
        "setup": {
            "database": "sqlite",
            "rtt_ms": args.rtt_ms,
            "send_rate_per_s": args.rate,
            "cpus": os.cpu_count(),
            "bot_cpu": 1,
        },
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--citizens", type=int, default=CITIZENS)
    parser.add_argument("--rtt-ms", type=float, default=80.0, help="stand-in round trip")
    parser.add_argument("--rate", type=float, default=1000.0, help="campaign sends per second")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before reading RSS")
    parser.add_argument("--limit", type=float, default=400.0, help="most seconds to send")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse_args())), ensure_ascii=False))
