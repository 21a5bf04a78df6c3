"""The package rules as data, and a checker that walks every import statement of a source tree (AST).

Layers: the *library* (``mdn_snntorch`` without ``pipeline`` and ``cli``), the *pipeline*
(``mdn_snntorch.pipeline``), the *CLI* (``mdn_snntorch.cli`` and ``mdn_snntorch.__main__``),
``data_prep`` and ``validation``. Rules:

1. the library imports the standard library, torch, snntorch and numpy; sympy, h5py and triton only
   lazily (inside a function, or in a ``try`` block that survives their absence); of the project,
   only the library;
2. the pipeline never imports validation, data_prep or the CLI;
3. data_prep imports of the project only its own modules and ``mdn_snntorch.spikefile``;
4. validation never imports data_prep or the CLI;
5. nothing outside the CLI imports the CLI.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("mdn_snntorch", "data_prep", "validation")
LIBRARY_THIRD_PARTY = {"torch", "snntorch", "numpy"}
LIBRARY_LAZY = {"sympy", "h5py", "triton"}


@dataclass(frozen=True)
class Import:
    file: str  # path relative to the tree's root, with '/'
    line: int
    module: str  # absolute dotted name
    lazy: bool  # inside a function or a try block


def layer(file: str) -> str:
    """The layer of a source file: library, pipeline, cli, data_prep or validation."""
    return module_layer(file.removesuffix(".py").replace("/", "."))


def module_layer(module: str) -> str:
    """The layer of a dotted module name of the project."""
    parts = module.split(".")
    if parts[0] != "mdn_snntorch":
        return parts[0]
    if len(parts) > 1 and parts[1] in ("pipeline", "cli"):
        return parts[1]
    return "cli" if parts[1:2] == ["__main__"] else "library"


def _imports(file: str, source: str) -> list[Import]:
    tree = ast.parse(source, filename=file)
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Try))
            if isinstance(child, ast.Import):
                found.extend(Import(file, child.lineno, a.name, lazy) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                # `from pkg import sub` may name a submodule: record pkg.sub as well as pkg
                found.append(Import(file, child.lineno, child.module, lazy))
                found.extend(Import(file, child.lineno, f"{child.module}.{a.name}", lazy) for a in child.names)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                continue  # imports for annotations only
            visit(child, inner)

    visit(tree, False)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def read_tree(root: Path) -> dict[str, str]:
    """``{relative path: source}`` of every ``.py`` file of the three packages under ``root``."""
    return {
        str(p.relative_to(root)).replace("\\", "/"): p.read_text() for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))
    }


def _violation(imp: Import, known_modules: set[str]) -> str | None:
    top = imp.module.split(".")[0]
    where = layer(imp.file)
    if top in PACKAGES:
        if imp.module not in known_modules and not any(m.startswith(imp.module + ".") for m in known_modules):
            return None  # `from pkg import name` where name is not a module
        target = module_layer(imp.module)
        if target == "cli" and where != "cli":
            return "nothing outside the CLI imports the CLI"
        if where == "library" and target != "library":
            return f"the library imports only the library, not the {target}"
        if where == "pipeline" and target in ("validation", "data_prep"):
            return f"the pipeline never imports {target}"
        if where == "data_prep" and top == "mdn_snntorch" and imp.module not in ("mdn_snntorch", "mdn_snntorch.spikefile"):
            return "data_prep imports of the library only mdn_snntorch.spikefile"
        if where == "data_prep" and top == "validation":
            return "data_prep never imports validation"
        if where == "validation" and top == "data_prep":
            return "validation never imports data_prep"
        return None
    if where == "library" and top not in sys.stdlib_module_names and top != "__future__":
        if top in LIBRARY_THIRD_PARTY or (imp.lazy and top in LIBRARY_LAZY):
            return None
        if top in LIBRARY_LAZY:
            return f"the library imports {top} only lazily (inside a function)"
        return f"the library imports only torch, snntorch, numpy (and lazily {', '.join(sorted(LIBRARY_LAZY))}), not {top}"
    return None


def violations(sources: dict[str, str]) -> list[str]:
    """Every import of ``sources`` that breaks a rule, as ``file:line: module: rule``."""
    known = {f[: -len(".py")].replace("/", ".").removesuffix(".__init__") for f in sources}
    out = []
    for file, source in sources.items():
        for imp in _imports(file, source):
            rule = _violation(imp, known)
            if rule:
                out.append(f"{imp.file}:{imp.line}: {imp.module}: {rule}")
    return sorted(set(out))
