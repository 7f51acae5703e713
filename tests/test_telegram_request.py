"""python-telegram-bot over aiohttp (bot.channels.telegram.request) against the local Bot API
stand-in: ordinary calls, uploads, timeouts, refused connections, 429, a proxy."""

from __future__ import annotations

import asyncio
import socket
import warnings
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import Forbidden, NetworkError, RetryAfter, TimedOut

from bot.channels.telegram.request import AiohttpRequest, JsonParameters, SharedSession
from tests.fakes.telegram_api import FakeTelegramAPI, UploadedFile

USER = 5005


def make_bot(fake: FakeTelegramAPI, **options: object) -> Bot:
    shared = SharedSession(proxy=options.pop("proxy", None))  # type: ignore[arg-type]
    return Bot(
        fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url,
        request=AiohttpRequest(shared, **options),  # type: ignore[arg-type]
        get_updates_request=AiohttpRequest(shared),
    )  # fmt: skip


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI() as api:
        yield api


async def test_ordinary_calls(fake: FakeTelegramAPI) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Đồng ý", callback_data="consent:yes")]])
    async with make_bot(fake) as bot:
        assert bot.username == fake.bot_username  # getMe at initialize
        message = await bot.send_message(
            USER, "<b>Xin chào</b> Lan", parse_mode=ParseMode.HTML, reply_markup=markup
        )
        assert message.chat_id == USER
        assert message.reply_markup == markup
        fake.add_text(USER, "hello")
        updates = await bot.get_updates(timeout=1)
        assert updates[0].message.text == "hello"
    sent = fake.last_to(USER)
    assert sent.plain_text == "Xin chào Lan"
    assert sent.buttons == [("Đồng ý", "consent:yes")]


async def test_json_parameters_go_through_ptb_error_handling(fake: FakeTelegramAPI) -> None:
    async with make_bot(fake) as bot:
        result = await bot.request.post(f"{bot.base_url}/sendMessage", JsonParameters({
            "chat_id": USER, "text": "<i>Chào</i> bạn", "parse_mode": "HTML",
            "reply_markup": {"inline_keyboard": [[{"text": "Tiếp", "callback_data": "next"}]]},
        }))  # fmt: skip
        assert isinstance(result, dict) and result["chat"]["id"] == USER
        fake.blocked_chats.add(USER)
        with pytest.raises(Forbidden):
            await bot.request.post(
                f"{bot.base_url}/sendMessage", JsonParameters({"chat_id": USER, "text": "x"})
            )
    assert fake.last_to(USER).plain_text == "Chào bạn"
    assert fake.last_to(USER).buttons == [("Tiếp", "next")]


async def test_file_upload(fake: FakeTelegramAPI) -> None:
    data = b"%PDF-1.4 certificate " + bytes(range(256)) * 64
    async with make_bot(fake) as bot:
        message = await bot.send_document(
            USER, document=data, filename="chung-nhan.pdf", caption="<b>Giấy chứng nhận</b>",
            parse_mode=ParseMode.HTML,
        )  # fmt: skip
        assert message.document is not None and message.document.file_name == "chung-nhan.pdf"
    upload = fake.last_to(USER).document
    assert isinstance(upload, UploadedFile)
    assert upload.data == data and upload.filename == "chung-nhan.pdf"
    assert fake.last_to(USER).plain_text == "Giấy chứng nhận"


async def test_slow_answer_times_out(fake: FakeTelegramAPI) -> None:
    async with make_bot(fake, read_timeout=0.2) as bot:
        fake.latency = 1.0
        with pytest.raises(TimedOut):
            await bot.send_message(USER, "late")
        with pytest.raises(TimedOut):  # a per-call timeout as well
            await bot.send_message(USER, "late", read_timeout=0.1)
        fake.latency = 0.0
        assert (await bot.send_message(USER, "in time")).text == "in time"


async def test_full_pool_times_out(fake: FakeTelegramAPI) -> None:
    shared = SharedSession(connection_pool_size=1)
    request = AiohttpRequest(shared, pool_timeout=0.05, connect_timeout=0.05)
    async with Bot(fake.token, base_url=fake.base_url, request=request,
                   get_updates_request=AiohttpRequest(shared)) as bot:  # fmt: skip
        fake.latency = 0.5
        slow = asyncio.create_task(bot.send_message(USER, "holds the only connection"))
        await asyncio.sleep(0.05)
        with pytest.raises(TimedOut, match="pool"):
            await bot.send_message(USER, "waits for it")
        await slow


