"""The README is the short entry and the docs hold the reference: every relative link in them
resolves, and the README stays short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evals_pipeline.paths import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        if (
            target.startswith("../")
            and "shared" in target
            and not (REPO_ROOT.parent / "shared").exists()
        ):
            continue  # ../shared is beside the project in CI and development, not everywhere
        assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_the_readme_is_the_short_entry() -> None:
    text = (REPO_ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    head = "\n".join(text.splitlines()[:10])
    assert "make demo" in head and "make test" in head
