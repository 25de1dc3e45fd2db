"""The review app: one case per screen for a domain expert, keyboard first (`make review`).

Routes only: the queues and labels are read by `app_store.QueueStore`, pages are rendered and
requests guarded by `app_http`. It writes nothing but label lines (one append-only file per
annotator, picked up by `label_files_sensor`) and the taxonomy file. The judges' verdicts are
not in the page until the expert decides.

`make review-holdout` serves the sealed session instead (`sealed.SealedQueueStore`): the
holdout queue of Layer 3, for the principal expert only, every view logged, labels kept in
the sealed area, no taxonomy editing or suggestion model (critiques of holdout answers stay
sealed).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from evals_pipeline.paths import holdout_review_dir
from evals_pipeline.review.app_http import (
    HERE,
    AppSettings,
    Pages,
    clip_text,
    json_body,
    pretty_json,
    read_body,
    security_headers,
)
from evals_pipeline.review.app_store import QUEUE_TITLES, NotReady, QueueStore, Refused
from evals_pipeline.review.bodies import TAXONOMY_DETAILS, LabelBody, TaxonomyBody, parse_body
from evals_pipeline.review.labelstore import LabelError, append_label, check_annotator, make_label
from evals_pipeline.review.sealed import SealedQueueStore
from evals_pipeline.review.taxonomy import (
    StaleTaxonomy,
    TaxonomyError,
    edit_taxonomy,
    load_taxonomy,
    mode_summary,
    saturation,
)

__all__ = ["AppSettings", "ReviewApp", "create_app", "main"]


class ReviewApp:
    """The routes of the review app over its store and pages."""

    def __init__(self, settings: AppSettings) -> None:
        self.s = settings
        self.store = (
            SealedQueueStore(settings.sealed)
            if settings.sealed
            else QueueStore(settings.analytics, settings.labels)
        )
        self.pages = Pages(sealed=self.store.sealed)

    async def home(self, request: Request) -> Response:
        annotator = self.pages.annotator(request)
        if not annotator:
            return self.pages.page(
                request, "login.html", {"next": request.query_params.get("next", "/")}
            )
        try:
            self.store.admit(annotator)
            queues = self.store.progress(annotator)
            prepared = self.store.prepared_at()
        except NotReady as exc:
            return self.pages.message(request, 503, "No queues yet", str(exc))
        except Refused as exc:
            return self.pages.message(request, exc.status, exc.title, exc.message)
        age = (datetime.now(UTC).replace(tzinfo=None) - prepared).days if prepared else None
        return self.pages.page(
            request,
            "home.html",
            {
                "queues": queues,
                "prepared_at": prepared,
                # the sealed queue is rebuilt quarterly, not weekly
                "stale": not self.store.sealed
                and age is not None
                and age >= self.s.stale_after_days,
                "age_days": age,
                "notice": request.query_params.get("notice"),
            },
        )

    async def login(self, request: Request) -> Response:
        try:
            form = parse_qs(
                (await read_body(request, self.s.max_body_bytes)).decode("utf-8", errors="replace")
            )
        except Refused as exc:
            return self.pages.message(request, exc.status, exc.title, exc.message)
        nxt = form.get("next", ["/"])[0]
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"
        try:
            name = check_annotator(form.get("annotator", [""])[0])
        except LabelError as exc:
            return self.pages.page(request, "login.html", {"next": nxt, "error": str(exc)}, 400)
        response = RedirectResponse(nxt, status_code=303)
        response.set_cookie("annotator", name, httponly=True, samesite="strict", max_age=90 * 86400)
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie("annotator")
        return response

    async def queue(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        annotator = self.pages.annotator(request)
        if not annotator:
            return RedirectResponse(f"/?next=/queue/{quote(queue)}", status_code=303)
        try:
            self.store.check_queue(queue)
            self.store.admit(annotator)
            ids, done = self.store.queue_ids(queue), self.store.done_ids(annotator)
        except NotReady as exc:
            return self.pages.message(request, 503, "No queues yet", str(exc))
        except Refused as exc:
            return self.pages.message(request, exc.status, exc.title, exc.message)
        todo = [i for i in ids if i not in done]
        if not todo:
            notice = f"The {QUEUE_TITLES[queue]} queue is done: {len(ids)} of {len(ids)} labelled."
            return RedirectResponse(f"/?notice={quote(notice)}", status_code=303)
        return RedirectResponse(f"/case/{queue}/{quote(todo[0], safe='')}", status_code=303)

    async def case(self, request: Request) -> Response:
        queue, item_id = request.path_params["queue"], request.path_params["item_id"]
        annotator = self.pages.annotator(request)
        if not annotator:
            return RedirectResponse(f"/?next={quote(request.url.path)}", status_code=303)
        try:
            self.store.admit(annotator)
            row = self.store.item(queue, item_id)
            ids, done = self.store.queue_ids(queue), self.store.done_ids(annotator)
            # logged before any of it is rendered: the sealed session's view log
            self.store.viewed(annotator, row)
        except NotReady as exc:
            return self.pages.message(request, 503, "No queues yet", str(exc))
        except Refused as exc:
            return self.pages.message(request, exc.status, exc.title, exc.message)
        pos = ids.index(item_id)
        limit = self.s.max_field_chars
        fields = {}
        for key in ("input", "output", "reference_good", "reference_borderline"):
            fields[key] = clip_text(row[key], limit)
        for key in ("context", "tool_calls", "metadata"):
            fields[key] = pretty_json(row[key], limit)
        mine = self.store.my_label(annotator, item_id)
        tax = load_taxonomy(self.s.taxonomy)
        modes = self.store.mode_names(tax)
        return self.pages.page(
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

    async def api_label(self, request: Request) -> Response:
        annotator = self.pages.annotator(request)
        if not annotator:
            return self.pages.error(
                401, "who are you? open the start page and give your name first"
            )
        try:
            body = await json_body(request, LabelBody, self.s.max_body_bytes)
            queue, item_id = body.queue, body.item_id
            self.store.admit(annotator)
            try:
                row = self.store.item(queue, item_id)
            except Refused as exc:
                if exc.status == 404 and queue in self.store.queues:
                    current = self.store.prepared_at()
                    seen = body.prepared_at
                    if current and seen and seen != current.isoformat():
                        return self.pages.error(
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
            return self.pages.error(exc.status, exc.message)
        except LabelError as exc:
            return self.pages.error(400, str(exc))
        except NotReady as exc:
            return self.pages.error(503, str(exc))
        path = append_label(self.store.labels.folder, record)
        return JSONResponse(
            {
                "ok": True,
                "label": record,
                "file": path.name,
                "verdicts": json.loads(row["judge_verdicts"]) if row["judge_verdicts"] else [],
            }
        )

    async def api_verdicts(self, request: Request) -> Response:
        annotator = self.pages.annotator(request)
        queue, item_id = request.path_params["queue"], request.path_params["item_id"]
        if not annotator:
            return self.pages.error(401, "open the start page and give your name first")
        try:
            self.store.admit(annotator)
            row = self.store.item(queue, item_id)
        except Refused as exc:
            return self.pages.error(exc.status, exc.message)
        except NotReady as exc:
            return self.pages.error(503, str(exc))
        if not self.store.my_label(annotator, item_id):
            return self.pages.error(
                403, "decide first: the judges' verdicts are shown after your own label"
            )
        return JSONResponse({"ok": True, "verdicts": json.loads(row["judge_verdicts"] or "[]")})

    # ---- taxonomy ------------------------------------------------------------------------

    async def no_taxonomy(self, request: Request) -> Response:
        return self.pages.message(
            request,
            404,
            "Not in the sealed session",
            "The failure taxonomy is edited in the ordinary review app (`make review`): here "
            "critiques are of holdout answers and stay sealed. Type a failure mode on a case; "
            "it is kept with the label.",
        )

    async def taxonomy(self, request: Request) -> Response:
        if not self.pages.annotator(request):
            return RedirectResponse("/?next=/taxonomy", status_code=303)
        try:
            tax = load_taxonomy(self.s.taxonomy)
        except TaxonomyError as exc:
            return self.pages.message(request, 500, "Taxonomy file unreadable", str(exc))
        summary = mode_summary(tax, self.store.fails())
        sat = saturation(tax, self.store.reviewed(), self.s.saturation_batch)
        return self.pages.page(
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
        annotator = self.pages.annotator(request)
        if not annotator:
            return self.pages.error(401, "open the start page and give your name first")
        try:
            body = await json_body(request, TaxonomyBody, self.s.max_body_bytes)
            detail = parse_body(json.dumps(body.detail).encode(), TAXONOMY_DETAILS[body.action])
            tax = edit_taxonomy(
                body.action, detail.model_dump(), annotator, body.version, self.s.taxonomy
            )
        except StaleTaxonomy as exc:
            return self.pages.error(409, str(exc), version=exc.current)
        except (TaxonomyError, ValueError) as exc:
            return self.pages.error(400, str(exc))
        except Refused as exc:
            return self.pages.error(exc.status, exc.message)
        return JSONResponse({"ok": True, "version": tax.version})

    async def api_suggest(self, request: Request) -> Response:
        from evals_pipeline.judging.client import judge_client
        from evals_pipeline.project import load_project
        from evals_pipeline.review.suggest import suggest

        if not self.pages.annotator(request):
            return self.pages.error(401, "open the start page and give your name first")
        tax = load_taxonomy(self.s.taxonomy)
        fails = self.store.fails()
        items = [
            {"id": i, "critique": r["critique"], "failure_mode": r["failure_mode"]}
            for i, r in enumerate(fails.drop_duplicates("critique").to_dict("records"))
            if r["critique"]
        ]
        if not items:
            return self.pages.error(
                400, "there are no critiques to group yet: label some fails first"
            )
        project = load_project(self.s.project_file)
        client = judge_client(project, max_retries=2)
        # run_calls runs its own event loop: off this one, in a worker thread
        proposals, stats, error = await run_in_threadpool(
            suggest, tax, items, client, self.s.llm_cache, project.suggester
        )
        if error:
            return self.pages.error(502, f"the suggestion model failed: {error}")
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


def create_app(settings: AppSettings | None = None) -> Starlette:
    app_state = ReviewApp(settings or AppSettings())

    allowed = set(app_state.s.allowed_hosts)
    routes = [
        Route("/", app_state.home),
        Route("/favicon.ico", lambda _request: Response(status_code=204)),
        Route("/login", app_state.login, methods=["POST"]),
        Route("/logout", app_state.logout, methods=["POST"]),
        Route("/queue/{queue}", app_state.queue),
        Route("/case/{queue}/{item_id:path}", app_state.case),
        Route("/api/label", app_state.api_label, methods=["POST"]),
        Route("/api/verdicts/{queue}/{item_id:path}", app_state.api_verdicts),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    if app_state.store.sealed:
        routes.append(Route("/taxonomy", app_state.no_taxonomy))
    else:
        routes += [
            Route("/taxonomy", app_state.taxonomy),
            Route("/api/taxonomy", app_state.api_taxonomy, methods=["POST"]),
            Route("/api/taxonomy/suggest", app_state.api_suggest, methods=["POST"]),
        ]
    app = Starlette(
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=security_headers(allowed))],
        routes=routes,
    )
    app.state.review = app_state
    return app


def main() -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the review app on localhost.")
    parser.add_argument("--host", default=os.environ.get("EVALS_REVIEW_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("EVALS_REVIEW_PORT", "0")))
    parser.add_argument(
        "--holdout",
        action="store_true",
        help="Serve the sealed session: the holdout review queue (Layer 3) for the principal "
        "expert, from the sealed review area (default <data dir>/holdout_review).",
    )
    parser.add_argument(
        "--sealed-dir", type=Path, default=None, help="The sealed review area, with --holdout."
    )
    args = parser.parse_args()
    args.port = args.port or (8766 if args.holdout else 8765)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    settings = AppSettings()
    if args.holdout:
        settings.sealed = args.sealed_dir or holdout_review_dir()
    if args.host not in ("0.0.0.0", "::", *settings.allowed_hosts):
        settings.allowed_hosts = (*settings.allowed_hosts, args.host)
    where = (
        f"sealed holdout session: queue, labels and view log in {settings.sealed}"
        if settings.sealed
        else f"queues from {settings.analytics}, labels to {settings.labels}"
    )
    print(f"review app on http://{args.host}:{args.port}/ ({where})", flush=True)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
