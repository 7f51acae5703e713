"""SQLite without a thread hop per call: a connection with aiosqlite's async interface that runs
each call on the event loop's own thread. SQLAlchemy's aiosqlite dialect uses it through
`create_async_engine(..., async_creator=creator(path))` (bot.db.session does this for SQLite
files).

Why: aiosqlite runs every call on a worker thread, and SQLAlchemy makes four calls per statement
(cursor, execute, fetch, close), each a round trip through a queue, the GIL and the event loop's
self-pipe. On our 2-core machines that costs far more CPU than the statement: a message's unit
of work took 30 hops. With one writer connection, WAL and synchronous=NORMAL, the statements of
the message path take tens of microseconds each, less than one hop.

One writer: SQLite runs one write transaction at a time. Several connections that contend
for it sleep in SQLite's busy handler (1 ms, then 2, 5, 10 ... 100 ms) and, under load, end in
"database is locked". Here the connections of one engine queue for a writer turn instead
(`WriterTurn`), in order and without sleeping, before the first write of a transaction, and
give it back when the transaction ends; reads never wait (WAL). Reads before that first write
run outside any transaction (sqlite3's default transaction handling begins one at the first
write), so a transaction never writes from an outdated snapshot.

As statements do not yield to the loop, a transaction runs from its first write to its commit
in one go. The next one starts in a later loop iteration, never the same: otherwise a batch of
a hundred updates would run a hundred transactions back to back while no HTTP response, timer
or webhook is looked at.

Blocking: a call runs synchronously on the loop, so it must never wait for a lock there. The
connection's own busy timeout is 0; `PRAGMA busy_timeout=N` is taken over by this module, which
retries a statement refused with SQLITE_BUSY (another process, e.g. a CLI command, holds the
write lock) after an `asyncio.sleep` back-off, for up to N ms, and then raises "database is
locked" as SQLite would.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

# SQLITE_BUSY and SQLITE_BUSY_RECOVERY: the statement did nothing and may be run again.
# (SQLITE_BUSY_SNAPSHOT is not among them: that transaction has to be rolled back.)
RETRYABLE = frozenset({5, 261})
_BUSY_TIMEOUT = re.compile(r"\s*PRAGMA\s+busy_timeout\s*=\s*(\d+)\s*;?\s*$", re.IGNORECASE)
_WRITES = re.compile(
    r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|BEGIN|SAVEPOINT|VACUUM|REINDEX|ANALYZE)\b",
    re.IGNORECASE,
)
_CTE_WRITES = re.compile(
    r"\s*WITH\b.*\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE | re.DOTALL
)
# How long a transaction waits for this process's other write transactions at most. They are
# short and served in order, so only a session waiting for another session of its own task
# (a deadlock) would ever wait this long.
WRITER_WAIT = 60.0


class WriterTurn:
    """One write transaction at a time, first come first served; the next starts in a later
    loop iteration than the end of the previous one."""

    def __init__(self) -> None:
        self._taken = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if not self._taken and not self._waiters:
            self._taken = True
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(WRITER_WAIT):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the turn came just as we gave up: pass it on
            waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise sqlite3.OperationalError("database is locked") from None
            raise

    def release(self) -> None:
        asyncio.get_running_loop().call_soon(self._hand_over)

    def _hand_over(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._taken = False


@functools.lru_cache(maxsize=1024)
def is_write(sql: str) -> bool:
    """Does this statement take SQLite's write lock (or open a transaction that might)?"""
    return bool(_WRITES.match(sql) or _CTE_WRITES.match(sql))


