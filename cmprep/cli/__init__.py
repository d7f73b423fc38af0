"""The `cmprep` command line: one module per noun, each command parse, call one service,
print. Only click is imported at start-up, so `cmprep --help` at the bench answers at once.

The services reach the commands through ``ctx.obj`` (a ``Shell``); tests hand in their own
with a clock they control: ``CliRunner().invoke(main, args, obj=Shell(open_services))``.
"""

from __future__ import annotations

import click

from cmprep.cli.audit import audit
from cmprep.cli.batch import batch
from cmprep.cli.common import Shell
from cmprep.cli.db import db
from cmprep.cli.deviation import deviation
from cmprep.cli.materials import equipment, materials
from cmprep.cli.protocol import checklist, protocol
from cmprep.cli.qc import qc
from cmprep.cli.session import init, login, logout, whoami
from cmprep.cli.site import site
from cmprep.cli.user import user


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cmprep")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Batch records for MSC-conditioned medium.

    \b
    Example:
      cmprep init --admin root --full-name "Ada Admin"
      cmprep user add alice --full-name "Alice Archer" --role technician --as root
      cmprep login --as alice
      cmprep batch start cm-standard-serum-free
      cmprep batch run CM-20261129-001
    """
    ctx.ensure_object(Shell)


for _command in (init, login, logout, whoami, user, site):
    main.add_command(_command)
for _group in (protocol, batch, deviation, qc, materials, equipment, audit, db):
    main.add_command(_group)
main.add_command(checklist)

# `cmprep record BATCH` is the old name of `cmprep batch record-doc`; kept for scripts,
# hidden from the help so it no longer reads like `batch record`.
main.add_command(
    click.Command(
        "record",
        params=batch.commands["record-doc"].params,
        callback=batch.commands["record-doc"].callback,
        hidden=True,
        help=batch.commands["record-doc"].help,
    )
)

__all__ = ["Shell", "main"]
