"""The repository carries its own documentation: every reference to the method, architecture or evaluation document
points into ``docs/``, and every cited section number exists there.

Fast and offline: it reads the tracked ``*.py``, ``*.md`` and ``*.yaml`` files (``git ls-files``, or a walk of the
checkout when git is unavailable) and the headings of ``docs/*.md``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: The documents that code and docs cite (file stems, without the suffix).
DOC_STEMS = ("method", "architecture", "evaluation")
#: Documents whose sections are cited by number.
NUMBERED = ("method", "evaluation")
#: Folders never scanned when git is not available (virtual environments, DVC outputs, caches).
SKIP_DIRS = {".git", ".venv", "venv", ".dvc", "data", "models", "metrics", "node_modules", "__pycache__"}

#: A mention of one of the documents, with whatever path characters precede its name.
MENTION = re.compile(r"(?P<prefix>[\w./-]*?)(?<![\w-])(?P<stem>" + "|".join(DOC_STEMS) + r")\.md")
NUMBER = r"\d+(?:\.\d+)?"
#: A numbered citation: the document (a Markdown link's ")" or closing backticks may follow), optionally
#: "section(s)", then numbers joined by "-", ",", "/" or "and".
CITATION = re.compile(
    r"(?P<stem>" + "|".join(NUMBERED) + r")\.md[)`*]*\s+(?:sections?\s+)?"
    rf"(?P<numbers>{NUMBER}(?:\s*(?:-|,|/|and)\s*{NUMBER})*)"
)
HEADING = re.compile(r"^#{2,3}\s+(\d+(?:\.\d+)?)\.?\s", re.MULTILINE)


def tracked_files() -> list[Path]:
    """Return the tracked ``*.py``, ``*.md`` and ``*.yaml`` files of the repository (all of them without git)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", "*.py", "*.md", "*.yaml"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        files = [ROOT / name for name in out.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        files = []
    if not files:
        files = [
            p
            for p in ROOT.rglob("*")
            if p.suffix in (".py", ".md", ".yaml") and p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)
        ]
    return sorted(p for p in files if p.is_file())


def sections(stem: str) -> set[str]:
    """Return the section numbers ("2", "2.5", ...) of the headings of ``docs/<stem>.md``."""
    return set(HEADING.findall((DOCS / f"{stem}.md").read_text(encoding="utf-8")))


def points_into_docs(source: Path, prefix: str, stem: str) -> bool:
    """Return whether ``prefix + stem.md`` mentioned in ``source`` names ``docs/<stem>.md`` of this repository,
    read relative to the repository root or to the mentioning file's folder (a Markdown link)."""
    target = (DOCS / f"{stem}.md").resolve()
    if not prefix:
        return source.parent.resolve() == DOCS.resolve()
    return any((base / f"{prefix}{stem}.md").resolve() == target for base in (ROOT, source.parent))


def test_documents_exist() -> None:
    """The cited documents are in the repository and have numbered sections."""
    for stem in DOC_STEMS:
        assert (DOCS / f"{stem}.md").is_file(), f"docs/{stem}.md is missing"
    for stem in NUMBERED:
        assert sections(stem), f"docs/{stem}.md has no numbered section headings"


def test_references_point_into_docs() -> None:
    """No tracked file outside docs/ refers to a method/architecture/evaluation document outside docs/."""
    bad = []
    for path in tracked_files():
        if DOCS in path.parents:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in MENTION.finditer(text):
            if not points_into_docs(path, match["prefix"], match["stem"]):
                line = text.count("\n", 0, match.start()) + 1
                bad.append(f"{path.relative_to(ROOT)}:{line}: {match[0]}")
    assert not bad, "references to documents outside docs/:\n" + "\n".join(bad)


@pytest.mark.parametrize("stem", NUMBERED)
def test_cited_sections_exist(stem: str) -> None:
    """Every "<document> N.N" citation in a tracked file (docs/ included) names an existing section heading."""
    known = sections(stem)
    missing = []
    for path in tracked_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in CITATION.finditer(text):
            if match["stem"] != stem:
                continue
            for number in re.findall(NUMBER, match["numbers"]):
                if number not in known:
                    line = text.count("\n", 0, match.start()) + 1
                    missing.append(f"{path.relative_to(ROOT)}:{line}: {match[0]!r} cites {stem} {number}")
    assert not missing, f"sections missing from docs/{stem}.md:\n" + "\n".join(missing)


def test_heading_pattern() -> None:
    """The heading pattern reads both heading levels of the numbered documents."""
    assert HEADING.findall("## 2. Pseudo-labels\n### 2.5 Clustering\n#### 2.5.1 no\n") == ["2", "2.5"]
