"""The `ipdscan` command's entry point. Importing the CLI is light (torch loads inside the commands, which turn a
Ctrl-C into one line themselves); a Ctrl-C (or SIGTERM) during this import still ends the command as one during a
scan does, one line and exit 2, not a traceback from inside an import. ``cli.commands.main`` takes over from there."""
from __future__ import annotations

import sys

from .interrupt import sigterm_as_interrupt


def main() -> None:
    if sys.argv[1:] == ["--version"]:  # answered without importing the CLI: the one command a user times
        from .versions import print_versions
        print_versions()
        return
    try:
        with sigterm_as_interrupt():
            from .cli.commands import main as cli_main
    except KeyboardInterrupt as exc:  # Terminated (SIGTERM) is one too, and says so
        print(f"error: {str(exc) or 'interrupted'}", file=sys.stderr)
        sys.exit(2)
    cli_main()
