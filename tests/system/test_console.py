"""The admin console in a real headless browser (Debian's chromium driven by playwright)
against a running API with its consumer and hot-item aggregator: log in, watch the save
counter and the hot list change after saves, upload a small import and see it finish, and
the page at a phone's width. Screenshots are kept in reports/."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from schemas import urls
from service.core.ids import make_id
from service.core.ports import Batch
from service.hot.aggregate import Aggregator
from service.storage.mysql_db import MySQLDatabase
from tests.conftest import FAST_HOT, ClientFactory
from tests.staff_support import ADMIN, STAFF_PASSWORD, candidates_csv
from tests.support import DEMO_ID, ROOT, login

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPORTS = ROOT / "reports"
# Any argon2id hash: the imported candidates never log in here.
HASH = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$0aXk3+z0p4R5ZJZ4sT9G4j1p3y2C4X5e1n8FmN6s7hU"


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the page did not show it in time"
        await asyncio.sleep(0.25)


async def _number(page: Page, selector: str) -> int:
    text = (await page.text_content(selector) or "").strip()
    return int(float(text)) if text.replace(".", "", 1).isdigit() else -1


async def test_console_in_a_headless_browser(
    make_client: ClientFactory,
    consumer: None,
    aggregator: Aggregator,
    db: MySQLDatabase,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    batch = f"console-{uuid.uuid4().hex[:6]}"
    now = datetime.now()
    await db.upsert_batch(Batch(batch, "Console", now - timedelta(days=1), now + timedelta(days=9)))
    api = await make_client(**FAST_HOT)
    REPORTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            await page.goto(str(api.make_url(urls.CONSOLE)))
            await page.fill("input[name=username]", ADMIN)
            await page.fill("input[name=password]", STAFF_PASSWORD)
            await page.click("#login button")
            await page.wait_for_selector("#console:not([hidden])")
            assert await page.is_hidden("#login")
            await page.fill("#batch", batch)

            async def counted() -> bool:
                return await _number(page, "#saves-total") >= 0

            await _eventually(counted)
            before = await _number(page, "#saves-total")
            # Three saves naming 10041 first: the counter and the hot list move.
            headers = await login(api)
            url = urls.FORM.format(candidate_id=DEMO_ID, batch=batch)
            for second in ("10042", "10043", "10044"):
                body = {
                    "choices": [
                        {"institution": "10041", "majors": ["080901"]},
                        {"institution": second, "majors": ["080902"]},
                    ]
                }
                assert (await api.put(url, json=body, headers=headers)).status == 200
            exam = urls.EXAM.format(candidate_id=DEMO_ID)
            assert (await api.get(exam, headers=headers)).status == 200

            async def saves_shown() -> bool:
                return await _number(page, "#saves-total") >= before + 3

            async def hot_shown() -> bool:
                return "10041 — 3" in (await page.text_content("#hot-list") or "")

            async def read_key_shown() -> bool:
                return f"exam:{DEMO_ID}" in (await page.text_content("#hot-keys") or "")

            async def latency_shown() -> bool:
                return (await page.text_content("#saves-latency") or "").endswith(" ms")

            async def pipeline_shown() -> bool:
                waiting = await _number(page, "#queue-waiting")
                dead = await _number(page, "#dead-letters")
                outcome = await page.text_content("#reconcile-outcome") or ""
                return waiting >= 0 and dead >= 0 and outcome not in ("", "\u2013")

            await _eventually(saves_shown)
            await _eventually(hot_shown)
            await _eventually(latency_shown)
            await _eventually(pipeline_shown)
            await _eventually(read_key_shown)
            # A small import through the page's form.
            ids = [make_id(450102, "20070404", i) for i in range(3)]
            rows = [[cid, "Li", "450102001", HASH, 580, 40, 110, 120, 100, 250] for cid in ids]
            upload = tmp_path / "three.csv"
            upload.write_bytes(candidates_csv(rows))
            await page.set_input_files("#import-file", str(upload))
            await page.click("#import button")

            async def imported() -> bool:
                status = await page.text_content("#import-status") or ""
                return "done, 3 imported, 0 rejected" in status

            await _eventually(imported)
            await page.screenshot(path=str(REPORTS / "console.png"), full_page=True)
            # At a phone's width nothing runs off the side.
            await page.set_viewport_size({"width": 390, "height": 844})
            await asyncio.sleep(0.5)
            overflow: Any = await page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{overflow}px wider than the phone"
            await page.screenshot(path=str(REPORTS / "console-phone.png"), full_page=True)
        finally:
            await browser.close()
    shots = [REPORTS / "console.png", REPORTS / "console-phone.png"]
    for shot in shots:
        assert shot.stat().st_size > 10_000, shot
    with capsys.disabled():  # the artifacts' paths, whatever pytest's capture setting
        print(f"\nconsole screenshots: {', '.join(str(p.relative_to(ROOT)) for p in shots)}")
