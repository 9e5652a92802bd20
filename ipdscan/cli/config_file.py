"""Settings for ``ipdscan scan`` from a file and the environment, as trivy reads trivy.yaml and TRIVY_*.

The file: the nearest ``ipdscan.toml`` (its top-level keys) or ``pyproject.toml`` with a ``[tool.ipdscan]`` table,
looked for in the current directory and then each folder above it; in one folder, ipdscan.toml wins. The
environment: ``IPDSCAN_<OPTION>``, e.g. ``IPDSCAN_FAIL_ON=0.9``. Keys are the scan options' long names,
``fail-on`` (or ``fail_on``); values are checked as the option checks them. Precedence: a flag on the command line,
then the environment, then the file, then the option's default (click's default_map sits between the first two and
the last, so the CLI hands it the environment and the file already merged). An unknown key in the file is an
error; other ``IPDSCAN_*`` variables (IPDSCAN_CI_VENV, ...) are not options and are left alone.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import typer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_FILE, PYPROJECT = "ipdscan.toml", "pyproject.toml"
ENV_PREFIX = "IPDSCAN_"
NOT_SETTINGS = ("inputs", "help")  # the scan's arguments and --help are no settings


class ConfigError(ValueError):
    """A config file or variable that cannot be used: one line naming where it is, exit 2."""


@dataclass(frozen=True)
class Setting:
    value: object
    source: str  # "default", "IPDSCAN_FAIL_ON", "/repo/pyproject.toml [tool.ipdscan]"


def find_config(start: Path) -> tuple[str, dict] | None:
    """(where, table) of the nearest config file at or above ``start``, or None."""
    for folder in [start, *start.parents]:
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return str(candidate), _read_toml(candidate)
        candidate = folder / PYPROJECT
        if candidate.is_file():
            table = _read_toml(candidate).get("tool", {}).get("ipdscan")
            if table is not None:
                if not isinstance(table, dict):
                    raise ConfigError(f"{candidate}: [tool.ipdscan] must be a table")
                return f"{candidate} [tool.ipdscan]", table
    return None


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def options_of(command) -> dict[str, object]:
    """The settable options of a click command, by their long name without dashes: {"fail-on": param, ...}."""
    options = {}
    for param in command.params:
        if param.name in NOT_SETTINGS or not getattr(param, "opts", None) or param.param_type_name != "option":
            continue
        long_names = [opt for opt in param.opts if opt.startswith("--")]
        options[long_names[0][2:]] = param
    return options


def settings(command, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, Setting]:
    """Every option of ``command`` with its effective value (before command-line flags) and where it came from."""
    environ = os.environ if environ is None else environ
    options = options_of(command)
    found = find_config(Path.cwd() if cwd is None else cwd)
    chosen: dict[str, tuple[object, str]] = {}
    if found:
        where, table = found
        for key, value in table.items():
            name = key.replace("_", "-")
            if name not in options:
                raise ConfigError(f"{where}: unknown setting {key!r}; the settings are {', '.join(sorted(options))}")
            chosen[name] = (value, where)
    for name in options:
        variable = ENV_PREFIX + name.upper().replace("-", "_")
        if variable in environ:
            chosen[name] = (environ[variable], variable)
    result = {}
    for name, param in options.items():
        if name in chosen:
            value, source = chosen[name]
            result[name] = Setting(_converted(command, param, value, f"{source}: {name}"), source)
        else:
            result[name] = Setting(param.default, "default")
    return result


def _converted(command, param, value, where: str):
    """``value`` as the option would take it from the command line; ConfigError naming ``where`` if it cannot."""
    if isinstance(value, (dict, list)):
        raise ConfigError(f"{where}: expected a single value, not {type(value).__name__}")
    try:
        return param.process_value(typer.Context(command), value)
    except typer.BadParameter as exc:
        raise ConfigError(f"{where}: {exc.message}") from None


def default_map(command, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, object]:
    """What click's default_map for ``command`` must hold: the settings the environment or a file chose."""
    return {options_of(command)[name].name: setting.value
            for name, setting in settings(command, environ, cwd).items() if setting.source != "default"}


def show_value(value) -> str:
    """A value as TOML writes it, so that ``ipdscan config``'s output can be pasted into ipdscan.toml."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
