"""The message path reads updates' JSON directly (convert.from_json): it must agree with the
conversion of python-telegram-bot's objects (convert.to_incoming) on anything Telegram sends."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from telegram import Bot, Update

from bot.channels.telegram.convert import from_json, to_incoming
from tests.test_fuzz import updates

BOT = Bot("1:x")
USER = {"id": 42, "is_bot": False, "first_name": "Lan", "last_name": "Nguyễn",
        "language_code": "vi"}  # fmt: skip
KEYBOARD_MESSAGE = {
    "message_id": 9, "date": 1_700_000_000, "chat": {"id": 42, "type": "private"},
    "from": {"id": 1, "is_bot": True, "first_name": "hocvuso"}, "text": "Câu hỏi 1/5",
    "reply_markup": {"inline_keyboard": [[{"text": "A", "callback_data": "ans:l:q1:1"}]]},
}  # fmt: skip
EXAMPLES = [
    {"update_id": 1, "message": {"message_id": 1, "date": 1, "text": "/start", "from": USER,
                                 "chat": {"id": 42, "type": "private"}}},
    {"update_id": 2, "callback_query": {"id": "77", "from": USER, "chat_instance": "c",
                                        "data": "ans:l:q1:1", "message": KEYBOARD_MESSAGE}},
    {"update_id": 3, "callback_query": {"id": "78", "from": USER, "chat_instance": "c",
                                        "message": {**KEYBOARD_MESSAGE, "date": 0}}},
    {"update_id": 4, "edited_message": {"message_id": 1, "date": 1, "text": "sửa",
                                        "edit_date": 2, "from": USER,
                                        "chat": {"id": 42, "type": "private"}}},
    {"update_id": 5, "message": {"message_id": 2, "date": 1, "from": USER,
                                 "chat": {"id": -5, "type": "group", "title": "t"},
                                 "photo": [{"file_id": "p", "file_unique_id": "u",
                                            "width": 1, "height": 1}]}},
    {"update_id": 6, "my_chat_member": {
        "chat": {"id": 42, "type": "private"}, "from": USER, "date": 1,
        "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": True,
                                                         "first_name": "b"}},
        "new_chat_member": {"status": "kicked", "until_date": 0,
                            "user": {"id": 1, "is_bot": True, "first_name": "b"}}}},
    {"update_id": 7, "channel_post": {"message_id": 3, "date": 1,
                                      "chat": {"id": -100, "type": "channel", "title": "c"}}},
]  # fmt: skip


def expected(raw: dict) -> tuple[object, str | None]:
    update = Update.de_json(raw, BOT)
    query = update.callback_query
    return to_incoming(update), query.id if query is not None else None


@pytest.mark.parametrize("raw", EXAMPLES, ids=lambda raw: next(k for k in raw if k != "update_id"))
def test_examples_agree(raw: dict) -> None:
    assert from_json(raw) == expected(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(updates)
def test_any_update_agrees(raw: dict) -> None:
    assert from_json(raw) == expected(raw)


@pytest.mark.parametrize("raw", [[1, 2], "x", {"message": {}}, {"update_id": "x"},
                                 {"update_id": 1, "callback_query": {"id": "1"}}])  # fmt: skip
def test_not_an_update(raw: object) -> None:
    with pytest.raises(ValueError):
        from_json(raw)
