"""The catalogs: Vietnamese first and complete, English second; Babel formats for vi_VN."""

from __future__ import annotations

import re
from datetime import date

from babel.messages.pofile import read_po

from bot.i18n import LOCALES_DIR, current_language, fmt_date, fmt_number, translations

PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def catalog(lang: str):
    with (LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh)


def template():
    with (LOCALES_DIR / "messages.pot").open("rb") as fh:
        return read_po(fh)


def test_vietnamese_translates_every_message() -> None:
    vi = catalog("vi")
    for message in template():
        if not message.id:
            continue
        translated = vi.get(message.id)
        assert translated is not None and translated.string, f"untranslated: {message.id!r}"


def test_placeholders_survive_translation() -> None:
    for message in catalog("vi"):
        if not message.id or not message.string:
            continue
        source = message.id if isinstance(message.id, str) else message.id[0]
        target = message.string if isinstance(message.string, str) else message.string[0]
        assert set(PLACEHOLDER.findall(source)) == set(PLACEHOLDER.findall(target)), source


def test_no_english_leaks_into_vietnamese() -> None:
    english = re.compile(r"\b(the|you|your|please|and|with|to|is|are)\b")
    for message in catalog("vi"):
        if not message.id or not message.string:
            continue
        target = message.string if isinstance(message.string, str) else message.string[0]
        without_placeholders = PLACEHOLDER.sub("", target)
        assert not english.search(without_placeholders.lower()), target


def test_vi_is_the_default_and_en_is_available() -> None:
    assert translations("vi").gettext("I agree") == "Đồng ý"
    assert translations("en").gettext("I agree") == "I agree"


def test_babel_formats_for_vietnamese() -> None:
    token = current_language.set("vi")
    try:
        assert fmt_number(1234567) == "1.234.567"
        assert fmt_date(date(2026, 3, 2)) == "02/03/2026"
    finally:
        current_language.reset(token)
