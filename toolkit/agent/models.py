"""Model classes the app never loads: autogenerate cannot see them, so their tables would silently be missing."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from typing import List, Tuple

from .app import first_line, log
from .protocol import UnloadedModel


def unloaded_models(db) -> Tuple[List[UnloadedModel], list]:
    """Model classes under the models package(s) that importing the app does not load."""
    packages = _model_packages(db)
    missing = []
    for package in packages:
        for module_info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module_info.name in sys.modules:
                continue
            before = _tables(db)
            try:
                module = importlib.import_module(module_info.name)
            except Exception as exc:
                log("could not import %s to look for models: %s" % (module_info.name, first_line(exc)))
                continue
            added = _tables(db) - before
            for name, value in sorted(vars(module).items()):
                table = getattr(value, "__table__", None)
                if isinstance(value, type) and value.__module__ == module.__name__ and table is not None \
                        and getattr(table, "name", None) in added:
                    parent, _, leaf = module.__name__.rpartition(".")
                    missing.append(UnloadedModel(
                        model=name, module=module.__name__, table=table.name, file=getattr(module, "__file__", None),
                        import_line="from %s import %s  # noqa: F401" % (
                            "." if parent == package.__name__ else parent, leaf)))
    return missing, packages


def _tables(db) -> set:
    """The names of every model table, in every database (Flask-SQLAlchemy 3.x keeps a MetaData per bind)."""
    metadatas = getattr(db, "metadatas", None) or {None: db.metadata}
    return {name for metadata in metadatas.values() for name in metadata.tables}


def _model_packages(db) -> list:
    """The package that defines `db`, or else the packages the loaded model classes live in."""
    names = set()
    for name, module in list(sys.modules.items()):
        if module is not None and getattr(module, "__path__", None) and vars(module).get("db") is db:
            names.add(name)
    if not names:
        for mapper in getattr(getattr(db.Model, "registry", None), "mappers", ()):
            module = mapper.class_.__module__
            names.add(module.rpartition(".")[0] or module)
    return [sys.modules[n] for n in sorted(names) if getattr(sys.modules.get(n), "__path__", None)]


def add_imports(packages: list, missing: List[UnloadedModel]) -> List[UnloadedModel]:
    """Add the missing import lines to the init_app function that loads the models (--fix-imports); returns
    the models it could not fix."""
    for package in packages:
        path = getattr(package, "__file__", None)
        if getattr(package, "init_app", None) is None or path is None:
            continue
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines(True)
        tree = ast.parse("".join(lines))
        function = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "init_app"), None)
        if function is None:
            continue
        imports = [s for s in function.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        anchor = imports[-1] if imports else function.body[0]
        indent = " " * anchor.col_offset
        at = getattr(anchor, "end_lineno", anchor.lineno) if imports else anchor.lineno - 1
        mine = [m for m in missing if m.module.startswith(package.__name__ + ".")]
        present = [line.strip() + "\n" for line in lines]
        new = [indent + m.import_line + "\n" for m in mine if (m.import_line + "\n") not in present]
        lines[at:at] = sorted(set(new))
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("".join(lines))
        for m in mine:
            m.fixed_in = path
    return [m for m in missing if m.fixed_in is None]
