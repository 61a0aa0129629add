"""devtool's agent: runs *inside* the backend container, loads the Flask app once and does the work there.

devtool sends this file's source as `python -c SOURCE REQUEST_JSON` with the app's own Python, so it may use
only the standard library and what the app itself installs (Flask, Flask-Migrate, Alembic, SQLAlchemy).
It must work from Python 3.8 and with Flask 2/3, Flask-SQLAlchemy 2/3, Flask-Migrate 3/4, SQLAlchemy 1.4/2.x.
Alembic's own logs go to stderr; the result is one JSON line on stdout behind RESULT_MARK.
"""

import ast
import importlib
import json
import os
import pkgutil
import sys
import time

RESULT_MARK = "\x1edevtool-result "
LOCK_KEY = 72731001  # the Postgres advisory lock all devtool migrations take

# How each Alembic operation in an upgrade() body is judged. Anything not listed is shown as safe.
DESTRUCTIVE = {"drop_table": "drops a table and its data", "drop_column": "drops a column and its data",
               "drop_constraint": "drops a constraint", "drop_index": "drops an index"}
OP_LABELS = {"create_table": "add table", "drop_table": "drop table", "add_column": "add column",
             "drop_column": "drop column", "alter_column": "alter column", "create_index": "add index",
             "drop_index": "drop index", "create_foreign_key": "add foreign key",
             "create_unique_constraint": "add unique constraint", "create_check_constraint": "add check constraint",
             "create_primary_key": "add primary key", "drop_constraint": "drop constraint",
             "rename_table": "rename table", "execute": "run SQL"}


class AgentError(Exception):
    def __init__(self, code, message, **data):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def log(message):
    sys.stderr.write("devtool: %s\n" % message)
    sys.stderr.flush()


# ---------------------------------------------------------------- review of revision files (pure, unit-tested)

def _literal(node):
    if isinstance(node, ast.Constant):
        return node.value
    return getattr(node, "s", None) if isinstance(node, getattr(ast, "Str", ())) else None


def _keyword(call, name):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _column_facts(column_call):
    """(name, nullable, has_server_default) of an sa.Column(...) call."""
    name = _literal(column_call.args[0]) if column_call.args else None
    nullable_node = _keyword(column_call, "nullable")
    primary = _keyword(column_call, "primary_key")
    nullable = True
    if nullable_node is not None:
        nullable = _literal(nullable_node) is not False
    if primary is not None and _literal(primary) is True:
        nullable = False
    return name, nullable, _keyword(column_call, "server_default") is not None


