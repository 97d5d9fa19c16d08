"""The one exception tree; the HTTP middleware maps it to status codes and JSON bodies."""

from __future__ import annotations

from typing import Any, ClassVar


class VolregError(Exception):
    """Something went wrong."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        self.details = details

    @property
    def message(self) -> str:
        return str(self)


class BadRequest(VolregError):
    """The request body is not valid JSON."""

    status = 400
    code = "bad_request"


class Unauthorized(VolregError):
    """Missing, invalid or expired credentials."""

    status = 401
    code = "unauthorized"


class Forbidden(VolregError):
    """This account may not reach that record."""

    status = 403
    code = "forbidden"


class NotFound(VolregError):
    """No such record."""

    status = 404
    code = "not_found"


class Conflict(VolregError):
    """The request conflicts with the current state."""

    status = 409
    code = "conflict"


class WindowClosed(Conflict):
    """The filing window of this batch is not open."""

    code = "window_closed"


class StaleVersion(Conflict):
    """The form changed since the version given; review it again."""

    code = "stale_version"


class FormSubmitted(Conflict):
    """This form was submitted and its batch allows no more changes."""

    code = "form_submitted"


class RequestTimeout(VolregError):
    """The request body did not arrive in time."""

    status = 408
    code = "request_timeout"


class PayloadTooLarge(VolregError):
    """The request body is larger than allowed."""

    status = 413
    code = "payload_too_large"


class UnsupportedEncoding(VolregError):
    """The request body's Content-Encoding is not supported (use gzip, deflate or none)."""

    status = 415
    code = "unsupported_encoding"


class ValidationFailed(VolregError):
    """The request does not match the schema."""

    status = 422
    code = "validation_failed"


class TooManyRequests(VolregError):
    """Too many failed attempts; wait before trying again."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str | None = None, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(VolregError):
    """A dependency is unavailable; retry later."""

    status = 503
    code = "unavailable"


class LoginBusy(Unavailable):
    """Too many logins are being checked right now; retry in a moment."""

    code = "login_busy"

    def __init__(self, message: str | None = None, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        # None: the service's usual Retry-After.
        self.retry_after_s = retry_after_s


class RequestInProgress(Unavailable):
    """A request with this Idempotency-Key is in progress; retry it after Retry-After."""

    code = "idempotency_in_progress"


class StoreUnavailable(Unavailable):
    """Redis is unavailable; retry later."""

    code = "redis_unavailable"


class BrokerUnavailable(Unavailable):
    """The message broker is unavailable or did not confirm; retry later."""

    code = "broker_unavailable"


class PublishUncertain(BrokerUnavailable):
    """No broker confirm in time: the save may yet apply; retry with the same Idempotency-Key."""

    code = "broker_unconfirmed"


class DatabaseUnavailable(Unavailable):
    """The database is unavailable; retry later."""

    code = "database_unavailable"


class VersionAhead(Unavailable):
    """This form's next version would be far ahead of the clock (a clock stepped back, or a
    corrupt stored version); saving it is refused until an operator looks at it."""

    code = "version_out_of_range"


class PoisonMessage(VolregError):
    """A broker message that can never be applied."""


class RecordRejected(VolregError):
    """MySQL refused these rows for a reason retrying will not fix."""
