"""Groups of the ``updraft`` command that take registered commands (entry points ``updraft.cli``).

A ``RegisteredGroup`` holds its own commands plus those registered under its prefix: ``""``
for ``updraft`` itself (entry point ``scheduler``), ``"dags."`` for ``updraft dags`` (entry
point ``dags.backfill``). A registered command is loaded through the extension registry when
it runs; ``--help`` describes it from the docstring in its source file instead, so listing
the commands imports none of them. A registered name that one of Updraft's own commands
already has is ignored, and reported as a load error (``updraft plugins``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import click


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


#: The distribution whose entry points win a name clash (``updraft.plugins.registry``'s
#: OWN_DISTRIBUTION; not imported from there, which costs ``updraft --help`` 5 ms).
OWN_DISTRIBUTION = "updraft"


@dataclass(frozen=True)
class Registration:
    """A command registered in ``updraft.cli``, as read from its distribution's metadata."""

    name: str
    target: str
    source: str


def _registered(prefix: str) -> dict[str, Registration]:
    """``name -> Registration`` of the commands registered under ``prefix`` (nothing imported)."""
    found = {}
    for name, registration in registered_commands().items():
        rest = name[len(prefix):] if name.startswith(prefix) else ""
        if rest and "." not in rest:
            found[rest] = registration
    return found


@functools.cache
def registered_commands() -> dict[str, Registration]:
    """Every entry point of the group ``updraft.cli`` on ``sys.path``, by name.

    Read straight from the ``entry_points.txt`` of each distribution, as
    ``importlib.metadata`` finds them (the first distribution of a name on ``sys.path``
    counts) and as the registry ranks them (Updraft's own entries win a name clash). Listing
    commands this way costs about a millisecond; importing ``importlib.metadata`` costs some
    40 ms, which ``updraft --help`` would pay for nothing. Loading a command goes through the
    registry (``updraft.plugins.registry.load``), which reports broken ones.
    """
    import os
    import sys

    candidates: list[tuple[int, str, str, str]] = []
    seen: set[str] = set()
    for folder in sys.path:
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:
            continue
        for entry in names:
            if not entry.endswith((".dist-info", ".egg-info")):
                continue
            dist = re.sub(r"[-_.]+", "_", entry.rsplit(".", 1)[0].split("-")[0]).lower()
            if dist in seen:  # the first distribution of a name on sys.path counts
                continue
            seen.add(dist)
            for name, target in _group_entries(Path(folder or ".", entry, "entry_points.txt")):
                candidates.append((0 if dist == OWN_DISTRIBUTION else 1, dist, name, target))
    found: dict[str, Registration] = {}
    for _rank, dist, name, target in sorted(candidates):  # the registry's order: own first
        if name not in found:
            found[name] = Registration(name, target,
                                       f"entry point {name!r} in group updraft.cli of {dist}")
    return found


def _group_entries(path: Path) -> list[tuple[str, str]]:
    """(name, target) of the ``[updraft.cli]`` section of an ``entry_points.txt``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    entries, inside = [], False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            inside = line == "[updraft.cli]"
        elif inside and "=" in line and not line.startswith(("#", ";")):
            name, _, target = line.partition("=")
            entries.append((name.strip(), target.split("[")[0].strip()))
    return entries


class RegisteredGroup(click.Group):
    """A click group whose registered subcommands are imported only when they run."""

    def __init__(self, *args, registered_prefix: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: Entry points named ``<prefix><command>`` are this group's; None: ``<name>.``.
        self.registered_prefix = (f"{self.name}." if registered_prefix is None
                                  else registered_prefix)

    def _extra(self) -> dict[str, Registration]:
        found = _registered(self.registered_prefix)
        for name in set(found) & set(self.commands):
            _report_clash(self.registered_prefix + name, found.pop(name).source)
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self._extra()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None:
            ext = self._extra().get(cmd_name)
            if ext is None:
                return None
            command = _load(self.registered_prefix + cmd_name)
        return add_dags_folder_everywhere(command)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, but registered commands are described without being imported."""
        extra = self._extra()
        rows = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                command = click.Command(name, help=describe(extra[name].target))
            if command.hidden:
                continue
            rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit))
                                    for name, command in rows])


