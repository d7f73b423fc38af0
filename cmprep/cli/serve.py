"""`cmprep serve`: the bench web page on this computer.

Only click is imported here at start-up; Starlette, uvicorn and the web pages are imported
when the command runs, so `cmprep --help` (and `cmprep serve --help`) stay as fast as
every other command's, and a machine without the ``[web]`` extra is told what to install.
"""

from __future__ import annotations

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--db",
    envvar="CMPREP_DB",
    default=None,
    metavar="PATH",
    help="Database file or URL (default ./cmprep.db, or $CMPREP_DB).",
)
def serve(host: str, port: int, db: str | None) -> None:
    """Serve the bench web page: sign in, the bench board, step pages, verification, QA.

    Listens on this computer only unless --host says otherwise; put it behind an HTTPS
    proxy for tablets (cookies are then marked Secure).

    \b
    Example:
      cmprep serve --db lab.db --port 8000
    """
    from cmprep.cli.common import Shell, error_message
    from cmprep.errors import CmprepError, Hint, MissingExtra

    try:
        import uvicorn

        from cmprep.web import create_app
    except ImportError as err:
        missing = MissingExtra(
            f"the web page needs the optional part [web] ({err.name} is missing)",
            hint=Hint("install_extra", extra="web", package=err.name or "starlette"),
        )
        raise click.ClickException(error_message(missing)) from None
    shell = click.get_current_context().ensure_object(Shell)
    try:
        shell.services(db).close()  # a missing or unusable database is said now, not per page
    except CmprepError as err:
        raise click.ClickException(error_message(err)) from None
    app = create_app(lambda: shell.services(db, pool=True))  # PostgreSQL: pooled connections
    click.echo(
        f"Bench web page on http://{host}:{port}/ (database {db or 'cmprep.db'}); Ctrl-C stops it."
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
