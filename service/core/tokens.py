"""Signed, expiring bearer tokens: ``base64url(claims).kid.base64url(HMAC-SHA256)``.

``kid`` names the key that signed the token, so several keys can verify while a secret is
rotated: new tokens are signed with the current key, older ones stay valid until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

# The one role that is not a staff account (candidates and staff keep separate token
# generations, service.core.revocation).
ROLE_CANDIDATE = "candidate"


class BadToken(ValueError):
    """The token is malformed, forged or expired."""


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    role: str
    expires_at: int  # unix seconds
    school: str = ""  # a teacher's school code
    generation: int = 0  # the account's token generation when issued (revocation)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(key: bytes) -> str:
    """A short public name of a key; it reveals nothing usable about the key."""
    return _b64(hashlib.sha256(b"volreg-token-kid:" + key).digest()[:6])


# Tokens verified recently, so a candidate's next requests skip the HMAC and the decode (the
# expiry is still checked every time; revocation is checked by the caller). Cleared when
# full: a bound, not an LRU.
_VERIFIED_MAX = 16_384


class TokenSigner:
    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()
        self._kid = key_id(self._key)
        keys = [hashlib.sha256(s.encode()).digest() for s in previous]
        self._keys = {key_id(k): k for k in keys} | {self._kid: self._key}
        self._verified: dict[str, Claims] = {}

    def _sign(self, body: str) -> str:
        return f"{self._kid}.{self._mac(self._key, body)}"

    @staticmethod
    def _mac(key: bytes, body: str) -> str:
        # One-shot hmac.digest runs in C: a few times cheaper than an HMAC object per token.
        return _b64(hmac.digest(key, body.encode(), "sha256"))

    def issue(self, claims: Claims) -> str:
        data: dict[str, object] = {"sub": claims.subject, "role": claims.role}
        data["exp"] = claims.expires_at
        if claims.school:
            data["sch"] = claims.school
        if claims.generation:
            data["gen"] = claims.generation
        body = _b64(orjson.dumps(data))
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str, now: float) -> Claims:
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check(token)
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.clear()
            self._verified[token] = claims
        if claims.expires_at <= now:
            raise BadToken("token expired")
        return claims

    def _check(self, token: str) -> Claims:
        """Signature and contents (not the expiry)."""
        if not token.isascii():
            raise BadToken("invalid token")
        body, _, signed = token.partition(".")
        kid, _, mac = signed.partition(".")
        key = self._keys.get(kid)
        if not body or key is None or not hmac.compare_digest(mac, self._mac(key, body)):
            raise BadToken("invalid token")
        try:
            data = orjson.loads(_unb64(body))
            claims = Claims(
                str(data["sub"]),
                str(data["role"]),
                int(data["exp"]),
                str(data.get("sch", "")),
                int(data.get("gen", 0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BadToken("invalid token") from exc
        return claims
