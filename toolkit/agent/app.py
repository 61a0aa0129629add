"""Loading the Flask app once, with its Flask-Migrate/Alembic configuration and its database."""

from __future__ import annotations

import ast
import os
import sys
from typing import List, Optional

from .files import database_files, watch_files
from .protocol import Database, ErrorCode, Failure, PendingRevision, Revision
from .review import classify_tree, read_source


class AgentError(Exception):
    """A failure the host turns into a message and an exit code."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def fail(code: str, message: str, **details) -> AgentError:
    return AgentError(Failure(code=code, message=message, **details))


def log(message: str) -> None:
    """A progress line for the user (the host shows it); everything else on stderr is detail."""
    from .protocol import LOG_MARK

    sys.stderr.write(LOG_MARK + message + "\n")
    sys.stderr.flush()


def first_line(exc: BaseException) -> str:
    text = error_text(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def error_text(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    if isinstance(original, SyntaxError) and original.filename:  # the whole path, not only the file's name
        return "%s (%s, line %s)" % (original.msg, original.filename, original.lineno)
    return str(original).strip() or type(original).__name__


def file_failure(exc: BaseException, directories: List[str]) -> Optional[AgentError]:
    """A failure naming the file of `directories` (the migrations folder, the versions folders) that Python
    could not read or run, when that is what `exc` is; None otherwise."""
    path, line = None, None
    if isinstance(exc, SyntaxError) and exc.filename:
        path, line = exc.filename, exc.lineno
    else:
        traceback = exc.__traceback__
        while traceback is not None:
            name = traceback.tb_frame.f_code.co_filename
            if any(os.path.abspath(name).startswith(os.path.join(d, "")) for d in directories):
                path, line = name, traceback.tb_lineno
            traceback = traceback.tb_next
    if path is None or not any(os.path.abspath(path).startswith(os.path.join(d, "")) for d in directories):
        return None
    reason = exc.msg if isinstance(exc, SyntaxError) else "%s: %s" % (type(exc).__name__, first_line(exc))
    return fail(ErrorCode.REVISION_UNREADABLE, "Cannot read %s%s: %s" % (
        path, " (line %s)" % line if line else "", reason), path=path)


def so_far(done: List[Revision], current: Optional[List[str]], verb: str = "applied") -> str:
    """What a request that failed had changed: the revisions it applied (or downgraded) and where the database
    is now."""
    at = ", ".join(current) if current else ("base" if current is not None else "unknown")
    if not done:
        return "Nothing was %s; the database is at %s." % (verb, at)
    return "%s before that: %s; the database is now at %s." % (verb.capitalize(), ", ".join(r.id for r in done), at)


def where(database: Database) -> str:
    """The database in words, without its password: `shop on db:5432 as shop (postgresql)`."""
    if not database.host:
        return "%s (%s)" % (database.name or "(default)", database.backend)
    return "%s on %s%s as %s (%s)" % (database.name, database.host, ":%s" % database.port if database.port else "",
                                      database.user, database.backend)


def connect(engine, bind: Optional[str] = None):
    """A connection through one of the app's engines. Failing to connect is named as such: which database and
    the driver's reason (the host adds what to do about it)."""
    try:
        return engine.connect()
    except Exception as exc:
        database = database_of(engine.url)
        raise fail(ErrorCode.DATABASE_UNREACHABLE, "Cannot connect to the app's database %s%s: %s" % (
            where(database), " (bind %s)" % bind if bind else "", first_line(exc)), error=error_text(exc),
                   database=database)


def describe(revision) -> Revision:
    return Revision(id=revision.revision, message=(revision.doc or "").strip(), path=revision.path)


