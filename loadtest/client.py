"""Talking to the deployment before and after a measured run: log in candidates, seed their
forms, read back the versions they hold. None of this is inside a measured window."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from loadtest.bodies import Catalogue
from schemas import urls

T = TypeVar("T")
_TIMEOUT = aiohttp.ClientTimeout(total=30)
_CONCURRENCY = 16
_ATTEMPTS = 5
_RETRY_WAIT_MAX_S = 2.0


class PrepError(RuntimeError):
    """The deployment refused or failed a preparation step."""


@dataclass(frozen=True, slots=True)
class Session:
    candidate_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def read_candidate_ids(path: Path, count: int) -> list[str]:
    """The first ``count`` candidate IDs of a `volreg gen-data` CSV."""
    if not path.exists():
        raise PrepError(
            f"{path} not found: run `make up` (it writes the demo candidates) or "
            "`volreg gen-data --out FILE` and `volreg import FILE`, then pass --candidates-csv"
        )
    with path.open(encoding="utf-8", newline="") as f:
        ids = []
        for row in csv.DictReader(f):
            ids.append(row["candidate_id"])
            if len(ids) >= count:
                break
    if not ids:
        raise PrepError(f"{path} holds no candidates")
    return ids


async def _each(
    items: Sequence[T], work: Callable[[T], Awaitable[Any]], progress: Callable[[int], object]
) -> list[Any]:
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(item: T) -> Any:
        async with gate:
            result = await work(item)
        progress(1)
        return result

    return list(await asyncio.gather(*(one(i) for i in items)))


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, what: str, **kwargs: Any
) -> Any:
    """The JSON of a 200 answer; None for a 404. A 503 (overloaded, or a dependency briefly
    away) is retried after its Retry-After, as the API asks clients to."""
    attempt = 1
    while True:
        async with http.request(method, url, **kwargs) as resp:
            if resp.status == 200:
                return await resp.json()
            if resp.status == 404:
                return None
            if resp.status != 503 or attempt >= _ATTEMPTS:
                raise PrepError(f"{what}: HTTP {resp.status}: {(await resp.text())[:300]}")
            wait = float(resp.headers.get("Retry-After", "1"))
        await asyncio.sleep(min(wait, _RETRY_WAIT_MAX_S))
        attempt += 1


async def _required(
    http: aiohttp.ClientSession, method: str, url: str, what: str, **kwargs: Any
) -> Any:
    data = await _call(http, method, url, what, **kwargs)
    if data is None:
        raise PrepError(f"{what}: HTTP 404")
    return data


async def login_all(
    base: str, ids: Sequence[str], password: str, progress: Callable[[int], object]
) -> list[Session]:
    async with aiohttp.ClientSession(base, timeout=_TIMEOUT) as http:

        async def login(cid: str) -> Session:
            body = {"candidate_id": cid, "password": password}
            data = await _required(http, "POST", urls.LOGIN, f"login {cid}", json=body)
            return Session(cid, data["token"])

        return await _each(ids, login, progress)


async def save_all(
    base: str,
    sessions: Sequence[Session],
    batch: str,
    body: dict[str, Any],
    progress: Callable[[int], object],
) -> None:
    """One save per candidate, so reading their form is never a 404."""
    async with aiohttp.ClientSession(base, timeout=_TIMEOUT) as http:

        async def save(s: Session) -> None:
            url = urls.FORM.format(candidate_id=s.candidate_id, batch=batch)
            what = f"save {s.candidate_id}"
            await _required(http, "PUT", url, what, json=body, headers=s.headers)

        await _each(sessions, save, progress)


async def versions(base: str, sessions: Sequence[Session], batch: str) -> dict[str, int]:
    """The version of each candidate's form as the API serves it (from Redis)."""
    async with aiohttp.ClientSession(base, timeout=_TIMEOUT) as http:

        async def read(s: Session) -> tuple[str, int | None]:
            url = urls.FORM.format(candidate_id=s.candidate_id, batch=batch)
            data = await _call(http, "GET", url, f"read {url}", headers=s.headers)
            return s.candidate_id, None if data is None else int(data["version"])

        pairs = await _each(sessions, read, lambda _: None)
    return {cid: v for cid, v in pairs if v is not None}


async def catalogue(base: str, session: Session, limit: int) -> Catalogue | None:
    """Up to ``limit`` published institutions with their majors, or None when the deployment
    has no catalogue routes (then any well-formed codes are accepted)."""
    path = urls.CATALOGUE_INSTITUTIONS
    async with aiohttp.ClientSession(base, timeout=_TIMEOUT, headers=session.headers) as http:
        listed = await _call(http, "GET", path, "list institutions")
        if listed is None:
            return None

        async def majors(item: dict[str, Any]) -> tuple[str, list[str]]:
            url = f"{path}/{item['code']}"
            data = await _required(http, "GET", url, f"institution {item['code']}")
            return item["code"], [m["code"] for m in data["majors"]]

        found = await _each(listed["institutions"][:limit], majors, lambda _: None)
    if not any(m for _, m in found):
        raise PrepError("the catalogue has no institution with majors: publish it first")
    return found


async def probe(base: str, path: str) -> int:
    """The status of one unauthenticated request (to check a route exists)."""
    async with aiohttp.ClientSession(base, timeout=_TIMEOUT) as http, http.put(path) as resp:
        return resp.status
