"""`python -m evals_pipeline.reports.screenshot [out.png]`: the README's picture of the HTML
report (data/reports/latest.html, so run `make demo` first), taken in headless Chromium: the
decision headline, what changed since the last run, and the pass-rate trend."""

from __future__ import annotations

import sys
from pathlib import Path

from evals_pipeline.paths import REPO_ROOT, data_dir
from evals_pipeline.review.browser import CHROMIUM_ARGS, chromium_path


def main() -> None:
    from playwright.sync_api import sync_playwright

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT / "docs" / "report-screen.png"
    page_path = data_dir() / "reports" / "latest.html"
    if not page_path.exists():
        raise SystemExit(f"no report at {page_path}: run `make demo` first")
    chromium = chromium_path()
    if not chromium:
        raise SystemExit("no chromium: `make browser` installs Debian's package (as root)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(page_path.resolve().as_uri())
        # the top of the page, then the trend plot beside it in one picture
        page.evaluate(
            """() => {
                const trend = [...document.querySelectorAll('h2')]
                    .find(h => h.textContent.startsWith('Pass rate per version over time'));
                if (!trend) return;
                const box = document.createElement('div');
                box.append(trend.cloneNode(true), trend.nextElementSibling.cloneNode(true));
                const since = [...document.querySelectorAll('h2')]
                    .find(h => h.textContent.startsWith('Since the last run'));
                since.nextElementSibling.after(box);
            }"""
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": 1200, "height": 900})
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
