"""Reading a process's Prometheus /metrics: the counters a report takes differences of."""

from __future__ import annotations

import logging

import aiohttp

log = logging.getLogger(__name__)
_TIMEOUT = aiohttp.ClientTimeout(total=5)


def parse(text: str) -> dict[str, float]:
    """``name{labels}`` → value for every sample line of the text format."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            samples[name] = float(value)
        except ValueError:
            continue
    return samples


async def samples(url: str | None, token: str | None = None) -> dict[str, float]:
    """The samples at ``url`` (empty when there is none or it does not answer); ``token`` is
    the target's ``VOLREG_METRICS_TOKEN`` (the API's /metrics wants it, or an admin's)."""
    if url is None:
        return {}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=_TIMEOUT) as http,
            http.get(url, headers=headers) as resp,
        ):
            if resp.status != 200:
                return {}
            return parse(await resp.text())
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("metrics at %s not read: %s", url, exc)
        return {}


def delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)
