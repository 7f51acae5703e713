"""Everything long-lived a process holds, built once by `bot.app.build_runtime`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.engine import Clock, Engine
from bot.localities import LocalityIndex
from bot.settings import Settings
from content.loader import Curriculum


@dataclass(slots=True)
class Runtime:
    settings: Settings
    db: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    curriculum: Curriculum
    localities: LocalityIndex
    engine: Engine
    clock: Clock

    async def close(self) -> None:
        await self.db.dispose()
