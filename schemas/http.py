"""HTTP request bodies and their validation; errors name paths like ``choices[2].majors[0]``."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError

MAX_CHOICES = 96
MAX_MAJORS = 6

InstitutionCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]
MajorCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}[A-Z]?$")]


M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Choice(_Strict):
    institution: InstitutionCode
    majors: list[MajorCode] = Field(min_length=1, max_length=MAX_MAJORS)
    accept_adjustment: bool = False


class FormBody(_Strict):
    choices: list[Choice] = Field(min_length=1, max_length=MAX_CHOICES)


class CandidateLogin(_Strict):
    candidate_id: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


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


def parse_form(data: Any) -> FormBody:
    """Validate a save body, including rules across choices."""
    form = _parse(FormBody, data)
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


def parse_login(data: Any) -> CandidateLogin:
    return _parse(CandidateLogin, data)
