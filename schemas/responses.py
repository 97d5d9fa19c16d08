"""HTTP response bodies as pydantic models: the OpenAPI document's response schemas are
generated from them (``service.http.openapi``), and the tests validate what the handlers send
against them (tests/integration/test_responses.py, and schemathesis against a running API).
The handlers keep writing their bodies with orjson: building and validating a model per
request would add CPU to the save and read path for a check the tests already make (the
README's API documentation section has the figures)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.http import LOCAL_TIME_PATTERN, Choice

Role = Literal["candidate", "teacher", "admin"]
FormStatus = Literal["saved", "submitted"]


class _Body(BaseModel):
    # A field the model does not name is a drift between handler and document.
    model_config = ConfigDict(extra="forbid")


class LoginResult(_Body):
    token: str = Field(description="Send as `Bearer <token>`.")
    expires_at: datetime
    role: Role


class LoggedOut(_Body):
    status: Literal["logged_out"]


class Exam(_Body):
    total_score: float
    rank: int = Field(ge=1)
    subjects: dict[str, float] = Field(description="Score per subject.")


class Form(_Body):
    choices: list[Choice]
    version: int = Field(description="Grows with every save.")
    updated_at: datetime
    status: FormStatus


class Saved(_Body):
    version: int
    updated_at: datetime


class Submitted(_Body):
    version: int
    updated_at: datetime
    status: FormStatus


class Health(_Body):
    status: Literal["ok"]


class Readiness(_Body):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(
        description="/health/deps: per dependency `ok` or `down: <reason>`; /health/ready: "
        "`process` (`serving`, `draining`) and per connection `established`, `connecting`, "
        "`reconnecting` or `failed: <reason>`."
    )


class FieldProblem(_Body):
    path: str = Field(
        description="Like `choices[1].majors[0]`, `path.batch`, `header.Idempotency-Key`, or "
        "`$` for the whole body."
    )
    message: str


class ErrorDetail(_Body):
    code: str
    message: str
    details: list[FieldProblem] | dict[str, Any] | None = Field(
        default=None, description="For `validation_failed`: the fields at fault."
    )


class Error(_Body):
    error: ErrorDetail


# --- catalogue ------------------------------------------------------------------------------


class InstitutionEntry(_Body):
    code: str
    name: str


class Institutions(_Body):
    institutions: list[InstitutionEntry]


class MajorEntry(_Body):
    code: str
    name: str


class Institution(_Body):
    code: str
    name: str
    majors: list[MajorEntry]


class ControlLineEntry(_Body):
    category: str
    min_score: float


class BatchEntry(_Body):
    code: str
    name: str
    opens_at: str = Field(pattern=LOCAL_TIME_PATTERN, description="Local time.")
    closes_at: str = Field(pattern=LOCAL_TIME_PATTERN, description="Local time.")
    control_lines: list[ControlLineEntry]
    changes_after_submit: bool


class Batches(_Body):
    batches: list[BatchEntry]


class InstitutionPublished(_Body):
    institution: str
    redis_refreshed: bool = Field(description="The Redis copy was rewritten.")
    broadcast: bool = Field(description="Every API process was told to drop its copy.")


class BatchPublished(_Body):
    batch: str
    redis_refreshed: bool = Field(description="The Redis copy was rewritten.")
    broadcast: bool = Field(description="Every API process was told to drop its copy.")


# --- imports --------------------------------------------------------------------------------


class Rejection(_Body):
    line: int
    reason: str


class ImportJob(_Body):
    job: str
    kind: str
    source: str
    state: str
    phase: str
    rows_read: int
    imported: int
    rejected: int
    byte_offset: int
    input_bytes: int
    total_bytes: int | None
    resumed_from: int
    runs: int
    read_rate_rows_per_s: float
    load_rate_rows_per_s: float
    eta_s: float | None
    error: str | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    rejections: list[Rejection]
    rejections_after: int | None = Field(description="`after` for the next 100 rejections.")


# --- schools, progress, history -------------------------------------------------------------


class SchoolForm(_Body):
    status: FormStatus
    version: int
    updated_at: datetime


class SchoolCandidate(_Body):
    candidate_id: str
    name: str
    forms: dict[str, SchoolForm] = Field(description="Per batch code.")


class SchoolCandidates(_Body):
    school: str
    candidates: list[SchoolCandidate]
    next_cursor: str | None


class Counts(_Body):
    candidates: int
    none: int
    saved: int
    submitted: int


class SchoolCounts(Counts):
    school: str


class ProvinceProgress(_Body):
    batch: str
    province: Counts
    schools: list[SchoolCounts]


class SchoolProgress(Counts):
    batch: str
    school: str


class HistoryEntry(_Body):
    version: int
    saved_at: datetime
    recorded_at: datetime | None
    status: FormStatus
    choices: list[Choice]
    client: str
    request_id: str
    subject: str
    role: str


class History(_Body):
    candidate_id: str
    batch: str
    entries: list[HistoryEntry]
    next_cursor: str | None


# --- admin: hot items, pipeline -------------------------------------------------------------


class HotEntry(_Body):
    item: str
    count: int


class HotLists(_Body):
    first_choice: list[HotEntry]
    any_position: list[HotEntry]


class HotItems(_Body):
    batch: str
    window: str
    institutions: HotLists
    majors: HotLists = Field(description="Items are `institution/major`.")
    read_keys: list[HotEntry]


class Pipeline(_Body):
    queues: dict[str, int] | None = Field(description="Messages waiting per form queue.")
    waiting: int | None
    dead_letters: int | None
    hot_events_waiting: int | None
    last_reconcile: dict[str, Any] | None
    errors: dict[str, str] = Field(description="Why a part is null, by server.")


# Every model the document lists under components/schemas, by its name there.
MODELS: tuple[type[BaseModel], ...] = (
    LoginResult,
    LoggedOut,
    Exam,
    Form,
    Saved,
    Submitted,
    Health,
    Readiness,
    Error,
    Institutions,
    Institution,
    Batches,
    InstitutionPublished,
    BatchPublished,
    ImportJob,
    SchoolCandidates,
    ProvinceProgress,
    SchoolProgress,
    History,
    HotItems,
    Pipeline,
)