class Session:
    """The loaded app plus its Flask-Migrate/Alembic configuration."""

    def __init__(self, request, *, migrations: bool = True) -> None:
        from flask import cli as flask_cli

        if hasattr(flask_cli, "load_dotenv"):
            flask_cli.load_dotenv()
        info = flask_cli.ScriptInfo(app_import_path=request.flask_app or os.environ.get("FLASK_APP"))
        try:
            self.app = info.load_app()
        except Exception as exc:  # NoAppException and the app's own import errors
            raise fail(ErrorCode.APP_NOT_LOADED, "Flask could not load the app: %s" % first_line(exc),
                       error=error_text(exc), path=exc.filename if isinstance(exc, SyntaxError) else None)
        self.app.app_context().push()
        state = self.app.extensions.get("migrate")
        if state is None:
            raise fail(ErrorCode.NO_FLASK_MIGRATE, "The app does not initialise Flask-Migrate (Migrate(app, db)).")
        self.migrate_state = state
        self._script = None
        self.db = state.db
        watch_files(database_files(self.engine().url))  # a first connection creates an SQLite file
        self.directory = os.path.abspath(request.directory or state.directory)
        if migrations and not os.path.isfile(os.path.join(self.directory, "env.py")):
            raise fail(ErrorCode.NO_MIGRATIONS, "No migrations folder at %s." % self.directory,
                       directory=self.directory)

    def config(self, autogenerate: bool = False):
        return self.migrate_state.migrate.get_config(self.directory, opts=["autogenerate"] if autogenerate else None)

    def script(self, extra_versions: Optional[str] = None, *, reload: bool = False):
        """The checkout's revisions, every revision file read: one that Python cannot read, or a revision that
        refers to one no file defines, is named here rather than failing whatever comes next. Loaded once per
        request (reading a long history is most of an upgrade's start: every revision file is imported);
        `reload` after something outside it (a merge, autogenerate) wrote a revision. With `extra_versions`, a
        fresh one that also has the revision files in that folder (the kept copies sync downgrades from)."""
        from alembic.script import ScriptDirectory

        if not extra_versions and not reload and self._script is not None:
            return self._script
        script = ScriptDirectory.from_config(self.config())
        if extra_versions:
            own = list(script.version_locations or []) or [os.path.join(script.dir, "versions")]
            script.version_locations = own + [extra_versions]
        load_history(script, [self.directory] + list(script.version_locations or [script.versions]))
        if not extra_versions:
            self._script = script
        return script

    def engine(self, bind: Optional[str] = None):
        """The engine of the main database (bind None) or of a bind (SQLALCHEMY_BINDS)."""
        if bind is None:
            return self.db.engine
        engines = getattr(self.db, "engines", None)  # Flask-SQLAlchemy 3.x
        if engines is not None:
            return engines[bind]
        return self.db.get_engine(bind=bind)  # 2.x

    def dispose(self) -> None:
        """Close the pooled connections to every database of the app."""
        for bind in [None] + self.binds():
            self.engine(bind).dispose()

    def binds(self) -> List[str]:
        """The app's binds (SQLALCHEMY_BINDS keys), sorted; a single-database app has none."""
        engines = getattr(self.db, "engines", None)
        if engines is not None:
            return sorted(k for k in engines if k is not None)
        return sorted(k for k in (self.app.config.get("SQLALCHEMY_BINDS") or {}) if k is not None)

    def metadata(self, bind: Optional[str] = None):
        """The models' tables of one database: Flask-SQLAlchemy 3.x keeps a MetaData per bind, 2.x one MetaData
        whose tables carry their bind_key."""
        metadatas = getattr(self.db, "metadatas", None)
        if metadatas is not None:
            from sqlalchemy import MetaData

            return metadatas.get(bind) or MetaData()
        if not self.binds():
            return self.db.metadata
        from sqlalchemy import MetaData

        chosen = MetaData()
        for table in self.db.metadata.tables.values():
            if table.info.get("bind_key") == bind:
                table.to_metadata(chosen) if hasattr(table, "to_metadata") else table.tometadata(chosen)
        return chosen

    def connect(self, bind: Optional[str] = None):
        """A connection to the app's database (or a bind's); see connect()."""
        return connect(self.engine(bind), bind)

    def use_database(self, target) -> None:
        """Point the app's engine at `target` (a copy, a throw-away server) for the rest of this request, and
        prove it: the app's own database must not see a single revision."""
        from sqlalchemy import create_engine

        url = self.engine().url.set(database=target.name)
        if target.host:
            url = url.set(host=target.host, port=target.port, username=target.user, password=target.password)
        if hasattr(self.db, "engines"):  # Flask-SQLAlchemy 3: one engine per bind, made by init_app
            self.db.engines[None] = create_engine(url)
        else:  # Flask-SQLAlchemy 2: the engine follows the configured URI
            self.app.config["SQLALCHEMY_DATABASE_URI"] = url.render_as_string(hide_password=False)
        with self.engine().connect() as connection:
            self.prove(connection, target)

    def prove(self, connection, target) -> None:
        """Refuse to go on unless `connection` reaches `target` (env.py may make its own engine)."""
        from sqlalchemy import text

        value = connection.execute(text(target.check_sql)).scalar()
        if str(value) != target.check_value:
            raise fail(ErrorCode.NOT_REDIRECTED, "The migrations connect to %s, not to devtool's copy %s: env.py "
                       "must use the app's engine (as Flask-Migrate's env.py does); nothing was run." % (
                           value, target.name))

    def current(self, bind: Optional[str] = None) -> List[str]:
        from alembic.runtime.migration import MigrationContext

        with self.connect(bind) as connection:
            try:
                return sorted(MigrationContext.configure(connection).get_current_heads())
            except Exception as exc:
                database = database_of(self.engine(bind).url)
                raise fail(ErrorCode.DATABASE_UNREACHABLE, "Cannot read the revision of the app's database %s%s: "
                           "%s" % (where(database), " (bind %s)" % bind if bind else "", first_line(exc)),
                           error=error_text(exc), database=database)

    def currents(self) -> List[str]:
        """The revisions of every database of the app together (each keeps its own alembic_version)."""
        found = set()
        for bind, _ in self.databases():
            found.update(self.current(bind))
        return sorted(found)

    def heads(self, script=None) -> List[Revision]:
        script = script or self.script()
        return [describe(script.get_revision(h)) for h in script.get_heads()]

    def database(self) -> Database:
        return database_of(self.engine().url)

    def databases(self):
        """(bind, engine URL) of every database the app uses: the main one (bind None) first, then each bind's
        in name order; a bind that points at a database already listed is not listed again."""
        found, seen = [], set()
        for bind in [None] + self.binds():
            url = self.engine(bind).url
            key = same_database_key(url)
            if key not in seen:
                seen.add(key)
                found.append((bind, url))
        return found

    def pending(self, script, current: List[str], linter=None) -> List[PendingRevision]:
        """Revisions between the database and head, oldest first, each with its reviewed changes (and, given a
        linter, its lint findings). With binds, a revision pending in any of the databases (each has its own
        alembic_version) counts."""
        from .render import upgrade_sql

        currents = [current] + [self.current(bind) for bind, _ in self.databases()[1:]]
        behind = [list(reversed(list(script.iterate_revisions("heads", c[0] if len(c) == 1 else None))))
                  for c in currents]
        found: List[PendingRevision] = []
        seen = set()
        for revisions in sorted(behind, key=len, reverse=True):  # the database furthest behind sets the order
            for revision in revisions:
                if revision.revision not in seen:
                    seen.add(revision.revision)
                    changes, findings = review_and_lint(revision.path, linter, lambda revision=revision: upgrade_sql(
                        self, script, revision))
                    found.append(PendingRevision(id=revision.revision, message=(revision.doc or "").strip(),
                                                 path=revision.path, changes=changes, findings=findings))
        return found


