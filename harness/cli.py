"""The ``harness`` command line.

Errors the user can fix print one line (``error: ...``) and exit with status 2; pass
``--debug`` (or set HARNESS_DEBUG=1) to see the traceback.
"""

from __future__ import annotations

import os
import signal
import sys

import click

import harness
from harness.commands.bench import bench_group
from harness.commands.convert import convert_group
from harness.commands.eval import eval_command
from harness.commands.grid import grid_command
from harness.commands.judge import judge_group
from harness.commands.leaderboard import leaderboard_group
from harness.commands.list import list_command
from harness.commands.transfer import transfer_group
from harness.commands.validate import validate_command
from harness.errors import HarnessError
from harness.threads import configure_threads


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(harness.__version__, prog_name="harness")
@click.option("--debug", is_flag=True, envvar="HARNESS_DEBUG", help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Benchmark merging and transfer methods on model suites.

    \b
    Quick start (offline; the first run builds mini8, about 3-4 minutes on 2 idle CPU cores):
      harness eval --method ties --tasks mini8
      harness grid --methods pretrained,individual,weight_average,task_arithmetic,ties --tasks mini8
      harness leaderboard build && open site/index.html
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


for command in (
    list_command,
    eval_command,
    grid_command,
    leaderboard_group,
    convert_group,
    bench_group,
    validate_command,
    judge_group,
    transfer_group,
):
    cli.add_command(command)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, a job scheduler) stops a run as Ctrl-C does, cleaning up."""
    raise KeyboardInterrupt


def main() -> None:
    debug = os.environ.get("HARNESS_DEBUG", "") not in ("", "0") or "--debug" in sys.argv[1:3]
    configure_threads()
    try:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread: leave signals to the caller
        previous = None
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted; records written so far are intact", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except HarnessError as error:
        if debug:
            raise
        click.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted; records written so far are intact", err=True)
        sys.exit(130)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
