"""``updraft dags check-compat``: read Airflow DAG files (without importing them) and list
which Airflow imports and features Updraft supports and which it does not, with lines.

The verdicts come from the same table as the import hook (:mod:`updraft.compat.airflow_map`),
so a file reported fully supported imports cleanly, and every line reported unsupported is
one where the import hook (or the operator) raises ``not supported by Updraft``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from dataclasses import asdict, dataclass, field
from pathlib import Path

from updraft.compat import airflow_map
from updraft.compat.airflow_map import (
    DEFERRABLE_OPERATORS,
    UNSUPPORTED_OPERATOR_KWARGS,
    Unsupported,
)

#: ``@task.<name>`` variants Updraft has.
TASK_DECORATOR_VARIANTS = frozenset({"python", "branch", "short_circuit", "bash", "sensor",
                                     "override", "partial", "expand", "expand_kwargs"})
TASK_DECORATOR_PATHS = frozenset({"airflow.decorators.task", "airflow.sdk.task",
                                  "airflow.providers.common.compat.sdk.task"})


@dataclass
class Finding:
    """One Airflow name or feature a file uses, and whether Updraft supports it."""

    line: int
    name: str
    supported: bool
    reason: str = ""


@dataclass
class FileReport:
    """What one file uses from Airflow."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None

    @property
    def supported(self) -> list[Finding]:
        return [f for f in self.findings if f.supported]

    @property
    def unsupported(self) -> list[Finding]:
        return [f for f in self.findings if not f.supported]

    @property
    def fully_supported(self) -> bool:
        return self.error is None and not self.unsupported

    def to_dict(self) -> dict:
        return {"path": self.path, "fully_supported": self.fully_supported,
                "error": self.error,
                "supported": [asdict(f) for f in self.supported],
                "unsupported": [asdict(f) for f in self.unsupported]}


def _is_airflow(module: str | None) -> bool:
    return bool(module) and (module == "airflow" or module.startswith("airflow."))


def module_verdict(module: str) -> tuple[bool, str]:
    """Whether the Airflow module is served, and if not, why."""
    if airflow_map.is_known_module(module):
        return True, ""
    return False, airflow_map.unsupported_module_reason(module)


def name_verdict(module: str, name: str) -> tuple[bool, str]:
    """Whether ``from module import name`` works under the import hook, and if not, why."""
    ok, reason = module_verdict(module)
    if not ok:
        return ok, reason
    if airflow_map.plugin_alias(module) is not None:
        return True, ""  # a module of the plugins folder: its names are the plugin's own
    if airflow_map.is_known_module(f"{module}.{name}"):
        return True, ""
    target = airflow_map.lookup(module, name)
    if target is None:
        return False, "no Updraft equivalent"
    if isinstance(target, Unsupported):
        return False, target.reason
    source, _, attr = target.partition(":")
    if importlib.util.find_spec(source) is None:
        return False, f"{source} is not available in this Updraft"
    if attr and not hasattr(importlib.import_module(source), attr):
        return False, f"{source} has no {attr}"
    return True, ""


