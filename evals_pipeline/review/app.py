"""The review app: one case per screen for a domain expert, keyboard first (`make review`).

It reads the queues from the analysts' snapshot (`data/analytics.duckdb`, read-only, reopened
when the pipeline swaps in a new file, so it never blocks the pipeline) and writes nothing but
label lines (one append-only file per annotator, picked up by `label_files_sensor`) and
the taxonomy file.

Safety: every field is escaped by the templates (autoescape) or set as text by the script; a
Content-Security-Policy allows only this app's own script, so a trace that carries HTML or a
script shows as text and cannot run. Holdout cases and sealed traces are refused even if a
queue row pointed at one. The judges' verdicts are not in the page until the expert decides.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import duckdb
import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from evals_pipeline.paths import analytics_path, data_dir
from evals_pipeline.records import GOLDEN_POOLS, HUMAN_LABELS, REVIEW_ITEMS, REVIEW_QUEUES, TRACES
from evals_pipeline.review.bodies import (
    TAXONOMY_DETAILS,
    BodyError,
    BodyT,
    LabelBody,
    TaxonomyBody,
    parse_body,
)
from evals_pipeline.review.labelstore import (
    LabelError,
    LabelReader,
    append_label,
    check_annotator,
    make_label,
)
from evals_pipeline.review.taxonomy import (
    StaleTaxonomy,
    TaxonomyError,
    edit_taxonomy,
    load_taxonomy,
    mode_summary,
    saturation,
    taxonomy_path,
)

HERE = Path(__file__).parent
QUEUE_TITLES = {
    "disagreement": "Judge disagreements",
    "weekly": "Friday review (fresh sample)",
    "calibration_gap": "Calibration gaps",
}
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
    max_field_chars: int = 20_000
    stale_after_days: int = 8
    saturation_batch: int = 50
    # Request bodies are a label or a taxonomy edit: a few KB. Anything larger is refused
    # before it is read into memory.
    max_body_bytes: int = 64 * 1024
    # Host names this app answers to (DNS rebinding guard): a page on another site whose
    # name resolves to 127.0.0.1 sends its own name as Host and is refused.
    allowed_hosts: tuple[str, ...] = LOCAL_HOSTS


class NotReady(Exception):
    """The snapshot or its queues do not exist yet."""


class Refused(Exception):
    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def _clip(text: Any, limit: int) -> tuple[str | None, int]:
    """Text to show and its full length; oversized fields are cut with a notice."""
    if text is None:
        return None, 0
    text = str(text)
    return (text if len(text) <= limit else text[:limit]), len(text)


def _pretty(raw: Any, limit: int) -> tuple[str | None, int]:
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
    return _clip(text, limit)


class ReviewApp:
    def __init__(self, settings: AppSettings) -> None:
        self.s = settings
        self.labels = LabelReader(settings.labels)
        self._snapshot_lock = threading.Lock()
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._conn_identity: tuple[int, int, int] | None = None
        # autoescape everywhere, not only for .html names: every field is untrusted text
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True
        )
        self.templates = Jinja2Templates(env=env)
        self.templates.env.filters["urlpart"] = lambda v: quote(str(v), safe="")

    # ---- data ----------------------------------------------------------------------------

    def _snapshot(self) -> duckdb.DuckDBPyConnection:
        """The read-only connection to the current snapshot file (call with the lock held),
        reopened when the pipeline has swapped in a new file (a new inode). Kept open between
        requests (a fresh connection costs ~13 ms, most of a page view); it never blocks the
        pipeline, which writes a new file and renames it over this one."""
        try:
            stat = self.s.analytics.stat()
        except FileNotFoundError:
            raise NotReady(
                f"There is no analytics snapshot at {self.s.analytics} yet. Run `make demo`, or "
                "the evals_review job in the Dagster UI (`make ui`), to build the queues."
            ) from None
        identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._conn is not None and identity == self._conn_identity:
            return self._conn
        if self._conn is not None:
            # close first: DuckDB caches open databases by path, so a new connect() while the
            # old one is open would return the old file
            self._conn.close()
            self._conn = None
        try:
            conn = duckdb.connect(str(self.s.analytics), read_only=True)
        except duckdb.Error as exc:
            raise NotReady(f"The snapshot {self.s.analytics} cannot be opened: {exc}") from exc
        tables = {r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "review_items" not in tables:
            conn.close()
            raise NotReady(
                "The snapshot has no review_items table: it predates the review queues. Run the "
                "evals_review job (or `make demo`) to build them."
            )
        self._conn, self._conn_identity = conn, identity
        return conn

    def _query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        # Queries take about a millisecond: one at a time keeps the shared connection simple.
        with self._snapshot_lock:
            cur = self._snapshot().execute(sql, params or [])
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def prepared_at(self) -> datetime | None:
        rows = self._query(f"SELECT max(prepared_at) AS t FROM {REVIEW_ITEMS}")
        return rows[0]["t"] if rows else None

    def done_ids(self, annotator: str) -> set[str]:
        rows = self.labels.query(
            f"SELECT DISTINCT subject_id FROM {HUMAN_LABELS} WHERE annotator = ? AND kind = 'pointwise'",
            [annotator],
        )
        return {r[0] for r in rows}

    def my_label(self, annotator: str, item_id: str) -> dict[str, Any] | None:
        rows = self.labels.query(
            f"""SELECT verdict, critique, failure_mode, labelled_at FROM {HUMAN_LABELS}
               WHERE annotator = ? AND subject_id = ? AND kind = 'pointwise' AND current""",
            [annotator, item_id],
        )
        return (
            dict(zip(["verdict", "critique", "failure_mode", "labelled_at"], rows[0], strict=True))
            if rows
            else None
        )

    def queue_ids(self, queue: str) -> list[str]:
        return [
            r["item_id"]
            for r in self._query(
                f"SELECT item_id FROM {REVIEW_ITEMS} WHERE queue = ? ORDER BY position", [queue]
            )
        ]

    def progress(self, annotator: str) -> list[dict[str, Any]]:
        done = self.done_ids(annotator)
        counts = {
            r["queue"]: r
            for r in self._query(
                f"SELECT queue, count(*) AS total, count(DISTINCT category) AS categories FROM {REVIEW_ITEMS} GROUP BY 1"
            )
        }
        out = []
        for q in REVIEW_QUEUES:
            ids = self.queue_ids(q) if q in counts else []
            n_done = sum(1 for i in ids if i in done)
            out.append(
                {
                    "queue": q,
                    "title": QUEUE_TITLES[q],
                    "total": len(ids),
                    "done": n_done,
                    "left": len(ids) - n_done,
                    "categories": counts.get(q, {}).get("categories", 0),
                }
            )
        return out

    def item(self, queue: str, item_id: str) -> dict[str, Any]:
        if queue not in REVIEW_QUEUES:
            raise Refused(
                404,
                "Unknown queue",
                f"There is no queue {queue!r}. The queues are: {', '.join(REVIEW_QUEUES)}.",
            )
        rows = self._query(
            f"""SELECT i.*, p.pool, t.sealed FROM {REVIEW_ITEMS} i
               LEFT JOIN {GOLDEN_POOLS} p ON p.case_id = i.case_id
               LEFT JOIN {TRACES} t ON t.trace_id = i.trace_id
               WHERE i.queue = ? AND i.item_id = ?""",
            [queue, item_id],
        )
        if not rows:
            prepared = self.prepared_at()
            raise Refused(
                404,
                "Case not in this queue",
                f"There is no case {item_id!r} in the {queue!r} queue built at {prepared:%Y-%m-%d %H:%M} UTC. "
                "It may have left the queue when the queues were rebuilt, or the link is wrong. "
                "Open the queue again to continue with the next case."
                if prepared
                else f"There is no case {item_id!r}: the queues are empty.",
            )
        row = rows[0]
        leaked = (
            row["pool"] in (None, "holdout")
            if row["subject"] == "candidate"
            else row["sealed"] is not False
        )
        if leaked:
            raise Refused(
                403,
                "Sealed holdout",
                "This case belongs to the sealed holdout and is never shown for review. "
                "The queue that pointed here is wrong: rebuild it (the review_items_never_holdout check fails on it).",
            )
        return row

    # ---- pages ---------------------------------------------------------------------------

    def _annotator(self, request: Request) -> str | None:
        name = request.cookies.get("annotator")
        try:
            return check_annotator(name) if name else None
        except LabelError:
            return None

    def _page(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        context = {"annotator": self._annotator(request), "titles": QUEUE_TITLES, **context}
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    def _message(self, request: Request, status: int, title: str, message: str) -> Response:
        return self._page(request, "message.html", {"title": title, "message": message}, status)

    async def home(self, request: Request) -> Response:
        annotator = self._annotator(request)
        if not annotator:
            return self._page(
                request, "login.html", {"next": request.query_params.get("next", "/")}
            )
        try:
            queues = self.progress(annotator)
            prepared = self.prepared_at()
        except NotReady as exc:
            return self._message(request, 503, "No queues yet", str(exc))
        age = (datetime.now(UTC).replace(tzinfo=None) - prepared).days if prepared else None
        return self._page(
            request,
            "home.html",
            {
                "queues": queues,
                "prepared_at": prepared,
                "stale": age is not None and age >= self.s.stale_after_days,
                "age_days": age,
                "notice": request.query_params.get("notice"),
            },
        )

    async def login(self, request: Request) -> Response:
        try:
            form = parse_qs((await self._body(request)).decode("utf-8", errors="replace"))
        except Refused as exc:
            return self._message(request, exc.status, exc.title, exc.message)
        nxt = form.get("next", ["/"])[0]
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"
        try:
            name = check_annotator(form.get("annotator", [""])[0])
        except LabelError as exc:
            return self._page(request, "login.html", {"next": nxt, "error": str(exc)}, 400)
        response = RedirectResponse(nxt, status_code=303)
        response.set_cookie("annotator", name, httponly=True, samesite="strict", max_age=90 * 86400)
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie("annotator")
        return response

    async def queue(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        annotator = self._annotator(request)
        if not annotator:
            return RedirectResponse(f"/?next=/queue/{quote(queue)}", status_code=303)
        if queue not in REVIEW_QUEUES:
            return self._message(
                request,
                404,
                "Unknown queue",
                f"There is no queue {queue!r}. The queues are: {', '.join(REVIEW_QUEUES)}.",
            )
        try:
            ids, done = self.queue_ids(queue), self.done_ids(annotator)
        except NotReady as exc:
            return self._message(request, 503, "No queues yet", str(exc))
        todo = [i for i in ids if i not in done]
        if not todo:
            notice = f"The {QUEUE_TITLES[queue]} queue is done: {len(ids)} of {len(ids)} labelled."
            return RedirectResponse(f"/?notice={quote(notice)}", status_code=303)
        return RedirectResponse(f"/case/{queue}/{quote(todo[0], safe='')}", status_code=303)

    async def case(self, request: Request) -> Response:
        queue, item_id = request.path_params["queue"], request.path_params["item_id"]
        annotator = self._annotator(request)
        if not annotator:
            return RedirectResponse(f"/?next={quote(request.url.path)}", status_code=303)
        try:
            row = self.item(queue, item_id)
            ids, done = self.queue_ids(queue), self.done_ids(annotator)
        except NotReady as exc:
            return self._message(request, 503, "No queues yet", str(exc))
        except Refused as exc:
            return self._message(request, exc.status, exc.title, exc.message)
        pos = ids.index(item_id)
        limit = self.s.max_field_chars
        fields = {}
        for key in ("input", "output", "reference_good", "reference_borderline"):
            fields[key] = _clip(row[key], limit)
        for key in ("context", "tool_calls", "metadata"):
            fields[key] = _pretty(row[key], limit)
        mine = self.my_label(annotator, item_id)
        tax = load_taxonomy(self.s.taxonomy)
        modes = self._mode_names(tax)
        return self._page(
            request,
            "case.html",
            {
                "queue": queue,
                "item": row,
                "fields": fields,
                "limit": limit,
                "position": pos + 1,
                "total": len(ids),
                "done": sum(1 for i in ids if i in done),
                "prev_url": f"/case/{queue}/{quote(ids[pos - 1], safe='')}" if pos > 0 else "",
                "next_url": f"/case/{queue}/{quote(ids[pos + 1], safe='')}"
                if pos + 1 < len(ids)
                else f"/queue/{queue}",
                "mine": mine,
                "verdicts": json.loads(row["judge_verdicts"])
                if mine and row["judge_verdicts"]
                else [],
                "modes": modes,
                "prepared_at": row["prepared_at"].isoformat(),
            },
        )

    def _mode_names(self, tax: Any) -> list[str]:
        typed = [
            r[0]
            for r in self.labels.query(
                f"SELECT DISTINCT failure_mode FROM {HUMAN_LABELS} WHERE failure_mode IS NOT NULL"
            )
        ]
        return sorted({tax.resolve(m)[0] for m in typed} | set(tax.modes))

    # ---- API -----------------------------------------------------------------------------

    async def _body(self, request: Request) -> bytes:
        """The request body, refused (413) past `max_body_bytes` before it is all read."""
        limit = self.s.max_body_bytes
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

    async def _json_body(self, request: Request, model: type[BodyT]) -> BodyT:
        # JSON only: a cross-site form cannot send it without a CORS preflight this app refuses.
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise Refused(415, "JSON only", "send application/json")
        try:
            return parse_body(await self._body(request), model)
        except BodyError as exc:
            raise Refused(400, "Bad request", str(exc)) from exc

    @staticmethod
    def _error(status: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"ok": False, "error": message, **extra}, status_code=status)

    async def api_label(self, request: Request) -> Response:
        annotator = self._annotator(request)
        if not annotator:
            return self._error(401, "who are you? open the start page and give your name first")
        try:
            body = await self._json_body(request, LabelBody)
            queue, item_id = body.queue, body.item_id
            try:
                row = self.item(queue, item_id)
            except Refused as exc:
                if exc.status == 404 and queue in REVIEW_QUEUES:
                    current = self.prepared_at()
                    seen = body.prepared_at
                    if current and seen and seen != current.isoformat():
                        return self._error(
                            409,
                            f"The queues were rebuilt at {current:%Y-%m-%d %H:%M} UTC after this page was opened, "
                            "and this case is no longer in the queue. Your label was NOT saved. "
                            "Open the queue again to continue.",
                        )
                raise
            record = make_label(
                row["item_id"], annotator, body.verdict, body.critique, body.failure_mode, queue
            )
        except Refused as exc:
            return self._error(exc.status, exc.message)
        except LabelError as exc:
            return self._error(400, str(exc))
        except NotReady as exc:
            return self._error(503, str(exc))
        path = append_label(self.s.labels, record)
        return JSONResponse(
            {
                "ok": True,
                "label": record,
                "file": path.name,
                "verdicts": json.loads(row["judge_verdicts"]) if row["judge_verdicts"] else [],
            }
        )

    async def api_verdicts(self, request: Request) -> Response:
        annotator = self._annotator(request)
        queue, item_id = request.path_params["queue"], request.path_params["item_id"]
        if not annotator:
            return self._error(401, "open the start page and give your name first")
        try:
            row = self.item(queue, item_id)
        except Refused as exc:
            return self._error(exc.status, exc.message)
        except NotReady as exc:
            return self._error(503, str(exc))
        if not self.my_label(annotator, item_id):
            return self._error(
                403, "decide first: the judges' verdicts are shown after your own label"
            )
        return JSONResponse({"ok": True, "verdicts": json.loads(row["judge_verdicts"] or "[]")})

    # ---- taxonomy ------------------------------------------------------------------------

    def _fails(self) -> Any:
        return self.labels.frame(
            # one label per output (the newest), so two experts on one output count once
            f"""SELECT subject_id, annotator, critique, failure_mode, labelled_at FROM {HUMAN_LABELS}
               WHERE kind = 'pointwise' AND current
               QUALIFY row_number() OVER (PARTITION BY subject_id ORDER BY labelled_at DESC NULLS LAST) = 1
                   AND verdict = 'fail'
               ORDER BY labelled_at DESC NULLS LAST"""
        )

    async def taxonomy(self, request: Request) -> Response:
        if not self._annotator(request):
            return RedirectResponse("/?next=/taxonomy", status_code=303)
        try:
            tax = load_taxonomy(self.s.taxonomy)
        except TaxonomyError as exc:
            return self._message(request, 500, "Taxonomy file unreadable", str(exc))
        summary = mode_summary(tax, self._fails())
        reviewed = self.labels.frame(
            f"""SELECT subject_id, min(labelled_at) AS labelled_at, arg_max(verdict, labelled_at) AS verdict,
                      arg_max(failure_mode, labelled_at) AS failure_mode
               FROM {HUMAN_LABELS} WHERE kind = 'pointwise' AND current GROUP BY 1"""
        )
        sat = saturation(tax, reviewed, self.s.saturation_batch)
        return self._page(
            request,
            "taxonomy.html",
            {
                "tax": tax,
                "modes": summary.to_dict("records"),
                "saturation": sat.to_dict("records"),
                "max_new": max([r["new_modes"] for r in sat.to_dict("records")] or [1]) or 1,
                "batch": self.s.saturation_batch,
                "path": str(self.s.taxonomy),
            },
        )

    async def api_taxonomy(self, request: Request) -> Response:
        annotator = self._annotator(request)
        if not annotator:
            return self._error(401, "open the start page and give your name first")
        try:
            body = await self._json_body(request, TaxonomyBody)
            detail = parse_body(json.dumps(body.detail).encode(), TAXONOMY_DETAILS[body.action])
            tax = edit_taxonomy(
                body.action, detail.model_dump(), annotator, body.version, self.s.taxonomy
            )
        except StaleTaxonomy as exc:
            return self._error(409, str(exc), version=exc.current)
        except (TaxonomyError, ValueError) as exc:
            return self._error(400, str(exc))
        except Refused as exc:
            return self._error(exc.status, exc.message)
        return JSONResponse({"ok": True, "version": tax.version})

    async def api_suggest(self, request: Request) -> Response:
        from evals_pipeline.judging.client import judge_client
        from evals_pipeline.project import load_project
        from evals_pipeline.review.suggest import suggest

        if not self._annotator(request):
            return self._error(401, "open the start page and give your name first")
        tax = load_taxonomy(self.s.taxonomy)
        fails = self._fails()
        items = [
            {"id": i, "critique": r["critique"], "failure_mode": r["failure_mode"]}
            for i, r in enumerate(fails.drop_duplicates("critique").to_dict("records"))
            if r["critique"]
        ]
        if not items:
            return self._error(400, "there are no critiques to group yet: label some fails first")
        project = load_project(self.s.project_file)
        client = judge_client(project, max_retries=2)
        # run_calls runs its own event loop: off this one, in a worker thread
        proposals, stats, error = await run_in_threadpool(
            suggest, tax, items, client, self.s.llm_cache, project.suggester
        )
        if error:
            return self._error(502, f"the suggestion model failed: {error}")
        return JSONResponse(
            {
                "ok": True,
                "version": tax.version,
                "critiques": len(items),
                "cost_usd": round(stats.cost_usd, 6),
                "cached": stats.cached > 0,
                "proposals": [p.__dict__ for p in proposals],
            }
        )


def host_name(host_header: str) -> str:
    """The name in a Host header, without its port ("[::1]:8765" -> "::1")."""
    return urlsplit(f"//{host_header}").hostname or ""


def create_app(settings: AppSettings | None = None) -> Starlette:
    app_state = ReviewApp(settings or AppSettings())

    allowed = set(app_state.s.allowed_hosts)

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

    app = Starlette(
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=headers)],
        routes=[
            Route("/", app_state.home),
            Route("/favicon.ico", lambda _request: Response(status_code=204)),
            Route("/login", app_state.login, methods=["POST"]),
            Route("/logout", app_state.logout, methods=["POST"]),
            Route("/queue/{queue}", app_state.queue),
            Route("/case/{queue}/{item_id:path}", app_state.case),
            Route("/taxonomy", app_state.taxonomy),
            Route("/api/label", app_state.api_label, methods=["POST"]),
            Route("/api/verdicts/{queue}/{item_id:path}", app_state.api_verdicts),
            Route("/api/taxonomy", app_state.api_taxonomy, methods=["POST"]),
            Route("/api/taxonomy/suggest", app_state.api_suggest, methods=["POST"]),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
    )
    app.state.review = app_state
    return app


def main() -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the review app on localhost.")
    parser.add_argument("--host", default=os.environ.get("EVALS_REVIEW_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("EVALS_REVIEW_PORT", "8765"))
    )
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    settings = AppSettings()
    if args.host not in ("0.0.0.0", "::", *settings.allowed_hosts):
        settings.allowed_hosts = (*settings.allowed_hosts, args.host)
    print(
        f"review app on http://{args.host}:{args.port}/ (queues from {settings.analytics}, labels to {settings.labels})",
        flush=True,
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
