"""Model classes the app never loads: autogenerate cannot see them, so their tables would silently be missing.

Every module of the application's own package(s) is looked at, not only the package that defines `db`: first its
source (a module without a model-like class or table is never imported), then, in a forked child with a deadline,
the modules that do look like models and that the app has not imported. Importing can have side effects; the
child keeps them out of this process (its metadata, its sys.modules), and a module that fails, exits or hangs is
named instead of stopping the look.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import sysconfig
import time
from typing import Dict, List, Optional, Tuple

from .app import first_line, log
from .protocol import UnloadedModel
from .review import read_source

IMPORT_DEADLINE = 30.0  # seconds the child may take to import every candidate module
SKIPPED_DIRS = {"__pycache__", "node_modules", "migrations", "tests", "test", "venv", "site-packages",
                "dist-packages"}
COLUMN_CALLS = {"Column", "mapped_column", "Table"}


def unloaded_models(db) -> Tuple[List[UnloadedModel], list, List[str]]:
    """(model classes and tables of the app's own modules that loading the app does not load, the packages whose
    init_app loads models, modules that could not be looked at with the reason)."""
    loaders = _loader_packages(db)
    target = next((p for p in loaders if getattr(p, "init_app", None) is not None), loaders[0] if loaders else None)
    unscanned: List[str] = []
    candidates = []
    for module, path in _app_modules(db):
        if module in sys.modules:
            continue
        try:
            tree = ast.parse(read_source(path))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:
            unscanned.append("%s: cannot be read (%s)" % (module, first_line(exc)))
            continue
        if _defines_models(tree):
            candidates.append(module)
    found, failed = _import_in_child(db, candidates) if candidates else ([], [])
    unscanned += failed
    for line in failed:
        log("could not import %s to look for models" % line)
    missing = [UnloadedModel(model=name, module=module, table=table, file=path,
                             import_line=_import_line(module, target))
               for module, name, table, path in found]
    return missing, loaders, unscanned


# ---------------------------------------------------------------------------------------------- where to look


def _own(path: Optional[str]) -> bool:
    """A file of the application itself, not of an installed library."""
    if not path:
        return False
    path = os.path.realpath(path)
    libraries = {os.path.realpath(p) for p in (sysconfig.get_paths().get("purelib"),
                                               sysconfig.get_paths().get("platlib")) if p}
    parts = path.split(os.sep)
    return ("site-packages" not in parts and "dist-packages" not in parts
            and not any(path.startswith(os.path.join(lib, "")) for lib in libraries))


def _app_roots(db) -> Dict[str, str]:
    """{top-level package or module name: its folder} of the app's own code: the app's import name, the module
    that defines `db`, and the modules of the model classes already loaded."""
    names = set()
    try:
        from flask import current_app

        names.add(current_app.import_name)
    except Exception:  # no app context: the other sources suffice
        pass
    for name, module in list(sys.modules.items()):
        if module is not None and vars(module).get("db") is db:
            names.add(name)
    for mapper in getattr(getattr(db.Model, "registry", None), "mappers", ()):
        names.add(mapper.class_.__module__)
    roots = {}
    for name in names:
        top = sys.modules.get(name.split(".")[0])
        path = getattr(top, "__file__", None)
        if top is None or not _own(path):
            continue
        if getattr(top, "__path__", None):  # a package: everything under its folder
            roots[top.__name__] = os.path.dirname(os.path.abspath(path))
        else:  # a top-level module (app.py): its sibling packages and modules are the app's too
            roots[""] = os.path.dirname(os.path.abspath(path))
    return roots


def _app_modules(db):
    """(module name, file) of every Python file of the app's own code, found without importing anything. Tests,
    the migrations folder (its env.py runs migrations when imported) and virtualenvs are left out."""
    seen = set()
    for root, folder in sorted(_app_roots(db).items()):
        for directory, dirs, files in os.walk(folder):
            relative = os.path.relpath(directory, folder)
            parts = [] if relative == "." else relative.split(os.sep)
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and d.isidentifier()
                             and not os.path.isfile(os.path.join(directory, d, "env.py"))
                             and (root or os.path.isfile(os.path.join(directory, d, "__init__.py"))))
            for name in sorted(files):
                stem = name[:-3]
                if not name.endswith(".py") or not stem.isidentifier() or stem.startswith("test") \
                        or stem in ("setup", "conftest"):
                    continue
                module = ".".join(([root] if root else []) + parts + ([] if stem == "__init__" else [stem]))
                if module and module not in seen:
                    seen.add(module)
                    yield module, os.path.join(directory, name)


def _defines_models(tree: ast.Module) -> bool:
    """Does the source define a model class or a table? A class that assigns __tablename__ / __table__ or declares
    columns (Column, mapped_column, Mapped[...] annotations), or a Table(...) anywhere."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for statement in node.body:
                targets = statement.targets if isinstance(statement, ast.Assign) else [
                    statement.target] if isinstance(statement, ast.AnnAssign) else []
                if any(getattr(t, "id", None) in ("__tablename__", "__table__") for t in targets):
                    return True
                if isinstance(statement, ast.AnnAssign) and "Mapped" in ast.dump(statement.annotation):
                    return True
        elif isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
            if name in COLUMN_CALLS:
                return True
    return False


