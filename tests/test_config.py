"""One configuration: lumo.config reads the environment, nothing else reads or writes it."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from lumo.cli import main
from lumo.compose import model_from_env
from lumo.config import Settings, debug_enabled, model_settings
from lumo.llm import DEFAULT_MODEL, LLMSettings

ROOT = Path(__file__).parent.parent
CONFIG = ROOT / "lumo" / "config.py"


def _environment_uses(path: Path) -> list[str]:
    """Each `os.environ` / `os.getenv` / `os.putenv` / `from os import environ` in a source file, as file:line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{path.relative_to(ROOT)}:{node.lineno}" for a in node.names if a.name in ("environ", "getenv")]
    return found


def test_no_module_but_lumo_config_reads_or_writes_the_environment() -> None:
    # evals/perf is left out: the benchmarks start servers and workers with environments of their own.
    sources = [p for d in ("lumo", "tools", "evals") for p in (ROOT / d).rglob("*.py") if p != CONFIG]
    sources = [p for p in sources if "perf" not in p.relative_to(ROOT).parts]
    assert [use for p in sources for use in _environment_uses(p)] == []


def test_the_model_settings_come_from_the_environment_lumo_config_reads() -> None:
    env = {"OPENAI_API_KEY": " sk-x ", "OPENAI_BASE_URL": "http://model.test/v1", "LUMO_MODEL": "gpt-4.1"}
    found = model_settings(env)
    assert (found.api_key, found.base_url, found.model, found.live) == ("sk-x", "http://model.test/v1", "gpt-4.1", True)
    assert "sk-x" not in repr(found)
    assert LLMSettings.from_env(env).model == "gpt-4.1"
    assert LLMSettings.from_env({"OPENAI_API_KEY": "sk-x"}).model == DEFAULT_MODEL


def test_lumo_llm_offline_forces_the_offline_model_even_with_a_key() -> None:
    assert model_settings({"OPENAI_API_KEY": "sk-x", "LUMO_LLM": "Offline"}).live is False
    assert model_from_env({"OPENAI_API_KEY": "sk-x", "LUMO_LLM": "offline"}) is None
    assert model_from_env({}) is None


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("LUMO_DEBUG", "1")
    assert model_settings().api_key == "sk-from-env"
    assert debug_enabled() is True
    assert debug_enabled({"LUMO_DEBUG": "0"}) is False and debug_enabled({}) is False


def _serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> tuple[int, list[Any]]:
    """Run `lumo serve ARGS` up to uvicorn, which is replaced by a recorder of what it was given."""
    import uvicorn

    import lumo.api.app

    monkeypatch.setenv("LUMO_DATABASE_URL", f"sqlite:///{tmp_path / 'lumo.db'}")
    monkeypatch.delenv("LUMO_DIGEST_AT", raising=False)
    built: list[Any] = []
    real_create_app = lumo.api.app.create_app

    def create_app(settings: Settings | None = None, env: Any = None, *, serving: bool = False) -> Any:
        assert serving  # `lumo serve` runs the app as a server (lumo.gc_tuning)
        built.append(settings)
        return real_create_app(settings, env)

    monkeypatch.setattr(lumo.api.app, "create_app", create_app)
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: built.append(options))
    monkeypatch.setattr(sys, "argv", ["lumo", "serve", *args])
    try:
        main()
    except SystemExit as exc:
        return (exc.code if isinstance(exc.code, int) else 0), built
    return 0, built


def test_serve_hands_digest_at_to_the_app_without_writing_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, built = _serve(monkeypatch, tmp_path, "--digest-at", "07:30")
    assert code == 0
    assert built[0].digest_at == "07:30" and built[1]["port"] == 8000
    assert "LUMO_DIGEST_AT" not in os.environ


def test_serve_refuses_digest_at_for_several_workers_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LUMO_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    monkeypatch.setattr(sys, "argv", ["lumo", "serve", "--workers", "2", "--digest-at", "07:30"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    assert "LUMO_DIGEST_AT" in capsys.readouterr().err and "LUMO_DIGEST_AT" not in os.environ


def test_db_connections_below_what_a_process_needs_is_one_line() -> None:
    from lumo.config import settings_from

    with pytest.raises(ValueError, match="^LUMO_DB_CONNECTIONS: "):
        settings_from({"LUMO_DB_CONNECTIONS": "2"})


@pytest.mark.parametrize(("total", "split"), [(12, (8, 4)), (3, (1, 2)), (30, (20, 10))])
def test_a_process_shares_its_connections_between_engine_and_checkpointer(total: int, split: tuple[int, int]) -> None:
    from lumo.compose import connection_split

    assert connection_split(total) == split and sum(split) == total


def test_serve_on_postgresql_leaves_digest_at_to_the_workers_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LUMO_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    monkeypatch.delenv("LUMO_JOBS", raising=False)
    monkeypatch.setattr(sys, "argv", ["lumo", "serve", "--digest-at", "07:30"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: on PostgreSQL the digests are sent by the workers: `lumo worker --digest-at HH:MM`"
    )


def test_a_worker_on_sqlite_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LUMO_DATABASE_URL", f"sqlite:///{tmp_path / 'lumo.db'}")
    monkeypatch.setattr(sys, "argv", ["lumo", "worker"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "a worker needs PostgreSQL" in capsys.readouterr().err
