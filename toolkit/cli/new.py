"""Create a new project: a Flask + Flask-SQLAlchemy backend with its migrations, Postgres, a compose file, a README.

Example: devtool new myapp && cd myapp && devtool setup
"""

from pathlib import Path
from typing import Optional

import typer


def command(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Directory to create (must be new or empty)."),
    name: Optional[str] = typer.Option(None, "--name", help="Project name (default: the directory name)."),
    service: str = typer.Option("backend", "--service", help="Name of the backend service (and its directory)."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty directory, overwriting the "
                                                      "project's files; other files are kept."),
):
    from toolkit.scaffold import create_project

    out = ctx.obj.out
    result = create_project(path, name=name, service=service, force=force)
    if result["overwritten"]:
        out.warn(f"Overwrote {len(result['overwritten'])} existing file(s): {', '.join(result['overwritten'])}.")
    for relative in result["files"]:
        out.debug(f"wrote {relative}")
    out.success(f"Created project {result['project_name']} in {result['path']}: service {result['service']} "
                f"(./{result['backend_dir']}, image {result['image']}) and db (postgres:15).")
    if result["devtool_toml"]:
        out.info(f"devtool.toml names {result['service']} as the backend service.")
    out.info(f"Next: cd {result['path']} && devtool setup   (then edit a model and run "
             f"`devtool migrate \"describe it\"`)")
