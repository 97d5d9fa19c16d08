"""The versioned form record: what a save produces, a message carries, Redis and MySQL store."""

from __future__ import annotations

from dataclasses import dataclass, field

STATUS_SAVED = "saved"
STATUS_SUBMITTED = "submitted"


@dataclass(frozen=True, slots=True)
class FormKey:
    candidate_id: str
    batch: str


@dataclass(frozen=True, slots=True)
class Origin:
    """Who sent a save and from where: what the save history keeps besides the form."""

    client: str
    request_id: str
    subject: str
    role: str


@dataclass(frozen=True, slots=True)
class FormRecord:
    """One version of a form. ``payload`` is the gzip-compressed JSON list of choices."""

    candidate_id: str
    batch: str
    version: int
    updated_us: int
    status: str
    payload: bytes
    # Carried by the message to the save history; not part of the form's identity.
    origin: Origin | None = field(default=None, compare=False)

    @property
    def key(self) -> FormKey:
        return FormKey(self.candidate_id, self.batch)
