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
from service.http import urls

T = TypeVar("T")
_TIMEOUT = aiohttp.ClientTimeout(total=30)
_CONCURRENCY = 16


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


async def _check(resp: aiohttp.ClientResponse, what: str) -> Any:
    if resp.status != 200:
        raise PrepError(f"{what}: HTTP {resp.status}: {(await resp.text())[:300]}")
    return await resp.json()


async def login_all(
    base: str, ids: Sequence[str], password: str, progress: Callable[[int], object]
) -> list[Session]:
    async with aiohttp.ClientSession(base, timeout=_TIMEOUT) as http:

        async def login(cid: str) -> Session:
            body = {"candidate_id": cid, "password": password}
            async with http.post(urls.LOGIN, json=body) as resp:
                data = await _check(resp, f"login {cid}")
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
            async with http.put(url, json=body, headers=s.headers) as resp:
                await _check(resp, f"save {s.candidate_id}")

        await _each(sessions, save, progress)


async def versions(base: str, sessions: Sequence[Session], batch: str) -> dict[str, int]:
    """The version of each candidate's form as the API serves it (from Redis)."""
    async with aiohttp.ClientSession(base, timeout=_TIMEOUT) as http:

        async def read(s: Session) -> tuple[str, int | None]:
            url = urls.FORM.format(candidate_id=s.candidate_id, batch=batch)
            async with http.get(url, headers=s.headers) as resp:
                if resp.status == 404:
                    return s.candidate_id, None
                return s.candidate_id, int((await _check(resp, f"read {url}"))["version"])

        pairs = await _each(sessions, read, lambda _: None)
    return {cid: v for cid, v in pairs if v is not None}


async def catalogue(base: str, session: Session, limit: int) -> Catalogue | None:
    """Up to ``limit`` published institutions with their majors, or None when the deployment
    has no catalogue routes (then any well-formed codes are accepted)."""
    path = urls.CATALOGUE_INSTITUTIONS
    async with aiohttp.ClientSession(base, timeout=_TIMEOUT, headers=session.headers) as http:
        async with http.get(path) as resp:
            if resp.status == 404:
                return None
            listed = (await _check(resp, "list institutions"))["institutions"][:limit]

        async def majors(item: dict[str, Any]) -> tuple[str, list[str]]:
            async with http.get(f"{path}/{item['code']}") as resp:
                data = await _check(resp, f"institution {item['code']}")
            return item["code"], [m["code"] for m in data["majors"]]

        found = await _each(listed, majors, lambda _: None)
    if not any(m for _, m in found):
        raise PrepError("the catalogue has no institution with majors: publish it first")
    return found


async def probe(base: str, path: str) -> int:
    """The status of one unauthenticated request (to check a route exists)."""
    async with aiohttp.ClientSession(base, timeout=_TIMEOUT) as http, http.put(path) as resp:
        return resp.status
