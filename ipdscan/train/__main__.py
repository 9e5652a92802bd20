"""``python -m ipdscan.train ROOT... --out runs/x`` and ``ipdscan train``: the trainer's command line, for torchrun too.

    torchrun --nproc-per-node 2 -m ipdscan.train data/corpus --out runs/x --max-minutes 60

Its options are ``TrainConfig``'s fields, built here from them (``config.option``: the help text, a bool's flag,
a pair's metavar; the type and default are the field's own), so a field added there is an option at once.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import typing

import typer

from ipdscan.eval.labelled import DatasetError
from ipdscan.interrupt import sigterm_as_interrupt
from ipdscan.model.runtime import DeviceError
from ipdscan.scanning.torchrun import Launch

from .config import TrainConfig, TrainError
from .loop import train

DESCRIPTION = ("Train IPD-Net with the CNNDetection recipe (see trainer/README.md). "
               "Under torchrun every process runs this; rank 0 writes.")


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def option_parameters() -> tuple[list[inspect.Parameter], dict[str, str]]:
    """One typer parameter per ``TrainConfig`` field that carries a help text (all but ``preprocessing``), and the
    flags that turn a field off (``no_progress`` -> ``progress``)."""
    types = typing.get_type_hints(TrainConfig)
    parameters, negations = [], {}
    for spec in dataclasses.fields(TrainConfig):
        if "help" not in spec.metadata:
            continue
        name, kind, help_text = spec.name, types[spec.name], spec.metadata["help"]
        if spec.default is dataclasses.MISSING:
            declared = typer.Argument(..., metavar=spec.metadata["metavar"], help=help_text, show_default=False)
        elif kind is bool:  # one flag: --pair-sync turns pair_sync on, --no-progress turns progress off
            flag = spec.metadata["flag"] or flag_of(spec.name)
            if spec.default:
                name = flag.removeprefix("--").replace("-", "_")
                negations[name] = spec.name
            declared = typer.Option(False, flag, help=help_text, show_default=False)
        else:
            declared = typer.Option(spec.default, flag_of(spec.name), help=help_text,
                                    metavar=spec.metadata["metavar"] or spec.name.upper(),
                                    show_default=spec.default is not None)
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=declared, annotation=kind))
    return parameters, negations


PARAMETERS, NEGATIONS = option_parameters()


def options_to_config(**options) -> TrainConfig:
    for flag, field_name in NEGATIONS.items():
        options[field_name] = not options.pop(flag)
    return TrainConfig(**options)


options_to_config.__signature__ = inspect.Signature(PARAMETERS, return_annotation=TrainConfig)


def command():
    app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
                      context_settings={"help_option_names": ["-h", "--help"]})
    app.command(help=DESCRIPTION)(options_to_config)
    return typer.main.get_command(app)


def parse_args(argv: list[str] | None = None, prog: str = "python -m ipdscan.train") -> TrainConfig:
    """The command line as a ``TrainConfig``. As argparse does: SystemExit(0) after --help, SystemExit(2) after a
    one-line error (an unknown option, a bad value, values TrainConfig refuses)."""
    try:
        parsed = command().main(args=sys.argv[1:] if argv is None else list(argv), prog_name=prog,
                                standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors, as typer raises them
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        print(f"error: {message} (see {prog} --help)", file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as exc:  # TrainConfig's own checks
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if not isinstance(parsed, TrainConfig):  # --help
        raise SystemExit(parsed or 0)
    return parsed


def main(argv: list[str] | None = None, prog: str = "python -m ipdscan.train") -> int:
    """Parse, train, print the summary (rank 0). Exit status: 0 done, 2 bad options, unusable data or interrupted."""
    try:
        config = parse_args(argv, prog)
    except SystemExit as exc:
        return exc.code
    try:
        with sigterm_as_interrupt():  # a CI cancel stops training as Ctrl-C does
            summary = train(config)
    except (DatasetError, DeviceError, TrainError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # exit 2 as every other command, not 130/143; what was saved stays
        print(f"error: {str(exc) or 'interrupted'}; the run keeps its checkpoints up to its last save: "
              f"continue it with --resume {config.out}", file=sys.stderr)
        return 2
    if Launch.from_env().main:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
