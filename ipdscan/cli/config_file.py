"""Settings for ``ipdscan scan`` from a file and the environment, as trivy reads trivy.yaml and TRIVY_*.

The file: ``ipdscan --config FILE`` (an ipdscan.toml, or a pyproject.toml's ``[tool.ipdscan]`` table), else the
nearest ``ipdscan.toml`` (its top-level keys) or ``pyproject.toml`` with a ``[tool.ipdscan]`` table, looked for
in the current directory and then each folder above it; in one folder, ipdscan.toml wins. The environment:
``IPDSCAN_<OPTION>``, e.g. ``IPDSCAN_FAIL_ON=0.9``; an empty variable is unset. Keys are the scan options' long
names, ``fail-on`` (or ``fail_on``); values are checked as the option checks them. Precedence: a flag on the
command line, then the environment, then the file, then the option's default (click's default_map sits between
the first two and the last, so the CLI hands it the environment and the file already merged). An unknown key in
the file is an error; other ``IPDSCAN_*`` variables (IPDSCAN_CI_VENV, ...) are not options and are left alone.

The trust rule: a file that was found, not named, is usually the scanned repository's own, written by whoever
wrote the pull request. It may set how findings are judged and shown (fail-on, format, ...), but not the
``GUARDED`` settings: where the report is written, what is trusted (private URLs, weights) or how much is scanned
(shard, max-mb, hidden, exclude). Those it sets are ignored, with a warning; ``--config FILE`` (the user naming the file)
or the environment can set them. The report header records every setting that is not a default and every
guarded one, with its source.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import typer

from ..trusted_text import TrustedFileError, read_trusted_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_FILE, PYPROJECT = "ipdscan.toml", "pyproject.toml"
ENV_PREFIX = "IPDSCAN_"
NOT_SETTINGS = ("inputs", "help")  # the scan's arguments and --help are no settings
CONFIG_MAX_BYTES = 1 << 20
# What a found (not named) config file may not set: where to write, what to trust, how much to scan.
GUARDED = ("out", "allow-private-urls", "weights", "shard", "max-mb", "hidden", "exclude")
NARROWING = ("shard", "max-mb", "exclude")  # settings a file can use to scan less than was asked: the summary says so
COMMAND_LINE, DEFAULT = "command line", "default"
CONFIG_PROBLEM = "ipdscan.config_problem"  # the root context's meta key for a ConfigError kept for scan and config


class ConfigError(ValueError):
    """A config file or variable that cannot be used: one line naming where it is, exit 2."""


@dataclass(frozen=True)
class Setting:
    value: object
    source: str  # "default", "IPDSCAN_FAIL_ON", "/repo/pyproject.toml [tool.ipdscan]", "command line"
    ignored: str = ""  # a found config file that set it and was not taken (GUARDED)


def config_table(path: Path, named: bool = True) -> tuple[str, dict] | None:
    """(where, table) of the config file ``path``: an ipdscan.toml's top level, or a pyproject.toml's
    [tool.ipdscan] (None if it has none). ``named``: the user named it; a found one is read only inside its
    folder (never a link out of it)."""
    try:
        text = read_trusted_text(path, what="config file", max_bytes=CONFIG_MAX_BYTES,
                                 within=None if named else Path(path).parent)
        document = tomllib.loads(text)
    except TrustedFileError as exc:
        raise ConfigError(str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if Path(path).name != PYPROJECT:
        return str(path), document
    tool = document.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: [tool] must be a table, not {_kind(tool)}")
    table = tool.get("ipdscan")
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.ipdscan] must be a table")
    return (f"{path} [tool.ipdscan]", table) if table is not None else None


def _kind(value) -> str:
    """A TOML value's kind, as an error names it: "an integer", "a string", ..."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array"}
    return names.get(type(value), f"a {type(value).__name__}")


def find_config(start: Path) -> tuple[str, dict] | None:
    """(where, table) of the nearest config file at or above ``start``, or None."""
    for folder in [start, *start.parents]:
        for name in (CONFIG_FILE, PYPROJECT):
            if os.path.lexists(folder / name) and (found := config_table(folder / name, named=False)):
                return found
    return None


def options_of(command) -> dict[str, object]:
    """The settable options of a click command, by their long name without dashes: {"fail-on": param, ...}."""
    options = {}
    for param in command.params:
        if param.name in NOT_SETTINGS or not getattr(param, "opts", None) or param.param_type_name != "option":
            continue
        long_names = [opt for opt in param.opts if opt.startswith("--")]
        options[long_names[0][2:]] = param
    return options


