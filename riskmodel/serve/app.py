"""The clinic web application (FastAPI + Jinja2 templates rendered on the server; no JavaScript).

Routes: ``GET /`` the one-woman form; ``POST /assess`` her result (HTML, or JSON with
``Accept: application/json``); ``GET /clinic`` and ``POST /clinic`` a day's list; ``GET
/download/{key}/{name}`` the files of a result; ``GET /health``; ``GET /static/style.css``.

Security (docs/clinic.md): an access token, when set, is checked on every request with a
constant-time comparison (``Authorization: Bearer``, or the cookie set by opening ``/?token=…``);
request bodies are limited before they are read; results are kept in memory only (a bounded,
expiring store keyed by a random id) and never logged; every response carries ``Cache-Control:
no-store`` and a content security policy; templates escape every value.
"""

from __future__ import annotations

import hmac
import io
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader
from starlette.concurrency import run_in_threadpool

from riskmodel.api import predict_risk
from riskmodel.schema import COLUMNS, DENSITY_CODES, RACE_NAMES, SchemaError
from riskmodel.screening import list_policies, load_policy
from riskmodel.serve.assess import (
    DOWNLOADS,
    FIELD_LABELS,
    FORM_FIELDS,
    Assessment,
    assess_list,
    assess_woman,
    files_for,
    json_cell,
    summary,
)
from riskmodel.serve.binding import TOKEN_ENV

__all__ = ["MAX_BODY_BYTES", "MAX_LIST_ROWS", "TOKEN_ENV", "create_app"]

