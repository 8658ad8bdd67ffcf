"""Every relative link in README.md and docs/*.md resolves: the file exists and, where the
link names an anchor in a Markdown page, that page has a heading with that anchor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(markdown: str) -> str:
    """The text outside code blocks and code spans, where links are links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", markdown))


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(heading) for heading in _HEADING.findall(_prose(page.read_text()))}


def broken_links(page: Path) -> list[str]:
    """The relative links on `page` that lead nowhere, each with the reason."""
    broken = []
    for target in _LINK.findall(_prose(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target}: {resolved} does not exist")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading with the anchor #{fragment} in {resolved.name}")
    return broken


def test_the_pages_exist() -> None:
    names = {page.name for page in PAGES}
    assert {"README.md", "api.md", "model.md", "performance.md"} <= names
    assert {"operations.md", "deployment.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_every_page_is_linked_from_the_readme() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    for page in PAGES[1:]:
        assert f"](docs/{page.name})" in readme, f"README.md does not link to {page.name}"


def test_the_checker_finds_what_is_broken(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Sizing, in short\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n"
        "[fine](other.md) [fine](other.md#sizing-in-short) [fine](#title) [web](https://x.org/a)\n"
        "[missing](nowhere.md) ![missing picture](pics/none.png) [bad anchor](other.md#sizing)\n"
        "`[in a code span](nowhere.md)`\n\n"
        "```\n[in a code block](nowhere.md)\n```\n"
    )
    assert [problem.split(":")[0] for problem in broken_links(page)] == [
        "nowhere.md",
        "pics/none.png",
        "other.md#sizing",
    ]


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Against the targets", "against-the-targets"),
        ("The network runs in LiteRT", "the-network-runs-in-litert"),
        ("From an upload to the input", "from-an-upload-to-the-input"),
        ("`make bench`, step by step", "make-bench-step-by-step"),
    ],
)
def test_anchor_follows_github(heading: str, expected: str) -> None:
    assert anchor(heading) == expected
