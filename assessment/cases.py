"""The case library: structured cases an educator presents to a child, with the rubric to rate them.

A case is one YAML file. It names its curriculum area (Lpfö 18), the age bands it is written for,
the materials to put out, what the educator does and says (Swedish), and two or more rubric items,
each with ordered levels 0..K and a descriptor per level, and optionally calibration responses:
written descriptions of a child's response (Swedish) with the researchers' reference level per
rubric item and a short explanation, which every educator rates to link educators across units.
Files are validated with pydantic; every problem is reported as a :class:`CaseFileError` naming the
file, the field (a dotted path such as ``rubric.1.levels.2``) and the reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.domain import AGE_BANDS, CURRICULUM_AREAS

#: The starter library shipped with Spira.
DEFAULT_CASE_DIR = Path(__file__).with_name("cases")


class RubricLevel(BaseModel):
    """One ordered level of a rubric item: its number (0 = lowest) and what it looks like."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: int = Field(ge=0)
    descriptor: str = Field(min_length=1)


class RubricItem(BaseModel):
    """A rubric item: an aspect of the child's response, rated on levels 0..K (K >= 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    text: str = Field(min_length=1)
    levels: list[RubricLevel] = Field(min_length=2)

    @field_validator("levels")
    @classmethod
    def _levels_are_consecutive(cls, levels: list[RubricLevel]) -> list[RubricLevel]:
        numbers = [lv.level for lv in levels]
        if numbers != list(range(len(levels))):
            raise ValueError(
                f"levels must be numbered 0..{len(levels) - 1} in order, got {numbers}"
            )
        return levels

    @property
    def max_level(self) -> int:
        """Highest level K of this item."""
        return len(self.levels) - 1


class CalibrationResponse(BaseModel):
    """A written description of a child's response (Swedish) with the researchers' reference level
    per rubric item and a short explanation. Every educator rates it; the model uses the ratings
    to link educators across units and reports each educator's agreement with the reference."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    text: str = Field(min_length=1)
    reference: dict[str, int] = Field(min_length=1)
    explanation: str = Field(min_length=1)


