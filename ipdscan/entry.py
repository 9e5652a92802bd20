"""The `ipdscan` command's entry point. Importing the CLI imports torch, which takes seconds; a Ctrl-C (or SIGTERM)
in that time ends the command as one during a scan does, one line and exit 2, not a traceback from inside an
import. ``cli.main`` takes over from there."""
from __future__ import annotations

import signal
import sys


def main() -> None:
    # SIGTERM's default would kill the import silently with 143; as KeyboardInterrupt it is reported like Ctrl-C.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(2)
    finally:
        signal.signal(signal.SIGTERM, previous)
    cli_main()
