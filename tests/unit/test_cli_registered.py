"""The ``updraft`` command finds node commands through the ``updraft.cli`` entry points, like
a third party's, and lists them without importing them (issue 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = ("flask", "werkzeug", "sqlalchemy", "alembic", "dask", "distributed", "nats",
         "scheduler", "executors", "bus", "web", "composition")
NODE_COMMANDS = {"scheduler", "web", "worker", "standalone", "events", "users"}


def run(*args: str, extra_path: Path | None = None, home: Path | None = None,
        code: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPDRAFT__")}
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    if home is not None:
        env["UPDRAFT_HOME"] = str(home)
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "updraft.cli", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False,
                          cwd=str(home or Path.cwd()))


def test_help_lists_node_commands_without_importing_them(tmp_path):
    probe = textwrap.dedent("""
        import sys
        from updraft.cli import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        print("LOADED", " ".join(sorted({m.split(".")[0] for m in sys.modules})))
    """)
    done = run(code=probe, home=tmp_path)
    assert done.returncode == 0, done.stderr
    listing, _, loaded = done.stdout.rpartition("LOADED")
    assert not set(loaded.split()) & set(HEAVY)
    assert "importlib.metadata" not in loaded  # the entry points are read without it
    assert "updraft.plugins" not in loaded
    lines = {line.split()[0]: line for line in listing.splitlines() if line.startswith("  ")}
    assert NODE_COMMANDS <= set(lines)
    assert "Run the scheduler: parse DAG files" in lines["scheduler"]  # from its docstring
    assert "Run NATS, the store, the scheduler" in lines["standalone"]


def test_dags_and_tasks_list_their_registered_subcommands(tmp_path):
    dags = run("dags", "--help", home=tmp_path)
    assert dags.returncode == 0, dags.stderr
    for name in ("list", "list-import-errors", "trigger", "pause", "unpause", "delete-run",
                 "backfill", "show", "test"):
        assert f"\n  {name} " in dags.stdout
    tasks = run("tasks", "--help", home=tmp_path)
    assert "\n  clear " in tasks.stdout and "\n  logs " in tasks.stdout
    trigger = run("dags", "trigger", "--help", home=tmp_path)
    assert trigger.returncode == 0 and "--via-bus" in trigger.stdout
    assert "--dags-folder" in trigger.stdout


def test_the_fast_listing_agrees_with_the_registry():
    from updraft.cli import registered
    from updraft.cli.registered import registered_commands
    from updraft.plugins.registry import OWN_DISTRIBUTION, extensions

    assert registered.OWN_DISTRIBUTION == OWN_DISTRIBUTION
    assert {n: r.target for n, r in registered_commands().items()} == {
        n: e.target for n, e in extensions("cli").items()}


@pytest.fixture
def third_party(tmp_path) -> Path:
    """A distribution on PYTHONPATH registering commands the way any package would."""
    site = tmp_path / "site"
    (site / "acme_updraft-1.0.dist-info").mkdir(parents=True)
    (site / "acme_updraft-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-updraft\nVersion: 1.0\n")
    (site / "acme_updraft-1.0.dist-info" / "entry_points.txt").write_text(textwrap.dedent("""
        [updraft.cli]
        hello = acme_commands:hello
        dags.hello = acme_commands:dags_hello
        dags.show = acme_commands:hello
        broken = acme_missing:nothing
    """))
    (site / "acme_commands.py").write_text(textwrap.dedent('''
        import click

        @click.command("hello")
        def hello():
            """Say hello from ACME."""
            click.echo("hello from acme")

        @click.command("hello")
        def dags_hello():
            """Greet the DAGs."""
            click.echo("hello, DAGs")
    '''))
    return site


def test_a_third_party_adds_commands_and_subcommands(third_party, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    listed = run("--help", extra_path=third_party, home=home)
    assert "hello" in listed.stdout and "Say hello from ACME." in listed.stdout
    assert run("hello", extra_path=third_party, home=home).stdout == "hello from acme\n"
    assert run("dags", "hello", extra_path=third_party, home=home).stdout == "hello, DAGs\n"
    shown = run("dags", "--help", extra_path=third_party, home=home)
    assert "Greet the DAGs." in shown.stdout
    # Updraft's own `dags show` wins; the clash is reported by name and source.
    assert "'dags.show'" in shown.stderr and "acme" in shown.stderr
    assert "Updraft has a command of that name" in shown.stderr
    broken = run("broken", extra_path=third_party, home=home)
    assert broken.returncode == 1
    assert "the command `broken` cannot be loaded" in broken.stderr
    assert "acme_missing" in broken.stderr


def test_dags_list_with_nothing_stored_says_where_it_looked_and_creates_nothing(tmp_path):
    done = run("dags", "list", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # no "No data found": the hint says more
    store = f"sqlite:///{tmp_path / 'updraft.db'}"
    assert done.stderr.splitlines() == [
        f"Nothing stored yet in {store}.",
        ("A scheduler using this store (`updraft scheduler`, or `updraft standalone`, which "
        f"also loads the example DAGs) stores the DAGs it parses from {tmp_path / 'dags'}."),
        "`updraft dags list --local` parses that folder here instead."]
    assert not (tmp_path / "updraft.db").exists()
    as_json = run("dags", "list", "-o", "json", home=tmp_path)
    assert json.loads(as_json.stdout) == [] and "Nothing stored yet" in as_json.stderr
    errors = run("dags", "list-import-errors", home=tmp_path)
    assert errors.returncode == 0 and "list-import-errors --local" in errors.stderr


def test_every_command_and_subcommand_has_help(tmp_path, monkeypatch):
    """Walk the whole command tree, registered commands included, and ask each for --help."""
    import click
    from click.testing import CliRunner

    from updraft.cli import main

    monkeypatch.setenv("UPDRAFT_HOME", str(tmp_path))
    runner = CliRunner()
    seen = []

    def walk(group: click.Group, path: list[str]) -> None:
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, path + [name]
            result = runner.invoke(main, [*path, name, "--help"], catch_exceptions=False)
            assert result.exit_code == 0, (path + [name], result.output)
            assert "Usage:" in result.output
            seen.append(" ".join(path + [name]))
            if isinstance(command, click.Group):
                walk(command, path + [name])

    walk(main, [])
    for expected in ("standalone", "scheduler", "web", "worker", "events tail", "users create",
                     "dags list", "dags backfill", "dags trigger", "tasks logs", "tasks clear",
                     "config get-value", "db migrate", "plugins"):
        assert expected in seen
    standalone = runner.invoke(main, ["standalone", "--help"])
    choices = standalone.output.split("--executor [", 1)[1].split("]", 1)[0].split("|")
    assert {"dask", "local", "nats_queue", "sequential"} <= set(choices)  # registered ones
