"""Run one command; write its wall time, peak RSS and CPU time to a file.

    python -I -S bench/launch.py RESULT_FILE COMMAND [ARGS...]

Used by run.py for every measured command. A child's ru_maxrss counts the memory of
the process that exec'd it, so a command started straight from the harness (a large
Python process) would report at least the harness's own size. This launcher is a
bare interpreter (no site, three modules), so that floor is a few MiB; it starts the
command, waits for it with os.wait4, and writes one line:

    <wall seconds> <ru_maxrss KiB> <user seconds> <system seconds>

It exits with the command's exit status.
"""

import os
import sys
import time


def main() -> int:
    result, argv = sys.argv[1], sys.argv[2:]
    start = time.perf_counter()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ)
    except OSError as exc:
        print(f"launch.py: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    line = f"{wall:.6f} {usage.ru_maxrss} {usage.ru_utime:.6f} {usage.ru_stime:.6f}\n"
    fd = os.open(result, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