class Cursor:
    """The async cursor interface SQLAlchemy's adapter expects of aiosqlite."""

    __slots__ = ("_conn", "_cursor", "arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._cursor: sqlite3.Cursor | None = None
        self.arraysize = 1
        # Kept when the cursor is closed (SQLAlchemy reads rowcount after closing it).
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _took(self, cursor: sqlite3.Cursor) -> Cursor:
        self._cursor = cursor
        self.description, self.rowcount = cursor.description, cursor.rowcount
        self.lastrowid = cursor.lastrowid
        return self

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        busy = _BUSY_TIMEOUT.match(sql)
        if busy:  # ours to honour, asynchronously
            self._conn.busy_timeout = int(busy.group(1)) / 1000
            return self._took(self._conn.raw.execute("SELECT " + busy.group(1)))
        await self._conn.before(sql)
        try:
            return self._took(await self._conn.retry(self._conn.raw.execute, sql, parameters))
        finally:
            self._conn.after()

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        rows = list(parameters)  # an iterator could not be retried
        await self._conn.before(sql)
        try:
            return self._took(await self._conn.retry(self._conn.raw.executemany, sql, rows))
        finally:
            self._conn.after()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor is not None else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        if self._cursor is None:
            return []
        return self._cursor.fetchmany(size or self.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor is not None else []

    async def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[Any]:
        while True:
            rows = await self.fetchmany(256)
            if not rows:
                return
            for row in rows:
                yield row


class _Immediate:
    """Stands in for aiosqlite's call queue (SQLAlchemy's isolation-level setter uses it)."""

    @staticmethod
    def put_nowait(item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class Connection:
    """An sqlite3 connection behind aiosqlite's async interface, run on the calling thread.

    `writer` is shared by the connections of one engine (see the module docstring).
    """

    def __init__(self, raw: sqlite3.Connection, writer: WriterTurn,
                 busy_timeout: float = 5.0) -> None:  # fmt: skip
        self.raw = raw
        self.writer = writer
        self.writing = False
        self.busy_timeout = busy_timeout
        # What SQLAlchemy's aiosqlite adapter reaches for: the live connection (None once
        # closed), the connection for its isolation-level setter, and the call queue.
        self._connection: sqlite3.Connection | None = raw
        self._conn = raw
        self._tx = _Immediate()

    async def retry(self, call: Callable[..., Any], *args: Any) -> Any:
        """`call(*args)`, run again after a pause while SQLite answers SQLITE_BUSY."""
        try:
            return call(*args)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in RETRYABLE:
                raise
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.busy_timeout
        pause = 0.001
        while True:
            await asyncio.sleep(pause)
            try:
                return call(*args)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode not in RETRYABLE or loop.time() >= deadline:
                    raise
            pause = min(pause * 2, 0.05)

    async def before(self, sql: str) -> None:
        """Wait for this process's writer turn before the first write of a transaction."""
        if self.writing or not is_write(sql):
            return
        await self.writer.acquire()
        self.writing = True

    def after(self) -> None:
        """Give the writer turn back once the transaction is over."""
        if self.writing and not self.raw.in_transaction:
            self.writing = False
            self.writer.release()

    def cursor(self) -> Cursor:
        return Cursor(self)

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        return await Cursor(self).execute(sql, parameters)

    async def commit(self) -> None:
        try:
            await self.retry(self.raw.commit)
        finally:
            self.after()

    async def rollback(self) -> None:
        try:
            self.raw.rollback()
        finally:
            self.after()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close at once (also SQLAlchemy's terminate, e.g. from garbage collection)."""
        if self._connection is not None:
            self._connection = None
            self.raw.close()
        if self.writing:
            self.writing = False
            self.writer.release()

    @property
    def isolation_level(self) -> str | None:
        return self.raw.isolation_level

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self.raw.create_function(*args, **kwargs)


def creator(path: str) -> Callable[[], Awaitable[Connection]]:
    """An `async_creator` for `create_async_engine("sqlite+aiosqlite:///...")`; the connections
    it makes share one writer turn."""
    writer = WriterTurn()

    async def connect() -> Connection:
        raw = sqlite3.connect(path, timeout=0, check_same_thread=False, cached_statements=256)
        return Connection(raw, writer)

    return connect
