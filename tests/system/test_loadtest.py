"""`volreg loadtest` against a real API process, the naive benchmark route, and the pure
parts of the report (wrk output parsing, percentile merging, ratios)."""

from __future__ import annotations

import asyncio
import csv
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from loadtest import luagen, report, stats, wrk
from loadtest.bodies import form_body, picks, synthetic_catalogue
from loadtest.scenarios import SCENARIOS, parse_names
from loadtest.spawn import free_port, stop, wait_ready
from schemas import urls
from schemas.records import FormKey
from service.core.ids import make_id
from service.core.passwords import Passwords
from service.core.settings import Settings
from service.storage.mysql_db import MySQLDatabase
from tests.conftest import ClientFactory
from tests.support import DEMO_ID, OPEN_BATCH, PASSWORD, choices, form_url, login, settings_env

Client = TestClient[Any, Any]
LOAD_CANDIDATES = [make_id(110105, "20070203", i) for i in range(40, 48)]
NAIVE_ONLY = make_id(110105, "20070203", 60)  # saved only through the naive route
_SUBPROCESS_WAIT_S = 150


@pytest.fixture(scope="module")
async def candidates_csv(
    settings: Settings, db: MySQLDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Candidates of their own (with exam results) and the CSV the load test reads."""
    hashed = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib).hash(PASSWORD)
    await db.upsert_candidates(
        [(cid, "Load", "110105002", hashed) for cid in [*LOAD_CANDIDATES, NAIVE_ONLY]]
    )
    await db.upsert_exams(
        {
            cid: {"total_score": 500.0 + i, "rank": 2000 + i, "subjects": {"math": 120}}
            for i, cid in enumerate(LOAD_CANDIDATES)
        }
    )
    path = tmp_path_factory.mktemp("loadtest") / "candidates.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["candidate_id", "name"])
        out.writerows([cid, "Load"] for cid in LOAD_CANDIDATES)
    return path


@pytest.fixture
async def api_process(settings: Settings, consumer: None) -> AsyncIterator[str]:
    """`volreg serve --naive` as its own process on a free port, with the run's settings;
    the session's consumer drains its queues."""
    port = free_port()
    # The run's short timeouts suit fault tests; under load on a busy machine they would turn
    # slow answers into 503s, which this test counts as errors.
    env = settings_env(settings) | {
        "VOLREG_HTTP_PORT": str(port),
        "VOLREG_REDIS_TIMEOUT_S": "5",
        "VOLREG_BROKER_TIMEOUT_S": "10",
        "VOLREG_MYSQL_TIMEOUT_S": "10",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.main.cli",
        "serve",
        "--naive",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, [proc])
        yield url
    finally:
        await stop(proc)


async def _volreg(settings: Settings, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.main.cli",
        *args,
        env=settings_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(_SUBPROCESS_WAIT_S):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_loadtest_runs_every_scenario_and_reports_figures(
    settings: Settings, api_process: str, candidates_csv: Path, tmp_path: Path
) -> None:
    json_path = tmp_path / "out.json"
    code, out = await _volreg(
        settings,
        "loadtest",
        "--url",
        api_process,
        "--scenarios",
        "all",
        "--duration",
        "2",
        "--slice",
        "1",
        "--connections",
        "8",
        "--request-timeout",
        "20",
        "--candidates",
        str(len(LOAD_CANDIDATES)),
        "--candidates-csv",
        str(candidates_csv),
        "--batch",
        OPEN_BATCH,
        "--out",
        str(tmp_path / "report"),
        "--json",
        str(json_path),
    )
    assert code == 0, out
    assert "save/ceiling" in out and "save/naive" in out and "query/ceiling" in out
    result = orjson.loads(json_path.read_bytes())

    assert list(result["scenarios"]) == ["ceiling", "exam", "form", "save", "mixed", "naive"]
    for name, s in result["scenarios"].items():
        assert s["requests"] > 0 and s["rps"] > 0, name
        # Every response was a 2xx: wrong auth, a 404 or a 503 would count as a status error.
        assert s["errors"]["status"] == 0 and s["errors"]["connect"] == 0, (name, s, out)
        lat = s["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], (name, lat)
        assert len(s["timeline"]) == 2 and all(row["rps"] > 0 for row in s["timeline"])
        assert len(s["loadavg_before"]) == 3 and 0 <= s["machine_cpu_busy"] <= 1
        assert (tmp_path / "report" / f"{name}.png").stat().st_size > 0
    for name in ("save", "mixed"):
        queue = result["scenarios"][name]["queue"]
        # The consumer applied every save: MySQL holds what Redis serves.
        assert queue["mysql_caught_up_s"] is not None, queue
        assert queue["drain_s"] is not None and queue["samples"], queue
    assert result["scenarios"]["ceiling"]["queue"] is None

    ratios = result["ratios"]
    for key in ("save_over_ceiling", "save_over_naive", "query_over_ceiling"):
        assert ratios[key] is not None and ratios[key] > 0, ratios
    scenarios = result["scenarios"]
    assert ratios["save_over_ceiling"] == pytest.approx(
        scenarios["save"]["rps"] / scenarios["ceiling"]["rps"], abs=0.0006
    )  # the report rounds ratios to 3 decimals
    assert {t["name"] for t in result["targets"]} >= {"save / ceiling", "save p99 ms"}
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| save |" in markdown and "Ratios:" in markdown


async def test_naive_scenario_needs_the_benchmark_route(
    settings: Settings, make_client: ClientFactory, candidates_csv: Path, tmp_path: Path
) -> None:
    client = await make_client()  # bench_naive is off, as in every normal run
    code, out = await _volreg(
        settings,
        "loadtest",
        "--url",
        str(client.make_url("")).rstrip("/"),
        "--scenarios",
        "naive",
        "--duration",
        "1",
        "--candidates-csv",
        str(candidates_csv),
        "--out",
        str(tmp_path),
    )
    assert code == 2, out
    assert "volreg serve --naive" in out


async def test_in_process_comparison_reports_both_redis_clients(
    settings: Settings, consumer: None, candidates_csv: Path, tmp_path: Path
) -> None:
    json_path = tmp_path / "inproc.json"
    code, out = await _volreg(
        settings,
        "loadtest",
        "--in-process",
        "--rounds",
        "1",
        "--ops",
        "40",
        "--candidates-csv",
        str(candidates_csv),
        "--json",
        str(json_path),
    )
    assert code == 0, out
    assert "| pool |" in out and "| multiplexed |" in out
    result = orjson.loads(json_path.read_bytes())
    for variant in ("pool", "multiplexed"):
        (figures,) = result["rounds"][variant]
        for step in ("stage", "read", "save"):
            assert figures[step]["ops_per_s"] > 0 and figures[step]["cpu_ms_per_op"] > 0


async def test_unknown_scenario_is_refused(settings: Settings, tmp_path: Path) -> None:
    code, out = await _volreg(
        settings, "loadtest", "--url", "http://127.0.0.1:9", "--scenarios", "ceiling,bogus"
    )
    assert code == 2 and "bogus" in out, out


async def test_naive_route_only_when_enabled_and_never_touches_the_real_forms(
    make_client: ClientFactory, db: MySQLDatabase, candidates_csv: Path
) -> None:
    naive_url = urls.NAIVE_FORM.format(candidate_id=NAIVE_ONLY, batch=OPEN_BATCH)
    normal = await make_client()
    headers = await login(normal, NAIVE_ONLY)
    assert (
        await normal.put(naive_url, json={"choices": choices(2)}, headers=headers)
    ).status == 404

    bench = await make_client(bench_naive=True)
    versions = []
    for salt in range(3):
        resp = await bench.put(naive_url, json={"choices": choices(2, salt)}, headers=headers)
        assert resp.status == 200, await resp.text()
        versions.append((await resp.json())["version"])
    assert versions == sorted(versions) and len(set(versions)) == 3
    # Same validation as the real PUT, and the real forms table is never touched.
    bad = await bench.put(naive_url, json={"choices": []}, headers=headers)
    assert bad.status == 422
    unknown = [{"institution": "99999", "majors": ["080901"], "accept_adjustment": False}]
    bad = await bench.put(naive_url, json={"choices": unknown}, headers=headers)
    assert bad.status == 422, "the catalogue check applies to the naive save too"
    assert (await bench.put(naive_url, json={"choices": choices(1)})).status == 401
    other = urls.NAIVE_FORM.format(candidate_id=DEMO_ID, batch=OPEN_BATCH)
    assert (await bench.put(other, json={"choices": choices(1)}, headers=headers)).status == 403
    assert await db.get_form(FormKey(NAIVE_ONLY, OPEN_BATCH)) is None
    assert (await bench.get(form_url(NAIVE_ONLY), headers=headers)).status == 404


# --- Pure logic: parsing, merging, ratios.


def _run(requests: int, grid_ms: list[float], runtime_s: float = 1.0) -> wrk.WrkRun:
    return wrk.WrkRun(
        runtime_s, requests, {"status": 0}, grid_ms[0], grid_ms[-1], 0.0, tuple(grid_ms)
    )


def test_merging_runs_weights_each_by_its_requests() -> None:
    fast = _run(900, [1.0] * len(luagen.GRID))
    slow = _run(100, [50.0] * len(luagen.GRID))
    merged = stats.merge([fast, slow])
    assert merged.requests == 1000 and merged.rps == 500
    assert merged.latency_ms["p50"] == 1.0 and merged.latency_ms["p90"] == 1.0
    assert merged.latency_ms["p99"] == 50.0 and merged.latency_ms["max"] == 50.0


def test_wrk_summary_line_is_parsed() -> None:
    grid = ",".join(str(1000 * (i + 1)) for i in range(len(luagen.GRID)))
    line = (
        f'{luagen.MARKER}{{"runtime_us":2000000,"requests":400,"bytes":1,"errors":{{"connect":0,'
        f'"read":0,"write":0,"status":3,"timeout":1}},"latency_us":{{"min":500,"max":90000,'
        f'"mean":2500.0,"grid":[{grid}]}}}}'
    )
    run = wrk.parse(f"Running 2s test\n{line}\n")
    assert run.rps == 200 and run.error_count == 4
    assert run.percentile(50) == 50.0 and run.latency_max_ms == 90.0
    with pytest.raises(wrk.WrkError):
        wrk.parse("unable to connect")


def test_ratios_and_targets_tolerate_missing_scenarios() -> None:
    scenarios = {"ceiling": {"rps": 1000.0}, "save": {"rps": 300.0, "latency_ms": {"p99": 80.0}}}
    r = report.ratios(scenarios)
    assert r["save_over_ceiling"] == 0.3 and r["save_over_naive"] is None
    assert r["query_over_ceiling"] is None
    met = {t["name"]: t["met"] for t in report.targets(scenarios, r)}
    assert met["save / ceiling"] is True and met["save p99 ms"] is True
    assert met["save / naive"] is None


def test_script_escapes_and_bodies_are_valid() -> None:
    catalogue = synthetic_catalogue(20)
    body = form_body(1, catalogue)
    assert len(body["choices"]) == 16
    assert len({c["institution"] for c in body["choices"]}) == 16
    hot = picks(100, 5000, zipf=True)
    assert max(hot.count(i) for i in set(hot)) > 5 * 5000 / 100  # a few candidates are hot
    plan = luagen.Plan(
        SCENARIOS["mixed"], OPEN_BATCH, [DEMO_ID], ['to"k\\en'], [b'{"a":"\\n"}'], [0]
    )
    text = luagen.script(plan)
    assert '"Bearer to\\034k\\092en"' in text
    assert parse_names("all")[0].name == "ceiling"
    with pytest.raises(ValueError, match="bogus"):
        parse_names("save,bogus")


async def test_open_loop_sends_at_the_rate_and_times_from_the_intended_send(
    settings: Settings, api_process: str, candidates_csv: Path, tmp_path: Path
) -> None:
    json_path = tmp_path / "open.json"
    code, out = await _volreg(
        settings,
        "loadtest",
        "--url",
        api_process,
        "--scenarios",
        "ceiling",
        "--duration",
        "1",
        "--open-loop",
        "40",
        "--open-loop-duration",
        "1",
        "--request-timeout",
        "20",
        "--candidates",
        str(len(LOAD_CANDIDATES)),
        "--candidates-csv",
        str(candidates_csv),
        "--batch",
        OPEN_BATCH,
        "--out",
        str(tmp_path / "report"),
        "--json",
        str(json_path),
    )
    assert code == 0, out
    [run] = orjson.loads(json_path.read_bytes())["open_loop"]
    assert (run["offered_rps"], run["sent"], run["ok"]) == (40, 40, 40), run
    assert run["errors"]["total"] == 0, run
    lat = run["latency_ms_from_intended"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat
    assert run["mysql_caught_up_s"] is not None, run
    # The servers' processes were found and measured.
    assert {"redis", "broker", "mysql", "generator", "chain"} <= set(run["cpu_ms_per_request"])
    assert "Open loop" in (tmp_path / "report" / "report.md").read_text()
