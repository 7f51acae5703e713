"""Shared fixtures: real databases (SQLite always, PostgreSQL when HOCVUSO_TEST_PG_URL is set),
the shipped curriculum, the commune index, and a `Chat` driver for the neutral core."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db.migrate import upgrade
from bot.db.models import Base
from bot.db.session import make_engine, make_sessionmaker
from bot.engine import Engine
from bot.localities import LocalityIndex
from bot.settings import Settings
from content.loader import Curriculum, load
from handlers.types import IncomingMessage, Kind, Reply

PG_URL = os.environ.get("HOCVUSO_TEST_PG_URL")
UPDATE_IDS = itertools.count(1)  # like Telegram's: global, and never containing a user id


# ---------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once keeps the suite fast)."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def _pg_admin(sql: str) -> None:
    assert PG_URL
    engine = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated, dropped at the end."""
    if not PG_URL:
        pytest.skip("HOCVUSO_TEST_PG_URL is not set")
    name = f"hocvuso_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate_pg(url: str) -> None:
    engine = create_async_engine(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """Each storage test runs on SQLite and on PostgreSQL (skipped without a server)."""
    if request.param == "sqlite":
        path = tmp_path / "hocvuso.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    url = request.getfixturevalue("pg_database")
    asyncio.run(_truncate_pg(url))
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "hocvuso.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


# ---------------------------------------------------------------------------- the core


@pytest.fixture(scope="session")
def curriculum() -> Curriculum:
    return load()


@pytest.fixture(scope="session")
def localities() -> LocalityIndex:
    return LocalityIndex(province_codes=(37,))


class Clock:
    """A controllable clock for tests: `clock.advance(days=2)`."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def core(
    db_url: str, curriculum: Curriculum, localities: LocalityIndex, clock: Clock, tmp_path: Path
) -> AsyncIterator[Engine]:
    """The conversation engine on a real database (SQLite and PostgreSQL)."""
    db = make_engine(db_url)
    # Scripted people are faster than any human: flood control is tested on its own.
    settings = Settings(database_url=db_url, data_dir=tmp_path / "data", flood_messages=100_000,
                        _env_file=None)  # type: ignore[call-arg]
    engine = Engine(make_sessionmaker(db), curriculum, localities, settings, clock=clock)
    yield engine
    await db.dispose()


class Chat:
    """Drives the engine like a person in a chat app would; remembers the last buttons."""

    def __init__(self, engine: Engine, user_id: str = "1001", channel: str = "test",
                 name: str = "Nguyễn Thị Lan") -> None:
        self.engine = engine
        self.user_id = user_id
        self.channel = channel
        self.name = name
        self.buttons: list[tuple[str, str]] = []
        self.history: list[Reply] = []
        self._n = 0

    async def send(self, msg: IncomingMessage) -> list[Reply]:
        replies = await self.engine.handle(msg)
        self.history.extend(replies)
        for reply in replies:
            if reply.buttons:
                self.buttons = [(b.label, b.payload) for b in reply.flat_buttons]
        return replies

    def _msg(self, **kw: object) -> IncomingMessage:
        self._n += 1
        base: dict[str, object] = dict(channel=self.channel, user_id=self.user_id,
                                       chat_id=self.user_id, update_id=f"u{next(UPDATE_IDS)}",
                                       display_name=self.name)
        base.update(kw)
        return IncomingMessage(**base)  # type: ignore[arg-type]

    async def say(self, text: str, **kw: object) -> list[Reply]:
        return await self.send(self._msg(kind=Kind.TEXT, text=text, **kw))

    async def press(self, what: str) -> list[Reply]:
        """Press the button whose payload is `what`, or whose label contains `what`."""
        for _label, payload in self.buttons:
            if payload == what:
                return await self.send(self._msg(kind=Kind.BUTTON, payload=payload))
        for label, payload in self.buttons:
            if what.lower() in label.lower():
                return await self.send(self._msg(kind=Kind.BUTTON, payload=payload))
        raise AssertionError(f"no button {what!r} among {self.buttons}")

    async def payload(self, payload: str) -> list[Reply]:
        """Send any payload, as a forged or stale button would."""
        return await self.send(self._msg(kind=Kind.BUTTON, payload=payload))

    def text(self, replies: list[Reply]) -> str:
        return "\n".join(r.text for r in replies)


@pytest.fixture
def chat(core: Engine) -> Chat:
    return Chat(core)