class _Visitor(ast.NodeVisitor):
    def __init__(self, report: FileReport):
        self.report = report
        self.modules: dict[str, str] = {}  # local name -> Airflow module it is bound to
        self.objects: dict[str, str] = {}  # local name -> Airflow name (module.attr)

    def add(self, node: ast.AST, name: str, verdict: tuple[bool, str]) -> None:
        self.report.findings.append(Finding(getattr(node, "lineno", 0), name, *verdict))

    # -- imports ---------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not _is_airflow(alias.name):
                continue
            self.add(node, alias.name, module_verdict(alias.name))
            if alias.asname:
                self.modules[alias.asname] = alias.name
            else:
                self.modules["airflow"] = "airflow"

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not _is_airflow(node.module):
            return
        module = node.module or ""
        ok, reason = module_verdict(module)
        if not ok:
            self.add(node, module, (ok, reason))
            return
        for alias in node.names:
            if alias.name == "*":
                self.add(node, module, (True, ""))
                continue
            qualified = f"{module}.{alias.name}"
            self.add(node, qualified, name_verdict(module, alias.name))
            local = alias.asname or alias.name
            if airflow_map.is_known_module(qualified):
                self.modules[local] = qualified
            else:
                self.objects[local] = qualified

    # -- uses ------------------------------------------------------------------------------

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain: list[str] = []
        current: ast.AST = node
        while isinstance(current, ast.Attribute):
            chain.append(current.attr)
            current = current.value
        if not isinstance(current, ast.Name):
            self.generic_visit(node)
            return
        chain.reverse()
        root = current.id
        if root in self.modules:
            self._check_module_chain(node, self.modules[root], chain)
        elif root in self.objects and self.objects[root] in TASK_DECORATOR_PATHS:
            variant = chain[0]
            if variant not in TASK_DECORATOR_VARIANTS:
                self.add(node, f"@task.{variant}", (False, _task_variant_reason(variant)))

    def _check_module_chain(self, node: ast.AST, module: str, chain: list[str]) -> None:
        for index, attr in enumerate(chain):
            qualified = f"{module}.{attr}"
            if airflow_map.is_known_module(qualified):
                module = qualified
                continue
            if attr.startswith("__"):
                return
            self.add(node, qualified, name_verdict(module, attr))
            return

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        for keyword in node.keywords:
            if keyword.arg == "deferrable" and called in DEFERRABLE_OPERATORS:
                continue  # deferred in a triggerer (ADR 11)
            self._check_keyword(keyword.arg, keyword.value, node)
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        # default_args={"deferrable": True, ...} reaches only the operators that take it.
        for key, value in zip(node.keys, node.values):
            if isinstance(key, ast.Constant) and key.value == "deferrable":
                continue
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                self._check_keyword(key.value, value, node)
        self.generic_visit(node)

    def _check_keyword(self, name: str | None, value: ast.AST, node: ast.AST) -> None:
        if name in UNSUPPORTED_OPERATOR_KWARGS:
            harmless, reason = UNSUPPORTED_OPERATOR_KWARGS[name]
            if isinstance(value, ast.Constant) and (value.value == harmless or
                                                    (harmless is False and not value.value)):
                return
            self.add(value, f"{name}={ast.unparse(value)}", (False, reason))


def _task_variant_reason(variant: str) -> str:
    advice = {
        "virtualenv": "install the packages on the workers and use @task",
        "external_python": "use @task",
        "branch_virtualenv": "use @task.branch",
        "branch_external_python": "use @task.branch",
        "docker": "run docker from @task.bash",
        "kubernetes": "no Kubernetes pod operator",
        "pyspark": "use @task with pyspark installed",
    }
    return advice.get(variant, "no Updraft equivalent")


def check_source(source: str, path: str = "<string>") -> FileReport:
    """The report for one file's source text."""
    report = FileReport(path)
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        report.error = f"SyntaxError: {exc.msg} (line {exc.lineno})"
        return report
    _Visitor(report).visit(tree)
    report.findings.sort(key=lambda f: (f.line, f.name))
    return report


def iter_files(paths: list[str]) -> list[Path]:
    """The Python files named, and those under the folders named (honouring ignore files)."""
    from updraft.dagbag import list_py_files

    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(list_py_files(path, safe_mode=False))
        else:
            files.append(path)
    return files


def check_paths(paths: list[str]) -> list[FileReport]:
    """A report for every file of ``paths`` (files or folders, recursively)."""
    reports = []
    for path in iter_files(paths):
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reports.append(FileReport(str(path), error=f"cannot read: {exc}"))
            continue
        reports.append(check_source(source, str(path)))
    return reports


def summary_line(reports: list[FileReport]) -> str:
    """``N files: X fully supported, Y with unsupported features``."""
    good = sum(1 for r in reports if r.fully_supported)
    return (f"{len(reports)} file{'s' if len(reports) != 1 else ''}: {good} fully supported, "
            f"{len(reports) - good} with unsupported features")


def format_text(reports: list[FileReport]) -> str:
    """The human-readable report: per file, each Airflow name by line, then the summary."""
    lines: list[str] = []
    for report in reports:
        if report.error:
            lines.append(f"{report.path}: cannot be checked: {report.error}")
            continue
        bad = report.unsupported
        if not report.findings:
            lines.append(f"{report.path}: fully supported (no Airflow imports)")
            continue
        lines.append(f"{report.path}: " + ("fully supported" if not bad else
                                           f"{len(bad)} unsupported"))
        for finding in report.findings:
            if finding.supported:
                lines.append(f"  ok   line {finding.line}: {finding.name}")
            else:
                reason = f" ({finding.reason})" if finding.reason else ""
                lines.append(f"  NOT  line {finding.line}: {finding.name}: not supported by "
                             f"Updraft{reason}")
    lines.append(summary_line(reports))
    return "\n".join(lines)


def to_json(reports: list[FileReport]) -> dict:
    """The machine-readable report."""
    good = sum(1 for r in reports if r.fully_supported)
    return {"files": [r.to_dict() for r in reports],
            "summary": {"files": len(reports), "fully_supported": good,
                        "with_unsupported": len(reports) - good,
                        "text": summary_line(reports)}}