def settings(command, environ: Mapping[str, str] | None = None, cwd: Path | None = None,
             config: Path | None = None) -> dict[str, Setting]:
    """Every option of ``command`` with its effective value (before command-line flags) and where it came from:
    ``config`` (--config), else the config file found at or above ``cwd``, under the environment."""
    environ = os.environ if environ is None else environ
    options = options_of(command)
    found = config_table(config) if config is not None else find_config(Path.cwd() if cwd is None else cwd)
    chosen: dict[str, tuple[object, str]] = {}
    ignored: dict[str, str] = {}
    if found:
        where, table = found
        for key, value in table.items():
            name = key.replace("_", "-")
            if name not in options:
                raise ConfigError(f"{where}: unknown setting {key!r}; the settings are {', '.join(sorted(options))}")
            if config is None and name in GUARDED:
                ignored[name] = where
            else:
                chosen[name] = (value, where)
    for name in options:
        variable = ENV_PREFIX + name.upper().replace("-", "_")
        if environ.get(variable):  # an empty variable is unset, as for most tools
            value = environ[variable]  # a repeatable option's values are split on whitespace, as click does
            chosen[name] = (value.split() if options[name].multiple else value, variable)
    result = {}
    for name, param in options.items():
        if name in chosen:
            value, source = chosen[name]
            result[name] = Setting(_converted(command, param, value, f"{source}: {name}"), source)
        else:
            result[name] = Setting(param.default, DEFAULT, ignored.get(name, ""))
    return result


def scan_settings(ctx) -> dict[str, Setting]:
    """The settings the root command found for scan (``settings``); ConfigError if they could not be read. The
    root keeps the error for the commands they are for (scan, config), so that a bad IPDSCAN_* variable or config
    file breaks neither ``--help`` nor merge, report, eval, explain or export."""
    root = ctx.find_root()
    if problem := root.meta.get(CONFIG_PROBLEM):
        raise ConfigError(problem)
    return root.obj or {}


def used_settings(ctx) -> dict[str, Setting]:
    """Every option of the scan running in ``ctx`` as it ran: its value and where that came from (ConfigError if
    the settings could not be read)."""
    found, used = scan_settings(ctx), {}
    for name, param in options_of(ctx.command).items():
        source = getattr(ctx.get_parameter_source(param.name), "name", "DEFAULT")
        value = ctx.params.get(param.name)
        if source == "COMMANDLINE":
            used[name] = Setting(value, COMMAND_LINE)
        elif source == "DEFAULT_MAP":
            used[name] = Setting(value, found[name].source)
        else:
            used[name] = Setting(value, DEFAULT, found[name].ignored if name in found else "")
    return used


def header_settings(used: Mapping[str, Setting]) -> dict[str, dict]:
    """What the report header records: each setting that is not a default, and every GUARDED one, with its
    source (and the found file whose value was ignored)."""
    return {name: {"value": setting.value if setting.value is None or isinstance(setting.value, (bool, int, float))
                   else str(setting.value), "source": setting.source,
                   **({"ignored": setting.ignored} if setting.ignored else {})}
            for name, setting in used.items() if setting.source != DEFAULT or name in GUARDED}


def ignored_warning(found: Mapping[str, Setting]) -> str | None:
    """What to say when a found config file set GUARDED settings that were not taken, or None."""
    ignored = [name for name, setting in found.items() if setting.ignored]
    if not ignored:
        return None
    where = found[ignored[0]].ignored
    return (f"{where} sets {', '.join(ignored)}, ignored: a config file that was found, not named, may not choose "
            "where to write, what to trust or how much to scan; to use it, run ipdscan --config FILE scan ...")


def narrowed_warning(command, used: Mapping[str, Setting]) -> str | None:
    """What the summary says when a config file narrowed the scan (a shard, a lower --max-mb), or None."""
    options = options_of(command)
    narrowed = [(name, setting) for name, setting in used.items() if name in NARROWING
                and setting.source not in (DEFAULT, COMMAND_LINE) and not setting.source.startswith(ENV_PREFIX)
                and setting.value not in (None, (), []) and not (name == "max-mb" and setting.value >= options[name].default)]
    if not narrowed:
        return None
    return (f"{narrowed[0][1].source} narrowed this scan: "
            + ", ".join(f"{name} = {show_value(setting.value)}" for name, setting in narrowed))


def _converted(command, param, value, where: str):
    """``value`` as the option would take it from the command line; ConfigError naming ``where`` if it cannot."""
    if param.multiple:  # a repeatable option (exclude): a string, or an array of strings
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{where}: expected a string or an array of strings")
    elif isinstance(value, (dict, list)):
        raise ConfigError(f"{where}: expected a single value, not {type(value).__name__}")
    try:
        return param.process_value(typer.Context(command), value)
    except typer.BadParameter as exc:
        raise ConfigError(f"{where}: {exc.message}") from None


def default_map(command, found: Mapping[str, Setting]) -> dict[str, object]:
    """What click's default_map for ``command`` must hold: the settings the environment or a file chose."""
    return {options_of(command)[name].name: setting.value for name, setting in found.items() if setting.source != DEFAULT}


def show_value(value) -> str:
    """A value as TOML writes it, so that ``ipdscan config``'s output can be pasted into ipdscan.toml."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_value(item) for item in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