# ---------------------------------------------------------------------------------------------- importing


def _import_in_child(db, modules: List[str]):
    """Import `modules` in a forked child: ([(module, class or table name, table, file)], [module: why])."""
    if not hasattr(os, "fork"):
        return _import_and_collect(db, modules, lambda record: None)
    sys.stdout.flush()
    sys.stderr.flush()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report each step on the pipe, never return
        os.close(reader)
        code = 0
        try:
            out = os.fdopen(writer, "w")

            def send(record) -> None:
                out.write(json.dumps(record) + "\n")
                out.flush()

            found, failed = _import_and_collect(db, modules, send)
            send({"found": found, "failed": failed})
        except BaseException:  # noqa: B902 - whatever a module does, the child ends here
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(writer)
    return _collect_from_child(pid, reader, modules)


def _collect_from_child(pid: int, reader: int, modules: List[str]):
    import select

    deadline = time.monotonic() + IMPORT_DEADLINE
    buffer, current, answer = b"", None, None
    try:
        while answer is None:
            left = deadline - time.monotonic()
            ready = select.select([reader], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                break
            chunk = os.read(reader, 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                record = json.loads(line.decode())
                current = record.get("importing", current)
                if "found" in record:
                    answer = ([tuple(f) for f in record["found"]], record["failed"])
    finally:
        os.close(reader)
        if answer is None:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        os.waitpid(pid, 0)
    if answer is not None:
        return answer
    if time.monotonic() >= deadline:
        why = "did not finish importing within %.0f s" % IMPORT_DEADLINE
    else:
        why = "ended the process while being imported (sys.exit or a crash)"
    return [], ["%s: %s; modules not looked at: %s" % (current or modules[0], why, ", ".join(
        modules[modules.index(current) + 1:] if current in modules else modules[1:]) or "none")]


def _import_and_collect(db, modules: List[str], send):
    import importlib

    engines = getattr(db, "engines", None) or {}
    for engine in list(engines.values()) or [db.engine]:  # the child must never use the parent's pooled connections
        try:
            engine.dispose(close=False)
        except Exception:
            pass
    found, failed = [], []
    for module_name in modules:
        if module_name in sys.modules:  # imported along with an earlier candidate
            continue
        send({"importing": module_name})
        before = set(_tables(db))
        try:
            importlib.import_module(module_name)
        except BaseException as exc:  # noqa: B902 - SystemExit too: a module must not end the look
            failed.append("%s: %s: %s" % (module_name, type(exc).__name__, first_line(exc)))
            continue
        tables = _tables(db)
        added = set(tables) - before
        for key in sorted(added):
            found.append(_owner(key, tables[key], module_name))
    return found, failed


def _tables(db) -> dict:
    """Every model table by key, in every database (Flask-SQLAlchemy 3.x keeps a MetaData per bind)."""
    metadatas = getattr(db, "metadatas", None) or {None: db.metadata}
    return {key: table for metadata in metadatas.values() for key, table in metadata.tables.items()}


def _owner(key: str, table, imported: str):
    """(module, class or variable name, table, file) that defines a table the import added: a model class if one
    maps it, else the Table variable; in the module imported or one it imported in turn."""
    owners = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == imported or name.startswith(imported.split(".")[0] + ".")):
            continue
        for attribute, value in sorted(vars(module).items()):
            if getattr(value, "__table__", None) is table and isinstance(value, type) and value.__module__ == name:
                owners.insert(0, (name, attribute))
            elif value is table:
                owners.append((name, attribute))
    module, attribute = owners[0] if owners else (imported, key)
    return module, attribute, table.name, getattr(sys.modules.get(module), "__file__", None)


# ---------------------------------------------------------------------------------------------- fixing


def _loader_packages(db) -> list:
    """The packages that define `db` (where init_app loads the models), else those the model classes live in."""
    names = set()
    for name, module in list(sys.modules.items()):
        if module is not None and getattr(module, "__path__", None) and vars(module).get("db") is db:
            names.add(name)
    if not names:
        for mapper in getattr(getattr(db.Model, "registry", None), "mappers", ()):
            module = mapper.class_.__module__
            names.add(module.rpartition(".")[0] or module)
    return [sys.modules[n] for n in sorted(names) if getattr(sys.modules.get(n), "__path__", None)]


def _import_line(module: str, package) -> str:
    """The line init_app needs: relative inside the package that loads the models, absolute elsewhere."""
    parent, _, leaf = module.rpartition(".")
    home = getattr(package, "__name__", None)
    if home and parent == home:
        return "from . import %s  # noqa: F401" % leaf
    if home and parent.startswith(home + "."):
        return "from .%s import %s  # noqa: F401" % (parent[len(home) + 1:], leaf)
    if not parent:
        return "import %s  # noqa: F401" % module
    return "from %s import %s  # noqa: F401" % (parent, leaf)


def load_modules(models: List[UnloadedModel]) -> None:
    """Import the modules of models whose import --fix-imports just added, as the app will from now on."""
    import importlib

    for module in sorted({m.module for m in models}):
        importlib.import_module(module)


def add_imports(packages: list, missing: List[UnloadedModel]) -> Tuple[List[UnloadedModel], List[str]]:
    """Add the missing import lines to the init_app function that loads the models (--fix-imports), keeping the
    file's encoding and line endings. Returns the models it could not fix, and the files it looked in."""
    import io
    import tokenize

    looked = []
    for package in packages:
        path = getattr(package, "__file__", None)
        if path is None:
            continue
        looked.append(path)
        if getattr(package, "init_app", None) is None:
            continue
        with open(path, "rb") as handle:
            raw = handle.read()
        encoding = tokenize.detect_encoding(io.BytesIO(raw).readline)[0]
        text = raw.decode(encoding)
        newline = "\r\n" if "\r\n" in text else "\n"
        lines = text.splitlines(True)
        tree = ast.parse(text)
        function = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "init_app"), None)
        if function is None:
            continue
        imports = [s for s in function.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        anchor = imports[-1] if imports else function.body[0]
        indent = " " * anchor.col_offset
        at = getattr(anchor, "end_lineno", anchor.lineno) if imports else anchor.lineno - 1
        present = [line.strip() for line in lines]
        new = [indent + m.import_line + newline for m in missing if m.import_line not in present]
        lines[at:at] = sorted(set(new))
        with open(path, "wb") as handle:
            handle.write("".join(lines).encode(encoding))
        for m in missing:
            m.fixed_in = path
        break
    return [m for m in missing if m.fixed_in is None], looked
