"""The home's folders: made with fixed modes, and refused when another user controls them.

Whoever can write the home can replace its store or its signing key, and so choose
what the repository publishes and what it is signed with. `mkdir`'s default mode
(0777 less the umask) under a service manager's umask 000 would make every folder
writable by every user; debrepo asks for 0775 (0700 for keys). A folder or key file
it is given is refused, as ssh refuses a key others could have written, when it
belongs to another user (root aside, and under sudo the user who ran it) or every
user may write it: a home named `.debrepo` in a shared folder such as /tmp, made
there by someone else, must not be used to sign.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import stat
from pathlib import Path
from typing import NamedTuple

from debrepo.errors import ConfigError

TRUSTED_OWNERS_VARIABLE = "DEBREPO_TRUSTED_OWNERS"


class Control(NamedTuple):
    """Why another user may have chosen what a path holds, and what would settle it."""

    problem: str
    remedy: str


def make_folders(path: Path, mode: int = 0o775) -> None:
    """Make `path` (mode `mode`) and its missing parents (0775). The umask takes from
    that as usual (022 gives 0755, 077 a private home, 002 a home the group shares),
    but no umask makes them writable by every user."""
    missing: list[Path] = []
    current = path
    while not os.path.lexists(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        wanted = mode if folder == path else 0o775
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            folder.mkdir(wanted)
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))


def others_control(path: Path, *, sticky_ok: bool) -> Control | None:
    """Why another user may have chosen what `path` holds (None: nobody else could): it
    belongs to another user than this one, root or a trusted owner, or every user may
    write it. `sticky_ok`: a sticky folder such as /tmp passes (only an entry's owner
    may replace it there), for a file whose owner is checked too; not for a home, where
    anyone may create the names debrepo would open (the store) before it does."""
    info = path.stat()
    user, owner = os.geteuid(), info.st_uid
    if owner not in _trusted_owners(user):
        return Control(
            f"{path} belongs to another user (uid {owner}; this is uid {user})",
            f"make it yours (chown), or if uid {owner} is trusted (a container's mounted "
            f"workspace, a shared account) set {TRUSTED_OWNERS_VARIABLE}={owner}",
        )
    sticky = sticky_ok and stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
    if info.st_mode & stat.S_IWOTH and not sticky:
        mode = stat.S_IMODE(info.st_mode)
        return Control(f"{path} may be written by every user (mode {mode:04o})", "chmod o-w it")
    return None


def refuse_if_others_control(path: Path, *, sticky_ok: bool, could: str, own: str) -> None:
    """ConfigError if another user may have chosen what `path` holds (`others_control`):
    "<why>: another user could <could>. Use <own>, or <remedy>"."""
    try:
        control = others_control(path, sticky_ok=sticky_ok)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot check it: {exc.strerror}") from None
    if control:
        raise ConfigError(
            f"{control.problem}: another user could {could}. Use {own}, or {control.remedy}"
        )


def refuse_a_home_others_control(home: Path) -> None:
    """ConfigError if another user could have filled `home` (its store, its key): no
    publish from it, and no key made in it. A home that does not exist yet passes."""
    if os.path.lexists(home):
        refuse_if_others_control(
            home,
            sticky_ok=False,
            could="have replaced the store or the signing key kept there, so nothing is "
            "published from it",
            own="a home of your own (--home, DEBREPO_HOME)",
        )


def _trusted_owners(user: int) -> set[int] | _Anyone:
    """This user, root, under `sudo` the user who ran it (as git trusts SUDO_UID: `sudo
    debrepo rebuild` in one's own home is that user's doing), and the users named in
    DEBREPO_TRUSTED_OWNERS (uids or names; `*`: any), as git's safe.directory."""
    owners = {user, 0}
    sudo_uid = os.environ.get("SUDO_UID", "")
    if user == 0 and sudo_uid.isdigit():
        owners.add(int(sudo_uid))
    for name in os.environ.get(TRUSTED_OWNERS_VARIABLE, "").split(","):
        name = name.strip()
        if name == "*":
            return _Anyone()
        if name.isdigit():
            owners.add(int(name))
        elif name:
            try:
                owners.add(pwd.getpwnam(name).pw_uid)
            except KeyError:
                raise ConfigError(
                    f"environment variable {TRUSTED_OWNERS_VARIABLE}: no user {name!r} here"
                ) from None
    return owners


class _Anyone:
    def __contains__(self, uid: object) -> bool:
        return True


def nearest_existing(path: Path) -> Path:
    """`path`, or the closest of its parents that exists: where a new one would be made."""
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path
