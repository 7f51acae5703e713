"""Translations (Babel catalogs in bot/locales) and vi_VN formatting of numbers and dates.

Message ids are English; `vi` is the default language and its catalog must translate every
id (a test checks). The active language lives in a ContextVar, set once per update, so one
person's choice never leaks into another's conversation.
"""

from __future__ import annotations

import gettext
from contextvars import ContextVar
from datetime import date, datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent

LOCALES_DIR = Path(__file__).parent / "locales"
LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
BABEL_LOCALE = {"vi": "vi_VN", "en": "en_GB"}

current_language: ContextVar[str] = ContextVar("current_language", default=DEFAULT_LANGUAGE)


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """Compile the .po catalog in memory (no stale .mo files to forget to rebuild)."""
    po = LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    buf = BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def _(message: str) -> str:
    """Translate into the current language."""
    return translations(current_language.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a module-level constant for extraction; translate it with _() where it is used."""
    return message


def gettext_in(lang: str, message: str) -> str:
    return translations(lang if lang in LANGUAGES else DEFAULT_LANGUAGE).gettext(message)


def locale() -> Locale:
    return Locale.parse(BABEL_LOCALE.get(current_language.get(), "vi_VN"))


def fmt_number(value: float | int, decimals: int = 0) -> str:
    fmt = "#,##0" if decimals == 0 else "#,##0." + "0" * decimals
    return format_decimal(value, format=fmt, locale=locale())


def fmt_percent(value: float) -> str:
    return format_percent(value, format="#,##0.#%", locale=locale())


def fmt_date(value: date | datetime) -> str:
    """Short date, e.g. 26/11/2026 in Vietnamese."""
    if isinstance(value, datetime):
        value = value.astimezone(TZ).date()
    return format_date(
        value, format="short" if current_language.get() != "vi" else "dd/MM/yyyy", locale=locale()
    )


def fmt_admin_date(value: date | datetime) -> str:
    """The date as Vietnamese documents write it: "ngày 26 tháng 11 năm 2026"."""
    if isinstance(value, datetime):
        value = value.astimezone(TZ).date()
    if current_language.get() == "vi":
        return format_date(value, format="'ngày' d 'tháng' M 'năm' y", locale="vi_VN")
    return format_date(value, format="long", locale=locale())


def fmt_datetime(value: datetime) -> str:
    pattern = "HH:mm dd/MM/yyyy" if current_language.get() == "vi" else "medium"
    return format_datetime(value, format=pattern, tzinfo=TZ, locale=locale())
