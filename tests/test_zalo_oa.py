"""The Zalo OA channel end to end: the real `Server` and HTTP client code against a local
stand-in of the OA Open API v3 and its OAuth server (tests/fakes/zalo_oa_api.py): signed
webhooks, query buttons, the messaging window, and the single-use rotating refresh token."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import Server, build_runtime, make_channels
from bot.channels.zalo.oa_channel import ZaloOAChannel
from bot.channels.zalo.oa_tokens import OATokenStore
from bot.channels.zalo.parse import BUTTON_PREFIX
from bot.channels.zalo.setup import oa_client
from bot.db.models import (
    Identity,
    ParticipationEvent,
    Person,
    ProcessedUpdate,
    ZaloOAInbox,
    ZaloOAToken,
)
from bot.db.session import make_engine, make_sessionmaker
from bot.settings import Settings
from content.loader import Curriculum
from handlers.types import Button, Reply, rows
from scheduler import jobs
from tests.conftest import Clock
from tests.fakes.zalo_oa_api import FakeZaloOA
from tests.journey import learn_and_pass, onboard
from tests.zalo_drivers import ZaloOADriver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def oa_settings(fake: FakeZaloOA, db_url: str, **extra: Any) -> Settings:
    return Settings(
        _env_file=None, database_url=db_url, web_port=extra.pop("web_port", free_port()),
        zalo_oa_app_id=fake.app_id, zalo_oa_app_secret=fake.app_secret,
        zalo_oa_secret_key=fake.secret_key, zalo_oa_access_token="AT-initial",
        zalo_oa_refresh_token="RT-initial", zalo_oa_api_url=fake.url,
        zalo_oa_oauth_url=fake.url, **extra,
    )  # type: ignore[call-arg]  # fmt: skip


async def serve(fake: FakeZaloOA, settings: Settings, clock: Any = None) -> Server:
    rt = build_runtime(settings, **({"clock": clock} if clock else {}))
    server = Server(rt, make_channels(rt))
    await server.start()
    fake.webhook_url = f"http://127.0.0.1:{server.port}/zalo/oa/webhook"
    return server


def oa(server: Server) -> ZaloOAChannel:
    return next(c for c in server.channels if isinstance(c, ZaloOAChannel))


@pytest.fixture
async def served(db_url: str) -> AsyncIterator[tuple[FakeZaloOA, Server]]:
    async with FakeZaloOA() as fake:
        server = await serve(fake, oa_settings(fake, db_url))
        try:
            yield fake, server
        finally:
            await server.stop()


async def test_journey_over_zalo_oa_by_buttons(
    served: tuple[FakeZaloOA, Server], curriculum: Curriculum
) -> None:
    fake, server = served
    user = ZaloOADriver(fake, oa(server), server.rt.sessionmaker)
    greeting = await user.follow()  # following the OA greets and asks for consent
    assert "Xin chào" in (greeting[0].text or "")
    assert greeting[-1].buttons == [
        ("Đồng ý", BUTTON_PREFIX + "consent:yes"),
        ("Không đồng ý", BUTTON_PREFIX + "consent:no"),
    ]
    await onboard(user)
    await learn_and_pass(user, curriculum, "vneid-cai-dat", wrong=1)
    sent = fake.messages_to(user.user_id)
    assert "Bạn đã đạt bài này!" in (sent[-1].text or "")
    assert all(len(m.buttons) <= 5 for m in sent)
    assert all(t.startswith("oa.") is False for m in sent for t, _ in m.buttons)
    # The menu offers more than 5 topics: numbered text there, typed back as a number.
    assert any("\n1. " in (m.text or "") and not m.buttons for m in sent)
    assert set(fake.webhook_responses) == {200} and fake.errors == []
    async with server.rt.sessionmaker() as s:
        passed = await s.scalar(select(ParticipationEvent).where(
            ParticipationEvent.kind == "quiz_finished"))  # fmt: skip
        inbox = list(await s.scalars(select(ZaloOAInbox)))
    assert passed is not None and passed.passed and passed.channel == "zalo-oa"
    # Every event was stored, processed, and its text forgotten.
    assert inbox and all(r.processed_at is not None and r.raw is None for r in inbox)


async def test_bad_webhook_requests_are_refused_and_store_nothing(
    served: tuple[FakeZaloOA, Server],
) -> None:
    fake, server = served
    good = fake.text_event("zoa-1", "/start")
    assert await fake.push(good, signature=None) == 401
    assert await fake.push(good, signature="mac=" + "0" * 64) == 403
    assert await fake.push(good, signature=fake.sign(good).removeprefix("mac=")) == 403
    tampered = good.replace(b"/start", b"/menu!")
    assert await fake.push(tampered, signature=fake.sign(good)) == 403
    assert await fake.push(b"not json", signature="mac=00") == 400
    assert await fake.push(b'"a string"', signature="mac=00") == 400
    assert await fake.push(b"{" + b" " * (1 << 20) + b"}", signature="mac=00") == 413
    for name in ("user_seen_message", "user_received_message", "oa_send_text", "xyz", ""):
        assert await fake.push(fake.event(name, "zoa-1", message={"msg_id": "m1"})) == 200
    no_id = fake.event("user_send_text", "zoa-1", message={"text": "hi"})
    assert await fake.push(no_id) == 200
    await oa(server).drain()
    assert fake.sent == []
    async with server.rt.sessionmaker() as s:
        for model in (ZaloOAInbox, Identity, ProcessedUpdate, Person):
            assert await s.scalar(select(func.count()).select_from(model)) == 0
    # A good event is answered; the same event delivered again changes nothing.
    assert await fake.push(good) == 200
    await oa(server).drain()
    answered = len(fake.sent)
    assert answered >= 2
    assert await fake.push(good) == 200
    await oa(server).drain()
    assert len(fake.sent) == answered
    async with server.rt.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(ZaloOAInbox)) == 1
    # A sticker gets a plain answer; unfollowing marks the person unreachable.
    assert await fake.send_sticker("zoa-1") == 200
    await oa(server).drain()
    assert "chỉ đọc được chữ" in (fake.sent[answered].text or "")
    assert await fake.unfollow("zoa-1") == 200
    await oa(server).drain()
    result = await oa(server).send("zoa-1", [Reply("Còn đó không?")])
    assert result.status == "skipped" and "unfollowed" in (result.reason or "")


async def test_expired_token_is_refreshed_once_with_racing_sends(
    served: tuple[FakeZaloOA, Server],
) -> None:
    fake, server = served
    channel = oa(server)
    for user in ("zoa-a", "zoa-b", "zoa-c"):
        assert await fake.send_text(user, "/help") == 200
    await channel.drain()
    fake.expire_access_tokens()
    fake.refresh_latency = 0.2  # the refresh is slow: every send meets -216 meanwhile
    results = await asyncio.gather(*(
        channel.send(user, [Reply("Nhắc học", rows(Button("Học ngay", "menu")))])
        for user in ("zoa-a", "zoa-b", "zoa-c")
    ))  # fmt: skip
    assert all(r.ok for r in results), results
    assert [code for _, code in fake.errors] == [-216] * 3  # all three met the expired token
    assert fake.refresh_calls == 1 and fake.refresh_refused == 0
    async with server.rt.sessionmaker() as s:
        row = await s.get(ZaloOAToken, fake.app_id)
    assert row is not None and row.version == 1 and row.lease_owner is None
    assert row.access_token in fake.access_tokens and row.refresh_token in fake.refresh_tokens
    assert "RT-initial" in fake.spent_refresh_tokens
    # Two processes (two stores on the same database) meeting the same expired token:
    # one refreshes, the other finds the new pair; the single-use token is used once.
    fake.expire_access_tokens()
    stale = row.access_token
    stores = []
    for _ in range(2):
        engine = make_engine(server.rt.settings.database_url)
        stores.append(
            (
                engine,
                OATokenStore(
                    make_sessionmaker(engine), oa_client(server.rt.settings), server.rt.clock
                ),
            )
        )
    try:
        tokens = await asyncio.gather(*(store.refresh(stale) for _, store in stores))
    finally:
        for engine, store in stores:
            await store.client.close()
            await engine.dispose()
    assert tokens[0] == tokens[1] != stale
    assert fake.refresh_calls == 2 and fake.refresh_refused == 0


async def test_env_tokens_only_seed_an_empty_store(db_url: str) -> None:
    async with FakeZaloOA() as fake:
        settings = oa_settings(fake, db_url)
        server = await serve(fake, settings)
        try:
            assert await fake.send_text("zoa-1", "/help") == 200
            await oa(server).drain()
            fake.expire_access_tokens()
            assert (await oa(server).send("zoa-1", [Reply("Một")])).ok
        finally:
            await server.stop()
        assert fake.refresh_calls == 1
        async with server.rt.sessionmaker() as s:  # engine disposed: reconnects lazily
            rotated = await s.get(ZaloOAToken, fake.app_id)
        assert rotated is not None and rotated.refresh_token != "RT-initial"
        # A restart with the same (now spent) env values keeps the rotated pair.
        server = await serve(fake, settings)
        try:
            assert (await oa(server).send("zoa-1", [Reply("Hai")])).ok
            async with server.rt.sessionmaker() as s:
                row = await s.get(ZaloOAToken, fake.app_id)
        finally:
            await server.stop()
        assert row is not None and row.refresh_token == rotated.refresh_token
        assert fake.sent[-1].access_token == rotated.access_token
        assert fake.refresh_calls == 1 and fake.refresh_refused == 0


async def test_messaging_window(sqlite_url: str) -> None:
    clock = Clock()
    async with FakeZaloOA(clock=clock) as fake:
        # Our window is wider than Zalo's here, so that Zalo's own refusal shows too.
        server = await serve(fake, oa_settings(fake, sqlite_url, zalo_oa_window_hours=200),
                             clock=clock)  # fmt: skip
        channel = oa(server)
        try:
            assert await fake.send_text("zoa-w", "/help") == 200
            await channel.drain()
            clock.advance(days=6)
            assert (await channel.send("zoa-w", [Reply("Trong 7 ngày")])).ok
            clock.advance(days=2)  # 8 days: Zalo's window is closed, ours (200 h) is not
            result = await channel.send("zoa-w", [Reply("Zalo từ chối")])
            assert result.status == "skipped" and "-230" in (result.reason or "")
            clock.advance(days=1)  # 9 days = 216 h: ours is closed, nothing is attempted
            errors = len(fake.errors)
            result = await channel.send("zoa-w", [Reply("Không gửi")])
            assert result.status == "skipped"
            assert "outside the messaging window" in (result.reason or "")
            assert len(fake.errors) == errors
            never = await channel.send("zoa-never", [Reply("Ai đây?")])
            assert never.status == "skipped" and never.reason == "never wrote to the OA"
            # Writing again opens the window again.
            assert await fake.send_text("zoa-w", "/menu") == 200
            await channel.drain()
            assert (await channel.send("zoa-w", [Reply("Lại được")])).ok
        finally:
            await server.stop()


async def test_stored_events_are_processed_at_start(sqlite_url: str) -> None:
    async with FakeZaloOA() as fake:
        settings = oa_settings(fake, sqlite_url)
        body = fake.text_event("zoa-s", "/start")
        rt = build_runtime(settings)
        async with rt.sessionmaker() as s, s.begin():
            s.add(
                ZaloOAInbox(
                    dedup_key="msg:" + json.loads(body)["message"]["msg_id"],
                    event_name="user_send_text",
                    raw=body.decode(),
                    received_at=rt.clock(),
                    attempts=0,
                )
            )
            s.add(
                ZaloOAInbox(
                    dedup_key="msg:poison",
                    event_name="user_send_text",
                    raw=body.decode(),
                    received_at=rt.clock(),
                    attempts=3,
                )
            )
        await rt.close()
        server = await serve(fake, settings)
        try:
            await oa(server).drain()
            assert "Xin chào" in (fake.messages_to("zoa-s")[0].text or "")
            async with server.rt.sessionmaker() as s:
                rows = list(await s.scalars(select(ZaloOAInbox)))
            assert all(r.processed_at is not None and r.raw is None for r in rows)
            assert len(fake.messages_to("zoa-s")) == 2  # welcome + consent, once
        finally:
            await server.stop()


async def test_scheduled_refresh_when_due(sqlite_url: str) -> None:
    clock = Clock()
    async with FakeZaloOA(clock=clock) as fake:
        server = await serve(fake, oa_settings(fake, sqlite_url), clock=clock)
        try:
            jobs_of = {job.id for job in server.scheduler.get_jobs()}  # type: ignore[union-attr]
            assert {"refresh_zalo_oa_token", "purge_zalo_leftovers"} <= jobs_of
            assert await jobs.refresh_zalo_oa_token(server.rt) is False
            clock.advance(hours=19)
            assert await jobs.refresh_zalo_oa_token(server.rt) is False
            clock.advance(hours=2)
            assert await jobs.refresh_zalo_oa_token(server.rt) is True
            assert await jobs.refresh_zalo_oa_token(server.rt) is False
            assert fake.refresh_calls == 1
            # Processed events are forgotten once Zalo stopped retrying them.
            assert await fake.send_text("zoa-p", "/help") == 200
            await oa(server).drain()
            clock.advance(days=4)
            assert await jobs.purge_zalo_leftovers(server.rt) >= 1
            async with server.rt.sessionmaker() as s:
                assert await s.scalar(select(func.count()).select_from(ZaloOAInbox)) == 0
        finally:
            await server.stop()


def test_oa_settings_must_be_complete(sqlite_url: str) -> None:
    settings = Settings(_env_file=None, database_url=sqlite_url,
                        zalo_oa_app_id="123")  # type: ignore[call-arg]  # fmt: skip
    rt = build_runtime(settings)
    with pytest.raises(RuntimeError, match="HOCVUSO_ZALO_OA_APP_SECRET"):
        make_channels(rt)
    asyncio.run(rt.close())


def test_signature_is_sha256_of_app_id_body_timestamp_key() -> None:
    from bot.channels.zalo.oa_channel import signature

    # Plain SHA-256 (not HMAC) over app_id + raw body + timestamp + key, as Zalo documents.
    body = b'{"a":1}'
    assert signature("3141592653", body, "1700000000000", "key") == (
        "18edcba5747c666aa3e6b72ba083d5a9a9ddda0fa934dc20292b8df2da0ad15b"
    )