#: Largest request body accepted (bytes): four mammograms or a day's list fit; more is refused with 413.
MAX_BODY_BYTES = 256 * 1024 * 1024
#: Largest clinic list (rows).
MAX_LIST_ROWS = 20_000
COOKIE = "riskmodel_token"
#: Results kept for their downloads (in memory only), and for how long (seconds).
STORE_SIZE, STORE_SECONDS = 32, 1800
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
#: A downloaded report is a self-contained page with inline CSS and SVG.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
HEADERS = {"cache-control": "no-store", "content-security-policy": CSP, "x-content-type-options": "nosniff",
           "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


class _Store:
    """Results by random key, in memory, at most ``size`` of them, each for ``seconds``."""

    def __init__(self, size: int = STORE_SIZE, seconds: float = STORE_SECONDS):
        self.size, self.seconds = size, seconds
        self._items: OrderedDict[str, tuple[float, Assessment]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, a: Assessment) -> str:
        key = secrets.token_urlsafe(18)
        with self._lock:
            self._items[key] = (time.monotonic(), a)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> Assessment | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or time.monotonic() - item[0] > self.seconds:
                self._items.pop(key, None)
                return None
            return item[1]


class BodyLimit:
    """ASGI middleware: a request whose body is (or says it is) over ``limit`` bytes gets 413, unread."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _too_large(self.limit, send)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(self.limit, send)


class _TooLarge(Exception):
    pass


async def _too_large(limit: int, send: Any) -> None:
    body = f"request body over the limit of {limit} bytes".encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            *((k.encode(), v.encode()) for k, v in HEADERS.items())]})
    await send({"type": "http.response.body", "body": body})


def _templates() -> Environment:
    env = Environment(loader=PackageLoader("riskmodel.serve", "templates"), autoescape=True)
    env.globals.update(columns=COLUMNS, races=sorted(RACE_NAMES, key=lambda k: RACE_NAMES[k]), densities=DENSITY_CODES,
                       policies=list_policies(), downloads=DOWNLOADS,
                       labels=FIELD_LABELS)
    return env


def create_app(policy: str = "uspstf2024", bundle: str | None = None, token: str | None = None, *,
               max_body_bytes: int = MAX_BODY_BYTES) -> Any:
    """The ASGI application.

    Args:
        policy: the default policy (a shipped name or a policy file); the form offers all shipped ones.
        bundle: an image, hybrid or Mirai bundle folder: the form then takes her four DICOM views.
        token: the access token every request must present; ``None``: no token (loopback only, see
            :func:`riskmodel.serve.serve`).
        max_body_bytes: largest request body (bytes).
    """
    default = load_policy(policy)
    model = None
    if bundle is not None:
        from riskmodel.models.registry import resolve

        model = resolve(bundle)
    env, store = _templates(), _Store()
    app = FastAPI(title="riskmodel clinic", docs_url=None, redoc_url=None, openapi_url=None)
    css = resources.files("riskmodel.serve").joinpath("templates").joinpath("style.css").read_text(encoding="utf-8")

    def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
        values.setdefault("default_policy", default.id)
        values.setdefault("with_images", model is not None)
        return HTMLResponse(env.get_template(name).render(**values), status_code=status)

    def chosen(name: str | None):
        if not name or name == default.id:
            return default
        if name not in list_policies():
            raise ValueError(f"policy {name!r}: not a shipped policy ({', '.join(list_policies())})")
        return load_policy(name)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if token is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            given = given or request.cookies.get(COOKIE, "")
            query = request.query_params.get("token")
            if query is not None and hmac.compare_digest(query.encode(), token.encode()):
                response = RedirectResponse(request.url.path, status_code=303)
                response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
                return _secure(response)
            if not hmac.compare_digest(given.encode(), token.encode()):
                return _secure(PlainTextResponse("access token required (see docs/clinic.md)", status_code=401))
        return _secure(await call_next(request))

    @app.get("/health")
    async def health() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/static/style.css")
    async def style() -> Response:
        return Response(css, media_type="text/css")

    @app.get("/", response_class=HTMLResponse)
    async def form() -> HTMLResponse:
        return page("form.html", values={}, errors={})

    @app.post("/assess")
    async def assess(request: Request) -> Response:
        data = await request.form()
        values = {k: str(data.get(k, "")) for k in FORM_FIELDS}
        wants_json = "application/json" in request.headers.get("accept", "")
        try:
            pol = chosen(str(data.get("policy", "")))
        except ValueError as exc:
            return _error(wants_json, {"policy": str(exc)}, values, page)
        result, errors = await run_in_threadpool(assess_woman, values, pol)  # the event loop keeps serving
        if result is None:
            return _error(wants_json, errors, values, page)
        if model is not None:
            uploads = [f for f in data.getlist("views") if getattr(f, "filename", "")]
            if uploads:
                result.extra["images"] = await _image_risks(model, result.cohort, uploads)
        if wants_json:
            body = {"risk": result.risk_row(), "recommendation": result.recommendation_row()}
            if "images" in result.extra:
                body["image_model"] = result.extra["images"]
            return JSONResponse(body)
        key = store.put(result)
        return page("result.html", key=key, s=summary(result, pol), values=values, policy=pol,
                    images=result.extra.get("images"), one=True)

    @app.get("/clinic", response_class=HTMLResponse)
    async def clinic_form() -> HTMLResponse:
        return page("clinic.html", rows=None, error="")

    @app.post("/clinic")
    async def clinic(request: Request) -> Response:
        data = await request.form()
        upload = data.get("list")
        try:
            pol = chosen(str(data.get("policy", "")))
            if upload is None or not getattr(upload, "filename", ""):
                raise ValueError("choose a CSV or Parquet file of the day's women")
            table = _read_list(upload.filename, await upload.read())
            result = await run_in_threadpool(assess_list, table, pol)
        except (ValueError, SchemaError) as exc:
            return page("clinic.html", status=422, rows=None, error=str(exc))
        key = store.put(result)
        rows = [summary(result, pol, i) | {"id": json_cell(result.table["id"].iat[i]) if "id" in result.table
                                           else str(i + 1)} for i in range(len(result.table))]
        return page("clinic.html", rows=rows, key=key, policy=pol, error="")

    @app.get("/download/{key}/{name}")
    async def download(key: str, name: str) -> Response:
        result = store.get(key)
        if result is None or name not in DOWNLOADS:
            return PlainTextResponse("no such result (results are kept in memory for 30 minutes)", status_code=404)
        content, media, filename = await run_in_threadpool(files_for, result, name)
        response = Response(content, media_type=media,
                            headers={"content-disposition": f'attachment; filename="{filename}"'})
        if name == "report.html":
            response.headers["content-security-policy"] = REPORT_CSP
        return response

    return BodyLimit(app, max_body_bytes)


def _secure(response: Response) -> Response:
    """The security headers on every response (a route's own CSP, e.g. a report's, is kept)."""
    for k, v in HEADERS.items():
        response.headers.setdefault(k, v)
    return response


def _error(wants_json: bool, errors: dict[str, str], values: dict[str, str], page: Any) -> Response:
    """422: the errors by field, as JSON or as the form again with each error beside its field."""
    if wants_json:
        return JSONResponse({"errors": errors}, status_code=422)
    return page("form.html", status=422, values=values, errors=errors)


def _read_list(filename: str, content: bytes) -> pd.DataFrame:
    """A clinic list from an upload held in memory: CSV (cells as text, the schema reads them) or Parquet."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".parquet":
        table = pd.read_parquet(io.BytesIO(content))
    elif suffix in (".csv", ".tsv", ".txt"):
        table = pd.read_csv(io.BytesIO(content), sep="\t" if suffix == ".tsv" else ",", dtype=str,
                            keep_default_na=False)
    else:
        raise ValueError(f"{filename}: use a .csv, .tsv or .parquet file")
    if len(table) > MAX_LIST_ROWS:
        raise ValueError(f"{filename}: {len(table)} rows; at most {MAX_LIST_ROWS} per upload")
    if len(table) == 0:
        raise ValueError(f"{filename}: no rows")
    return table


async def _image_risks(model: Any, cohort: pd.DataFrame, uploads: list[Any]) -> dict[str, Any]:
    """Her 1–5-year risks from the server's image model, the four views read from a temporary folder that is
    removed before returning."""
    from riskmodel.imaging import assemble_exams, scan_dicoms

    with tempfile.TemporaryDirectory(prefix="riskmodel-views-") as tmp:
        for i, f in enumerate(uploads):
            (Path(tmp) / f"view{i}.dcm").write_bytes(await f.read())
        exams = assemble_exams(scan_dicoms(tmp))
        if len(exams) != 1:
            return {"status": "no_exam", "message": f"the uploaded files hold {len(exams)} exams; upload the four "
                                                    "views of one exam", "risks": []}
        frame = cohort.assign(exam_id=[str(exams["exam_id"].iat[0])])
        out = await run_in_threadpool(predict_risk, frame, model, exams=exams)
    row = out.iloc[0]
    return {"status": row["status"], "message": json_cell(row["message"]) or "", "model": json_cell(row["model"]),
            "risks": [json_cell(row.get(f"risk_{y}y")) for y in range(1, 6)]}
