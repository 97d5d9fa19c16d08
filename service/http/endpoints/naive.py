"""Benchmark only: the design the original system rejected, each save written to MySQL.

`volreg loadtest` compares the real save path against it in the same run. The route exists
only when ``bench_naive`` is set (``volreg serve --naive``); it shares auth and validation
with the real PUT, writes a copy of the forms table, and never touches Redis or the broker.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Protocol

from aiohttp import web

from schemas import urls
from schemas.http import FormBody
from schemas.records import STATUS_SAVED, FormKey, FormRecord
from service.forms.save import ChoiceCheck, Saved, payload_of
from service.forms.windows import BatchWindows
from service.http import keys
from service.http.endpoints.candidates import parse_save
from service.http.respond import json_response


class NaiveStore(Protocol):
    async def create_naive_table(self) -> None: ...

    async def naive_save_form(self, record: FormRecord) -> int: ...


class NaiveForms:
    def __init__(
        self, db: NaiveStore, batches: BatchWindows, catalogue: ChoiceCheck | None = None
    ) -> None:
        self._db = db
        self._batches = batches
        self._catalogue = catalogue
        self._table_ready = False

    async def save(self, key: FormKey, form: FormBody, now: datetime) -> Saved:
        """The same checks as the real save (window, catalogue), then one MySQL commit."""
        await self._batches.require_open(key.batch, now)
        if self._catalogue is not None:
            await self._catalogue.check_choices(form)
        payload = payload_of(form)
        if not self._table_ready:
            # Created when the route starts (and here if MySQL was down then), so a normal
            # schema never carries the benchmark table.
            await self._db.create_naive_table()
            self._table_ready = True
        now_us = time.time_ns() // 1000
        record = FormRecord(key.candidate_id, key.batch, now_us, now_us, STATUS_SAVED, payload)
        version = await self._db.naive_save_form(record)
        return Saved(version, now_us)


NAIVE = web.AppKey("naive", NaiveForms)


async def put_form_naive(request: web.Request) -> web.Response:
    key, form, _idem = await parse_save(request)
    saved = await request.app[NAIVE].save(key, form, datetime.now())
    request.app[keys.METRICS].mysql_commits.labels("naive").inc()  # one autocommit per save
    return json_response(saved.to_json())


def add_naive_routes(app: web.Application) -> None:
    app.router.add_put(urls.NAIVE_FORM, put_form_naive)
