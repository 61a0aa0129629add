"""Which compose service is the Flask backend and which runs its database: resolved once per command (the
context keeps the answer, or the error) from the compose model and devtool's settings."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from toolkit.errors import DevtoolError, ExitCode

if TYPE_CHECKING:
    from toolkit.context import Settings
    from toolkit.output import Output
    from toolkit.project import ComposeProject

MIGRATION_GLOBS = ("migrations/env.py", "*/migrations/env.py", "*/*/migrations/env.py")  # e.g. src/db/migrations
MANIFEST_GLOBS = ("requirements*.txt", "requirements/*.txt", "pyproject.toml", "Pipfile")


class Services:
    def __init__(self, project: ComposeProject, settings: Settings, out: Output) -> None:
        self.project, self.settings, self.out = project, settings, out

    @functools.cached_property
    def _backend(self) -> str | DevtoolError:
        try:
            return resolve_backend(self.project, self.settings.backend_service, self.out)
        except DevtoolError as exc:
            return exc

    @property
    def backend(self) -> str:
        """--service (or configuration), else `backend`, else the one service with a Flask app and migrations."""
        if isinstance(self._backend, DevtoolError):
            raise self._backend
        return self._backend

    @property
    def backend_if_known(self) -> str | None:
        return None if isinstance(self._backend, DevtoolError) else self._backend

    def db(self, database: Any) -> str:
        """The service that runs the app's database (`database`: the agent's Database of the app)."""
        return resolve_db(self.project, self.settings.db_service, database)

    def db_if_known(self, database: Any) -> str | None:
        """The project's service that runs `database`'s server (configured, else the URL's host); None when it
        runs outside this project. No guessing from images: a wrong answer here would name the wrong volume."""
        if self.settings.db_service in self.project.services:
            return self.settings.db_service
        host = getattr(database, "host", None)
        return host if host in self.project.services else None


def resolve_backend(project: ComposeProject, wanted: str | None, out: Output) -> str:
    services = project.services
    if wanted:
        if wanted not in services:
            inactive = project.not_active(wanted)
            if inactive:
                raise DevtoolError(f"Service {wanted!r} is not active: {inactive}.",
                                   hint=f"Activate its profile, or pick another service: {', '.join(services)}.",
                                   exit_code=ExitCode.SERVICE_NOT_FOUND)
            raise DevtoolError(f"Service {wanted!r} is not in the compose file (services: {', '.join(services)}).",
                               hint="Pick one of those with --service.", exit_code=ExitCode.SERVICE_NOT_FOUND)
        return wanted
    if "backend" in services:
        return "backend"
    candidates = [name for name in services if _runs_flask_with_migrations(project, name)]
    if len(candidates) == 1:
        out.debug(f"backend service detected: {candidates[0]}")
        return candidates[0]
    found = f"candidates: {', '.join(candidates)}" if candidates else f"services: {', '.join(services)}"
    raise DevtoolError(f"Cannot tell which service is the Flask backend ({found}).",
                       hint="Name it with --service NAME, or backend_service in [tool.devtool].",
                       exit_code=ExitCode.SERVICE_NOT_FOUND)


def resolve_db(project: ComposeProject, configured: str | None, database: Any) -> str:
    """Configured, else the host in the app's database URL, else the one postgres image."""
    services = project.services
    if configured:
        if configured not in services:
            raise DevtoolError(f"Database service {configured!r} is not in the compose file.",
                               exit_code=ExitCode.SERVICE_NOT_FOUND, hint="Fix db_service in your configuration.")
        return configured
    host = getattr(database, "host", None)
    if host in services:
        return host
    postgres = [n for n, c in services.items() if "postgres" in str(c.get("image", ""))]
    if len(postgres) == 1:
        return postgres[0]
    raise DevtoolError("Cannot tell which service runs Postgres.", exit_code=ExitCode.SERVICE_NOT_FOUND,
                       hint="Set db_service in [tool.devtool] (or DEVTOOL_DB_SERVICE).")


def _runs_flask_with_migrations(project: ComposeProject, service: str) -> bool:
    """Judged from the files compose gives the service: build context, bind mounts (together) and env files."""
    roots = [p for p in [project.build_context(service), *(m[0] for m in project.bind_mounts(service))]
             if p and p.is_dir()]
    # Code is often bind-mounted (migrations there) while the manifest is only in the build context.
    has_migrations = any(any(root.glob(pattern)) for root in roots for pattern in MIGRATION_GLOBS)
    manifests = [m for root in roots for pattern in MANIFEST_GLOBS for m in root.glob(pattern) if m.is_file()]
    uses_flask = any("flask" in m.read_text(errors="replace").lower() for m in manifests)
    return has_migrations and (uses_flask or _sets_flask_app(project, service))


def _sets_flask_app(project: ComposeProject, service: str) -> bool:
    """FLASK_APP in the service's environment as compose resolves it (`environment:` and `env_file:` files)."""
    return "FLASK_APP" in project.environment(service)
