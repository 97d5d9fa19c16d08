"""The chaos harness's clients: many concurrent candidates saving their forms through the
real API, and the ledger of every save attempted and every save acknowledged (2xx)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from schemas import urls
from schemas.records import FormKey
from service.accounts.login import ROLE_ADMIN, ROLE_CANDIDATE
from service.core import codec
from service.core.ids import make_id
from service.core.tokens import Claims, TokenSigner

BATCH = "chaos-1"
_REQUEST_TIMEOUT_S = 15.0
_FAILURE_PAUSE_S = 0.1


def form_keys(count: int) -> list[FormKey]:
    """``count`` distinct candidates (valid IDs spread over the shards), one form each."""
    keys: list[FormKey] = []
    for n in range(count):
        day = 1 + n % 28
        keys.append(FormKey(make_id(440106, f"200703{day:02d}", n // 28), BATCH))
    return keys


# A small catalogue: six institutions offering ten majors each. A save's six choices pick one
# major per institution, one decimal digit of its salt each.
INSTITUTIONS = [f"{10001 + i:05d}" for i in range(6)]
_MAX_SALT = 10 ** len(INSTITUTIONS)


def _major(digit: int) -> str:
    return f"08090{digit}"


def choices_for(form: int, salt: int) -> list[dict[str, Any]]:
    """A form's content names its save: ``salt`` is unique per attempt, so any stored copy
    tells which save it came from."""
    digits = f"{salt % _MAX_SALT:0{len(INSTITUTIONS)}d}"
    return [
        {"institution": code, "majors": [_major(int(d))], "accept_adjustment": (form + i) % 2 == 0}
        for i, (code, d) in enumerate(zip(INSTITUTIONS, digits, strict=True))
    ]


def salt_of(payload: bytes) -> int:
    return salt_of_choices(codec.unpack(payload))


def salt_of_choices(choices: Any) -> int:
    """Which attempt a stored form came from (the inverse of ``choices_for``)."""
    return int("".join(c["majors"][0][-1] for c in choices))


async def publish_catalogue(base: str, secret: str) -> None:
    """The institutions and the batch the saves name, through the admin API."""
    token = TokenSigner(secret).issue(Claims("chaos-admin", ROLE_ADMIN, int(time.time()) + 3600))
    now = datetime.now()
    timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(
        timeout=timeout, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        for code in INSTITUTIONS:
            body = {
                "name": f"Institution {code}",
                "majors": [{"code": _major(d), "name": f"Major {d}"} for d in range(10)],
            }
            async with http.put(base + urls.ADMIN_INSTITUTION.format(code=code), json=body) as r:
                if r.status >= 300:
                    raise RuntimeError(f"publishing institution {code}: {await r.text()}")
        batch = {
            "name": "Chaos",
            "opens_at": (now - timedelta(days=1)).isoformat(),
            "closes_at": (now + timedelta(days=7)).isoformat(),
        }
        async with http.put(base + urls.ADMIN_BATCH.format(batch=BATCH), json=batch) as r:
            if r.status >= 300:
                raise RuntimeError(f"publishing batch {BATCH}: {await r.text()}")


@dataclass(slots=True)
class Ack:
    form: int
    version: int
    salt: int


@dataclass(slots=True)
class Ledger:
    acked: list[Ack] = field(default_factory=list)
    attempted: dict[int, set[int]] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)
    requests: int = 0

    def attempt(self, form: int, salt: int) -> None:
        self.requests += 1
        self.attempted.setdefault(form, set()).add(salt)


class Load:
    """``clients`` tasks; each owns a slice of the forms and saves them one after another,
    so the versions acknowledged for one form must strictly increase.

    A round may pause forms (no client touches them until resumed) and may *hold* the forms
    acknowledged while a fault is injected: each such form is paused at its acknowledgement, so
    that save stays the form's newest one and the verdict sees whether it survived the fault
    (a later save of the form would supersede, and so hide, its loss)."""

    def __init__(
        self,
        bases: list[str],
        keys: list[FormKey],
        secret: str,
        clients: int,
        think_s: float,
        seed: int,
    ) -> None:
        self._bases = bases
        self._keys = keys
        self._clients = clients
        self._think_s = think_s
        self._rng = random.Random(seed)
        self._salts = itertools.count(1)
        signer = TokenSigner(secret)
        expires = int(time.time()) + 24 * 3600
        self._auth = [
            {
                "Authorization": "Bearer "
                + signer.issue(Claims(k.candidate_id, ROLE_CANDIDATE, expires))
            }
            for k in keys
        ]
        self.ledger = Ledger()
        self.paused: set[int] = set()
        self.held: set[int] = set()  # forms paused by hold_acks, this round
        self.held_failed: set[int] = set()  # of which paused after a failed save
        self.in_flight: set[int] = set()
        self._hold_limit = 0
        self._landed = asyncio.Condition()  # notified whenever a save finishes

    def hold_acks(self, limit: int) -> None:
        """From now on pause each form acknowledged, up to ``limit`` forms in all, and each
        form whose save failed, up to as many again (a failed save may still land: a confirm
        that came too late; its form must then end with that attempt or the acknowledged
        one before it)."""
        self._hold_limit = limit

    def stop_holding(self) -> None:
        self._hold_limit = 0

    def resume_all(self) -> None:
        self.paused.clear()
        self.held.clear()
        self.held_failed.clear()
        self._hold_limit = 0

    async def settle(self, forms: set[int], timeout_s: float = _REQUEST_TIMEOUT_S + 5) -> None:
        """Until no save of ``forms`` is in flight (they were just paused)."""
        async with asyncio.timeout(timeout_s), self._landed:
            await self._landed.wait_for(lambda: not self.in_flight & forms)

    def _session(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT_S)
        connector = aiohttp.TCPConnector(limit=self._clients * 2)
        return aiohttp.ClientSession(timeout=timeout, connector=connector)

    async def save_once(self, form: int) -> bool:
        """One save of ``form`` outside the running load (recorded in the ledger)."""
        async with self._session() as http:
            return await self._save(http, self._bases[0], form)

    async def read(self, form: int) -> tuple[int, int] | str:
        """The form as the API serves it: (version, salt), or what went wrong."""
        key = self._keys[form]
        url = self._bases[0] + urls.FORM.format(candidate_id=key.candidate_id, batch=key.batch)
        try:
            async with self._session() as http, http.get(url, headers=self._auth[form]) as resp:
                if resp.status != 200:
                    return f"{resp.status} {(await resp.text())[:200]}"
                body = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__
        return int(body["version"]), salt_of_choices(body["choices"])

    async def run(self, stop: asyncio.Event) -> None:
        async with self._session() as http, asyncio.TaskGroup() as group:
            for i in range(self._clients):
                group.create_task(self._client(i, http, stop), name=f"chaos-client-{i}")

    async def _client(self, index: int, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        owned = list(range(index, len(self._keys), self._clients))
        if not owned:
            return
        turn = index
        while not stop.is_set():
            free = [f for f in owned if f not in self.paused]
            if not free:
                await asyncio.sleep(_FAILURE_PAUSE_S)
                continue
            form = self._rng.choice(free)
            self.in_flight.add(form)
            try:
                ok = await self._save(http, self._bases[turn % len(self._bases)], form)
                if not ok and len(self.held_failed) < self._hold_limit:
                    self.held_failed.add(form)
                    self.held.add(form)
                    self.paused.add(form)
            finally:
                self.in_flight.discard(form)
                async with self._landed:
                    self._landed.notify_all()
            if not ok:
                turn += 1  # that API process may be down: try the other one next
            await asyncio.sleep(self._think_s if ok else _FAILURE_PAUSE_S)

    async def _save(self, http: aiohttp.ClientSession, base: str, form: int) -> bool:
        key = self._keys[form]
        salt = next(self._salts)
        self.ledger.attempt(form, salt)
        url = base + urls.FORM.format(candidate_id=key.candidate_id, batch=key.batch)
        try:
            async with http.put(
                url, json={"choices": choices_for(form, salt)}, headers=self._auth[form]
            ) as resp:
                body = await resp.json(content_type=None)
                if resp.status == 200:
                    self.ledger.acked.append(Ack(form, int(body["version"]), salt))
                    if len(self.held - self.held_failed) < self._hold_limit:
                        self.held.add(form)
                        self.paused.add(form)
                    return True
                code = body.get("error", {}).get("code", "") if isinstance(body, dict) else ""
                self.ledger.failures[f"{resp.status} {code}".strip()] += 1
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.ledger.failures[type(exc).__name__] += 1
        return False
