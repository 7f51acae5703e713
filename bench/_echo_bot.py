"""The baseline of bench/updates.py: a minimal python-telegram-bot echo bot with default
settings (HTTPX transport, PTB's Updater polling) that commits one row per update.

Only `concurrent_updates(True)` departs from PTB's defaults: handling one update at a time, an
80 ms round trip caps any bot near 12 updates/s and the comparison would measure the network,
not the bot. The row is written the cheapest correct way, so that the database is not what
limits the baseline: SQLite through one aiosqlite connection (WAL, synchronous=NORMAL, as
hocvuso uses it; one connection, so never "database is locked"), PostgreSQL through an asyncpg
pool, each update committing its own row.

Run by bench/updates.py as a subprocess (a helper: `make bench` skips `_*.py`); it reads
BENCH_TOKEN, BENCH_API_URL and BENCH_DB_URL (a SQLAlchemy-style URL) from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

CREATE = """CREATE TABLE IF NOT EXISTS echoes (
    id {pk}, update_id BIGINT NOT NULL, chat_id BIGINT NOT NULL, text TEXT NOT NULL,
    at TIMESTAMP NOT NULL)"""

Insert = Callable[[int, int, str], Awaitable[None]]


async def connect(url: str) -> tuple[Insert, Callable[[], Awaitable[Any]]]:
    """(insert one row and commit, close) for a sqlite+aiosqlite or postgresql+asyncpg URL."""
    if url.startswith("sqlite"):
        import aiosqlite

        db = await aiosqlite.connect(url.split(":///", 1)[1])
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute(CREATE.format(pk="INTEGER PRIMARY KEY"))

        async def insert_sqlite(update_id: int, chat_id: int, text: str) -> None:
            await db.execute(
                "INSERT INTO echoes (update_id, chat_id, text, at) VALUES (?, ?, ?, ?)",
                (update_id, chat_id, text, datetime.now(UTC).isoformat()),
            )
            await db.commit()

        return insert_sqlite, db.close
    import asyncpg

    pool = await asyncpg.create_pool(url.replace("postgresql+asyncpg://", "postgresql://"))
    await pool.execute(CREATE.format(pk="BIGSERIAL PRIMARY KEY"))

    async def insert_pg(update_id: int, chat_id: int, text: str) -> None:
        await pool.execute(
            "INSERT INTO echoes (update_id, chat_id, text, at) VALUES ($1, $2, $3, $4)",
            update_id, chat_id, text, datetime.now(UTC).replace(tzinfo=None),
        )  # fmt: skip

    return insert_pg, pool.close


def main() -> None:
    db: dict[str, Any] = {}

    async def post_init(_app: Application) -> None:  # type: ignore[type-arg]
        db["insert"], db["close"] = await connect(os.environ["BENCH_DB_URL"])

    async def post_shutdown(_app: Application) -> None:  # type: ignore[type-arg]
        await db["close"]()

    async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.text is None:
            return
        await db["insert"](update.update_id, message.chat_id, message.text)
        await message.reply_text(message.text)

    app = (
        ApplicationBuilder().token(os.environ["BENCH_TOKEN"]).base_url(os.environ["BENCH_API_URL"])
        .concurrent_updates(True).post_init(post_init).post_shutdown(post_shutdown).build()
    )  # fmt: skip
    app.add_handler(MessageHandler(filters.TEXT, echo))
    app.run_polling(allowed_updates=Update.ALL_TYPES)


if __name__ == "__main__":
    main()
