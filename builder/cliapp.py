"""The command line's frame: the Typer app, its global options, errors turned into one line and
an exit code (each error class carries its own: ``builder.errors``), and the one way a command
reaches the API. The commands live in ``builder.cli`` (build, plan, init), ``builder.cli_images``
(images, gc, prune, diff) and ``builder.cli_rollout`` (manifests, summary)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from pydantic import ValidationError
from rich.text import Text

from . import clihelp
from . import log as logmod
from .budget import RequestBudget
from .cloud import Cloud, connect
from .config import CONFIG_ENV, ProjectConfig, set_config_dir
from .endpoint import Target, target
from .errors import EXIT_FAILED, CapiImageError, InputError, exit_code_of
from .interrupts import Interrupted
from .projects import validation_lines
from .tables import console as make_console


def print_error(message: str, notes: list[str] | None = None, label: str = "error:") -> None:
    # The message is text, never markup: "[localcloud]" or a label value in brackets must print as is.
    console = make_console(stderr=True, soft_wrap=True)
    console.print(Text.assemble((label, "red"), " ", logmod.scrub(message)), highlight=False)
    for note in notes or []:  # e.g. a create that may still appear (pipeline/record.late_create_note)
        console.print(Text.assemble(("note:", "yellow"), " ", logmod.scrub(note)), highlight=False)


# The one place errors become exit codes: each class carries its own (builder/errors.py).
class ErrorMappingGroup(typer.core.TyperGroup):
    """Every command's errors become a message on stderr and the exit code their class carries.
    Anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except (CapiImageError, Interrupted) as e:
            interrupted = isinstance(e, Interrupted)
            notes = list(getattr(e, "__notes__", []))
            print_error(f"{e}; everything it created was cleaned up" if interrupted else str(e), notes)
            raise typer.Exit(exit_code_of(e)) from e
        except OSError as e:  # last resort: the network or a file, somewhere not wrapped (a bug to report)
            print_error(f"failed: {type(e).__name__}: {e}")
            raise typer.Exit(EXIT_FAILED) from e


app = typer.Typer(
    cls=ErrorMappingGroup,
    no_args_is_help=True,
    help=clihelp.APP,
    epilog=clihelp.APP_EPILOG,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"capi-image {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    config_dir: Annotated[
        Path | None,
        typer.Option(
            "--config-dir",
            envvar=CONFIG_ENV,
            help="where named projects live (projects/NAME.yaml); default: ./config, or the checkout's config/",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    set_config_dir(config_dir)


def override(config: ProjectConfig, option: str, field: str, value: object) -> ProjectConfig:
    """The project with one setting replaced from the command line, validated as the file is."""
    if value is None:
        return config
    if field == "versions":  # a path from the working directory, said as the user wrote it
        if not Path(str(value)).is_file():
            raise InputError(f"{option} {value} does not exist")
        value = Path(str(value)).resolve()
    try:
        overridden = ProjectConfig.model_validate({**config.model_dump(), field: str(value)})
    except ValidationError as e:
        raise InputError(f"{option}: {validation_lines(e)[0].split(': ', 1)[1]}") from e
    overridden._root, overridden._ref = config._root, config._ref
    return overridden


@contextlib.contextmanager
def api(config: ProjectConfig, budget: RequestBudget | None = None) -> Iterator[tuple[Cloud, Target]]:
    """The one place a command reaches the API: the project's endpoint (an embedded
    localcloud lives as long as the block), the token redacted from every output, the client."""
    with target(config) as tgt:  # target() redacts the token
        yield connect(config, tgt.token, tgt.endpoint, budget=budget), tgt