class Case(BaseModel):
    """A structured case: what the educator does and says, and the rubric to rate the response."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    title_en: str = Field(min_length=1)
    title_sv: str = Field(min_length=1)
    area: str
    age_bands: list[str] = Field(min_length=1)
    #: What the educator puts out before starting (Swedish), one thing per entry.
    materials: list[str] = Field(min_length=1)
    educator_does: str = Field(min_length=1)
    educator_says: str = Field(min_length=1)
    rubric: list[RubricItem] = Field(min_length=1)
    calibration: list[CalibrationResponse] = Field(default_factory=list)

    @field_validator("area")
    @classmethod
    def _known_area(cls, area: str) -> str:
        if area not in CURRICULUM_AREAS:
            raise ValueError(f"area {area!r} is not one of {', '.join(CURRICULUM_AREAS)}")
        return area

    @field_validator("age_bands")
    @classmethod
    def _known_age_bands(cls, bands: list[str]) -> list[str]:
        unknown = [b for b in bands if b not in AGE_BANDS]
        if unknown:
            raise ValueError(f"age bands {unknown} are not among {', '.join(AGE_BANDS)}")
        return bands

    @model_validator(mode="after")
    def _unique_item_ids(self) -> Case:
        ids = [item.id for item in self.rubric]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rubric item ids must be unique, repeated: {dupes}")
        levels = {item.id: item.max_level for item in self.rubric}
        for n, response in enumerate(self.calibration):
            for item_id, level in response.reference.items():
                if item_id not in levels:
                    raise ValueError(
                        f"calibration.{n} ({response.id}): reference names rubric item "
                        f"{item_id!r}, which the case does not have (items: {', '.join(levels)})"
                    )
                if not 0 <= level <= levels[item_id]:
                    raise ValueError(
                        f"calibration.{n} ({response.id}): reference level {level} of item "
                        f"{item_id!r} is outside 0-{levels[item_id]}"
                    )
        return self

    def item(self, item_id: str) -> RubricItem:
        """The rubric item with this id; KeyError naming the known ids otherwise."""
        for item in self.rubric:
            if item.id == item_id:
                return item
        known = ", ".join(i.id for i in self.rubric)
        raise KeyError(f"case {self.id!r} has no rubric item {item_id!r} (known: {known})")


class CaseFileError(ValueError):
    """A case file that cannot be used: which file, which field (dotted path), and why."""

    def __init__(self, file: Path | str, field: str, reason: str) -> None:
        self.file = str(file)
        self.field = field
        self.reason = reason
        super().__init__(f"{self.file}: {field or '(file)'}: {reason}")


class CaseLibraryError(ValueError):
    """One or more case files are broken; ``errors`` holds every :class:`CaseFileError`."""

    def __init__(self, errors: list[CaseFileError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{len(errors)} problem(s) in the case library:\n{lines}")


class CaseLibrary:
    """The validated cases, by id, in file-name order."""

    def __init__(self, cases: list[Case]) -> None:
        self._cases = {c.id: c for c in cases}

    def __len__(self) -> int:
        return len(self._cases)

    def __iter__(self) -> Iterator[Case]:
        return iter(self._cases.values())

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._cases

    def get(self, case_id: str) -> Case:
        """The case with this id; KeyError naming it otherwise."""
        try:
            return self._cases[case_id]
        except KeyError:
            raise KeyError(f"unknown case {case_id!r}") from None

    def max_level(self, case_id: str, item_id: str) -> int:
        """Highest level K of a rubric item (levels run 0..K)."""
        return self.get(case_id).item(item_id).max_level

    def case_areas(self) -> dict[str, str]:
        """Mapping case id -> curriculum area."""
        return {c.id: c.area for c in self}

    def calibration_cases(self) -> dict[str, str]:
        """Mapping calibration response id -> its case id."""
        return {r.id: c.id for c in self for r in c.calibration}

    def calibration_references(self) -> dict[tuple[str, str], int]:
        """Mapping (calibration response id, rubric item) -> the researchers' reference level."""
        return {
            (r.id, item): level
            for c in self
            for r in c.calibration
            for item, level in r.reference.items()
        }


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def load_case_file(path: Path) -> tuple[Case | None, list[CaseFileError]]:
    """Parse and validate one YAML case file.

    Returns ``(case, [])`` when valid, ``(None, errors)`` otherwise; it never raises for bad content.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return None, [CaseFileError(path, "", f"not valid YAML: {exc}")]
    if not isinstance(raw, dict):
        return None, [CaseFileError(path, "", "expected a mapping of fields at the top level")]
    try:
        return Case.model_validate(raw), []
    except ValidationError as exc:
        return None, [
            CaseFileError(path, _dotted(tuple(err["loc"])), err["msg"]) for err in exc.errors()
        ]


def validate_case_library(directory: Path | str) -> tuple[CaseLibrary, list[CaseFileError]]:
    """Validate every ``*.yaml``/``*.yml`` file in ``directory``.

    Returns the library of the valid cases and the list of problems (empty when all are valid).
    A case id used by two files is reported on the second file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return CaseLibrary([]), [CaseFileError(directory, "", "case directory does not exist")]
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        return CaseLibrary([]), [CaseFileError(directory, "", "no *.yaml case files found")]
    cases: list[Case] = []
    origin: dict[str, Path] = {}
    cal_origin: dict[str, Path] = {}
    errors: list[CaseFileError] = []
    for path in files:
        case, problems = load_case_file(path)
        errors.extend(problems)
        if case is None:
            continue
        if case.id in origin:
            errors.append(
                CaseFileError(
                    path, "id", f"case id {case.id!r} is already used by {origin[case.id]}"
                )
            )
            continue
        clash = sorted(
            {r.id for r in case.calibration} & (set(cal_origin) | set(origin) | {case.id})
        )
        if clash:
            errors.append(
                CaseFileError(
                    path,
                    "calibration",
                    f"calibration response id(s) {clash} are already used (ids must be unique "
                    "across cases and calibration responses)",
                )
            )
            continue
        cal_origin.update({r.id: path for r in case.calibration})
        origin[case.id] = path
        cases.append(case)
    return CaseLibrary(cases), errors


def load_case_library(directory: Path | str = DEFAULT_CASE_DIR) -> CaseLibrary:
    """Load and validate a case library; raises :class:`CaseLibraryError` listing every problem."""
    library, errors = validate_case_library(directory)
    if errors:
        raise CaseLibraryError(errors)
    return library
