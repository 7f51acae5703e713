"""Group commit: units of work that queue up together run in one transaction.

A message's unit of work pays a fixed price besides its own statements: a session, a connection
from the pool, BEGIN, a flush and a COMMIT. Under load, messages of different people wait for
the database at the same moment; running them one after another in one transaction pays that
price once per batch. Results are handed out only after the commit, so a reply is never sent
for a change that was not stored.

A batch behaves as if its units ran one by one, in queue order, each seeing the ones before
it. If anything in a batch fails (a unit raises, the flush or the commit fails), the batch is
rolled back and every unit runs again alone, in its own transaction, so only the failing one
fails. Callers must not submit two units that may not run in the same transaction, such as two
messages of the same person (the engine's per-person lock sees to that).

Several batches may be in flight at once (`parallel`): on PostgreSQL a batch spends most of its
time waiting for the server, and the next one can use another pooled connection meanwhile.
On SQLite there is one writer, so one batch at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)


class GroupCommit[T, P, R]:
    """Runs `work(session, item, prepared)` for submitted items, batching those that queue up
    together.

    Args:
        sessionmaker: where sessions come from.
        prepare: `prepare(session, items)` runs first in each transaction and returns one value
            per item, so what every unit needs can be read or written in one statement for the
            whole batch instead of one per unit.
        work: the unit of work; it must not commit or roll back the session.
        max_batch: units per transaction at most.
        budget: seconds a batch should take at most, going by what units took so far. A batch
            runs without yielding to the event loop when the database does not (SQLite,
            bot.db.sqlite_inline), and every unit of it waits for its commit: this keeps
            both short, so batching trades little latency for the CPU it saves.
        parallel: batches in flight at most, each in its own transaction. Units of batches
            in flight at the same time must not depend on each other (different people).
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession],
                 prepare: Callable[[AsyncSession, list[T]], Awaitable[list[P]]],
                 work: Callable[[AsyncSession, T, P], Awaitable[R]], *,
                 max_batch: int = 16, budget: float = 0.05,
                 parallel: int = 1) -> None:  # fmt: skip
        self.sessionmaker = sessionmaker
        self.prepare = prepare
        self.work = work
        self.max_batch = max_batch
        self.budget = budget
        self.parallel = max(1, parallel)
        self._unit_seconds = 0.002  # running estimate of one unit's time in a batch
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._drainers: set[asyncio.Task[None]] = set()
        self._busy = 0  # drainers running a batch
        self.batches = 0
        self.units = 0

    async def run(self, item: T) -> R:
        """Queue `item` and return its unit's result once its transaction committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._spread()
        return await future

    def _spread(self) -> None:
        """Start a drainer for what is queued if none runs, or if every one is busy with a
        batch and fewer than `parallel` run (so units queueing together still share one)."""
        if self._queue and (not self._drainers
                            or self._busy == len(self._drainers) < self.parallel):  # fmt: skip
            self._drainers.add(asyncio.create_task(self._drain()))

    async def _drain(self) -> None:
        try:
            while self._queue:
                # Let others run first: I/O, and more units joining this batch.
                await asyncio.sleep(0)
                batch: list[tuple[T, asyncio.Future[R]]] = []
                size = max(1, min(self.max_batch, int(self.budget / self._unit_seconds)))
                while self._queue and len(batch) < size:
                    item, future = self._queue.popleft()
                    if not future.done():  # not given up on (cancelled) by its caller
                        batch.append((item, future))
                self._busy += 1
                self._spread()  # units left over: another batch beside this one
                try:
                    if len(batch) == 1:
                        await self._alone(*batch[0])
                    elif batch:
                        await self._together(batch)
                finally:
                    self._busy -= 1
        finally:
            # Synchronously: a unit queued from now on starts a new drainer.
            self._drainers.discard(asyncio.current_task())  # type: ignore[arg-type]
            if not self._drainers:  # the queue is left over only when cancelled (shutdown)
                while self._queue:
                    self._queue.popleft()[1].cancel()

    def _took(self, seconds: float, units: int) -> None:
        """Update the estimate of a unit's time (units run without waiting: after `prepare`,
        which waits for the writer's turn)."""
        self._unit_seconds += (seconds / units - self._unit_seconds) / 8

    async def _together(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            async with self.sessionmaker() as session, session.begin():
                items = [item for item, _ in batch]
                prepared = await self.prepare(session, items)
                started = time.perf_counter()
                results = [await self.work(session, item, p)
                           for item, p in zip(items, prepared, strict=True)]  # fmt: skip
            self._took(time.perf_counter() - started, len(batch))
        except Exception:
            log.info("a batch of %d units failed; running each alone", len(batch))
            for item, future in batch:
                await self._alone(item, future)
            return
        self.batches += 1
        self.units += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _alone(self, item: T, future: asyncio.Future[R]) -> None:
        try:
            async with self.sessionmaker() as session, session.begin():
                (prepared,) = await self.prepare(session, [item])
                started = time.perf_counter()
                result = await self.work(session, item, prepared)
            self._took(time.perf_counter() - started, 1)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        self.batches += 1
        self.units += 1
        if not future.done():
            future.set_result(result)
