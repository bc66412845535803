"""ARCHITECTURE.md is in the repository, the code cites it (and nothing absent), and its layers are the ones lint checks."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
CITED_SECTION = re.compile(r"ARCHITECTURE\.md,?\s+section\s+(\d+)")


def _sources() -> list[Path]:
    kinds = ("*.py", "*.md", "*.yaml", "*.toml", "*.j2")
    folders = [ROOT / d for d in ("lumo", "tools", "tests", "evals", "prompts")]
    return [p for d in folders for kind in kinds for p in d.rglob(kind)] + [ROOT / "README.md", ROOT / "pyproject.toml"]


def _text(path: Path) -> str:
    return " ".join(path.read_text(encoding="utf-8").split())  # a citation may wrap across lines


def test_the_code_cites_no_design_file_the_repository_does_not_hold() -> None:
    citing = [str(p.relative_to(ROOT)) for p in _sources() if p != Path(__file__) and re.search(r"\bDESIGN\b", _text(p))]
    assert citing == []


def test_every_cited_section_of_architecture_md_exists() -> None:
    sections = set(re.findall(r"^## (\d+)\. ", ARCHITECTURE.read_text(), re.M))
    cited = {(str(p.relative_to(ROOT)), n) for p in _sources() for n in CITED_SECTION.findall(_text(p))}
    assert cited, "the code cites ARCHITECTURE.md"
    assert [c for c in sorted(cited) if c[1] not in sections] == []


def test_the_layers_of_architecture_md_are_the_ones_lint_checks() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    checked = next(c["layers"] for c in contracts if c["type"] == "layers")
    drawn = ARCHITECTURE.read_text().split("```")[1]  # the first drawing: the layers, top to bottom
    lines = [" ".join(line.split()) for line in drawn.splitlines()]
    rows = [next((i for i, line in enumerate(lines) if line.startswith(layer)), -1) for layer in checked]
    assert -1 not in rows, f"a checked layer is missing from ARCHITECTURE.md: {dict(zip(checked, rows, strict=True))}"
    assert rows == sorted(rows), "ARCHITECTURE.md draws the layers in another order than lint checks them"
