"""The home's folders: made with fixed modes, and refused when another user controls them.

Whoever can write the home can replace its store or its signing key, and so choose
what the repository publishes and what it is signed with. `mkdir`'s default mode
(0777 less the umask) under a service manager's umask 000 would make every folder
writable by every user; debrepo asks for 0755 (0700 for keys). A folder or key file
it is given is refused, as ssh refuses a key others could have written, when it
belongs to another user (root aside, and under sudo the user who ran it) or every
user may write it: a home named `.debrepo` in a shared folder such as /tmp, made
there by someone else, must not be used to sign.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path


def make_folders(path: Path, mode: int = 0o755) -> None:
    """Make `path` (mode `mode`) and its missing parents (0755). The umask may take
    permissions away (077 keeps a home private) but cannot add any: no umask makes
    them writable by other users."""
    missing: list[Path] = []
    current = path
    while not os.path.lexists(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        wanted = mode if folder == path else 0o755
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            folder.mkdir(wanted)
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))


def others_control(path: Path, info: os.stat_result | None = None) -> str | None:
    """Why another user may have chosen what `path` holds (None: nobody else could): it
    belongs to another user than this one or root, or every user may write it (a
    sticky folder such as /tmp aside: there only an entry's owner may replace it)."""
    info = info if info is not None else path.stat()
    user = os.geteuid()
    if info.st_uid not in _trusted_owners(user):
        return f"{path} belongs to another user (uid {info.st_uid}; this is uid {user})"
    sticky_folder = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
    if info.st_mode & stat.S_IWOTH and not sticky_folder:
        return f"{path} may be written by every user (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def _trusted_owners(user: int) -> set[int]:
    """This user, root, and under `sudo` the user who ran it (as git trusts SUDO_UID):
    `sudo debrepo rebuild` in one's own home is that user's doing."""
    owners = {user, 0}
    sudo_uid = os.environ.get("SUDO_UID", "")
    if user == 0 and sudo_uid.isdigit():
        owners.add(int(sudo_uid))
    return owners


def nearest_existing(path: Path) -> Path:
    """`path`, or the closest of its parents that exists: where a new one would be made."""
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path
