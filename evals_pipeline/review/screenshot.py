"""`python -m evals_pipeline.review.screenshot [out.png]`: the README's picture of the review
screen, taken in headless Chromium from the current snapshot (run `make demo` first).

It opens the first case of the Friday queue, presses f and types a critique and a failure
mode, and stops before saving: no label is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from evals_pipeline.paths import REPO_ROOT
from evals_pipeline.review.browser import CHROMIUM_ARGS, chromium_path, serving


def main() -> None:
    from playwright.sync_api import sync_playwright

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT / "docs" / "review-screen.png"
    chromium = chromium_path()
    if not chromium:
        raise SystemExit("no chromium: `make browser` installs Debian's package (as root)")
    with serving() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/?next=/queue/weekly")
        page.fill("#annotator", "domain expert")
        page.keyboard.press("Enter")
        page.wait_for_url("**/case/weekly/**")
        page.keyboard.press("f")
        page.keyboard.type(
            "Right steps, but pads the answer with claims nobody checked ('fully up to date')."
        )
        page.keyboard.press("Escape")
        page.keyboard.press("m")
        page.keyboard.type("unfounded_confidence")
        page.keyboard.press("Escape")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
