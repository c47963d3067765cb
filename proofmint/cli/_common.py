"""What every command shares: options, the progress display, output and error handling."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from proofmint import config, progress
from proofmint.errors import ProofmintError

stderr = Console(stderr=True, highlight=False, soft_wrap=True)

# Exit codes: 0 ok; 1 a check failed (invalid proof or asset, a stream with failures);
# 2 usage or environment (every ProofmintError); 70 an internal error (sysexits' EX_SOFTWARE).
INTERNAL_ERROR = 70

WorkspaceOpt = Annotated[Path | None, typer.Option(
    "--workspace", "-w", envvar=config.HOME,
    help="Workspace folder for circuits, keys and records \\[default: ./.proofmint].")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable result on stdout.")]


class _Display:
    """Renders progress events as rich bars on stderr."""

    def __init__(self, bar: Progress):
        self.bar = bar
        self.tasks: dict[str, Any] = {}

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "note":
            self.bar.console.print(f"[yellow]![/] {event['message']}")
        elif kind == "begin":
            self.tasks[event["name"]] = self.bar.add_task(event["name"], total=event["total"])
        elif kind == "advance" and event["name"] in self.tasks:
            self.bar.advance(self.tasks[event["name"]], event["n"])
        elif kind == "end" and event["name"] in self.tasks:
            self.bar.remove_task(self.tasks.pop(event["name"]))
            self.bar.console.print(f"[green]✓[/] {event['name']} [dim]{event['seconds']:.2f} s[/]")


@contextlib.contextmanager
def live_progress() -> Iterator[None]:
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                   console=stderr, transient=True, disable=not stderr.is_terminal)
    display = _Display(bar)
    with bar, progress.sink(display):
        yield


def output(result: dict, as_json: bool, human: Callable[[dict], None]) -> None:
    """``--json``: the result on stdout; otherwise a human summary."""
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    else:
        human(result)


def run(fn: Callable[[], Any]) -> Any:
    """Call ``fn`` with progress shown; known errors become one line and exit code 2."""
    try:
        with live_progress():
            return fn()
    except ProofmintError as exc:
        if config.debug():
            raise
        stderr.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        stderr.print("[red]interrupted[/] — nothing half-written was kept")
        raise typer.Exit(130) from None
    except Exception as exc:  # a bug, not a user error: its own exit code, so scripts can tell
        if config.debug():
            raise
        stderr.print(f"[red]internal error:[/] {type(exc).__name__}: {exc} — this is a proofmint bug; "
                     "rerun with PROOFMINT_DEBUG=1 for the traceback and report it", soft_wrap=True)
        raise typer.Exit(INTERNAL_ERROR) from None