def classify_upgrade(source):
    """The operations of a revision's upgrade(), each with a risk: safe, destructive, risky or rename."""
    tree = ast.parse(source)
    upgrade = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"), None)
    if upgrade is None:
        return []
    changes = []

    def visit(statements, batch_tables):
        for stmt in statements:
            if isinstance(stmt, ast.With):
                tables = dict(batch_tables)
                for item in stmt.items:
                    call = item.context_expr
                    if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                            and call.func.attr == "batch_alter_table" and isinstance(item.optional_vars, ast.Name)):
                        tables[item.optional_vars.id] = _literal(call.args[0]) if call.args else None
                visit(stmt.body, tables)
                continue
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and isinstance(node.func.value, ast.Name):
                    owner, name = node.func.value.id, node.func.attr
                    if owner == "op" or owner in batch_tables:
                        record(name, node, batch_tables.get(owner) if owner != "op" else None)

    def record(name, call, batch_table):
        if name not in OP_LABELS:
            return
        args = list(call.args)
        table = batch_table
        if table is None and name not in ("execute", "drop_index", "create_index") and args:
            table = _literal(args.pop(0))
        elif name in ("drop_index", "create_index"):
            table = _literal(_keyword(call, "table_name")) or (
                _literal(args[1]) if len(args) > 1 and name == "create_index" else batch_table)
        change = {"op": name, "label": OP_LABELS[name], "table": table, "column": None, "risk": "safe",
                  "reason": ""}
        if name in ("add_column",):
            column = next((a for a in args if isinstance(a, ast.Call)), None)
            if column is not None:
                change["column"], nullable, server_default = _column_facts(column)
                if not nullable and not server_default:
                    change["risk"], change["reason"] = "risky", "NOT NULL without a server default: fails on a table with rows"
        elif name == "drop_column":
            change["column"] = _literal(args[0]) if args else None
        elif name == "alter_column":
            change["column"] = _literal(args[0]) if args else None
            if _keyword(call, "type_") is not None:
                change["risk"], change["reason"] = "destructive", "changes the column type: values may be cast or lost"
            elif _keyword(call, "nullable") is not None and _literal(_keyword(call, "nullable")) is False:
                change["risk"], change["reason"] = "risky", "sets NOT NULL: fails if any row holds NULL"
            if _keyword(call, "new_column_name") is not None:
                change["label"] = "rename column"
        elif name in ("drop_index", "drop_constraint", "create_index"):
            change["column"] = _literal(args[0]) if args else None
        elif name == "rename_table":
            change["column"] = _literal(args[0]) if args else None
        if name in DESTRUCTIVE:
            change["risk"], change["reason"] = "destructive", DESTRUCTIVE[name]
        changes.append(change)

    visit(upgrade.body, {})
    _flag_probable_renames(changes)
    return changes


def _flag_probable_renames(changes):
    """Autogenerate writes a rename as drop + add: the data would be lost, so say what it probably is."""
    dropped_tables = [c for c in changes if c["op"] == "drop_table"]
    added_tables = [c for c in changes if c["op"] == "create_table"]
    if dropped_tables and added_tables:
        for change in dropped_tables + added_tables:
            others = added_tables if change in dropped_tables else dropped_tables
            change["risk"] = "rename"
            change["reason"] = "probable rename (%s): autogenerate drops and re-creates, losing the rows" % (
                " / ".join(str(o["table"]) for o in others))
    for drop in [c for c in changes if c["op"] == "drop_column"]:
        adds = [c for c in changes if c["op"] == "add_column" and c["table"] == drop["table"]]
        if adds:
            for change in [drop] + adds:
                change["risk"] = "rename"
                change["reason"] = "probable rename of %s.%s to %s: use op.alter_column(new_column_name=...)" % (
                    drop["table"], drop["column"], "/".join(str(a["column"]) for a in adds))


def needs_review(changes):
    return [c for c in changes if c["risk"] != "safe"]


# ---------------------------------------------------------------- the app and its migrations

class Session:
    """The loaded app plus its Flask-Migrate/Alembic configuration."""

    def __init__(self, request):
        from flask import cli as flask_cli

        if hasattr(flask_cli, "load_dotenv"):
            flask_cli.load_dotenv()
        app_path = request.get("flask_app") or os.environ.get("FLASK_APP")
        info = flask_cli.ScriptInfo(app_import_path=app_path)
        try:
            self.app = info.load_app()
        except Exception as exc:  # NoAppException and the app's own import errors
            raise AgentError("app_not_loaded", "Flask could not load the app: %s" % _first_line(exc))
        self.context = self.app.app_context()
        self.context.push()
        state = self.app.extensions.get("migrate")
        if state is None:
            raise AgentError("no_flask_migrate", "The app does not initialise Flask-Migrate (Migrate(app, db)).")
        self.migrate_state = state
        self.db = state.db
        self.directory = request.get("directory") or state.directory
        if not os.path.isabs(self.directory):
            self.directory = os.path.join(os.getcwd(), self.directory)
        if not os.path.isfile(os.path.join(self.directory, "env.py")):
            raise AgentError("no_migrations", "No migrations folder at %s." % self.directory,
                             directory=self.directory)

    def config(self, autogenerate=False):
        opts = ["autogenerate"] if autogenerate else None
        return self.migrate_state.migrate.get_config(self.directory, opts=opts)

    def script(self):
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self.config())

    def engine(self):
        return self.db.engine

    def current(self):
        from alembic.runtime.migration import MigrationContext

        with self.engine().connect() as connection:
            return sorted(MigrationContext.configure(connection).get_current_heads())

    def heads(self, script=None):
        script = script or self.script()
        return [describe(script.get_revision(h)) for h in script.get_heads()]

    def database(self):
        url = self.engine().url
        return {"backend": url.get_backend_name(), "host": url.host, "port": url.port, "name": url.database,
                "user": url.username}


