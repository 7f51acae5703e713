"""Report exports: one report dict (bot.services.reports.build) rendered as XLSX, CSV, HTML
or DOCX. Each renderer is imported only when used (XlsxWriter, python-docx and Jinja2 stay
out of an idle bot's memory)."""

from __future__ import annotations

import importlib
import re
from typing import Any

from bot.i18n import current_language

FORMATS = ("xlsx", "csv", "html", "docx")
CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
_MODULES = {"xlsx": "xlsx", "csv": "csv_out", "html": "html", "docx": "docx"}


def render(data: dict[str, Any], fmt: str, *, lang: str = "vi") -> bytes:
    """The report in `fmt`; Vietnamese unless `lang` says otherwise."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})")
    module = importlib.import_module(f"bot.reports.{_MODULES[fmt]}")
    token = current_language.set(lang)
    try:
        return module.render(data)
    finally:
        current_language.reset(token)


def filename(data: dict[str, Any], fmt: str) -> str:
    """e.g. bao-cao-hocvuso_37_2025-2027.xlsx (ASCII: safe in every browser and mail)."""
    scope = re.sub(r"[^A-Za-z0-9-]+", "-", data["scope"]["code"]).strip("-") or "all"
    period = re.sub(r"[^0-9-]+", "-", data["period"]["label"]).strip("-")
    frozen = f"_chot-{data['frozen']['id']}" if data.get("frozen") else ""
    return f"bao-cao-hocvuso_{scope}_{period}{frozen}.{fmt}"
