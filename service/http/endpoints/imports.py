"""Admin endpoints for bulk imports: a streamed upload, and the status of a job."""

from __future__ import annotations

from aiohttp import web

from schemas import urls
from service.accounts.login import ROLE_ADMIN
from service.core.errors import NotFound, UnsupportedEncoding
from service.http import keys
from service.http.endpoints.candidates import require_role
from service.http.keys import IMPORT_JOBS, IMPORTER
from service.http.params import path_param, query_param
from service.http.patterns import FILE_NAME, FLAG, JOB, JOB_RULE, LINE, optional
from service.imports.pipeline import Options
from service.imports.sources import StreamSource

_OPTIONAL_JOB = optional(JOB)
_NAME = optional(FILE_NAME)
_FLAG = optional(FLAG)
_AFTER = optional(LINE)
_REJECTIONS_PAGE = 100
_UPLOAD_CODINGS = {"", "identity", "gzip", "x-gzip"}


async def _status(request: web.Request, job_id: str, after: int) -> dict[str, object]:
    jobs = request.app[IMPORT_JOBS]
    job = await jobs.get(job_id)
    if job is None:
        raise NotFound(f"no import job {job_id}")
    rejections = await jobs.rejections(job_id, after, _REJECTIONS_PAGE)
    body = job.to_json()
    body["rejections"] = [{"line": line, "reason": reason} for line, reason in rejections]
    more = len(rejections) == _REJECTIONS_PAGE
    body["rejections_after"] = rejections[-1][0] if more else None
    return body


async def post_import(request: web.Request) -> web.Response:
    """The body is the CSV, plain or gzip (``Content-Encoding: gzip`` or just gzip bytes),
    read as it arrives. ``?job=ID`` names the job (to watch it meanwhile, or to resume an
    interrupted one); an upload of the same content resumes its unfinished job anyway unless
    ``?fresh=1``. Answers when the whole body is imported."""
    require_role(request, ROLE_ADMIN)
    # The bytes arrive as sent (create_app turns aiohttp's decompression off); gzip is told
    # by its magic bytes, so that is the one coding an upload may name.
    if request.headers.get("Content-Encoding", "").strip().lower() not in _UPLOAD_CODINGS:
        raise UnsupportedEncoding("an import upload is plain CSV or gzip")
    job_id = query_param(request, "job", _OPTIONAL_JOB, JOB_RULE)
    name = query_param(request, "name", _NAME, "a file name")
    fresh = query_param(request, "fresh", _FLAG, "0 or 1") == "1"
    settings = request.app[keys.SETTINGS]
    options = Options(
        source_name=name or "upload",
        total_bytes=request.content_length,
        job_id=job_id or None,
        fresh=fresh,
    )
    source = StreamSource(request.content, settings.import_read_timeout_s)
    job = await request.app[IMPORTER].run(source, options)
    return web.json_response(await _status(request, job.job_id, 0))


async def get_import(request: web.Request) -> web.Response:
    """Rows done, rejected, rate, ETA, and rejections 100 at a time (``?after=LINE``)."""
    require_role(request, ROLE_ADMIN)
    job_id = path_param(request, "job", JOB, JOB_RULE)
    after = query_param(request, "after", _AFTER, "a line number")
    return web.json_response(await _status(request, job_id, int(after or 0)))


def add_admin_routes(app: web.Application) -> None:
    app.router.add_post(urls.ADMIN_IMPORTS, post_import)
    app.router.add_get(urls.ADMIN_IMPORT, get_import)