def describe(revision):
    return {"id": revision.revision, "message": (revision.doc or "").strip(), "path": revision.path}


def _first_line(exc):
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip() or type(original).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def _error_text(exc):
    original = getattr(exc, "orig", None) or exc
    return str(original).strip() or type(original).__name__


class MigrationLock:
    """A Postgres advisory lock around generate + upgrade: two devtool runs never interleave."""

    def __init__(self, session):
        self.session, self.connection, self.waited = session, None, 0.0

    def __enter__(self):
        if self.session.database()["backend"] != "postgresql":
            return self
        from sqlalchemy import text

        self.connection = self.session.engine().connect()
        if not self.connection.execute(text("SELECT pg_try_advisory_lock(%d)" % LOCK_KEY)).scalar():
            log("another migration is running on this database; waiting for it to finish")
            started = time.time()
            self.connection.execute(text("SELECT pg_advisory_lock(%d)" % LOCK_KEY))
            self.waited = round(time.time() - started, 2)
        return self

    def __exit__(self, *exc_info):
        if self.connection is not None:
            from sqlalchemy import text

            self.connection.execute(text("SELECT pg_advisory_unlock(%d)" % LOCK_KEY))
            self.connection.close()


def _owner_of(path):
    """(uid, gid) of the nearest existing folder: in a bind mount, the host user who owns the project."""
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    info = os.stat(path or "/")
    return info.st_uid, info.st_gid


def _tree(directory):
    found = set()
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found.add(root)
        found.update(os.path.join(root, f) for f in files)
    return found


def _give_to(owner, paths):
    """Files written into a bind mount belong to whoever owns the folder on the host, not to root."""
    if os.geteuid() != 0:
        return
    for path in paths:
        try:
            if os.stat(path).st_uid != owner[0]:
                os.chown(path, owner[0], owner[1])
        except OSError:
            pass


# ---------------------------------------------------------------- models the app never loads

def unloaded_models(session):
    """Model classes under the models package(s) that importing the app does not load."""
    db = session.db
    metadata = db.metadata
    packages = _model_packages(db)
    missing = []
    for package in packages:
        for module_info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module_info.name in sys.modules:
                continue
            before = set(metadata.tables)
            try:
                module = importlib.import_module(module_info.name)
            except Exception as exc:
                log("could not import %s to look for models: %s" % (module_info.name, _first_line(exc)))
                continue
            added = set(metadata.tables) - before
            for name, value in sorted(vars(module).items()):
                table = getattr(value, "__table__", None)
                if isinstance(value, type) and value.__module__ == module.__name__ and table is not None \
                        and getattr(table, "name", None) in added:
                    parent, _, leaf = module.__name__.rpartition(".")
                    missing.append({"class": name, "module": module.__name__, "table": table.name,
                                    "file": getattr(module, "__file__", None),
                                    "import_line": "from %s import %s  # noqa: F401" % (
                                        "." if parent == package.__name__ else parent, leaf)})
    return missing, packages


def _model_packages(db):
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