def same_database_key(url) -> tuple:
    """What tells two URLs of one database apart from two databases (no user, no password, no options)."""
    return (url.get_backend_name(), url.host, url.port, url.database)


def database_of(url) -> Database:
    """The parts of a database URL devtool shows and compares (never the password)."""
    return Database(backend=url.get_backend_name(), host=url.host, port=url.port, name=url.database,
                    user=url.username)


def current_revision(url) -> Optional[List[str]]:
    """alembic_version of the database at `url` (no migrations folder needed); None when it cannot be read."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return sorted(MigrationContext.configure(connection).get_current_heads())
    except Exception:
        return None
    finally:
        engine.dispose()


def load_history(script, directories: List[str]) -> None:
    import warnings

    from alembic.script.revision import RevisionError

    directories = sorted({os.path.abspath(d) for d in directories})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            script.revision_map.heads
        except RevisionError as exc:
            raise fail(ErrorCode.HISTORY_BROKEN, "The migration history is broken: %s." % first_line(exc).rstrip("."),
                       error=error_text(exc), directory=script.dir)
        except KeyError as exc:  # a down_revision that no file defines (Alembic warns, then fails to look it up)
            missing = exc.args[0] if exc.args else "?"
            path = _referring_file(directories, str(missing))
            said = [str(w.message) for w in caught if "is not present" in str(w.message)]
            raise fail(ErrorCode.HISTORY_BROKEN, "The migration history is broken: %s revises %s, which no revision "
                       "file defines." % (path or "; ".join(said) or "a revision", missing), path=path,
                       directory=script.dir)
        except Exception as exc:
            failure = file_failure(exc, directories)
            if failure is None:
                raise
            raise failure


def _referring_file(directories: List[str], missing: str) -> Optional[str]:
    """The revision file whose down_revision (or depends_on) names `missing`."""
    import ast

    for directory in directories:
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            path = os.path.join(directory, name)
            if not name.endswith(".py"):
                continue
            try:
                tree = ast.parse(read_source(path))
            except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in tree.body:
                if isinstance(node, ast.Assign) and any(getattr(t, "id", None) in ("down_revision", "depends_on")
                                                        for t in node.targets):
                    if missing in [getattr(c, "value", None) for c in ast.walk(node.value)]:
                        return path
    return None


def parse_file(path: str):
    """(source, tree) of one revision file, read the way Python and Alembic do; a file that cannot be read is
    named."""
    try:
        source = read_source(path)
        return source, ast.parse(source)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:
        where = " (line %s)" % exc.lineno if getattr(exc, "lineno", None) else ""
        raise fail(ErrorCode.REVISION_UNREADABLE, "Cannot read revision file %s%s: %s" % (
            path, where, getattr(exc, "msg", None) or first_line(exc)), path=path, error=error_text(exc))


def review_file(path: str, function: str = "upgrade"):
    """The reviewed changes of one revision file's upgrade() (or downgrade())."""
    return classify_tree(parse_file(path)[1], function)


def review_and_lint(path: str, linter=None, render=None):
    """(changes, lint findings) of one revision file's upgrade(). `render` gives the statements `upgrade --sql`
    writes for it, asked only when op.execute builds its SQL at run time."""
    source, tree = parse_file(path)
    return classify_tree(tree), (linter.lint(tree, source, render) if linter is not None else [])


def reported_version(url, query: str) -> str:
    """The version the database server at `url` reports to `query`, by connecting (the tools run beside the
    backend must match it); a server devtool cannot reach is a failed snapshot, named."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(text(query)).scalar()
    except Exception as exc:
        raise fail(ErrorCode.SNAPSHOT_FAILED, "Cannot connect to database %s on %s: %s" % (
            url.database, url.host, first_line(exc)), error=error_text(exc))
    finally:
        engine.dispose()
