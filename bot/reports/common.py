"""What every report format shares: the administrative wording (translated msgids), the
columns, and numbers and dates formatted for the current language (vi_VN by default)."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from typing import Any

from babel import Locale

from bot.domain import AGE_BANDS, ALL_ORG_TYPES, GENDERS
from bot.i18n import (
    BABEL_LOCALE,
    N_,
    _,
    current_language,
    fmt_admin_date,
    fmt_date,
    fmt_datetime,
)
from bot.services.metrics import INDICATORS
from bot.services.reports import BRANCH, COMMUNE, EXTRA, PROVINCE

LEVEL_LABELS = {PROVINCE: N_("Province level"), COMMUNE: N_("Commune level"),
                BRANCH: N_("Branch level")}  # fmt: skip
PERCENT = frozenset(k for k, v in INDICATORS.items() if v.percent)


def text() -> dict[str, str]:
    """The report's wording in the current language."""
    return {
        "nation": _("SOCIALIST REPUBLIC OF VIETNAM"),
        "motto": _("Independence - Freedom - Happiness"),
        "system": _("HOCVUSO DIGITAL LEARNING SYSTEM"),
        "title": _("REPORT ON THE RESULTS OF THE EMULATION MOVEMENT"),
        "movement": _("\"Bình dân học vụ số\" (popular digital learning)"),
        "scope": _("Scope"),
        "period": _("Period"),
        "criteria_set": _("Criteria set"),
        "source": _("Based on"),
        "generated": _("Figures as of"),
        "section_totals": _("I. Overall results"),
        "section_criteria": _("II. Results by criterion"),
        "section_communes": _("III. Results by commune"),
        "section_people": _("IV. Learners by gender and age group"),
        "criterion": _("Criterion"),
        "indicator": _("Indicator"),
        "target": _("Target"),
        "result": _("Result"),
        "achieved": _("Achieved"),
        "score": _("Score"),
        "total_score": _("Total score"),
        "rank": _("Rank"),
        "peers": _("Units compared"),
        "no": _("No."),
        "unit": _("Unit"),
        "unit_code": _("Unit code"),
        "organisation": _("Organisation"),
        "level": _("Level"),
        "locality": _("Locality"),
        "commune": _("Commune"),
        "commune_code": _("Commune code"),
        "weight": _("Weight"),
        "value": _("Value"),
        "gender": _("Gender"),
        "age_band": _("Age group"),
        "not_given": _("Not given"),
        "summary_sheet": _("Summary"),
        "communes_sheet": _("By commune"),
        "about_sheet": _("About this report"),
        "none": _("Nothing in this scope."),
        "disclaimer": _(
            "Scores and ranks are computed automatically from hocvuso data with the criteria "
            "set above. They are evidence for the Emulation and Commendation Council, not a "
            "verdict: the council weighs them together with the units' other work."
        ),
        "definitions": _(
            "Definitions: a person counts once in each unit and once in any total; units "
            "include the branches below them; figures at the period's end (registered, "
            "members, members trained) are taken on its last day; a unit's share of members "
            "trained uses the official member count where officers entered one."
        ),
        "frozen": _("Frozen report no. {id}: figures frozen on {at} by {by}. They stay as "
                    "submitted, whatever is corrected later."),
        "official": _("official count"),
        "chart_scores": _("Total score of the units"),
        "chart_criterion": _("Score for this criterion"),
        "chart_communes": _("Active learners by commune"),
        "charts_note": _("Each chart shows the figures of the table above it."),
        "prepared_by": _("PREPARED BY"),
        "head": _("HEAD OF THE UNIT"),
        "sign": _("(signature and full name)"),
        "top_units": _("The {n} units with the highest score"),
    }


def indicator_label(metric: str) -> str:
    return _(INDICATORS[metric].label)


def org_label(org_type: str) -> str:
    return _(ALL_ORG_TYPES.get(org_type, org_type))


def level_label(level: str) -> str:
    return _(LEVEL_LABELS.get(level, level))


def dimension_label(dimension: str, value: str) -> str:
    names = GENDERS if dimension == "gender" else AGE_BANDS
    return _(names[value]) if value in names else _("Not given")


@cache
def _symbols(lang: str) -> tuple[str, str, str]:
    """Babel's (CLDR) group and decimal separators and percent sign of the language."""
    symbols = Locale.parse(BABEL_LOCALE.get(lang, "vi_VN")).number_symbols["latn"]
    return symbols["group"], symbols["decimal"], symbols["percentSign"]


def number(value: float | int, decimals: int = 0) -> str:
    """`bot.i18n.fmt_number` for the tens of thousands of cells of a report: the same text
    (Babel's separators for the current language), without Babel's per-call parsing."""
    group, decimal, _sign = _symbols(current_language.get())
    if decimals:
        # Python's "_" grouping, then the language's signs ("_" is in no language's).
        return (format(value, f"_.{decimals}f").replace(".", decimal)
                .replace("_", group))  # fmt: skip
    text = format(round(value) if isinstance(value, float) else value, ",")
    return text if group == "," else text.replace(",", group)


def percent(value: float) -> str:
    """0.457 -> 45,7% (Babel's "#,##0.#%" pattern of `bot.i18n.fmt_percent`)."""
    _group, decimal, sign = _symbols(current_language.get())
    text = number(round(value * 100, 1), 1)
    if text.endswith(decimal + "0"):
        text = text[: -len(decimal) - 1]
    return text + sign


def fmt_value(metric: str, value: Any) -> str:
    """A figure as the reports print it: 12.345 or 45,7% in Vietnamese; – when undefined."""
    if value is None:
        return "–"
    if metric in PERCENT:
        return percent(float(value))
    return number(value)


def fmt_score(value: float) -> str:
    return number(value, 1)


def fmt_day(iso: str) -> str:
    return fmt_date(date.fromisoformat(iso))


def fmt_moment(iso: str) -> str:
    return fmt_datetime(datetime.fromisoformat(iso))


def place_date(data: dict[str, Any]) -> str:
    """"Ninh Bình, ngày 26 tháng 11 năm 2026": the place and date line of the report."""
    place = data["scope"]["name"]
    for prefix in ("Tỉnh ", "Thành phố "):
        place = place.removeprefix(prefix)
    moment = datetime.fromisoformat((data.get("frozen") or {}).get("at") or data["generated_at"])
    return f"{place}, {fmt_admin_date(moment)}"


def period_text(data: dict[str, Any]) -> str:
    p = data["period"]
    return _("from {first} to {last}").format(first=fmt_day(p["first"]), last=fmt_day(p["last"]))


def columns(data: dict[str, Any]) -> list[str]:
    """The indicators a report lists: the criteria's, then the general ones."""
    out = [i["metric"] for c in data["criteria"]["criteria"] for i in c["indicators"]]
    return out + [m for m in EXTRA if m not in out]


def ordered_units(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Units by level, organisation, then rank (the order of every table)."""
    order = {PROVINCE: 0, COMMUNE: 1, BRANCH: 2}
    return sorted(data["units"], key=lambda u: (order.get(u["level"], 3), u["type"],
                                                u.get("rank", 0), u["name"]))  # fmt: skip


def frozen_line(data: dict[str, Any]) -> str | None:
    frozen = data.get("frozen")
    if not frozen:
        return None
    return text()["frozen"].format(id=frozen["id"], at=fmt_moment(frozen["at"]), by=frozen["by"])