async def test_refused_connection_is_a_network_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    request = AiohttpRequest(SharedSession())
    bot = Bot("123:abc", base_url=f"http://127.0.0.1:{port}/bot", request=request,
              get_updates_request=AiohttpRequest(SharedSession()))  # fmt: skip
    with pytest.raises(NetworkError) as caught:
        await bot.initialize()
    assert not isinstance(caught.value, TimedOut)
    await bot.shutdown()


async def test_429_is_retry_after(fake: FakeTelegramAPI) -> None:
    async with make_bot(fake) as bot:
        fake.fail_next = [429]
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(USER, "too fast")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert int(caught.value.retry_after) == 1  # type: ignore[arg-type]


async def test_requests_share_one_session(fake: FakeTelegramAPI) -> None:
    shared = SharedSession()
    first, second = AiohttpRequest(shared), AiohttpRequest(shared)
    await first.initialize()
    await second.initialize()
    session = shared.session
    await first.shutdown()
    assert not session.closed  # the other still uses it
    await second.shutdown()
    assert session.closed
    with pytest.raises(RuntimeError):
        await first.do_request(f"{fake.base_url}{fake.token}/getMe", "POST")


async def test_requests_go_through_the_proxy(fake: FakeTelegramAPI) -> None:
    """An HTTP forward proxy on 127.0.0.1: every Bot API call must pass through it."""
    seen: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        async with aiohttp.ClientSession() as client, client.request(
            request.method, str(request.url), data=await request.read(),
            headers={"Content-Type": request.headers.get("Content-Type", "")},
        ) as answer:  # fmt: skip
            return web.Response(body=await answer.read(), status=answer.status,
                                content_type="application/json")  # fmt: skip

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    proxy = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with make_bot(fake, proxy=proxy) as bot:
            assert bot.request.proxy == proxy  # type: ignore[attr-defined]
            await bot.send_message(USER, "qua proxy")
    finally:
        await runner.cleanup()
    assert any(url.endswith("/getMe") for url in seen)
    assert any(url.endswith("/sendMessage") for url in seen)
    assert fake.last_to(USER).plain_text == "qua proxy"


def test_proxy_setting() -> None:
    from bot.settings import SettingsError, load_settings

    settings = load_settings(_env_file=None, telegram_proxy="http://user:pw@10.0.0.1:3128")
    assert settings.telegram_proxy is not None
    assert "http://user:pw@10.0.0.1:3128" in settings.secrets()  # redacted from logs
    with pytest.raises(SettingsError, match="HOCVUSO_TELEGRAM_PROXY"):
        load_settings(_env_file=None, telegram_proxy="socks5://10.0.0.1:1080")
    with pytest.raises(ValueError, match="proxy"):
        SharedSession(proxy="socks5://10.0.0.1:1080")


async def test_the_channel_uses_aiohttp_and_the_proxy(fake: FakeTelegramAPI) -> None:
    from bot.channels.telegram.channel import TelegramChannel

    class NoEngine:
        settings = None

    channel = TelegramChannel(NoEngine(), fake.token, api_url=fake.base_url,  # type: ignore[arg-type]
                              proxy="http://127.0.0.1:3128")  # fmt: skip
    # PTB keeps (get_updates_request, request); only the second has a public property.
    for request in (channel.app.bot.request, channel.app.bot._request[0]):
        assert isinstance(request, AiohttpRequest)
        assert request.proxy == "http://127.0.0.1:3128"


def test_answers_orjson_refuses_get_ptbs_treatment() -> None:
    """Bot API answers are read by orjson; what it refuses (invalid UTF-8, not JSON) gets
    python-telegram-bot's own handling: bad bytes replaced, PTB's error for non-JSON."""
    from telegram.error import TelegramError

    parse = AiohttpRequest.parse_json_payload
    assert parse(b'{"ok":true,"result":{"text":"Xin ch\xc3\xa0o"}}') == {
        "ok": True, "result": {"text": "Xin chào"}}
    assert parse(b'{"ok":true,"result":"a\xffb"}') == {"ok": True, "result": "a\ufffdb"}
    for body in (b"<html>502 Bad Gateway</html>", b"", b'{"ok": tru'):
        with pytest.raises(TelegramError):
            parse(body)
