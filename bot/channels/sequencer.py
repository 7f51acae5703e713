"""Concurrent handling with per-person order: different keys run in parallel, jobs of one key
run one after another, in the order they were submitted.

The order is fixed when `submit()` is called, synchronously, so it does not depend on how the
event loop schedules tasks: a channel submits updates in the order the platform delivered
them, and one person's replies can never overtake each other (the whole job, sending included,
is serialised, not just the database transaction).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

log = logging.getLogger(__name__)
Job = Callable[[], Awaitable[Any]]


class KeyedSequencer:
    """Runs submitted jobs: concurrently across keys, in submission order within a key.

    Args:
        concurrency: jobs running at the same time at most (the others wait their turn).
        capacity: jobs accepted (queued or running) before `room()` makes callers wait.
    """

    def __init__(self, concurrency: int = 256, capacity: int = 4096) -> None:
        self._queues: dict[Hashable, deque[tuple[Job, asyncio.Future[Any]]]] = {}
        self._running = asyncio.Semaphore(concurrency)
        self._capacity = capacity
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepted = 0

    def __len__(self) -> int:
        """Jobs accepted and not finished yet."""
        return self._accepted

    async def room(self) -> None:
        """Wait until fewer than `capacity` jobs are in flight (back-pressure for a poller)."""
        while self._accepted >= self._capacity:
            await self._has_room.wait()

    def submit(self, key: Hashable, job: Job) -> asyncio.Future[Any]:
        """Queue `job` behind the earlier jobs of `key`; the future gets its result."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._accepted += 1
        if self._accepted >= self._capacity:
            self._has_room.clear()
        queue = self._queues.get(key)
        if queue is not None:
            queue.append((job, future))
            return future
        self._queues[key] = deque([(job, future)])
        task = asyncio.create_task(self._drain(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return future

    async def _drain(self, key: Hashable) -> None:
        queue = self._queues[key]
        try:
            while queue:
                job, future = queue[0]
                try:
                    async with self._running:
                        result = await job()
                except asyncio.CancelledError:
                    future.cancel()
                    raise
                except Exception as exc:
                    if not future.cancelled():
                        future.set_exception(exc)
                else:
                    if not future.cancelled():
                        future.set_result(result)
                finally:
                    queue.popleft()
                    self._finished()
        finally:
            for _job, future in queue:
                future.cancel()
                self._finished()
            del self._queues[key]

    def _finished(self) -> None:
        self._accepted -= 1
        if self._accepted < self._capacity:
            self._has_room.set()

    async def join(self) -> None:
        """Wait for every accepted job to finish."""
        while pending := [task for task in self._tasks if not task.done()]:
            await asyncio.wait(pending)
