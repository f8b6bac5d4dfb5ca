"""An import-linter contract type for the imports import-linter cannot see: by name.

``lint-imports`` checks ``import`` statements. A package can still reach another behind its
back with ``importlib.import_module("scheduler.core")``, ``__import__``, ``find_spec`` or a
``"web.cli:web"`` string kept for later; the contracts would then pass "only on paper"
(issue 15). This contract type reads the source of every module of ``source_modules`` and
refuses:

- a call of ``import_module``, ``__import__``, ``find_spec``, ``resolve_name`` or
  ``spec_from_file_location`` whose first argument names a module of ``forbidden_modules``
  (a literal, an f-string or a ``+`` that starts with it);
- any other string (docstrings aside) that is a dotted path into one of them,
  ``pkg.module`` or ``pkg.module:attr``: a name kept to be imported later.

Entry points are the sanctioned way to reach an implementation by name: they are declared in
``pyproject.toml``, not in the code. Registered in ``[tool.importlinter] contract_types``.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

from importlinter import Contract, ContractCheck, fields, output
from importlinter.domain.helpers import module_expressions_to_modules

IMPORT_CALLS = frozenset({"import_module", "__import__", "find_spec", "resolve_name",
                          "spec_from_file_location"})


def _module_file(module: str) -> Path | None:
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin else None
    for folder in spec.submodule_search_locations or ():
        base = Path(folder).joinpath(*rest)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _leading_text(node: ast.expr) -> str | None:
    """The text a string expression starts with: a literal, an f-string's first part, the
    left side of a ``+``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        return _leading_text(node.values[0])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _leading_text(node.left)
    return None


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _docstring_nodes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        # A string statement does nothing: a docstring, or an attribute's after its assignment.
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if not isinstance(statements, list):
                continue
            for statement in statements:
                if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                    found.add(id(statement.value))
    return found


def find_named_imports(source: str, forbidden: list[str]) -> list[tuple[int, str, str]]:
    """(line, text, why) of each place in ``source`` that names a module of ``forbidden``."""
    names = "|".join(re.escape(name) for name in sorted(forbidden))
    path_like = re.compile(rf"(?:{names})(?:\.[A-Za-z_]\w*)+(?::[\w.]+)?|(?:{names}):[\w.]+")
    module_like = re.compile(rf"(?:{names})(?:\.|$)")
    tree = ast.parse(source)
    prose = _docstring_nodes(tree)
    found: list[tuple[int, str, str]] = []
    in_calls: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) in IMPORT_CALLS and node.args:
            text = _leading_text(node.args[0])
            if text is not None and module_like.match(text):
                found.append((node.lineno, text, f"{_call_name(node)}() of a node package"))
                in_calls.update(id(n) for n in ast.walk(node.args[0]))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in prose and id(node) not in in_calls
                and path_like.fullmatch(node.value)):
            found.append((node.lineno, node.value, "a module path kept to be imported later"))
    return sorted(found)


class NoImportByNameContract(Contract):
    """Modules of ``source_modules`` do not name a module of ``forbidden_modules`` to import
    it at run time (see the module docstring)."""

    type_name = "no_import_by_name"

    source_modules = fields.ListField(subfield=fields.ModuleExpressionField())
    forbidden_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        sources = module_expressions_to_modules(graph, self.source_modules, as_packages=True)
        names = {m.name for m in sources}
        modules = sorted(m for m in graph.modules
                         if m in names or any(m.startswith(f"{n}.") for n in names))
        violations = []
        for module in modules:
            path = _module_file(module)
            if path is None:
                continue
            for line, text, why in find_named_imports(path.read_text(encoding="utf-8"),
                                                      list(self.forbidden_modules)):
                violations.append({"module": module, "line": line, "text": text, "why": why})
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for violation in check.metadata["violations"]:
            output.print_error(f"{violation['module']}:{violation['line']} names "
                               f"{violation['text']!r} ({violation['why']})", bold=False)
            output.new_line()


__all__ = ["NoImportByNameContract", "find_named_imports"]
