"""Writes go through lumo.crm: the agent's side-effect tools and its tool runner build no ORM rows themselves."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
MODELS = ROOT / "lumo" / "db" / "models.py"
NO_ROWS_BUILT_IN = ("tools/actions.py", "lumo/agent/toolrun.py")
STATEMENTS = frozenset({"insert", "update", "delete"})


def _model_classes() -> set[str]:
    """The mapped classes of lumo.db.models: those built on Base."""
    classes = [node for node in ast.parse(MODELS.read_text()).body if isinstance(node, ast.ClassDef)]
    return {c.name for c in classes if any(_name(b) == "Base" for b in c.bases)}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # models.Task, lumo.db.models.Task
        return node.attr
    return None


def rows_built(source: str, models: set[str]) -> list[str]:
    """Each construction of a model (`Task(...)`) or SQL write statement on one (`insert(Task)`), by line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        callee = _name(node.func)
        if callee in models:
            found.append(f"line {node.lineno}: {callee}(...)")
        elif callee in STATEMENTS and any(_name(a) in models for a in node.args):
            found.append(f"line {node.lineno}: {callee}({', '.join(str(_name(a)) for a in node.args)})")
    return found


def test_the_check_sees_a_row_built_and_a_write_statement() -> None:
    source = "from lumo.db import models\nx = models.Task(id='t')\ny = OutboxEmail(to='a')\nz = insert(AgentAction)\n"
    assert rows_built(source, {"Task", "OutboxEmail", "AgentAction"}) == [
        "line 2: Task(...)",
        "line 3: OutboxEmail(...)",
        "line 4: insert(AgentAction)",
    ]


def test_the_check_knows_the_models_that_side_effects_write() -> None:
    assert {"Task", "OutboxEmail", "AgentAction", "Activity", "Payment"} <= _model_classes()


def test_side_effect_tools_and_the_tool_runner_build_no_orm_rows() -> None:
    models = _model_classes()
    built = {path: rows_built((ROOT / path).read_text(), models) for path in NO_ROWS_BUILT_IN}
    assert built == {path: [] for path in NO_ROWS_BUILT_IN}
