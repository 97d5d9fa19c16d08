"""HTTP request bodies and their validation; errors name paths like ``choices[2].majors[0]``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic import ValidationError as PydanticValidationError

MAX_CHOICES = 96
MAX_MAJORS = 6

InstitutionCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]
MajorCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}[A-Z]?$")]
# A resident ID's shape ([0-9], not \d: no Unicode digits); its check digit is checked apart.
CANDIDATE_ID_PATTERN = r"^[1-9][0-9]{16}[0-9X]$"
# Local time, no offset: what a filing window is given in.
LOCAL_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?$"
_LOCAL_TIME = re.compile(LOCAL_TIME_PATTERN)


def _integral(value: Any) -> Any:
    """JSON has one number type: ``3.0`` is the integer 3 (JSON Schema agrees)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _local_time_text(value: Any) -> Any:
    if not isinstance(value, str) or not _LOCAL_TIME.fullmatch(value):
        raise ValueError("local time as YYYY-MM-DDTHH:MM[:SS[.ffffff]], without an offset")
    return value


Integer = Annotated[int, BeforeValidator(_integral)]
LocalTime = Annotated[
    datetime,
    BeforeValidator(_local_time_text),
    WithJsonSchema({"type": "string", "pattern": LOCAL_TIME_PATTERN}),
]


M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Choice(_Strict):
    institution: InstitutionCode
    majors: list[MajorCode] = Field(
        min_length=1, max_length=MAX_MAJORS, json_schema_extra={"uniqueItems": True}
    )
    accept_adjustment: bool = False


class FormBody(_Strict):
    choices: list[Choice] = Field(min_length=1, max_length=MAX_CHOICES)


class SubmitBody(_Strict):
    """``POST .../forms/{batch}/submit``: the version the candidate reviewed."""

    version: Integer = Field(gt=0)


class CandidateLogin(_Strict):
    candidate_id: Annotated[str, StringConstraints(pattern=CANDIDATE_ID_PATTERN)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class StaffLogin(_Strict):
    username: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class MajorBody(_Strict):
    code: MajorCode
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class InstitutionBody(_Strict):
    """``PUT /api/v1/admin/catalogue/institutions/{code}``: replaces the institution."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    majors: list[MajorBody] = Field(max_length=500)


class ControlLine(_Strict):
    category: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    min_score: float = Field(ge=0, le=1000)


class BatchBody(_Strict):
    """``PUT /api/v1/admin/catalogue/batches/{code}``: filing window (local time, ISO 8601)
    and control lines; replaces the batch."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    # JSON has no datetime type: these two are ISO 8601 local-time strings (the model is strict).
    opens_at: LocalTime = Field(strict=False)
    closes_at: LocalTime = Field(strict=False)
    control_lines: list[ControlLine] = Field(default_factory=list, max_length=50)
    # False: a submitted form can no longer be changed, even while the window is open.
    changes_after_submit: bool = True


class Problem(ValueError):
    """A body that does not match its schema; ``problems`` lists ``{"path", "message"}``."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['path']}: {p['message']}" for p in problems))
        self.problems = problems


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise Problem(
            [{"path": _path(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
        ) from None


_CHOICES = TypeAdapter(list[Choice])


def choices_json(form: FormBody) -> bytes:
    """The form's choices as compact JSON, straight from pydantic's serializer (a third of
    the CPU of dumping them to dicts and encoding those)."""
    return _CHOICES.dump_json(form.choices)


def parse_form(data: Any) -> FormBody:
    """Validate a save body, including rules across choices."""
    return _across_choices(_parse(FormBody, data))


def parse_form_json(raw: bytes) -> FormBody | None:
    """A save body validated straight from its bytes by pydantic's own JSON parser (no
    Python objects in between). None when the bytes are not a valid
    form at all: the caller then parses them with :func:`parse_form` for the exact error
    (malformed JSON, or field paths). Rules across choices raise :class:`Problem`."""
    try:
        form = FormBody.model_validate_json(raw)
    except PydanticValidationError:
        return None
    return _across_choices(form)


def _across_choices(form: FormBody) -> FormBody:
    problems: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, choice in enumerate(form.choices):
        if choice.institution in seen:
            problems.append(
                {"path": f"choices[{i}].institution", "message": "duplicate institution"}
            )
        seen.add(choice.institution)
        if len(set(choice.majors)) != len(choice.majors):
            problems.append({"path": f"choices[{i}].majors", "message": "duplicate major"})
    if problems:
        raise Problem(problems)
    return form


def parse_submit(data: Any) -> SubmitBody:
    return _parse(SubmitBody, data)


def parse_login(data: Any) -> CandidateLogin | StaffLogin:
    """Staff send ``username``, candidates ``candidate_id``; errors name the fields of the
    kind the body looks like (a candidate's when unsure)."""
    if isinstance(data, dict) and "username" in data:
        return _parse(StaffLogin, data)
    return _parse(CandidateLogin, data)


def parse_institution(data: Any) -> InstitutionBody:
    body = _parse(InstitutionBody, data)
    codes = [m.code for m in body.majors]
    dups = sorted({c for c in codes if codes.count(c) > 1})
    if dups:
        raise Problem([{"path": "majors", "message": f"duplicate major codes {dups}"}])
    return body


def parse_batch(data: Any) -> BatchBody:
    body = _parse(BatchBody, data)
    problems = []
    if body.closes_at <= body.opens_at:
        problems.append({"path": "closes_at", "message": "must be after opens_at"})
    categories = [c.category for c in body.control_lines]
    if len(set(categories)) != len(categories):
        problems.append({"path": "control_lines", "message": "duplicate category"})
    if problems:
        raise Problem(problems)
    return body
