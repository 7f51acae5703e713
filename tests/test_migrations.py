"""The Alembic migrations build exactly the schema the models describe, on both backends,
and go down and up again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from bot.db.migrate import alembic_config, downgrade, upgrade
from bot.db.models import Base
from bot.db.session import make_engine


async def _diff(url: str) -> list:
    engine = make_engine(url)

    def compare(conn: Connection) -> list:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


def test_one_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://"))
    assert len(script.get_heads()) == 1, f"merge the branches: {script.get_heads()}"


def test_models_match_migrations(db_url: str) -> None:
    assert asyncio.run(_diff(db_url)) == []


def test_down_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    upgrade(url)
    downgrade(url, "base")
    upgrade(url)
    assert asyncio.run(_diff(url)) == []
