"""The review app's HTTP side that is not a route: settings, the security headers and host
guard, bounded request bodies, and rendering (templates autoescape every field: all of it is
untrusted text; a Content-Security-Policy allows only this app's own script)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.templating import Jinja2Templates

from evals_pipeline.paths import analytics_path, data_dir
from evals_pipeline.review.app_store import QUEUE_TITLES, Refused
from evals_pipeline.review.bodies import BodyError, BodyT, parse_body
from evals_pipeline.review.labelstore import LabelError, check_annotator
from evals_pipeline.review.taxonomy import taxonomy_path

HERE = Path(__file__).parent
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class AppSettings:
    analytics: Path = field(default_factory=analytics_path)
    labels: Path = field(default_factory=lambda: data_dir() / "labels")
    taxonomy: Path = field(default_factory=taxonomy_path)
    llm_cache: Path = field(default_factory=lambda: data_dir() / "review" / "llm_cache.duckdb")
    # The project file (judges.suggester, providers); None = EVALS_CONFIG or evals.yaml.
    project_file: Path | None = None
    # The sealed review area: set, the app serves only the holdout queue of Layer 3 from
    # there (`make review-holdout`) and reads nothing above.
    sealed: Path | None = None
    max_field_chars: int = 20_000
    stale_after_days: int = 8
    saturation_batch: int = 50
    # Request bodies are a label or a taxonomy edit: a few KB. Anything larger is refused
    # before it is read into memory.
    max_body_bytes: int = 64 * 1024
    # Host names this app answers to (DNS rebinding guard): a page on another site whose
    # name resolves to 127.0.0.1 sends its own name as Host and is refused.
    allowed_hosts: tuple[str, ...] = LOCAL_HOSTS


def clip_text(text: Any, limit: int) -> tuple[str | None, int]:
    """Text to show and its full length; oversized fields are cut with a notice."""
    if text is None:
        return None, 0
    text = str(text)
    return (text if len(text) <= limit else text[:limit]), len(text)


def pretty_json(raw: Any, limit: int) -> tuple[str | None, int]:
    """JSON fields pretty-printed when they parse, shown as raw text when they do not."""
    if raw is None:
        return None, 0
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
        if value in (None, [], {}):
            return None, 0
        text = json.dumps(value, indent=2, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        # Not JSON, or nested too deep to re-indent: shown as the raw text it is.
        text = str(raw)
    return clip_text(text, limit)


def host_name(host_header: str) -> str:
    """The name in a Host header, without its port ("[::1]:8765" -> "::1")."""
    return urlsplit(f"//{host_header}").hostname or ""


def security_headers(allowed: set[str]) -> Any:
    """Middleware: answer only to `allowed` host names, refuse cross-origin writes, and set
    the security headers on every response."""

    async def headers(request: Request, call_next: Any) -> Response:
        host = request.headers.get("host", "")
        if host_name(host) not in allowed:
            # DNS rebinding: another site's name pointed at this machine still says its name
            return PlainTextResponse(
                f"this review app answers only to {', '.join(sorted(allowed))}, not {host!r}",
                status_code=403,
            )
        origin = request.headers.get("origin")
        cross_origin = origin is not None and urlsplit(origin).netloc != host
        if request.method not in SAFE_METHODS and cross_origin:
            return PlainTextResponse(
                f"cross-origin request from {origin!r} refused", status_code=403
            )
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        # same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on
        # its own form posts, which the origin check must refuse. Other sites still get none.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response

    return headers


class Pages:
    """Rendering: the templates, who is asking, and error answers."""

    def __init__(self, sealed: bool = False) -> None:
        self.sealed = sealed
        # autoescape everywhere, not only for .html names: every field is untrusted text
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True
        )
        self.templates = Jinja2Templates(env=env)
        self.templates.env.filters["urlpart"] = lambda v: quote(str(v), safe="")

    def annotator(self, request: Request) -> str | None:
        name = request.cookies.get("annotator")
        try:
            return check_annotator(name) if name else None
        except LabelError:
            return None

    def page(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        context = {
            "annotator": self.annotator(request),
            "titles": QUEUE_TITLES,
            "sealed": self.sealed,
            **context,
        }
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    def message(self, request: Request, status: int, title: str, message: str) -> Response:
        return self.page(request, "message.html", {"title": title, "message": message}, status)

    @staticmethod
    def error(status: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"ok": False, "error": message, **extra}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past `limit` bytes before it is all read."""
    declared = request.headers.get("content-length", "")
    too_large = Refused(413, "Too large", f"the request body is over {limit:,} bytes")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, model: type[BodyT], limit: int) -> BodyT:
    # JSON only: a cross-site form cannot send it without a CORS preflight this app refuses.
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise Refused(415, "JSON only", "send application/json")
    try:
        return parse_body(await read_body(request, limit), model)
    except BodyError as exc:
        raise Refused(400, "Bad request", str(exc)) from exc