def add_imports(packages, missing):
    """Add the missing import lines to the init_app function that loads the models (--fix-imports)."""
    for package in packages:
        init_app = getattr(package, "init_app", None)
        path = getattr(package, "__file__", None)
        if init_app is None or path is None:
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
        at = (getattr(anchor, "end_lineno", anchor.lineno)) if imports else anchor.lineno - 1
        mine = [m for m in missing if m["module"].startswith(package.__name__ + ".")]
        new = [indent + m["import_line"] + "\n" for m in mine if (m["import_line"] + "\n") not in
               [line.strip() + "\n" for line in lines]]
        lines[at:at] = sorted(set(new))
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("".join(lines))
        for m in mine:
            m["fixed_in"] = path
    return [m for m in missing if "fixed_in" not in m]


# ---------------------------------------------------------------- actions

def action_migrate(session, request):
    from alembic import command

    result = {"status": None, "changes": [], "revision": None, "upgraded_first": [], "database": session.database()}
    missing, packages = unloaded_models(session)
    if missing and request.get("fix_imports"):
        left = add_imports(packages, missing)
        result["fixed_imports"] = [m for m in missing if "fixed_in" in m]
        missing = left
    if missing:
        raise AgentError("models_not_imported", "Models defined but never loaded by the app.", models=missing)

    with MigrationLock(session) as lock:
        result["lock_waited"] = lock.waited
        script = session.script()
        heads = session.heads(script)
        if len(heads) > 1:
            if not request.get("merge"):
                raise AgentError("multiple_heads", "The migrations have %d heads." % len(heads), heads=heads)
            owner = _owner_of(session.directory)
            merged = command.merge(session.config(), "heads", message="merge heads")
            _give_to(owner, [merged.path])
            result["merged"] = describe(merged)
            script = session.script()
        current = session.current()
        result["current_before"] = current
        head_ids = [h["id"] for h in session.heads(script)]
        if set(current) != set(head_ids):
            pending, review = pending_with_review(session, script, current)
            if review and not request.get("yes"):
                result.update(status="behind_needs_confirmation", pending=pending, review=review)
                return result
            log("database is behind head; upgrading before generating")
            result["upgraded_first"] = apply(session, script, current)
            script = session.script()

        before, owner = _tree(session.directory), _owner_of(session.directory)
        config = session.config(autogenerate=True)
        empty = EmptyCheck()
        try:
            revision = command.revision(config, message=request["message"], autogenerate=True,
                                        process_revision_directives=empty)
        except Exception as exc:
            import traceback

            traceback.print_exc()
            raise AgentError("generate_failed", "Autogenerate failed: %s" % _first_line(exc),
                             error=_error_text(exc))
        if isinstance(revision, list):
            revision = revision[0] if revision else None
        if revision is not None and empty.empty:  # an env.py without Flask-Migrate's check wrote an empty file
            os.remove(revision.path)
            revision = None
        if revision is None:
            result["status"] = "no_changes"
            result["current_after"] = session.current()
            return result
        _give_to(owner, _tree(session.directory) - before)
        with open(revision.path, encoding="utf-8") as handle:
            result["changes"] = classify_upgrade(handle.read())
        result["revision"] = describe(revision)
        result["review"] = needs_review(result["changes"])
        if not request.get("upgrade", True):
            result["status"] = "generated"
        elif result["review"] and not request.get("yes"):
            result["status"] = "needs_confirmation"
        else:
            result["applied"] = apply(session, session.script(), session.current())
            result["status"] = "applied"
        result["current_after"] = session.current()
    return result


class EmptyCheck:
    """Notes whether autogenerate found nothing. It must not empty the directives itself: env.py's own hook
    (Flask-Migrate's) runs after it and reads directives[0]."""

    def __init__(self):
        self.empty = False

    def __call__(self, context, revision, directives):
        self.empty = bool(directives) and directives[0].upgrade_ops.is_empty()


def pending_revisions(session, script, current):
    """Revisions between the database and head, oldest first, each with its reviewed changes."""
    pending = []
    lower = current[0] if len(current) == 1 else None
    for revision in reversed(list(script.iterate_revisions("heads", lower))):
        with open(revision.path, encoding="utf-8") as handle:
            changes = classify_upgrade(handle.read())
        pending.append(dict(describe(revision), changes=changes))
    return pending


