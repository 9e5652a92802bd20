"""The command line: a thin typer layer over the library. Exit codes: 0 clean, 1 --fail-on tripped, 2 error.

Only light modules are imported up here: --help, --version's first line, `config` and argument errors answer at
once, without torch (seconds and hundreds of MB to load); each command imports the library it runs, and one that
needs torch where it is not installed says which extra brings it (``extras.require_torch``). The commands
live by group: ``scan`` (scan), ``reports`` (merge, report), ``model`` (eval, explain), ``export``; this module
holds the app, the options every command shares, train, config and the entry point.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..extras import MissingExtra, require_torch
from ..versions import print_versions
from . import export, model, reports, scan
from .config_file import CONFIG_PROBLEM, ConfigError, default_map, scan_settings, settings, show_value
from .console import shown, stdout
from .support import fail, failures_exit_2

app = typer.Typer(
    help="Flag AI-generated images in folders and URL lists with IPD-Net.",
    no_args_is_help=True, pretty_exceptions_enable=False,
    # click's plain help: wrapped to the terminal (80 columns too), choices listed, never cut off mid-name
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version_callback(value: bool):
    """``--version`` among other options (a bare ``ipdscan --version`` is answered by entry.py first)."""
    if value:
        print_versions()
        raise typer.Exit()


@app.callback()
def root(ctx: typer.Context,
         version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                      help="Show the version (and torch's, CUDA's, the default weights') and exit."),
         config: Optional[Path] = typer.Option(None, "--config", metavar="FILE", help="Scan settings from FILE (an ipdscan.toml, or a pyproject.toml's [tool.ipdscan]), trusted in full, instead of the nearest one found, which may not set out, weights, allow-private-urls, shard, max-mb, hidden or exclude.")):
    """Flag AI-generated images in folders and URL lists with IPD-Net."""
    # scan's defaults from IPDSCAN_* and the config file; flags on its command line still win (config_file.py). A
    # setting that cannot be read is an error for scan and config only (scan_settings): --help and the other
    # commands never read them.
    try:
        ctx.obj = settings(ctx.command.commands["scan"], config=config)
        ctx.default_map = {"scan": default_map(ctx.command.commands["scan"], ctx.obj)}
    except ConfigError as exc:
        ctx.obj, ctx.meta[CONFIG_PROBLEM] = {}, str(exc)


app.command("scan", epilog=scan.EPILOG)(scan.scan)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def train(ctx: typer.Context):
    """Train IPD-Net on CNNSpot/GenImage-style folders (the paper's recipe). See `ipdscan train --help`."""
    try:
        require_torch("train", "train")
    except MissingExtra as exc:
        raise fail(str(exc))
    from ..train.__main__ import main as train_main  # torch training code loads only when asked for
    raise typer.Exit(train_main(ctx.args, prog="ipdscan train"))


app.command("eval", epilog=model.EVAL_EPILOG)(model.evaluate_command)
app.command("merge", epilog=reports.MERGE_EPILOG)(reports.merge)
app.command("report", epilog=reports.REPORT_EPILOG)(reports.report)
app.command("explain", epilog=model.EXPLAIN_EPILOG)(model.explain)
app.command("export", epilog=export.EXPORT_EPILOG)(export.export)


@app.command("config")
@failures_exit_2
def config_command(ctx: typer.Context):
    """Show the settings `ipdscan scan` starts from, and where each comes from.

    Flags on scan's command line win over IPDSCAN_<OPTION> variables, which win
    over the config file, which wins over the defaults. The config file is
    ipdscan --config FILE, else the nearest ipdscan.toml or [tool.ipdscan] in
    pyproject.toml (looked for from the current directory upwards), which may
    not set out, weights, allow-private-urls, shard, max-mb, hidden or exclude (it
    may be the scanned repository's own). The output is TOML: the set lines can be
    pasted into ipdscan.toml.
    """
    try:
        found = scan_settings(ctx)
    except ConfigError as exc:
        raise fail(str(exc))
    lines = [(f"{name} = {show_value(setting.value)}" if setting.value is not None else f"# {name} =",
              setting.source + (f"; ignored: {setting.ignored} (found, not named by --config)" if setting.ignored else ""))
             for name, setting in found.items()]
    width = max(len(line) for line, _ in lines)
    for line, source in lines:
        stdout.print(f"{shown(line):<{width}}  # {shown(source)}", highlight=False)


def main() -> None:
    """Console-script entry: anything unexpected is exit 2, never 1 (which means "suspect found")."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt as exc:
        sys.exit(fail(str(exc) or "interrupted").exit_code)
    except Exception as exc:  # noqa: BLE001 - the boundary: one line, not a traceback
        sys.exit(fail(f"{type(exc).__name__}: {exc}").exit_code)
