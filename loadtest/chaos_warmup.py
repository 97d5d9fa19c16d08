"""``volreg chaos --warmup-bench N``: the warm-up figure. Loads N forms into a private
MariaDB, then times ``warm_up`` into an empty private Redis (as after Redis lost its data).
Both servers are the harness's own, so the measurement touches no shared data."""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from loadtest.chaos_load import choices_for, form_keys
from loadtest.chaos_report import machine
from loadtest.cluster_local import LocalCluster
from reconciler.mysql_archive import open_archive
from reconciler.redis_index import open_index
from reconciler.warmup import warm_up
from schemas.records import STATUS_SAVED, FormRecord
from service.core import codec
from service.core.names import names_of
from service.core.settings import Settings
from service.storage.mysql_migrate import migrate

_SEED_BATCH = 5000


async def bench(forms: int, keep: bool) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="volreg-warmup-"))
    cluster = LocalCluster(root, buffer_pool_mb=1024)
    try:
        print(f"warmup-bench: private Redis and MariaDB under {root}", file=sys.stderr)
        await cluster.start(with_broker=False)
        settings = Settings(
            redis_url=cluster.redis.url,
            mysql_dsn=cluster.mariadb.dsn("volreg_bench"),
            token_secret=secrets.token_hex(16),
            key_prefix="bench",
            mysql_timeout_s=60.0,
            redis_timeout_s=30.0,
        )
        await migrate(settings)
        seed_s = await _seed(settings, forms)
        async with open_archive(settings) as db, open_index(settings, names_of(settings)) as r:
            with tqdm(total=forms, desc="warmup", unit="form", file=sys.stderr) as bar:
                report = await warm_up(db, r, settings.warmup_batch, bar.update)
            used = await r.client.info("memory")
        result: dict[str, Any] = {
            "forms": report.forms,
            "written": report.applied,
            "warmup_s": round(report.seconds, 2),
            "forms_per_s": round(report.per_second),
            "seed_s": round(seed_s, 1),
            "redis_used_memory_mb": round(int(used["used_memory"]) / 2**20),
            "machine": machine(),
        }
        print(orjson.dumps(result).decode())
        return result
    finally:
        await cluster.stop()
        if keep:
            print(f"warmup-bench: data kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


async def _seed(settings: Settings, forms: int) -> float:
    """N forms with realistic compressed sizes, written in multi-row upserts."""
    payloads = [codec.pack(choices_for(i, 1000 + i)) for i in range(64)]
    keys = form_keys(min(forms, 28_000))
    started = time.monotonic()
    now_us = int(time.time() * 1e6)
    async with open_archive(settings) as db:
        with tqdm(total=forms, desc="seed MySQL", unit="form", file=sys.stderr) as bar:
            for low in range(0, forms, _SEED_BATCH):
                batch = []
                for n in range(low, min(forms, low + _SEED_BATCH)):
                    key = keys[n % len(keys)]
                    # Past 28 000 IDs, more batches per candidate (one form per batch code).
                    batch_code = f"b{n // len(keys)}"
                    batch.append(
                        FormRecord(
                            key.candidate_id,
                            batch_code,
                            now_us + n,
                            now_us + n,
                            STATUS_SAVED,
                            payloads[n % len(payloads)],
                        )
                    )
                await db.upsert_forms(batch)
                bar.update(len(batch))
    return time.monotonic() - started
