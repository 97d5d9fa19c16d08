"""Every test module sits in a tier: pytest collects only tests/unit, tests/integration and
tests/system (pyproject's testpaths), so a test_*.py left directly in tests/ would never run."""

from __future__ import annotations

from tests.support import ROOT

TIERS = ("unit", "integration", "system")


def test_no_test_module_outside_the_tiers() -> None:
    tests = ROOT / "tests"
    stray = sorted(p.name for p in tests.glob("test_*.py"))
    assert not stray, f"move {stray} into tests/{{{','.join(TIERS)}}}/"
    for tier in TIERS:
        assert (tests / tier / "__init__.py").is_file(), tier
