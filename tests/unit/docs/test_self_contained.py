"""The repository's docs stand on their own: nothing cites a path outside the checkout.

Why a test: the design notes once lived in a folder beside the repository and the docs cited
them by a relative path leaving the checkout — links that resolve on the machine they were
written on and nowhere else (not in a clone, not in a wheel, not on GitHub). They now live
in ``docs/background/``; this keeps every citation and every relative link resolvable from a
fresh clone.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
THIS = Path(__file__).resolve()

#: Paths that exist only on a development machine (built by parts so this file is clean).
OUTSIDE = re.compile(
    "|".join([r"\.\./" + "shared/", "/work" + "/", r"\bshared/" + "(docs|seeds)/"])
)
_SKIP_DIRS = {".git", ".venv", "__pycache__", "artifacts", "build", ".cache", ".reconverge"}
_TEXT_SUFFIXES = {".md", ".py", ".pyi", ".toml", ".yaml", ".yml", ".sh", ".bash", ".cfg", ".txt"}
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
#: "``kubernetes-path.md`` §6.4", "kind-node-contract.md §5", "§5–6 of ``kubernetes-path.md``"
_CITED = (
    re.compile(r"`{0,2}([\w.-]+\.md)`{0,2}\)?,?\s*(?:contract\s*)?§"),
    re.compile(r"§[\d.x]+(?:[–-][\d.]+)?\s+of\s+`{0,2}([\w.-]+\.md)"),
)


def repository_files() -> list[Path]:
    """Tracked files (a fresh clone's view); a plain walk when there is no git checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
        ).stdout
        paths = [REPO / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        paths = [
            p
            for p in REPO.rglob("*")
            if p.is_file() and not _SKIP_DIRS & set(p.relative_to(REPO).parts)
        ]
    return [p for p in paths if p.is_file() and p.suffix in _TEXT_SUFFIXES | {""}]


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def links(path: Path) -> list[str]:
    """Relative link targets of a markdown file, outside code blocks and inline code."""
    text = _INLINE_CODE.sub("", _FENCE.sub("", path.read_text(encoding="utf-8")))
    return [t for t in _LINK.findall(text) if not re.match(r"[a-zA-Z][\w+.-]*:", t)]


@cache
def anchors(path: Path) -> frozenset[str]:
    """The heading ids GitHub gives a markdown file (lower-case, punctuation dropped, -n)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in _FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1)).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return frozenset(out)


def test_no_repository_file_cites_a_path_outside_it() -> None:
    files = repository_files()
    assert REPO / "README.md" in files and REPO / "ci" / "bootstrap" in files, "scanned nothing"
    hits = []
    for path in files:
        if path.resolve() == THIS:
            continue
        text = _text(path)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:120]}")
    assert not hits, "cites a path outside the repository (use docs/background/):\n" + "\n".join(
        hits
    )


def test_every_relative_link_in_the_docs_resolves() -> None:
    broken = []
    for md in markdown_files():
        for target in links(md):
            path, _, fragment = target.partition("#")
            dest = (md.parent / path).resolve() if path else md
            where = f"{md.relative_to(REPO)}: ({target})"
            if REPO not in (dest, *dest.parents):
                broken.append(f"{where} leaves the repository")
            elif not dest.exists():
                broken.append(f"{where} does not exist")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                broken.append(f"{where} has no heading #{fragment}")
    assert not broken, "\n".join(broken)


def test_every_section_citation_names_a_doc_of_ours() -> None:
    ours = {p.name for p in (REPO / "docs").rglob("*.md")}
    unknown = []
    for path in repository_files():
        text = _text(path)
        if text is None or path.resolve() == THIS:
            continue
        for pattern in _CITED:
            for name in pattern.findall(text):
                if name not in ours:
                    unknown.append(f"{path.relative_to(REPO)}: {name}")
    assert not unknown, "cites a note that is not in docs/:\n" + "\n".join(sorted(set(unknown)))


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("see `../" + "shared/docs/kubernetes-path.md` §2", True),
        ("from /work" + "/shared/seeds/x.txt", True),
        ("see [kubernetes-path.md](background/kubernetes-path.md) §2", False),
        ("containerd's /run/containerd/s directory is still shared", False),
    ],
)
def test_the_outside_pattern_tells_them_apart(text: str, bad: bool) -> None:
    assert bool(OUTSIDE.search(text)) is bad


def test_a_broken_link_and_a_missing_anchor_are_found(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text(
        "# Title\n\n[ok](#title) [gone](nope.md) `[code](nope.md)`\n"
        "```\n[fenced](nope.md)\n```\n[web](https://example.org/a.md)\n"
    )
    assert links(md) == ["#title", "nope.md"]
    assert anchors(md) == {"title"}
