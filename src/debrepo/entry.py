"""The `debrepo` command's entry point.

Loading the command (click and debrepo's own modules) takes a noticeable moment; Ctrl-C
then ends it as Ctrl-C during a command does, with one line and exit code 130, not a
traceback. This module imports nothing of its own for that reason.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from debrepo.cli import main as run_command
    except KeyboardInterrupt:
        sys.stderr.write("debrepo: error: interrupted\n")
        sys.exit(130)
    run_command()
