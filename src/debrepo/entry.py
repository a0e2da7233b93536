"""The `debrepo` command's entry point.

Loading the command (click and debrepo's own modules) takes a noticeable moment; Ctrl-C
then ends it as Ctrl-C during a command does, with one line and exit code 130, not a
traceback. This module imports nothing of its own for that reason.
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    # What loading creates lives until the process ends, so the cycle collector has
    # nothing to find in it: it is off while loading, and what loading made is set
    # aside (gc.freeze) so that neither later collections nor the one at exit walk it
    # again. That is about 13 ms of a 70 ms `debrepo rebuild`.
    gc.disable()
    try:
        from debrepo.cli import main as run_command
    except KeyboardInterrupt:
        sys.stderr.write("debrepo: error: interrupted\n")
        sys.exit(130)
    finally:
        gc.freeze()
        gc.enable()
    run_command()
