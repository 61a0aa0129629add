"""Optional git hooks (post-checkout, post-merge) that print one line when the database no longer matches the
checkout; fast, and they never make a git command fail. `uninstall` removes exactly what `install` added.

Example: devtool hooks install
"""

import typer

app = typer.Typer(help=__doc__, no_args_is_help=True, rich_markup_mode=None)


@app.command("install")
def install(ctx: typer.Context):
    """Add devtool's post-checkout and post-merge hooks to this git repository (core.hooksPath honoured).

    Example: devtool hooks install
    """
    from toolkit import hooks

    show(ctx.obj.out, hooks.install(ctx.obj))


@app.command("uninstall")
def uninstall(ctx: typer.Context):
    """Remove what `devtool hooks install` added, and nothing else.

    Example: devtool hooks uninstall
    """
    from toolkit import hooks

    show(ctx.obj.out, hooks.uninstall(ctx.obj))


@app.command("check")
def check(ctx: typer.Context):
    """What the hooks run: one line when the database does not match the checkout, silence otherwise; starts
    nothing, gives up after a few seconds, always exits 0.

    Example: devtool hooks check
    """
    import os
    import sys

    from toolkit import hooks

    line = hooks.check(ctx.obj)
    if line:
        ctx.obj.out.raw((line + "\n").encode(), stderr=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # a check still waiting on a hung engine must not hold git up


def show(out, changes) -> None:
    for change in changes:
        line = f"{change.hook}: {change.action} ({change.path})"
        if change.action.startswith("skipped"):
            out.warn(line)
        else:
            out.success(line)
