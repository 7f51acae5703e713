"""The write path under load: one write transaction at a time on SQLite (queued in the event
loop, never sleeping in SQLite's busy handler), group commit, and no "database is locked"."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select, text

from bot.db.batch import GroupCommit
from bot.db.models import ParticipationEvent, Person, ProcessedUpdate
from bot.db.session import make_engine, make_sessionmaker
from bot.db.sqlite_inline import is_write
from bot.engine import Engine
from tests.conftest import Chat
from tests.journey import onboard


def _path(url: str) -> str:
    return url.split(":///", 1)[1]


def hold_write_lock(path: str, seconds: float) -> threading.Thread:
    """Another process's writer, as a thread with its own connection: BEGIN IMMEDIATE, wait,
    commit. Returns once the lock is held."""
    held = threading.Event()

    def run() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=run)
    thread.start()
    held.wait()
    return thread


INSERT = text("INSERT INTO processed_updates (channel, update_key, at) VALUES ('t', :k, '2026')")


async def claim(sessionmaker: object, key: str) -> None:
    """A unit of work that reads, then writes."""
    async with sessionmaker() as s, s.begin():  # type: ignore[operator]
        await s.execute(text("SELECT count(*) FROM processed_updates"))
        await s.execute(INSERT, {"k": key})


def test_statements_that_write() -> None:
    assert is_write("INSERT INTO x VALUES (1)") and is_write("  update x set a=1")
    assert is_write("WITH y AS (SELECT 1) DELETE FROM x") and is_write("SAVEPOINT sa_1")
    assert not is_write("SELECT * FROM x") and not is_write("PRAGMA foreign_keys=ON")
    assert not is_write("WITH y AS (SELECT 1) SELECT * FROM y")


async def test_many_writers_one_at_a_time(sqlite_url: str) -> None:
    """200 concurrent write transactions and a reader holding its session open: every write
    commits, none meets "database is locked", and at no moment do two run at once."""
    db = make_engine(sqlite_url)
    sessionmaker = make_sessionmaker(db)
    try:
        async with sessionmaker() as reader:  # held open the whole time, as a report might
            await reader.execute(select(func.count()).select_from(Person))
            await asyncio.gather(*(claim(sessionmaker, f"k{i}") for i in range(200)))
        async with sessionmaker() as s:
            assert await s.scalar(select(func.count()).select_from(ProcessedUpdate)) == 200
    finally:
        await db.dispose()


async def test_another_process_holding_the_lock_is_waited_for_without_blocking(
    sqlite_url: str,
) -> None:
    db = make_engine(sqlite_url)
    sessionmaker = make_sessionmaker(db)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(ticker())
    try:
        await claim(sessionmaker, "warm")  # connect first: the pragmas need no lock then
        other = hold_write_lock(_path(sqlite_url), 0.4)
        started = time.monotonic()
        await claim(sessionmaker, "after the other writer")
        waited = time.monotonic() - started
        other.join()
    finally:
        beat.cancel()
        await db.dispose()
    assert waited >= 0.3
    assert ticks >= 15  # the event loop kept running while the write waited


async def test_busy_timeout_still_ends_in_database_is_locked(sqlite_url: str) -> None:
    db = make_engine(sqlite_url, pool_size=1, max_overflow=0)
    sessionmaker = make_sessionmaker(db)
    try:
        async with db.connect() as conn:  # the one pooled connection, told to give up soon
            await conn.execute(text("PRAGMA busy_timeout=100"))
        other = hold_write_lock(_path(sqlite_url), 1.0)
        with pytest.raises(Exception, match="database is locked"):
            await claim(sessionmaker, "too late")
        other.join()
        await claim(sessionmaker, "now")
    finally:
        await db.dispose()


async def test_readers_do_not_wait_for_the_writer(sqlite_url: str) -> None:
    db = make_engine(sqlite_url)
    sessionmaker = make_sessionmaker(db)
    order: list[str] = []
    try:
        async with sessionmaker() as writer, writer.begin():
            await writer.execute(INSERT, {"k": "first"})

            async def second_writer() -> None:
                await claim(sessionmaker, "second")
                order.append("second writer")

            pending = asyncio.create_task(second_writer())
            async with sessionmaker() as reader:  # reads the last committed state at once
                seen = await reader.scalar(select(func.count()).select_from(ProcessedUpdate))
                order.append("reader")
            await asyncio.sleep(0.05)
            assert not pending.done()  # waits for the first writer's commit
            order.append("first writer commits")
        await pending
    finally:
        await db.dispose()
    assert seen == 0
    assert order == ["reader", "first writer commits", "second writer"]


async def test_group_commit_batches_and_isolates_failures(sqlite_url: str) -> None:
    db = make_engine(sqlite_url)
    sessionmaker = make_sessionmaker(db)

    async def prepare(_session: object, items: list[str]) -> list[None]:
        return [None] * len(items)

    async def work(session: object, key: str, _prepared: None) -> str:
        if key == "bad":
            raise ValueError("a unit that fails")
        await session.execute(INSERT, {"k": key})  # type: ignore[attr-defined]
        return key

    units = GroupCommit(sessionmaker, prepare, work, max_batch=8)
    try:
        keys = [f"u{i}" for i in range(20)]
        results = await asyncio.gather(*(units.run(k) for k in keys))
        assert results == keys
        assert units.batches < len(keys)  # several units shared a transaction
        outcome = await asyncio.gather(*(units.run(k) for k in ["a", "bad", "b"]),
                                       return_exceptions=True)  # fmt: skip
        assert outcome[0] == "a" and outcome[2] == "b" and isinstance(outcome[1], ValueError)
        async with sessionmaker() as s:
            stored = set(await s.scalars(select(ProcessedUpdate.update_key)))
        assert stored == {*keys, "a", "b"}
    finally:
        await db.dispose()


async def test_a_crowd_onboarding_at_once(core: Engine) -> None:
    """Many people at the same moment through the engine (batched units of work), on SQLite
    and PostgreSQL: everyone gets through, every event is stored, nothing is locked."""
    chats = [Chat(core, user_id=str(50_000 + i), name=f"Người {i}") for i in range(60)]
    await asyncio.gather(*(onboard(chat) for chat in chats))
    assert core.units.batches < core.units.units  # messages did share transactions
    async with core.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Person)) == len(chats)
        registered = await s.scalar(
            select(func.count()).select_from(ParticipationEvent)
            .where(ParticipationEvent.kind == "registered")
        )  # fmt: skip
    assert registered == len(chats)


async def test_group_commit_runs_batches_side_by_side_when_allowed(db_url: str) -> None:
    """With `parallel`, a backlog is shared by batches in flight at the same time, each in its
    own transaction; every unit still runs once and gets its own result."""
    db = make_engine(db_url)
    sessionmaker = make_sessionmaker(db)
    spans: dict[int, list[float]] = {}
    loop = asyncio.get_running_loop()

    async def prepare(session: object, items: list[str]) -> list[None]:
        spans[id(session)] = [loop.time(), loop.time()]
        return [None] * len(items)

    async def work(session: object, key: str, _prepared: None) -> str:
        await session.execute(  # type: ignore[attr-defined]
            insert(ProcessedUpdate).values(channel="t", update_key=key, at=datetime.now(UTC)))
        await asyncio.sleep(0.01)  # as if waiting for the server
        spans[id(session)][1] = loop.time()
        return key

    parallel = 1 if db_url.startswith("sqlite") else 3
    units = GroupCommit(sessionmaker, prepare, work, max_batch=8, parallel=parallel)
    try:
        keys = [f"p{i}" for i in range(40)]
        assert await asyncio.gather(*(units.run(k) for k in keys)) == keys
        assert units.units == len(keys) and units.batches < len(keys)
        ordered = sorted(spans.values())
        overlapping = any(b[0] < a[1] for a, b in itertools.pairwise(ordered))
        assert overlapping == (parallel > 1)
        async with sessionmaker() as s:
            stored = set(await s.scalars(select(ProcessedUpdate.update_key)))
        assert stored == set(keys)
    finally:
        await db.dispose()