def _load(name: str) -> click.Command:
    """The command registered as ``name``: imported from the entry point it was listed from
    (what the registry would import, checked the same way). If that fails, the registry is
    asked, which says why by name and source, and lists it in ``updraft plugins``; it is not
    asked first because reading every distribution's metadata costs more than the command
    (about 0.1 s on a small machine)."""
    import importlib

    registration = registered_commands().get(name)
    if registration is not None:
        module, _, attr = registration.target.partition(":")
        try:
            value = importlib.import_module(module)
            for part in attr.split(".") if attr else ():
                value = getattr(value, part)
        except Exception:  # noqa: BLE001  (the registry reports it below)
            value = None
        if isinstance(value, click.Command):
            return value
    from updraft.plugins.registry import ExtensionError, load

    try:
        return load("cli", name)
    except ExtensionError as exc:
        raise click.ClickException(f"the command `{name.replace('.', ' ')}` cannot be loaded: "
                                   f"{exc}") from None


def _report_clash(name: str, source: str) -> None:
    from updraft.plugins.registry import LoadError, record_error

    record_error(LoadError("cli", name, source, "Updraft has a command of that name; "
                           "this one is ignored"))


def describe(target: str) -> str:
    """The help text of the command at ``target`` (``module:attr``), read from its source
    file without importing it; the target itself when that cannot be done."""
    module, _, attr = target.partition(":")
    text = _function_help(module, attr) if attr and "." not in attr else None
    return text or f"(registered as {target})"


@functools.cache
def _source_text(module: str) -> str:
    path = _source_file(module)
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


@functools.cache
def _function_help(module: str, name: str) -> str | None:
    """The help of the top-level function ``name`` of ``module``: a ``help=`` given to its
    click decorator, else its docstring; None if the source cannot be found or read.

    Only that function's lines are parsed (from its decorators to the next top-level
    statement): parsing whole modules cost ``updraft --help`` about 10 ms here."""
    import ast

    text = _source_text(module)
    found = re.search(rf"^(?:async[ \t]+)?def[ \t]+{re.escape(name)}\b", text, re.MULTILINE)
    if found is None:
        return None
    lines = text[:found.start()].splitlines(keepends=True)
    start = len(lines)
    while start > 0 and (lines[start - 1].startswith(("@", " ", "\t", ")"))
                         and lines[start - 1].strip()):
        start -= 1  # the decorators above it (and their continuation lines)
    body = text.find("\n", found.end()) + 1 or len(text)
    following = re.compile(r"^[^\s)]", re.MULTILINE).search(text, body)
    end = following.start() if following else len(text)
    try:
        node = ast.parse("".join(lines[start:]) + text[found.start():end]).body[0]
    except (SyntaxError, ValueError, IndexError):
        return None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call) and _names_a_command(decorator.func):
            for keyword in decorator.keywords:
                if keyword.arg in ("help", "short_help") and isinstance(
                        keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
                    return keyword.value.value
    return ast.get_docstring(node)


def _names_a_command(func) -> bool:
    """Whether a decorator is ``click.command(...)``/``group(...)`` (or ``x.command(...)``)."""
    name = getattr(func, "attr", None) or getattr(func, "id", "")
    return name in ("command", "group")


def _source_file(module: str) -> Path | None:
    """The source file of ``module``, found from its top-level package without importing
    anything (``importlib.util.find_spec`` of a dotted name would import its parents)."""
    import importlib.util

    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for folder in spec.submodule_search_locations or ():
        base = Path(folder).joinpath(*rest)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


__all__ = ["RegisteredGroup", "Registration", "add_dags_folder_everywhere", "describe",
           "registered_commands"]
