"""Tests of the fake Telegram Bot API server, driven by a real PTB Bot over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, MessageEntity, Update
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from tests.fakes.telegram_api import FakeTelegramAPI, UploadedFile, WaitTimeout

pytestmark = pytest.mark.asyncio

USER = 1001
KEYBOARD = InlineKeyboardMarkup(
    [
        [
            InlineKeyboardButton("Có", callback_data="yes"),
            InlineKeyboardButton("Không", callback_data="no"),
        ],
        [InlineKeyboardButton("Web", url="https://example.org")],
    ]
)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI() as api:
        yield api


@pytest_asyncio.fixture
async def bot(fake: FakeTelegramAPI) -> AsyncIterator[Bot]:
    async with Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url) as b:
        yield b


def _seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


async def test_get_me(bot: Bot, fake: FakeTelegramAPI) -> None:
    me = await bot.get_me()
    assert me.id == 123456
    assert me.username == "hocvuso_test_bot"
    assert me.is_bot
    assert fake.calls[0][0] == "getMe"


async def test_send_message_with_keyboard_and_html(bot: Bot, fake: FakeTelegramAPI) -> None:
    msg = await bot.send_message(
        USER, "<b>Xin chào</b> &amp; hi", parse_mode="HTML", reply_markup=KEYBOARD
    )
    assert msg.text == "Xin chào & hi"
    assert msg.entities == (MessageEntity(MessageEntity.BOLD, 0, 8),)
    assert msg.from_user is not None and msg.from_user.id == fake.bot_id
    assert msg.chat.id == USER and msg.chat.type == "private"
    assert msg.reply_markup == KEYBOARD

    sent = fake.last_to(USER)
    assert sent.method == "sendMessage"
    assert sent.text == "<b>Xin chào</b> &amp; hi"
    assert sent.plain_text == "Xin chào & hi"
    assert sent.parse_mode == "HTML"
    assert sent.message_id == msg.message_id
    assert fake.buttons(sent) == [("Có", "yes"), ("Không", "no"), ("Web", "https://example.org")]
    assert sent.buttons == fake.buttons(fake.get_message(USER, msg.message_id))
    assert fake.messages_to(USER) == [sent]


async def test_text_validation(bot: Bot, fake: FakeTelegramAPI) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(USER, "a" * 4097)
    # the limit applies after entity parsing: tags do not count
    await bot.send_message(USER, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(USER, "<i></i>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(USER, "<b>unclosed", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]])
        await bot.send_message(USER, "hi", reply_markup=markup)
    assert len(fake.sent) == 1


async def test_long_poll_receives_text_and_button(bot: Bot, fake: FakeTelegramAPI) -> None:
    sent = await bot.send_message(USER, "Chọn", reply_markup=KEYBOARD)
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    assert not poll.done()
    started = time.monotonic()
    fake.add_text(USER, "/start ref_abc", first_name="Lan")
    updates = await asyncio.wait_for(poll, 2)
    assert time.monotonic() - started < 1
    assert [u.update_id for u in updates] == [1]
    message = updates[0].message
    assert message is not None and message.text == "/start ref_abc"
    assert message.from_user is not None and message.from_user.first_name == "Lan"
    assert message.from_user.language_code == "vi"
    assert message.entities == (MessageEntity(MessageEntity.BOT_COMMAND, 0, 6),)
    assert message.parse_entities(["bot_command"]) == {message.entities[0]: "/start"}

    fake.press_button(USER, "yes")
    updates = await bot.get_updates(offset=2, timeout=2)
    query = updates[0].callback_query
    assert updates[0].update_id == 2
    assert query is not None and query.data == "yes" and query.from_user.id == USER
    assert query.message is not None and query.message.message_id == sent.message_id
    assert await query.answer("OK")
    assert fake.callback_answers[0]["text"] == "OK"
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await query.answer("again")
    with pytest.raises(ValueError, match=r"(?i)not a button"):
        fake.press_button(USER, "maybe")


async def test_offset_limit_and_redeliver(bot: Bot, fake: FakeTelegramAPI) -> None:
    for text in ("a", "b", "c"):
        fake.add_text(USER, text)
    assert [u.update_id for u in await bot.get_updates(limit=2)] == [1, 2]
    assert [u.update_id for u in await bot.get_updates(offset=2)] == [2, 3]
    assert await bot.get_updates(offset=4, timeout=0) == ()
    fake.redeliver(2)
    again = await bot.get_updates(offset=4)
    assert [u.update_id for u in again] == [2]
    assert again[0].message is not None and again[0].message.text == "b"
    assert await bot.get_updates(offset=4) == ()
    fake.add_sticker(USER)
    fake.add_photo(USER, caption="cap")
    fake.add_edited_text(USER, "c2")
    fake.add_update({"my_chat_member": None, "custom": True})
    kinds = [u.to_dict() for u in await bot.get_updates(offset=4)]
    assert [u["update_id"] for u in kinds] == [4, 5, 6, 7]
    assert kinds[0]["message"]["sticker"]["emoji"] == "👍"
    assert kinds[1]["message"]["caption"] == "cap"
    assert kinds[2]["edited_message"]["text"] == "c2"
    assert kinds[2]["edited_message"]["message_id"] == 3


async def test_send_photo_upload_and_document(bot: Bot, fake: FakeTelegramAPI) -> None:
    data = b"\x89PNG\r\n\x1a\nfake-image-bytes"
    msg = await bot.send_photo(
        USER, photo=data, filename="chart.png", caption="<i>Biểu đồ</i>", parse_mode="HTML"
    )
    assert msg.caption == "Biểu đồ" and msg.photo
    sent = fake.last_to(USER)
    assert sent.method == "sendPhoto" and sent.caption == "<i>Biểu đồ</i>"
    assert isinstance(sent.photo, UploadedFile)
    assert sent.photo.data == data and sent.photo.filename == "chart.png"
    file = await bot.get_file(msg.photo[-1].file_id)
    assert bytes(await file.download_as_bytearray()) == data

    doc = await bot.send_document(USER, document="https://example.org/report.pdf")
    assert doc.document is not None and doc.document.file_name == "report.pdf"
    assert fake.last_to(USER).document == "https://example.org/report.pdf"
    again = await bot.send_photo(USER, photo=msg.photo[-1].file_id)
    assert again.photo[-1].file_id == msg.photo[-1].file_id


async def test_edit_message(bot: Bot, fake: FakeTelegramAPI) -> None:
    msg = await bot.send_message(USER, "Câu 1", reply_markup=KEYBOARD)
    edited = await bot.edit_message_text("Câu 1 ✅", chat_id=USER, message_id=msg.message_id)
    assert isinstance(edited, type(msg)) and edited.text == "Câu 1 ✅"
    assert edited.reply_markup is None  # no reply_markup given → keyboard removed
    assert fake.edits[-1].method == "editMessageText" and fake.edits[-1].text == "Câu 1 ✅"
    assert fake.get_message(USER, msg.message_id)["text"] == "Câu 1 ✅"
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("Câu 1 ✅", chat_id=USER, message_id=msg.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=999)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER + 1, message_id=msg.message_id)
    markup = await bot.edit_message_reply_markup(USER, msg.message_id, reply_markup=KEYBOARD)
    assert markup.reply_markup == KEYBOARD
    assert [e.method for e in fake.edits] == ["editMessageText", "editMessageReplyMarkup"]


async def test_rate_limits_give_retry_after(bot: Bot, fake: FakeTelegramAPI) -> None:
    fake.global_rate = 2
    await bot.send_message(1, "a")
    await bot.send_message(2, "b")
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(3, "c")
    assert _seconds(info.value) >= 1
    assert fake.rejected_429 == 1
    assert [m.chat_id for m in fake.sent] == [1, 2]

    fake.global_rate = None
    fake.per_chat_rate = 1
    with pytest.raises(RetryAfter):
        await bot.send_message(1, "again")
    await bot.send_message(4, "other chat is fine")
    assert fake.rejected_429 == 2


async def test_blocked_and_injected_failures(bot: Bot, fake: FakeTelegramAPI) -> None:
    fake.blocked_chats.add(7)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(7, "hi")
    fake.fail_next.extend([500, 502, 429])
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(USER, "x")
    with pytest.raises(NetworkError):
        await bot.send_message(USER, "x")
    with pytest.raises(RetryAfter):
        await bot.send_message(USER, "x")
    await bot.send_message(USER, "finally")
    assert [m.text for m in fake.sent] == ["finally"]


async def test_get_updates_conflicts_with_webhook(bot: Bot, fake: FakeTelegramAPI) -> None:
    assert await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="s3cret_-")
    with pytest.raises(Conflict, match=r"(?i)webhook is active"):
        await bot.get_updates()
    info = await bot.get_webhook_info()
    assert info.url == "http://127.0.0.1:9/hook"
    with pytest.raises(BadRequest, match=r"(?i)secret token"):
        await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="bad token!")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates() == ()


async def test_webhook_push_with_secret_and_retry(bot: Bot, fake: FakeTelegramAPI) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    statuses = iter([500])

    async def hook(request: web.Request) -> web.Response:
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        return web.Response(status=next(statuses, 200))

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        fake.add_text(USER, "một")
        fake.add_text(USER, "hai")
        await fake.wait_for(lambda: len(fake.webhook_responses) >= 3, timeout=5)
        await fake.wait_idle(quiet=0.1, timeout=5)
    finally:
        await runner.cleanup()
    assert fake.webhook_responses == [500, 200, 200]
    assert [secret for secret, _ in received] == ["s3cret"] * 3
    assert [body["update_id"] for _, body in received] == [1, 1, 2]
    assert Update.de_json(received[-1][1], bot).message.text == "hai"
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 0 and "500" in (info.last_error_message or "")


async def test_raw_http_formats_and_errors(fake: FakeTelegramAPI) -> None:
    base = f"{fake.base_url}{fake.token}"
    keyboard = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/SENDMESSAGE", json={"chat_id": 5, "text": "json", "reply_markup": keyboard}
        ) as r:
            assert r.status == 200 and (await r.json())["result"]["reply_markup"] == keyboard
        form = {
            "chat_id": "5",
            "text": "123",
            "reply_markup": '{"inline_keyboard": [[{"text": "B", "callback_data": "b"}]]}',
        }
        async with http.post(f"{base}/sendMessage", data=form) as r:
            assert (await r.json())["result"]["text"] == "123"
        async with http.get(f"{base}/getme") as r:
            assert (await r.json())["result"]["username"] == fake.bot_username
        async with http.post(f"{fake.base_url}1:WRONG/getMe") as r:
            assert r.status == 401 and await r.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        async with http.post(f"{base}/noSuchMethod") as r:
            assert r.status == 404 and (await r.json())["description"] == "Not Found"
        async with http.post(f"{base}/sendMessage", json={"chat_id": 5, "text": ""}) as r:
            body = await r.json()
            assert r.status == 400 == body["error_code"]
            assert body["description"] == "Bad Request: message text is empty"
    assert fake.buttons(fake.sent[1]) == [("B", "b")]
    assert fake.sent[1].chat_id == 5 and fake.sent[1].text == "123"
    assert [name for name, _ in fake.calls] == [
        "sendMessage",
        "sendMessage",
        "getMe",
        "sendMessage",
    ]
    with pytest.raises(InvalidToken):
        async with Bot("1:WRONG", base_url=fake.base_url):
            pass


async def test_commands_and_descriptions(bot: Bot, fake: FakeTelegramAPI) -> None:
    assert await bot.set_my_commands([("start", "Bắt đầu"), ("help", "Trợ giúp")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]
    assert await bot.get_my_commands(language_code="en") == ()
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    with pytest.raises(BadRequest):
        await bot.set_my_commands([("Bad-Command", "x")])
    assert await bot.set_my_description("mô tả")
    assert await bot.set_my_short_description("ngắn")
    assert fake.descriptions[""] == "mô tả" and fake.short_descriptions[""] == "ngắn"
    assert await bot.send_chat_action(USER, "typing")
    assert fake.chat_actions == [(USER, "typing")]


async def test_wait_helpers(bot: Bot, fake: FakeTelegramAPI) -> None:
    with pytest.raises(AssertionError, match="expected ≥1 messages to chat 5"):
        await fake.wait_for_sent(1, chat_id=5, timeout=0.1)
    with pytest.raises(WaitTimeout):
        await fake.wait_for_sent(1, timeout=0.05)

    async def later() -> None:
        await asyncio.sleep(0.1)
        await bot.send_message(5, "one")
        await bot.send_message(6, "two")

    task = asyncio.create_task(later())
    msgs = await fake.wait_for_sent(1, chat_id=6, timeout=3)
    assert [m.text for m in msgs] == ["two"]
    await task
    fake.latency = 0.2
    send = asyncio.create_task(bot.send_message(5, "slow"))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await fake.wait_idle(quiet=0.1, timeout=3)
    assert send.done() and time.monotonic() - started >= 0.1


async def test_ptb_application_polling_end_to_end(fake: FakeTelegramAPI) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(
            f"Chào! args={context.args}", reply_markup=KEYBOARD
        )

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer()
        await query.edit_message_text(f"Bạn chọn: {query.data}")

    app: Application = ApplicationBuilder().token(fake.token).base_url(fake.base_url).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        fake.add_text(USER, "/start abc")
        [reply] = await fake.wait_for_sent(1, chat_id=USER, timeout=5)
        assert reply.plain_text == "Chào! args=['abc']"
        fake.press_button(USER, "no")
        [edit] = await fake.wait_for_edits(1, chat_id=USER, timeout=5)
        assert edit.text == "Bạn chọn: no" and edit.message_id == reply.message_id
        await fake.wait_idle(quiet=0.2, timeout=5)
        assert len(fake.callback_answers) == 1
        await app.updater.stop()
        await app.stop()
    assert fake.pending_updates == []
