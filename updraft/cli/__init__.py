"""The ``updraft`` command. Each group lives in its own module; this one wires them together."""

from __future__ import annotations

import importlib
import importlib.util

import click

# (module, attribute) of every command group; imported lazily so `updraft --help` stays fast.
COMMAND_GROUPS = {
    "db": ("updraft.cli.db", "db"),
    "dags": ("updraft.cli.dags", "dags"),
    "tasks": ("updraft.cli.tasks", "tasks"),
    "variables": ("updraft.cli.variables", "variables"),
    "connections": ("updraft.cli.connections", "connections"),
    "pools": ("updraft.cli.pools", "pools"),
    "config": ("updraft.cli.config_cmd", "config"),
    "plugins": ("updraft.cli.plugins", "plugins"),
    # Node commands live in their node packages (updraft imports none of them).
    "scheduler": ("scheduler.cli", "scheduler"),
    "events": ("bus.cli", "events"),
    "web": ("web.cli", "web"),
    "users": ("web.users_cli", "users"),
    "standalone": ("web.standalone", "standalone"),
    "worker": ("bus.worker_cli", "worker"),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when used."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._available()))

    def _available(self):
        names = []
        for name, (module, _attr) in COMMAND_GROUPS.items():
            if importlib.util.find_spec(module) is not None:
                names.append(name)
        return names

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        if name not in COMMAND_GROUPS:
            return None
        module, attr = COMMAND_GROUPS[name]
        if importlib.util.find_spec(module) is None:
            return None
        return add_dags_folder_everywhere(getattr(importlib.import_module(module), attr))


def _set_dags_folder(ctx, _param, value):
    if value:
        import os

        from updraft.config import conf

        os.environ["UPDRAFT__CORE__DAGS_FOLDER"] = os.path.abspath(value)
        conf.reload()
    return value


def add_dags_folder_everywhere(command: click.Command) -> click.Command:
    """Give every command ``--dags-folder`` (commands that declare it keep their own)."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_dags_folder_everywhere(sub)
        return command
    if any(p.name == "dags_folder" for p in command.params):
        return command
    command.params.append(click.Option(
        ["--dags-folder"], expose_value=False, is_eager=True, callback=_set_dags_folder,
        type=click.Path(), help="Folder of DAG files; default: [core] dags_folder."))
    return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="updraft")
def main() -> None:
    """Updraft: author, schedule and watch workflows written as Python DAGs."""


if __name__ == "__main__":
    main()
