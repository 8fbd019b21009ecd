"""The rules of the layers, read from the source: who may import whom, where SQL may be written, and that
every catalog write goes through the journal (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "avlog"
MODULES = sorted(p for p in SRC.rglob("*.py"))

_WRITE_SQL = re.compile(
    r"\b(INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\[?\w+\]?\s+SET|DELETE\s+FROM|REPLACE\s+INTO)\b", re.I
)
_ANY_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b.*\b(FROM|INTO|SET|WHERE)\b", re.S)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def strings(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a module, with its line (f-strings by their literal parts)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            found.append((node.lineno, text))
    return found


def test_the_modules_are_found() -> None:
    assert len(MODULES) > 40 and SRC / "store" / "journal.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_only_the_cli_imports_typer_and_rich(path: Path) -> None:
    if path.parent.name == "cli" or path.name == "render.py":
        return
    used = {m.split(".")[0] for m in imports(path)}
    assert not used & {"typer", "rich", "click"}, f"{module_name(path)} imports {used & {'typer', 'rich', 'click'}}"


@pytest.mark.parametrize("path", [p for p in MODULES if p.parent.name == "store"], ids=module_name)
def test_the_store_stands_on_nothing_above_it(path: Path) -> None:
    above = ("avlog.ingest", "avlog.iso", "avlog.retention", "avlog.cli", "avlog.render", "avlog.marks")
    bad = [m for m in imports(path) if m.startswith(above)]
    assert not bad, f"{module_name(path)} imports {bad}"


@pytest.mark.parametrize("path", [p for p in MODULES if p.parent.name != "store"], ids=module_name)
def test_no_sql_writes_outside_the_store(path: Path) -> None:
    """Rows are written only by Catalog.insert/update, which put each write into its audit entry."""
    writes = [(line, text) for line, text in strings(path) if _WRITE_SQL.search(text)]
    assert not writes, f"{module_name(path)} writes SQL itself: {writes}"
    source = path.read_text()
    assert not re.search(r"\.table\([^)]*\)\s*\.(insert|update|upsert|delete)", source), module_name(path)
    assert not re.search(r"\bdb\[[^]]+\]\s*\.(insert|update|upsert|delete)", source), module_name(path)


@pytest.mark.parametrize(
    "path", [p for p in MODULES if p.parent.name == "cli" or p.name == "render.py"], ids=module_name
)
def test_no_sql_in_the_cli_or_the_rendering(path: Path) -> None:
    found = [(line, text[:60]) for line, text in strings(path) if _ANY_SQL.search(text) and text.strip()[:6].isupper()]
    assert not found, f"{module_name(path)} holds SQL: {found}"
    assert ".catalog.db" not in path.read_text(), module_name(path)


def test_the_write_rule_would_catch_a_raw_write(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('db.execute("UPDATE flags SET reason = ? WHERE id = ?", [1, 2])\n')
    assert _WRITE_SQL.search(strings(sample)[0][1])