def pending_with_review(session, script, current):
    """The pending revisions, and the changes among them that need review (each tagged with its revision)."""
    pending = pending_revisions(session, script, current)
    return pending, [dict(c, revision=p["id"]) for p in pending for c in needs_review(p["changes"])]


def apply(session, script, current):
    """Upgrade one revision at a time, so a failure names its revision and leaves the one before applied."""
    from alembic import command

    applied = []
    lower = current[0] if len(current) == 1 else None
    for revision in reversed(list(script.iterate_revisions("heads", lower))):
        try:
            command.upgrade(session.config(), revision.revision)
        except Exception as exc:
            raise AgentError("upgrade_failed", "Revision %s (%s) failed: %s" % (
                revision.revision, (revision.doc or "").strip(), _first_line(exc)),
                revision=describe(revision), error=_error_text(exc), applied=applied,
                current=session.current())
        applied.append(describe(revision))
    return applied


def action_upgrade(session, request):
    with MigrationLock(session) as lock:
        script = session.script()
        heads = session.heads(script)
        if len(heads) > 1:
            raise AgentError("multiple_heads", "The migrations have %d heads." % len(heads), heads=heads)
        current = session.current()
        pending, review = pending_with_review(session, script, current)
        if review and not request.get("yes"):
            return {"status": "needs_confirmation", "pending": pending, "review": review, "current_before": current,
                    "database": session.database()}
        applied = apply(session, script, current)
        return {"status": "applied" if applied else "up_to_date", "applied": applied, "current_before": current,
                "current_after": session.current(), "lock_waited": lock.waited, "database": session.database()}


def action_status(session, request):
    script = session.script()
    heads = session.heads(script)
    result = {"heads": heads, "database": session.database(), "directory": session.directory}
    try:
        current = session.current()
    except Exception as exc:
        result.update(current=None, database_error=_first_line(exc), pending=[])
        return result
    result["current"] = current
    result["pending"] = pending_revisions(session, script, current) if len(heads) == 1 else []
    if request.get("models"):
        result["unloaded_models"] = unloaded_models(session)[0]
    if request.get("model_changes"):
        result["model_changes"] = model_changes(session)
    return result


def model_changes(session):
    """What autogenerate would write now, without writing anything (`devtool check`, doctor)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with session.engine().connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, session.db.metadata)
    return [_diff_text(d) for d in diffs]


def _diff_text(diff):
    if isinstance(diff, list):
        diff = diff[0]
    kind = diff[0]
    subject = diff[1]
    name = getattr(subject, "name", None) or (diff[2] if len(diff) > 2 else "")
    if kind in ("add_column", "remove_column"):
        name = "%s.%s" % (diff[2], diff[3].name)
    elif kind.startswith("modify_"):
        name = "%s.%s" % (diff[2], diff[3])
    return {"kind": kind, "name": str(name)}


def run_flask_cli(request):
    """`flask db ...` in this process, then hand new files to the folder's owner; exit code passes through."""
    from flask import cli as flask_cli

    watched = {}  # migrations folder -> (its files before the command, its owner)

    def watch(directory):
        directory = os.path.abspath(directory)
        if directory not in watched:
            watched[directory] = (_tree(directory), _owner_of(directory))

    args = list(request["args"])
    for index, arg in enumerate(args[:args.index("--")] if "--" in args else args):  # `-d DIR` given to flask db
        if arg in ("-d", "--directory") and index + 1 < len(args):
            watch(args[index + 1])
        elif arg.startswith("--directory="):
            watch(arg.split("=", 1)[1])
    if request.get("directory"):
        watch(request["directory"])
    else:  # the app's own folder (Migrate(app, db, directory=...)), known once flask has loaded the app
        load_app = flask_cli.ScriptInfo.load_app

        def load_and_watch(info):
            app = load_app(info)
            state = getattr(app, "extensions", {}).get("migrate")
            watch(getattr(state, "directory", None) or "migrations")
            return app

        flask_cli.ScriptInfo.load_app = load_and_watch
    sys.argv = ["flask"] + args
    code = 0
    try:
        flask_cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    for directory, (before, owner) in watched.items():
        if os.path.isdir(directory):
            _give_to(owner, _tree(directory) - before)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def db_commands():
    """The subcommands of the installed Flask-Migrate's `flask db` (3.x has no `check`), and its version."""
    from flask_migrate.cli import db

    try:
        from importlib.metadata import version

        installed = version("Flask-Migrate")
    except Exception:  # not installed as a distribution (vendored, source checkout)
        installed = None
    return {"commands": sorted(db.commands), "flask_migrate": installed}


