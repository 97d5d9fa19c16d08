"""The token signing keys: refuses weak or placeholder secrets outside development mode."""

from __future__ import annotations

import hmac
import logging

from service.core.settings import Settings

log = logging.getLogger(__name__)

MIN_SECRET_BYTES = 32
# Values published in this repository (the development default, the manifests' placeholders)
# or guessed first: whoever knows the secret can mint admin tokens.
_DEV_DEFAULT = Settings().token_secret
_PLACEHOLDER_PREFIXES = ("replace-me", "replace_me", "changeme", "change-me", "xxx")
_PLACEHOLDER_WORDS = ("change-me", "changeme", "replace-me", "placeholder", "example")


class WeakSecret(ValueError):
    """A token secret that must not sign tokens outside development mode."""


def secret_problem(name: str, value: str) -> str | None:
    """Why ``value`` is no acceptable secret for the variable ``name`` (None: it is)."""
    lowered = value.strip().lower()
    if not value or value == _DEV_DEFAULT:
        return f"{name} is not set (the development default is public)"
    if lowered.startswith(_PLACEHOLDER_PREFIXES) or any(w in lowered for w in _PLACEHOLDER_WORDS):
        return f"{name} is a placeholder; put a random value of its own there"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"{name} is shorter than {MIN_SECRET_BYTES} bytes"
    if len(set(value)) < 8:
        return f"{name} repeats too few characters to be random"
    return None


def is_metrics_token(header: str, token: str) -> bool:
    """``Authorization: Bearer <VOLREG_METRICS_TOKEN>`` (compared in constant time)."""
    scheme, _, value = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)


def previous_secrets(settings: Settings) -> list[str]:
    """The older secrets still accepted for verification while a secret is rotated."""
    return [s.strip() for s in settings.token_previous_secrets.split(",") if s.strip()]


def check_token_secrets(settings: Settings) -> None:
    """Outside development mode (``VOLREG_DEV_MODE=1``, which `make up`/`make test` write
    into var/volreg.env) a weak secret raises WeakSecret; in it, it is logged as a warning."""
    previous = previous_secrets(settings)
    problems = [secret_problem("VOLREG_TOKEN_SECRET", settings.token_secret)]
    problems += [secret_problem("VOLREG_TOKEN_PREVIOUS_SECRETS", s) for s in previous]
    if settings.metrics_token:
        problems.append(secret_problem("VOLREG_METRICS_TOKEN", settings.metrics_token))
    found = [p for p in problems if p]
    if found and not settings.dev_mode:
        raise WeakSecret(
            "; ".join(found) + ". Generate one with `openssl rand -hex 32` "
            "(VOLREG_DEV_MODE=1 accepts weak secrets, for development only)"
        )
    for problem in found:
        log.warning("development mode: %s", problem)
