"""Everything long-lived a process holds, built once by `bot.app.build_runtime`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.engine import Clock, Engine
from bot.localities import LocalityIndex
from bot.settings import Settings
from content.loader import Curriculum
from handlers.types import Reply

# Sends replies to a chat on one channel: channel.send(chat_id, replies).
Sender = Callable[[str, list[Reply]], Awaitable[None]]


@dataclass(slots=True)
class Runtime:
    settings: Settings
    db: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    curriculum: Curriculum
    localities: LocalityIndex
    engine: Engine
    clock: Clock
    # Channel name -> its sender, filled in when the channels start (jobs send through it).
    senders: dict[str, Sender] = field(default_factory=dict)

    async def close(self) -> None:
        await self.db.dispose()