ACTIONS = {"migrate": action_migrate, "upgrade": action_upgrade, "status": action_status}


def run(request):
    """Do one request in this process: `flask ...` (exits with its code) or an agent action (prints the result)."""
    if request["action"] == "flask":
        run_flask_cli(request)
    try:
        if request["action"] == "db_commands":  # no app needed: what this Flask-Migrate's `flask db` offers
            result = dict(db_commands(), ok=True)
        else:
            session = Session(request)
            result = dict(ACTIONS[request["action"]](session, request), ok=True)
    except AgentError as exc:
        result = dict(exc.data, ok=False, code=exc.code, message=exc.message)
    except Exception as exc:  # the app's or a library's failure: one readable line back to devtool
        import traceback

        traceback.print_exc()
        result = {"ok": False, "code": "agent_failed", "message": "%s: %s" % (type(exc).__name__, _first_line(exc)),
                  "error": _error_text(exc)}
    sys.stdout.write("\n" + RESULT_MARK + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- the warm server
# Importing Flask, SQLAlchemy, Alembic and the driver takes most of a second; the app itself a few ms.
# A warm server in the container imports the libraries once and forks a fresh child per request: the child
# imports the app anew (model edits are always seen) and writes straight to the caller's stdout/stderr,
# whose file descriptors travel over a unix socket. Stale libraries (a pip install) make it step down.

PRELOAD = ("flask", "flask.cli", "sqlalchemy", "sqlalchemy.orm", "sqlalchemy.dialects.postgresql",
           "flask_sqlalchemy", "flask_migrate", "alembic.command", "alembic.autogenerate", "alembic.script",
           "alembic.runtime.migration", "alembic.operations", "mako.template", "psycopg", "psycopg2", "dotenv")
IDLE_SECONDS = 900


def _socket_path(request):
    return "/tmp/devtool-agent-%s-%d.sock" % (request.get("agent_id", "dev"), os.getuid())


def _libraries_mtime():
    """Changes when packages are installed or removed in any import directory."""
    latest = 0.0
    for entry in sys.path:
        try:
            latest = max(latest, os.stat(entry or ".").st_mtime)
        except OSError:
            pass
    return latest


def _own_command():
    """This program's own argv (`python -c SOURCE ...`), to start the warm server with the same source."""
    argv = getattr(sys, "orig_argv", None)
    if not argv:
        with open("/proc/self/cmdline", "rb") as handle:
            argv = [a.decode("utf-8", "surrogateescape") for a in handle.read().split(b"\0")[:-1]]
    return argv[:argv.index("-c") + 2]


def via_warm_server(request):
    """Hand the request to the warm server; its exit code, or None when there is none (or it stepped down)."""
    import array
    import socket
    import struct

    path = _socket_path(request)
    if not os.path.exists(path):
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
        payload = json.dumps({"request": request, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
        message = struct.pack("!I", len(payload)) + payload
        sent = connection.sendmsg([message[:4096]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
        connection.sendall(message[sent:])
        reply = b""
        while True:
            chunk = connection.recv(4096)
            if not chunk:
                break
            reply += chunk
        answer = json.loads(reply.decode() or "{}")
    except (OSError, ValueError):
        return None
    finally:
        connection.close()
    return answer.get("code")


def start_warm_server(request):
    """Detach a warm server for the next request (double fork: nobody has to reap it)."""
    if os.fork() != 0:
        return
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    command = _own_command()
    try:
        os.execv(command[0] if os.path.isabs(command[0]) else sys.executable,
                 [sys.executable] + command[1:] + [json.dumps({"action": "serve", "agent_id": request.get("agent_id")})])
    finally:
        os._exit(1)


def serve(request):
    import select
    import socket
    import struct

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    path = _socket_path(request)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    temporary = "%s.%d" % (path, os.getpid())
    listener.bind(temporary)
    os.chmod(temporary, 0o600)
    listener.listen(16)
    os.rename(temporary, path)  # atomic: clients never see a socket that is not listening yet
    libraries = _libraries_mtime()
    children = {}  # pid -> the connection waiting for its exit code
    idle_since = time.time()
    while True:
        ready, _, _ = select.select([listener], [], [], 0.05 if children else 5)
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
                _reply(children.pop(pid), {"code": code})
                idle_since = time.time()
        if not ready:
            if not children and time.time() - idle_since > IDLE_SECONDS:
                break
            continue
        connection, _ = listener.accept()
        try:
            message, fds = _receive(connection, struct)
        except (OSError, ValueError):
            connection.close()
            continue
        if _libraries_mtime() != libraries or not os.path.exists(path):
            for fd in fds:
                os.close(fd)
            _reply(connection, {"stale": True})
            break
        pid = os.fork()
        if pid == 0:
            listener.close()
            connection.close()
            _become_child(message, fds)
        for fd in fds:
            os.close(fd)
        children[pid] = connection
    try:
        if os.path.exists(path):
            os.unlink(path)
    finally:
        os._exit(0)


def _receive(connection, struct):
    import array
    import socket

    fds = array.array("i")
    data, ancillary, _flags, _address = connection.recvmsg(4096, socket.CMSG_LEN(3 * fds.itemsize))
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(raw[:len(raw) - (len(raw) % fds.itemsize)])
    if len(fds) != 3 or len(data) < 4:
        for fd in fds:
            os.close(fd)
        raise ValueError("bad request")
    size = struct.unpack("!I", data[:4])[0]
    body = data[4:]
    while len(body) < size:
        chunk = connection.recv(size - len(body))
        if not chunk:
            raise ValueError("short request")
        body += chunk
    return json.loads(body.decode()), list(fds)


def _reply(connection, answer):
    try:
        connection.sendall(json.dumps(answer).encode())
    except OSError:
        pass
    connection.close()


def _become_child(message, fds):
    """In the fork: the caller's streams, directory and environment, then the request as if run directly."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = os.fdopen(0, "r", closefd=False)
    sys.stdout = os.fdopen(1, "w", closefd=False)
    sys.stderr = os.fdopen(2, "w", closefd=False)
    os.chdir(message["cwd"])
    os.environ.clear()
    os.environ.update(message["env"])
    sys.argv = ["-c", json.dumps(message["request"])]
    code = 0
    try:
        run(message["request"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main():
    request = json.loads(sys.argv[1])
    if request["action"] == "serve":
        serve(request)
    if request.get("warm"):
        code = via_warm_server(request)
        if code is None:  # start one and use it: the same import time as running here, and the next call is fast
            start_warm_server(request)
            deadline = time.time() + 5
            while code is None and time.time() < deadline:
                time.sleep(0.02)
                code = via_warm_server(request) if os.path.exists(_socket_path(request)) else None
        if code is not None:
            sys.exit(code)
    run(request)


if __name__ == "__main__":
    main()
