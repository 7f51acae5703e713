"""Property-based tests (Hypothesis) of the parsers of outside input: whatever arrives, no
exception escapes and the person gets an answer."""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram import Bot, Update

from bot.channels.telegram.convert import to_incoming
from bot.services.certificates import normalize_code
from handlers.router import parse_command
from handlers.types import IncomingMessage, Kind
from tests.conftest import UPDATE_IDS

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)

user = st.fixed_dictionaries({"id": st.integers(1, 2**40), "is_bot": st.booleans(),
                              "first_name": st.text(max_size=20)})
chat = st.fixed_dictionaries({"id": st.integers(-(2**40), 2**40),
                              "type": st.sampled_from(["private", "group", "supergroup",
                                                       "channel"])})
message = st.fixed_dictionaries(
    {"message_id": st.integers(1, 2**31), "date": st.integers(0, 2**31), "chat": chat},
    optional={"from": user, "text": st.text(max_size=200), "sticker": st.just({
        "file_id": "x", "file_unique_id": "y", "type": "regular", "width": 1, "height": 1,
        "is_animated": False, "is_video": False})},
)
updates = st.fixed_dictionaries(
    {"update_id": st.integers(0, 2**31)},
    optional={"message": message, "edited_message": message,
              "callback_query": st.fixed_dictionaries({
                  "id": st.text(min_size=1, max_size=10), "from": user,
                  "chat_instance": st.just("c"), "data": st.text(max_size=64)},
                  optional={"message": message}),
              "junk": json_values},
)


BOT = Bot("1:x")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(updates)
def test_telegram_updates_convert_or_are_ignored(raw: dict) -> None:
    update = Update.de_json(raw, BOT)
    msg = to_incoming(update)
    assert msg is None or (msg.user_id and msg.chat_id and msg.update_id)


@given(st.text(max_size=300))
def test_commands_parse(text: str) -> None:
    parsed = parse_command(text)
    if parsed is not None:
        name, arg = parsed
        assert name.isascii() and len(arg) <= len(text)


@given(st.text(max_size=200))
def test_certificate_codes_parse(text: str) -> None:
    code = normalize_code(text)
    assert code is None or (code.startswith("HVS-") and len(code) == 15)


payloads = st.one_of(
    st.text(max_size=80),
    st.builds(lambda p, rest: f"{p}:{rest}", st.sampled_from(
        ["consent", "commune", "gender", "age", "org", "mod", "les", "card", "quiz", "ans",
         "lang", "cert", "remind", "fix", "confirm", "menu", "progress"]),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=60)),
)


def test_any_payload_or_text_gets_an_answer(core, sqlite_url) -> None:
    """Random buttons and text, at random steps: an answer every time, never an exception."""
    if "sqlite" not in str(core.settings.database_url):
        return  # one backend is enough for the fuzzing itself
    loop = asyncio.get_event_loop_policy().new_event_loop()

    @settings(max_examples=120, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.tuples(st.booleans(), payloads), min_size=1, max_size=6))
    def run(actions: list[tuple[bool, str]]) -> None:
        async def go() -> None:
            for is_button, value in actions:
                msg = IncomingMessage(
                    channel="fuzz", user_id="42", chat_id="42",
                    kind=Kind.BUTTON if is_button else Kind.TEXT,
                    payload=value if is_button else None, text="" if is_button else value,
                    update_id=f"f{next(UPDATE_IDS)}")
                replies = await core.handle(msg)
                assert isinstance(replies, list)
                for reply in replies:
                    assert reply.text or reply.image or reply.document

        loop.run_until_complete(go())

    try:
        run()
    finally:
        loop.close()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_webhook_bodies_never_crash(body: bytes) -> None:
    from telegram import Update as U

    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return
    try:
        update = U.de_json(data, BOT) if isinstance(data, dict) else None
    except (TypeError, KeyError, ValueError, AttributeError):
        return
    if update is not None:
        to_incoming(update)


periods = st.one_of(
    st.text(max_size=40),
    st.builds("{}-{}".format, st.integers(1900, 2200), st.integers(1900, 2200)),
    st.builds("{}..{}".format, st.dates().map(str), st.dates().map(str)),
)


@given(periods)
def test_report_periods_parse_or_explain(text: str) -> None:
    from bot.services.metrics import Period, PeriodError, parse_period

    try:
        period = parse_period(text)
    except PeriodError as exc:
        assert str(exc)
    else:
        assert isinstance(period, Period) and period.start < period.end


csv_cells = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
                    max_size=12)
csv_text = st.lists(st.lists(csv_cells, min_size=0, max_size=7), max_size=6).map(
    lambda rows: "\n".join(",".join(row) for row in rows))


def test_csv_import_rows_never_crash(core, localities) -> None:
    """Any CSV text: units created, or every bad row named with its line; never an
    exception, never a half import."""
    from sqlalchemy import func, select

    from bot.db.models import OrgUnit
    from bot.services.orgs import import_csv

    if "sqlite" not in str(core.settings.database_url):
        return
    loop = asyncio.get_event_loop_policy().new_event_loop()

    @settings(max_examples=80, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(csv_text | st.sampled_from([
        "type,name,locality_code,parent_code,code\nhoi_phu_nu,Hội LHPN xã,14215,,HPN-X\n",
        "hoi_phu_nu;Hội;14215;;A1\n", "\ufefftype,name\n", "x" * 5000]))
    def run(text: str) -> None:
        async def go() -> None:
            async with core.sessionmaker() as session:
                before = await session.scalar(select(func.count()).select_from(OrgUnit))
                result = await import_csv(session, text, localities, actor="fuzz")
                after = await session.scalar(select(func.count()).select_from(OrgUnit))
                await session.rollback()
            if result.problems:
                assert after == before
                assert all(p.startswith("line ") or p for p in result.problems)

        loop.run_until_complete(go())

    try:
        run()
    finally:
        loop.close()
