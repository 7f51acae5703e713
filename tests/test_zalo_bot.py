"""The Zalo Bot Platform channel end to end: the real `Server` and HTTP client code against a
local stand-in of the Bot API (tests/fakes/zalo_bot_api.py), by long polling and by webhook."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.app import Server, build_runtime, make_channels
from bot.channels.zalo.bot_channel import ZaloBotChannel
from bot.channels.zalo.common import TEXT_MAX, parts
from bot.channels.zalo.parse import bot_update, oa_event
from bot.db.models import Identity, ParticipationEvent, Person, ProcessedUpdate
from bot.settings import Settings, SettingsError, load_settings
from content.loader import Curriculum
from handlers.types import Button, Kind, Reply, rows
from tests.fakes.zalo_bot_api import FakeZaloBotAPI
from tests.journey import learn_and_pass, onboard
from tests.zalo_drivers import ZaloBotDriver, numbered_choices


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_settings(fake: FakeZaloBotAPI, db_url: str, **extra: Any) -> Settings:
    """Only the token and the API URL (plus where the test's database and port are)."""
    port = extra.pop("web_port", None) or free_port()
    return Settings(
        _env_file=None, database_url=db_url, zalo_bot_token=fake.token,
        zalo_bot_api_url=fake.base_url, zalo_bot_send_interval=0, web_port=port, **extra,
    )  # type: ignore[call-arg]  # fmt: skip


async def serve(settings: Settings) -> Server:
    rt = build_runtime(settings)
    server = Server(rt, make_channels(rt))
    await server.start()
    return server


def channel_of(server: Server) -> ZaloBotChannel:
    return next(c for c in server.channels if isinstance(c, ZaloBotChannel))


@pytest.fixture(params=["polling", "webhook"])
async def served(
    request: pytest.FixtureRequest, db_url: str
) -> AsyncIterator[tuple[FakeZaloBotAPI, Server]]:
    async with FakeZaloBotAPI() as fake:
        extra: dict[str, Any] = {}
        if request.param == "webhook":
            port = free_port()
            extra = dict(
                zalo_bot_webhook=True,
                zalo_bot_webhook_secret="s3cret-zalo-hook",
                public_url=f"http://127.0.0.1:{port}",
                web_port=port,
            )
        server = await serve(bot_settings(fake, db_url, **extra))
        try:
            yield fake, server
        finally:
            await server.stop()


async def test_journey_over_zalo_bot_by_typed_numbers(
    served: tuple[FakeZaloBotAPI, Server], curriculum: Curriculum
) -> None:
    fake, server = served
    user = ZaloBotDriver(fake, server.rt.sessionmaker)
    await onboard(user)
    await learn_and_pass(user, curriculum, "vneid-cai-dat", wrong=1)
    last = fake.messages_to(user.user_id)[-1].body
    assert "Bạn đã đạt bài này!" in last
    # Every choice went out as numbered lines, typed back as a number: nothing else exists.
    said = [text for method, p in fake.calls if method == "sendMessage" for text in [p["text"]]]
    assert any(numbered_choices(t)[:2] == ["Đồng ý", "Không đồng ý"] for t in said)
    assert all(len(t) <= TEXT_MAX and "**" not in t for t in said)
    assert fake.chat_actions and fake.chat_actions[0] == (user.user_id, "typing")
    async with server.rt.sessionmaker() as s:
        person = await s.scalar(select(Person))
        kinds = list(await s.scalars(select(ParticipationEvent.kind)
                                     .order_by(ParticipationEvent.id)))  # fmt: skip
        passed = await s.scalar(select(ParticipationEvent).where(
            ParticipationEvent.kind == "quiz_finished"))  # fmt: skip
    assert person is not None and person.display_name == "Lan" and person.commune_code
    assert passed is not None and passed.passed and passed.channel == "zalo-bot"
    assert kinds[0] == "registered" and kinds.count("quiz_answered") == 5
    if channel_of(server).webhook:
        assert fake.webhook is not None
        assert fake.webhook["url"] == f"http://127.0.0.1:{server.port}/zalo/bot/webhook"
        assert set(fake.webhook_responses) == {200}
    else:
        assert fake.webhook is None and any(m == "deleteWebhook" for m, _ in fake.calls)


async def test_labels_odd_updates_and_redelivery(sqlite_url: str) -> None:
    async with FakeZaloBotAPI() as fake:
        server = await serve(bot_settings(fake, sqlite_url))
        user = ZaloBotDriver(fake, server.rt.sessionmaker, user_id="zu-2")
        try:
            await user.say("/start")
            # The label itself, without accents, works like the number.
            replies = await user.say("dong y")
            assert "xã hay phường" in replies[-1].body
            fake.add_sticker(user.user_id)
            await fake.settle()
            assert "chỉ đọc được chữ" in fake.messages_to(user.user_id)[-2].body
            fake.add_image(user.user_id)
            await fake.settle()
            assert "chỉ đọc được chữ" in fake.messages_to(user.user_id)[-2].body
            # A redelivered update changes nothing and gets no second answer.
            update = fake.add_text(user.user_id, "/menu")
            await fake.settle()
            sent = len(fake.sent)
            fake.redeliver(update)
            await fake.settle()
            assert len(fake.sent) == sent
            # A group: one notice, then silence.
            fake.add_text(user.user_id, "/start", chat_type="GROUP", chat_id="g-1")
            fake.add_text(user.user_id, "chào", chat_type="GROUP", chat_id="g-1")
            await fake.settle()
            assert len(fake.messages_to("g-1")) == 1
            assert "trò chuyện riêng" in fake.messages_to("g-1")[0].body
            async with server.rt.sessionmaker() as s:
                assert await s.scalar(select(func.count()).select_from(Person)) == 1
        finally:
            await server.stop()


async def test_long_text_split_at_paragraphs_and_images_by_url(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with FakeZaloBotAPI() as fake:
        port = free_port()
        server = await serve(bot_settings(
            fake, sqlite_url, web_port=port, public_url=f"http://127.0.0.1:{port}",
            data_dir=tmp_path))  # fmt: skip
        channel = channel_of(server)
        try:
            paragraphs = [f"Đoạn {i}: " + "chữ " * 200 for i in range(8)]  # ~6,500 characters
            result = await channel.send("c-1", [Reply("\n\n".join(paragraphs), rows(
                Button("Một", "menu"), Button("Hai", "progress")))])  # fmt: skip
            texts = [m.body for m in fake.messages_to("c-1")]
            assert result.ok and len(texts) == len(result.message_ids) >= 3
            assert all(len(t) <= TEXT_MAX for t in texts)
            assert all(t.startswith("Đoạn ") for t in texts)  # cut between paragraphs
            assert numbered_choices(texts[-1]) == ["Một", "Hai"]
            # An image goes by URL; our web server serves it, Zalo fetches it.
            picture = tmp_path / "certificates" / "HVS-TEST.png"
            picture.parent.mkdir()
            picture.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
            await channel.send("c-2", [Reply("Giấy chứng nhận", image=picture)])
            photo = fake.messages_to("c-2")[0]
            assert photo.method == "sendPhoto" and photo.caption == "Giấy chứng nhận"
            assert photo.photo_status == 200 and photo.photo_type == "image/png"
            assert photo.photo and photo.photo.startswith(f"http://127.0.0.1:{port}/media/")
            assert "HVS-TEST" not in photo.photo  # the name says nothing about the file
            # The same file keeps its name; files outside content and data are never served.
            await channel.send("c-2", [Reply("Lần nữa", image=picture)])
            assert fake.messages_to("c-2")[1].photo == photo.photo
            await channel.send("c-3", [Reply("Không", image=Path("/etc/hostname"))])
            assert [m.method for m in fake.messages_to("c-3")] == ["sendMessage"]
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/media/nope.png") as r:
                    assert r.status == 404
                async with http.get(f"http://127.0.0.1:{port}/media/..%2F..%2Fetc") as r:
                    assert r.status == 404
        finally:
            await server.stop()


async def test_webhook_refuses_bad_requests(sqlite_url: str) -> None:
    async with FakeZaloBotAPI() as fake:
        port = free_port()
        server = await serve(
            bot_settings(
                fake,
                sqlite_url,
                web_port=port,
                zalo_bot_webhook=True,
                zalo_bot_webhook_secret="right-secret",
                public_url=f"http://127.0.0.1:{port}",
            )
        )
        url = f"http://127.0.0.1:{port}/zalo/bot/webhook"
        good = {"X-Bot-Api-Secret-Token": "right-secret"}
        update = {"ok": True, "result": fake.update("message.text.received", "zu-9",
                                                    text="/start")}  # fmt: skip
        try:
            async with aiohttp.ClientSession() as http:

                async def post(data: bytes, headers: dict[str, str] | None = None) -> int:
                    async with http.post(url, data=data, headers=headers or {}) as r:
                        await r.read()
                        return r.status

                body = json.dumps(update).encode()
                assert await post(body) == 401
                assert await post(body, {"X-Bot-Api-Secret-Token": "wrong-secret"}) == 403
                assert await post(b"not json", good) == 400
                assert await post(b"\xff\xfe", good) == 400
                assert await post(b"[1, 2]", good) == 400
                assert await post(b"x" * (2 << 20), good) == 413
                odd = {
                    "ok": True,
                    "result": {
                        "event_name": "message.reaction.received",
                        "message": {"from": {"id": "zu-9"}},
                    },
                }
                assert await post(json.dumps(odd).encode(), good) == 200
                assert await post(b'{"ok": true, "result": null}', good) == 200
                assert fake.sent == []
                async with server.rt.sessionmaker() as s:
                    for model in (Identity, ProcessedUpdate, Person):
                        assert await s.scalar(select(func.count()).select_from(model)) == 0
                assert await post(body, good) == 200
                assert "Xin chào" in fake.messages_to("zu-9")[0].body
                sent = len(fake.sent)
                assert await post(body, good) == 200  # Zalo delivering it again
                assert len(fake.sent) == sent
        finally:
            await server.stop()


async def test_wrong_token_stops_start_up(sqlite_url: str) -> None:
    async with FakeZaloBotAPI() as fake:
        settings = bot_settings(fake, sqlite_url).model_copy(
            update={"zalo_bot_token": Settings(_env_file=None, zalo_bot_token="1:wrong")
                    .zalo_bot_token})  # type: ignore[call-arg]  # fmt: skip
        rt = build_runtime(settings)
        server = Server(rt, make_channels(rt))
        with pytest.raises(Exception, match="401"):
            await server.start()
        await server.stop()


def test_zalo_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value, expected in [
        ("HOCVUSO_ZALO_BOT_TOKEN", "no-colon", "HOCVUSO_ZALO_BOT_TOKEN"),
        ("HOCVUSO_ZALO_BOT_WEBHOOK_SECRET", "short", "HOCVUSO_ZALO_BOT_WEBHOOK_SECRET"),
        ("HOCVUSO_ZALO_BOT_WEBHOOK_SECRET", "has space in it", "HOCVUSO_ZALO_BOT_WEBHOOK_SECRET"),
        ("HOCVUSO_ZALO_OA_APP_ID", "12 34", "HOCVUSO_ZALO_OA_APP_ID"),
        ("HOCVUSO_ZALO_OA_WINDOW_HOURS", "0", "HOCVUSO_ZALO_OA_WINDOW_HOURS"),
        ("HOCVUSO_ZALO_OA_API_URL", "openapi.zalo.me", "HOCVUSO_ZALO_OA_API_URL"),
    ]:
        with monkeypatch.context() as m:
            m.setenv(key, value)
            with pytest.raises(SettingsError, match=expected) as err:
                load_settings(_env_file=None)
            assert value not in str(err.value) or len(value) < 4
    monkeypatch.setenv("HOCVUSO_ZALO_BOT_TOKEN", "")
    monkeypatch.setenv("HOCVUSO_ZALO_OA_APP_SECRET", "  ")
    s = load_settings(_env_file=None)
    assert s.zalo_bot_token is None and s.zalo_oa_app_secret is None
    assert s.zalo_oa_window_hours == 168 and s.zalo_bot_api_url.endswith("zaloplatforms.com/bot")
    monkeypatch.setenv("HOCVUSO_ZALO_BOT_TOKEN", "123:bot-secret-value")
    monkeypatch.setenv("HOCVUSO_ZALO_OA_REFRESH_TOKEN", "refresh-secret-value")
    s = load_settings(_env_file=None)
    assert {"123:bot-secret-value", "refresh-secret-value"} <= set(s.secrets())
    assert "bot-secret-value" not in repr(s)


def test_parts_split_at_paragraphs() -> None:
    text = "\n\n".join(["a" * 1500, "b" * 1500, "c" * 10])
    assert parts(text) == ["a" * 1500, "b" * 1500 + "\n\n" + "c" * 10]
    assert parts("") == [] and parts("x") == ["x"]
    assert all(len(p) <= TEXT_MAX for p in parts("w " * 5000))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
shaped = st.fixed_dictionaries({
    "event_name": st.sampled_from(["message.text.received", "user_send_text", "follow",
                                   "unfollow", "message.image.received", "x"]),
    "message": json_values, "sender": json_values, "follower": json_values,
    "timestamp": json_values, "result": json_values,
})  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.one_of(json_values, shaped))
def test_parsers_survive_any_json(raw: Any) -> None:
    msg = bot_update(raw)
    assert msg is None or (msg.channel == "zalo-bot" and msg.user_id and msg.chat_id)
    event = oa_event(raw)
    assert event is None or (event.message.channel == "zalo-oa" and event.key)
    if event is not None and event.message.kind == Kind.BUTTON:
        assert event.message.payload is not None
