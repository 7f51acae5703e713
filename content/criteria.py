"""Criteria sets (`content/criteria/*.yaml`): which indicators the emulation reports score,
with targets per unit level and weights, in the plan's words (Kế hoạch 103/KH-UBND, III.1.1.b).

`hocvuso content check` checks them like the lessons, as `file:line: problem`. A report for a
period uses `<last year>.yaml` when the province wrote one for that year, else `default.yaml`
(or the file given with --criteria). A frozen report stores the set it used (`to_json`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from content.loader import ContentError, Problem, _Doc

CRITERIA_DIR = Path(__file__).parent / "criteria"
DEFAULT = "default.yaml"
LEVELS = ("province", "commune", "branch")
# Figures at the period's end or rates: their yearly target is not multiplied by the years.
NOT_SCALED = {"registered", "members", "members_trained", "share_trained", "quiz_pass_rate",
              "communes_covered"}  # fmt: skip
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
TITLE_MAX = 600


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    metric: str
    title: str
    weight: float
    targets: dict[str, float]  # level -> yearly target (percent indicators: 0-100)


@dataclass(frozen=True, slots=True)
class Criterion:
    id: str
    short: str
    title: str
    weight: float
    indicators: tuple[IndicatorSpec, ...]


@dataclass(frozen=True, slots=True)
class CriteriaSet:
    id: str
    version: str
    title: str
    source: str
    min_active: int
    criteria: tuple[Criterion, ...]
    file: str = ""

    @property
    def label(self) -> str:
        return f"{self.id} {self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "version": self.version, "title": self.title, "source": self.source,
            "min_active": self.min_active, "file": self.file,
            "criteria": [
                {"id": c.id, "short": c.short, "title": c.title, "weight": c.weight,
                 "indicators": [{"metric": i.metric, "title": i.title, "weight": i.weight,
                                 "targets": i.targets} for i in c.indicators]}
                for c in self.criteria
            ],
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CriteriaSet:
        return cls(
            data["id"], data["version"], data["title"], data["source"], int(data["min_active"]),
            tuple(Criterion(c["id"], c["short"], c["title"], float(c["weight"]), tuple(
                IndicatorSpec(i["metric"], i["title"], float(i["weight"]),
                              {k: float(v) for k, v in i["targets"].items()})
                for i in c["indicators"])) for c in data["criteria"]),
            data.get("file", ""),
        )  # fmt: skip


class _Reader:
    def __init__(self, doc: _Doc) -> None:
        self.doc = doc
        self.problems: list[Problem] = []

    def problem(self, path: tuple[Any, ...], message: str) -> None:
        self.problems.append(Problem(self.doc.path, self.doc.line(path), message))

    def text(self, value: Any, path: tuple[Any, ...], what: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.problem(path, f"{what}: expected text")
            return ""
        text = " ".join(value.split())
        if len(text) > TITLE_MAX:
            self.problem(path, f"{what}: {len(text)} characters, max {TITLE_MAX}")
        return text

    def weight(self, value: Any, path: tuple[Any, ...]) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.problem(path, f"weight: expected a positive number, got {value!r}")
            return 1.0
        return float(value)

    def targets(self, value: Any, path: tuple[Any, ...], percent: bool) -> dict[str, float]:
        raw = value if isinstance(value, dict) else dict.fromkeys(LEVELS, value)
        out: dict[str, float] = {}
        for level, target in raw.items():
            where = (*path, level) if isinstance(value, dict) else path
            if level not in LEVELS:
                self.problem(where, f"target: unknown level {level!r} (use {', '.join(LEVELS)})")
                continue
            ok = not isinstance(target, bool) and isinstance(target, int | float) and target > 0
            if not ok or (percent and target > 100):
                limit = "a percentage above 0, at most 100" if percent else "a positive number"
                self.problem(where, f"target: expected {limit}, got {target!r}")
                continue
            out[level] = float(target)
        if isinstance(value, dict):
            for level in LEVELS:
                if level not in value:
                    self.problem(path, f"target: missing the target for level '{level}'")
        return out

    def read(self) -> CriteriaSet | None:
        from bot.services.metrics import INDICATORS

        data = self.doc.data
        if not isinstance(data, dict):
            self.problem((), "a criteria file must be a mapping (id, version, criteria, ...)")
            return None
        for key in data:
            if key not in ("id", "version", "title", "source", "settings", "criteria"):
                self.problem((key,), f"unknown key '{key}'")
        set_id = data.get("id")
        if not isinstance(set_id, str) or not ID_RE.match(set_id):
            self.problem(("id",), f"id: 1-32 of a-z, 0-9 and '-', got {set_id!r}")
        version = data.get("version")
        if not isinstance(version, str | int | float) or not str(version).strip():
            self.problem(("version",), "version: expected a version such as \"2026.1\"")
        title = self.text(data.get("title"), ("title",), "title")
        source = self.text(data.get("source"), ("source",), "source")
        settings = data.get("settings") or {}
        min_active = settings.get("commune_min_active", 5) if isinstance(settings, dict) else 5
        if isinstance(min_active, bool) or not isinstance(min_active, int) or min_active < 1:
            self.problem(("settings", "commune_min_active"),
                         f"commune_min_active: expected a whole number >= 1, got {min_active!r}")
            min_active = 5  # fmt: skip
        raw_criteria = data.get("criteria")
        if not isinstance(raw_criteria, list) or not raw_criteria:
            self.problem(("criteria",), "criteria: expected a list of criteria")
            return None
        criteria: list[Criterion] = []
        seen_ids: set[str] = set()
        seen_metrics: set[str] = set()
        for ci, raw in enumerate(raw_criteria):
            path: tuple[Any, ...] = ("criteria", ci)
            if not isinstance(raw, dict):
                self.problem(path, "a criterion must be a mapping (id, title, weight, indicators)")
                continue
            cid = raw.get("id")
            if not isinstance(cid, str) or not ID_RE.match(cid):
                self.problem((*path, "id"), f"id: 1-32 of a-z, 0-9 and '-', got {cid!r}")
                cid = f"c{ci + 1}"
            elif cid in seen_ids:
                self.problem((*path, "id"), f"duplicate criterion id '{cid}'")
            seen_ids.add(cid)
            indicators: list[IndicatorSpec] = []
            raw_indicators = raw.get("indicators")
            if not isinstance(raw_indicators, list) or not raw_indicators:
                self.problem((*path, "indicators"), "indicators: expected a list")
                raw_indicators = []
            for ii, item in enumerate(raw_indicators):
                ipath = (*path, "indicators", ii)
                if not isinstance(item, dict):
                    self.problem(ipath, "an indicator must be a mapping (metric, title, ...)")
                    continue
                metric = item.get("metric")
                if metric not in INDICATORS:
                    self.problem((*ipath, "metric"), f"metric: unknown {metric!r} (known: "
                                 f"{', '.join(sorted(INDICATORS))})")  # fmt: skip
                    continue
                if metric in seen_metrics:
                    self.problem((*ipath, "metric"), f"metric '{metric}' is used twice")
                seen_metrics.add(metric)
                for key in item:
                    if key not in ("metric", "title", "weight", "target"):
                        self.problem((*ipath, key), f"unknown key '{key}'")
                indicators.append(IndicatorSpec(
                    metric, self.text(item.get("title"), (*ipath, "title"), "title"),
                    self.weight(item.get("weight"), (*ipath, "weight")),
                    self.targets(item.get("target"), (*ipath, "target"),
                                 INDICATORS[metric].percent),
                ))  # fmt: skip
            criteria.append(Criterion(
                cid, self.text(raw.get("short"), (*path, "short"), "short"),
                self.text(raw.get("title"), (*path, "title"), "title"),
                self.weight(raw.get("weight"), (*path, "weight")), tuple(indicators),
            ))  # fmt: skip
        return CriteriaSet(str(set_id), str(version), title, source, int(min_active),
                           tuple(criteria), self.doc.path.name)  # fmt: skip


def check_file(path: Path) -> tuple[CriteriaSet | None, list[Problem]]:
    try:
        doc = _Doc(path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        return None, [Problem(path, line, f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(path, 1, f"cannot read: {exc}")]
    problems = [Problem(path, line, f"duplicate key '{p[-2]}'")
                for p, line in doc.lines.items() if p and p[-1] == "__dup__"]  # fmt: skip
    reader = _Reader(doc)
    found = reader.read()
    problems.extend(reader.problems)
    return (None if problems else found), problems


def check(directory: Path = CRITERIA_DIR) -> tuple[list[CriteriaSet], list[Problem]]:
    """Every criteria file of the folder; the default one must be there."""
    sets: list[CriteriaSet] = []
    problems: list[Problem] = []
    if not (directory / DEFAULT).exists():
        problems.append(Problem(directory, 1, f"no {DEFAULT} criteria set"))
    for path in sorted(directory.glob("*.yaml")):
        found, found_problems = check_file(path)
        problems.extend(found_problems)
        if found is not None:
            sets.append(found)
    return sets, problems


def load(path: Path) -> CriteriaSet:
    found, problems = check_file(path)
    if found is None:
        raise ContentError(problems)
    return found


def for_year(year: int, directory: Path = CRITERIA_DIR) -> CriteriaSet:
    """The set of that year (`2027.yaml`) if the province wrote one, else the default."""
    path = directory / f"{year}.yaml"
    return load(path if path.exists() else directory / DEFAULT)
