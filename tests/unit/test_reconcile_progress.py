"""`volreg reconcile --once` shows the shards done on a terminal, and nothing elsewhere."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from reconciler.command import _with_progress
from reconciler.run import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Reconciler:
    def __init__(self) -> None:
        self.progress = Progress()

    async def run(self) -> str:
        self.progress.shards_total = 4
        for _ in range(4):
            await asyncio.sleep(0.3)
            self.progress.shards_done += 1
        return "report"


@pytest.mark.parametrize("terminal", [True, False])
async def test_progress_bar_on_a_terminal_only(
    monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    err = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    fake: Any = _Reconciler()
    assert await _with_progress(fake, fake.run()) == "report"
    if terminal:
        assert "reconcile" in err.getvalue() and "4/4" in err.getvalue()
    else:
        assert err.getvalue() == ""
