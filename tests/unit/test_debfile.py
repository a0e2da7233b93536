"""debfile.py: reading .deb files in one pass, and refusing anything that is not one."""

from __future__ import annotations

import errno
import fcntl
import gzip
import hashlib
import io
import lzma
import os
import random
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from debrepo import debfile
from debrepo.debfile import CONTROL_LIMIT, PARALLEL_FROM, inspect_deb
from debrepo.errors import InvalidPackageError
from tests.tools import require_tool
from tests.unit.helpers import (
    XZ_MAGIC,
    ar_archive,
    ar_member,
    compress_control,
    control_text,
    hand_made_deb,
    tar_bytes,
)


def write(tmp_path: Path, data: bytes, name: str = "pkg.deb") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(tmp_path: Path, data: bytes) -> str:
    with pytest.raises(InvalidPackageError) as caught:
        inspect_deb(write(tmp_path, data))
    message = str(caught.value)
    assert message.startswith("pkg.deb: "), message
    assert "\n" not in message
    return message


def expected_facts(data: bytes) -> dict[str, object]:
    return {
        "size": len(data),
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha512": hashlib.sha512(data).hexdigest(),
    }


def facts_of(inspection) -> dict[str, object]:
    facts = inspection.facts
    return {
        "size": facts.size,
        "md5": facts.md5,
        "sha1": facts.sha1,
        "sha256": facts.sha256,
        "sha512": facts.sha512,
    }


@pytest.mark.parametrize("kind", ["gz", "xz", "zst", "none"])
def test_control_archive_in_every_compression(tmp_path, kind):
    data = hand_made_deb(control=control_text("hello", "2:1.0-3", "arm64"), kind=kind)
    inspection = inspect_deb(write(tmp_path, data))
    fields = dict(inspection.control)
    assert fields["Package"] == "hello"
    assert fields["Version"] == "2:1.0-3"
    assert fields["Architecture"] == "arm64"
    assert fields["Description"] == "a hand-made package\n built byte by byte."
    assert facts_of(inspection) == expected_facts(data)


@pytest.mark.parametrize("compressor", ["gzip", "xz", "zstd", "none"])
def test_packages_built_by_dpkg_deb(tmp_path, compressor):
    dpkg_deb = require_tool("dpkg-deb")
    root = tmp_path / "root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/doc/tool").mkdir(parents=True)
    (root / "usr/share/doc/tool/README").write_text("tool\n", encoding="utf-8")
    (root / "DEBIAN/control").write_text(
        "Package: tool\nVersion: 0.9-1\nArchitecture: all\n"
        "Maintainer: Tool Maker <tool@example.com>\nDepends: libc6 (>= 2.31)\n"
        "Description: a tool\n made by dpkg-deb.\n",
        encoding="utf-8",
    )
    output = tmp_path / f"tool-{compressor}.deb"
    subprocess.run(
        [dpkg_deb, "--root-owner-group", f"-Z{compressor}", "--build", str(root), str(output)],
        check=True,
        capture_output=True,
    )
    inspection = inspect_deb(output)
    assert dict(inspection.control)["Depends"] == "libc6 (>= 2.31)"
    assert dict(inspection.control)["Package"] == "tool"
    assert facts_of(inspection) == expected_facts(output.read_bytes())


def test_maintainer_scripts_linked_to_each_other_as_dpkg_deb_stores_them(tmp_path):
    """One script hard-linked under two names is stored by tar as a link to the first;
    one symbolically linked to another, or to a program, as a symbolic link."""
    dpkg_deb = require_tool("dpkg-deb")
    root = tmp_path / "root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_bytes(control_text("linked", "1.0", "all"))
    script = root / "DEBIAN/postinst"
    script.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    script.chmod(0o755)
    os.link(script, root / "DEBIAN/postrm")
    (root / "DEBIAN/prerm").symlink_to("postinst")
    (root / "DEBIAN/preinst").symlink_to("/bin/true")
    output = tmp_path / "linked.deb"
    subprocess.run(
        [dpkg_deb, "--root-owner-group", "--build", str(root), str(output)],
        check=True,
        capture_output=True,
    )
    kinds = {m.name: m.type for m in control_members(output.read_bytes())}
    assert kinds["./postrm"] == tarfile.LNKTYPE and kinds["./prerm"] == tarfile.SYMTYPE
    assert dict(inspect_deb(output).control)["Package"] == "linked"
    assert dpkg_refuses_to_install(output, tmp_path) is None


@pytest.mark.parametrize(
    ("links", "dangling"),
    [
        ({"prerm": "postinst"}, "prerm"),  # dpkg-deb builds it; no postinst beside it
        ({"prerm": "postrm", "postrm": "prerm"}, "postrm"),  # named first in the archive
        ({"prerm": "./postrm", "postrm": "config"}, "postrm"),
    ],
    ids=["to-a-missing-script", "in-a-loop", "through-a-link-to-a-missing-script"],
)
def test_a_symbolic_link_to_no_control_file_is_refused(tmp_path, links, dangling):
    dpkg_deb = require_tool("dpkg-deb")
    root = tmp_path / "root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_bytes(control_text("linked", "1.0", "all"))
    for name, target in links.items():
        (root / "DEBIAN" / name).symlink_to(target)
    output = tmp_path / "linked.deb"
    subprocess.run(
        [dpkg_deb, "--root-owner-group", "--build", str(root), str(output)],
        check=True,
        capture_output=True,
    )
    assert "unable to open file" in (dpkg_refuses_to_install(output, tmp_path) or "")
    with pytest.raises(InvalidPackageError) as caught:
        inspect_deb(output)
    assert f"holds '{dangling}', a symbolic link to no file in it" in str(caught.value)


def control_members(deb: bytes) -> list[tarfile.TarInfo]:
    """The members of a .deb's control archive (gzip, xz or none), read with tarfile."""
    offset = 8
    while offset < len(deb):
        name = deb[offset : offset + 16].rstrip(b" /").decode()
        size = int(deb[offset + 48 : offset + 58])
        body = deb[offset + 60 : offset + 60 + size]
        if name.startswith("control.tar"):
            opened = {".gz": gzip.decompress, ".xz": lzma.decompress}
            tar = opened.get(name[len("control.tar") :], lambda data: data)(body)
            return tarfile.open(fileobj=io.BytesIO(tar)).getmembers()
        offset += 60 + size + size % 2
    raise AssertionError("no control archive")


def test_control_file_without_leading_dot_slash(tmp_path):
    tar = tar_bytes([("control", control_text())])
    member, compressed = compress_control(tar, "gz")
    data = ar_archive([("debian-binary", b"2.0\n"), (member, compressed), ("data.tar", b"x")])
    assert dict(inspect_deb(write(tmp_path, data)).control)["Package"] == "hello"


def test_missing_data_member(tmp_path):
    tar = tar_bytes([("./control", control_text())])
    member, compressed = compress_control(tar, "gz")
    data = ar_archive([("debian-binary", b"2.0\n"), (member, compressed)])
    assert "no data.tar member" in refused(tmp_path, data)


def test_missing_control_member(tmp_path):
    data = ar_archive([("debian-binary", b"2.0\n"), ("_ignored", b"x")])
    assert "no control.tar member" in refused(tmp_path, data)
    data = ar_archive([("debian-binary", b"2.0\n"), ("something", b"x")])
    assert "member 'something' before control.tar" in refused(tmp_path, data)


def _control_member(*controls: bytes) -> tuple[str, bytes]:
    return compress_control(tar_bytes([("./control", c) for c in controls]), "gz")


def _data_tar_gz() -> bytes:
    return gzip.compress(tar_bytes([("./usr/share/doc/hello/README", b"hello\n")]), mtime=0)


# Each: the ar members, and what debrepo says; dpkg-deb refuses the same files.
_DPKG_REFUSES = {
    "two-control-members": (
        [_control_member(control_text()), _control_member(control_text("other"))],
        "two control.tar members",
    ),
    "member-before-control": (
        [("foo", b"x"), _control_member(control_text())],
        "member 'foo' before control.tar",
    ),
    "member-before-data": (
        [_control_member(control_text()), ("foo", b"x")],
        "member 'foo' before data.tar",
    ),
    "unknown-data-compression": (
        [_control_member(control_text()), ("data.tar.foo", b"x")],
        "unsupported data archive 'data.tar.foo'",
    ),
    "xz-holding-gzip": (
        [_control_member(control_text()), ("data.tar.xz", _data_tar_gz())],
        "data.tar.xz does not hold xz data",
    ),
    "trailing-control-character": (
        [_control_member(control_text("hello\x1c"))],
        "field Package holds the control character '\\x1c'",
    ),
}


@pytest.mark.parametrize("case", _DPKG_REFUSES)
def test_a_package_dpkg_deb_refuses_is_refused(tmp_path, case):
    members, message = _DPKG_REFUSES[case]
    if not any(name.startswith("data.tar") for name, _ in members[1:]):
        members = [*members, ("data.tar.gz", _data_tar_gz())]
    deb = write(tmp_path, ar_archive([("debian-binary", b"2.0\n"), *members]))
    with pytest.raises(InvalidPackageError) as caught:
        inspect_deb(deb)
    assert message in str(caught.value)
    dpkg_deb = require_tool("dpkg-deb")
    field = subprocess.run([dpkg_deb, "--field", str(deb), "Package"], capture_output=True)
    data = subprocess.run([dpkg_deb, "--fsys-tarfile", str(deb)], capture_output=True)
    assert field.returncode != 0 or data.returncode != 0, "dpkg-deb took it"


def test_a_control_archive_with_two_control_files_is_refused(tmp_path):
    # dpkg unpacks the second over the first: an index made from the first would describe
    # another package than the one installed.
    members = [_control_member(control_text("hello", "1.0"), control_text("hello", "2.0"))]
    deb = write(tmp_path, ar_archive([("debian-binary", b"2.0\n"), *members]))
    deb.write_bytes(deb.read_bytes() + ar_member("data.tar.gz", _data_tar_gz()))
    dpkg = subprocess.run(
        [require_tool("dpkg-deb"), "--field", str(deb), "Version"], capture_output=True
    )
    assert dpkg.stdout == b"2.0\n", dpkg.stderr
    with pytest.raises(InvalidPackageError) as caught:
        inspect_deb(deb)
    assert "control.tar.gz holds two control files" in str(caught.value)


def dpkg_refuses_to_install(deb: Path, scratch: Path) -> str | None:
    """What dpkg's own parser (the one `dpkg -i` runs) says against `deb`; None if it
    takes it. `--record-avail` into an empty database of its own changes nothing else."""
    admin = scratch / "dpkg-admin"
    admin.mkdir(exist_ok=True)
    for name in ("status", "available"):
        (admin / name).write_bytes(b"")
    done = subprocess.run(
        [
            require_tool("dpkg"),
            f"--admindir={admin}",
            "--force-not-root",  # the database is this test's own
            "--log=/dev/null",
            "--record-avail",
            str(deb),
        ],
        capture_output=True,
        text=True,
    )
    return done.stderr if done.returncode else None


def installable_deb(control: bytes) -> bytes:
    """A .deb whose data member is a real (gzip) tar, for dpkg to read whole."""
    return deb_of_control_archive(tar_bytes([("./control", control)]))


def deb_of_control_archive(tar: bytes) -> bytes:
    """The same, around a control archive made by hand."""
    return ar_archive(
        [
            ("debian-binary", b"2.0\n"),
            compress_control(tar, "gz"),
            ("data.tar.gz", _data_tar_gz()),
        ]
    )


def control_tar(*entries: tuple[str, bytes | None] | tuple[str, bytes | None, dict]) -> bytes:
    """A control archive; None for a folder; a third item sets more of the header
    (type, linkname, pax_headers: then the archive is in PAX format)."""
    pax = any(len(entry) > 2 and "pax_headers" in entry[2] for entry in entries)
    buffer = io.BytesIO()
    form = tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT
    with tarfile.open(fileobj=buffer, mode="w", format=form) as archive:
        for name, data, *more in entries:
            info = tarfile.TarInfo(name)
            for attribute, value in (more[0] if more else {}).items():
                setattr(info, attribute, value)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def with_a_bad_header_after_the_control_file() -> bytes:
    tar = bytearray(control_tar(("./control", control_text()), ("./md5sums", b"x" * 40)))
    tar[tar.find(b"./md5sums") + 148] ^= 1  # its header checksum
    return bytes(tar)


def assert_refused_and_dpkg_reads_otherwise(tmp_path: Path, tar: bytes, message: str) -> None:
    """debrepo refuses the .deb holding `tar` with `message`, and dpkg reads it as the
    package "other" or cannot install it: refusing it loses nothing a client could have."""
    deb = write(tmp_path, deb_of_control_archive(tar))
    with pytest.raises(InvalidPackageError) as caught:
        inspect_deb(deb)
    assert message in str(caught.value)
    field = subprocess.run(
        [require_tool("dpkg-deb"), "--field", str(deb), "Package"], capture_output=True
    )
    assert field.stdout == b"other\n" or dpkg_refuses_to_install(deb, tmp_path) is not None, (
        "dpkg reads it as debrepo would have"
    )


@pytest.mark.parametrize(
    ("tar", "message"),
    [
        (
            control_tar(("./control", control_text()), ("././control", control_text("other"))),
            "holds two control files",
        ),
        (
            control_tar(("./control", control_text()), (".//control", control_text("other"))),
            "holds two control files",
        ),
        (
            control_tar(("./control", control_text()), ("/control", control_text("other"))),
            "holds two control files",
        ),
        (with_a_bad_header_after_the_control_file(), "a header tar cannot read after 1024 bytes"),
        (
            control_tar(("./", None), ("./control", control_text()), ("./sub/", None)),
            "holds './sub', which is not a file at its top level",
        ),
        (
            control_tar(("./control", control_text()), ("../x", b"x")),
            "holds '../x', which climbs out of its folder",
        ),
        (
            control_tar(("./", None), ("./control", control_text()), (".", b"")),
            "holds '.', a file named as a folder",
        ),
        (
            control_tar(("./control", control_text()), ("./md5sums/", b"x" * 58)),
            "holds './md5sums/', a file named as a folder",
        ),
        (
            control_tar(("./control", control_text()), ("./" + "f" * 256, b"x")),
            "a name longer than 255 bytes",
        ),
        (
            control_tar(("./control", control_text(), {"pax_headers": {"mtime": "xyz"}})),
            "after 1024 bytes: a PAX mtime that is not a number); dpkg cannot install",
        ),
        (
            control_tar(
                ("./control", control_text()),
                ("./here", b"", {"type": tarfile.SYMTYPE, "linkname": "."}),
            ),
            "holds './here', a link to a folder",
        ),
        (
            control_tar(
                ("./control", control_text()),
                ("./up", b"", {"type": tarfile.SYMTYPE, "linkname": "../../../../tmp"}),
            ),
            "holds './up', a link out of its folder",
        ),
    ],
    ids=[
        "dot-slash-alias",
        "double-slash-alias",
        "absolute-alias",
        "bad-header",
        "sub-folder",
        "dot-dot",
        "dot-as-a-file",
        "file-named-as-a-folder",
        "name-too-long",
        "pax-mtime",
        "link-to-a-folder",
        "link-out",
    ],
)
def test_a_control_archive_dpkg_reads_otherwise_is_refused(tmp_path, tar, message):
    """tarfile reads these as one clean control file; GNU tar, which dpkg-deb runs,
    unpacks another one over it or fails: the index would describe a package no client
    installs, or one it installs otherwise."""
    assert_refused_and_dpkg_reads_otherwise(tmp_path, tar, message)


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b"# built by ci\n", "line 7 starts with '#': a binary package's control file"),
        ("Multi-Arch: foreign\u00a0\n".encode(), "line 7 ends with '\\xa0'"),
        (b"X-Note: no final newline", "control file does not end with a newline"),
        (b"Homepage:\n", "field Homepage has no value and ends the control file"),
        (b"Status: install ok installed\n", "holds Status, which dpkg keeps for installed"),
        (b"Triggers-Awaited: foo\n", "holds Triggers-Awaited, which dpkg keeps"),
        (b"\r\n", "line 1 holds only '\\r' where a field must start, which dpkg reads"),
    ],
    ids=[
        "comment",
        "trailing-nbsp",
        "no-final-newline",
        "empty-last",
        "status",
        "triggers",
        "carriage-return-line",
    ],
)
def test_a_control_file_dpkg_refuses_to_install_is_refused(tmp_path, tail, message):
    text = tail + control_text() if tail == b"\r\n" else control_text() + tail
    deb = write(tmp_path, installable_deb(text))
    assert message in refused(tmp_path, deb.read_bytes())
    assert dpkg_refuses_to_install(deb, tmp_path) is not None, "dpkg takes it"


def test_a_crlf_control_file_ending_with_a_blank_crlf_line_is_read(tmp_path):
    """The CR-only line ends the file rather than starting a field: dpkg takes it."""
    text = control_text().replace(b"\n", b"\r\n") + b"\r\n"
    deb = write(tmp_path, installable_deb(text))
    assert dict(inspect_deb(deb).control)["Package"] == "hello"
    assert dpkg_refuses_to_install(deb, tmp_path) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("X-Note: \u00a0spaced", "field X-Note starts with '\\xa0'"),
        ("X-Note: spaced\u00a0", "line 7 ends with '\\xa0'"),
    ],
    ids=["leading", "trailing"],
)
def test_a_space_dpkg_keeps_around_a_value_is_refused(tmp_path, line, message):
    """dpkg keeps a U+00A0 at either end of a value; python-debian would drop it unseen."""
    deb = write(tmp_path, installable_deb(control_text() + f"{line}\n".encode()))
    assert message in refused(tmp_path, deb.read_bytes())
    kept = subprocess.run(
        [require_tool("dpkg-deb"), "--field", str(deb), "X-Note"], capture_output=True
    )
    assert kept.stdout == f"{line.partition(': ')[2]}\n".encode()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("debian-binary//", "first member is 'debian-binary/'"),
        ("debian-binary\t", "first member is 'debian-binary\\t'"),
    ],
)
def test_an_ar_member_name_dpkg_reads_otherwise_is_refused(tmp_path, name, message):
    """dpkg drops trailing spaces and one `/` from a member name, nothing else."""
    data = installable_deb(control_text())
    data = data[:8] + name.encode().ljust(16) + data[24:]
    deb = write(tmp_path, data)
    assert message in refused(tmp_path, data)
    info = subprocess.run([require_tool("dpkg-deb"), "--info", str(deb)], capture_output=True)
    assert info.returncode != 0, "dpkg-deb took it"


def test_an_ar_name_or_size_padded_as_dpkg_allows_is_read(tmp_path):
    data = bytearray(installable_deb(control_text()))
    data[8:24] = b"debian-binary/".ljust(16)  # GNU ar's terminator
    assert data[56:58] == b"4 "
    data[56:66] = b" 4 junk   "  # dpkg: leading spaces, digits, ignored after a space
    deb = write(tmp_path, bytes(data))
    assert dict(inspect_deb(deb).control)["Package"] == "hello"
    assert dpkg_refuses_to_install(deb, tmp_path) is None


def test_control_archive_entries_tar_takes_as_dpkg_expects_are_read(tmp_path):
    """A GNU volume label (unpacked as nothing) and a symbolic link named with a
    trailing slash (unpacked as the link) are no folders: dpkg installs such packages."""
    tar = control_tar(
        (".", None),
        ("./.", b"", {"type": b"V"}),
        ("./control", control_text()),
        ("./triggers/", b"", {"type": tarfile.SYMTYPE, "linkname": "./control"}),
    )
    deb = write(tmp_path, deb_of_control_archive(tar))
    assert dict(inspect_deb(deb).control)["Package"] == "hello"
    assert dpkg_refuses_to_install(deb, tmp_path) is None


# Hand-made headers: tarfile reads past each of these where GNU tar (which dpkg-deb
# runs) fails, or reads another archive.
def header_at(tar: bytes, name: str) -> int:
    """Where the header of the entry named `name` starts in `tar`."""
    raw = name.encode()
    return next(at for at in range(0, len(tar), 512) if tar[at : at + 100].rstrip(b"\0") == raw)


def octal_checksum(total: int) -> bytes:
    return b"%06o\0 " % total


def with_field(tar: bytes, name: str, start: int, value: bytes, checksum=octal_checksum):
    """`tar` with `value` written at `start` in the header of `name`, its checksum
    redone (written by `checksum` from the sum of the header's bytes)."""
    data = bytearray(tar)
    at = header_at(tar, name)
    data[at + start : at + start + len(value)] = value
    data[at + 148 : at + 156] = b" " * 8
    data[at + 148 : at + 156] = checksum(sum(data[at : at + 512])).ljust(8, b"\0")
    return bytes(data)


def pax_record(key: str, value: str) -> bytes:
    """One PAX record, "<length> <key>=<value>\\n", its length counting its own digits."""
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def pax_header(records: bytes, kind: bytes = tarfile.XHDTYPE) -> tuple[str, bytes, dict]:
    """A control_tar entry: a PAX extended (x) or global (g) header holding `records`."""
    return ("PaxHeader", records, {"type": kind})


def long_name(name: str) -> tuple[str, bytes, dict]:
    """A control_tar entry: a GNU long name header for the entry after it."""
    return ("././@LongLink", name.encode() + b"\0", {"type": tarfile.GNUTYPE_LONGNAME})


def after_a_lone_zero_block(tar: bytes, header: bytes) -> tuple[bytes, int]:
    """`tar` ended by one zero block, then `header`: tar reads it before it stops. Also
    where `header` starts."""
    end = -(-len(tar.rstrip(b"\0")) // 512) * 512
    return tar[:end] + bytes(512) + header + bytes(1024), end + 512


ONE_CONTROL = control_tar(("./control", control_text()))
EMPTY_ENTRY = control_tar(("./x", b""))[:512]
LONE_ZERO_BAD_SIZE = after_a_lone_zero_block(
    ONE_CONTROL, with_field(EMPTY_ENTRY, "./x", 124, b"zz\0")
)
LONE_ZERO_BAD_GLOBAL = after_a_lone_zero_block(
    ONE_CONTROL, control_tar(pax_header(b"garbage", tarfile.XGLTYPE))[:1024]
)


@pytest.mark.parametrize(
    ("tar", "message"),
    [
        (
            with_field(ONE_CONTROL, "./control", 0, b"", lambda total: b"\x80" + total.to_bytes(7)),
            "a header tar cannot read after 0 bytes: bad checksum",
        ),
        (with_field(ONE_CONTROL, "./control", 100, b" " * 8), "after 0 bytes: bad mode"),
        (
            with_field(ONE_CONTROL, "./control", 108, b"\x80" + (1 << 32).to_bytes(7)),
            "after 0 bytes: bad uid",
        ),
        (with_field(ONE_CONTROL, "./control", 116, b"\xff" * 8), "after 0 bytes: bad gid"),
        (
            with_field(ONE_CONTROL, "./control", 136, b"\x80" + b"\xff" * 11),
            "after 0 bytes: bad mtime",
        ),
        (
            with_field(ONE_CONTROL, "./control", 124, b"0_%o\0" % len(control_text())),
            "after 0 bytes: bad size",
        ),
        (
            control_tar(pax_header(b"20 =value\n"), ("./control", control_text())),
            "after 0 bytes: bad PAX record",
        ),
        (
            control_tar(pax_header(b"garbage", tarfile.XGLTYPE), ("./control", control_text())),
            "after 0 bytes: bad PAX record",
        ),
        (
            control_tar(("./control", control_text(), {"pax_headers": {"uid": "4294967296"}})),
            "after 1024 bytes: a PAX uid out of range",
        ),
        (
            control_tar(("./control", control_text(), {"pax_headers": {"mtime": "9" * 20}})),
            "after 1024 bytes: a PAX mtime out of range",
        ),
        (LONE_ZERO_BAD_SIZE[0], f"after {LONE_ZERO_BAD_SIZE[1]} bytes: bad size"),
        (LONE_ZERO_BAD_GLOBAL[0], f"after {LONE_ZERO_BAD_GLOBAL[1]} bytes: bad PAX record"),
        (
            control_tar(("./control", control_text()), ("", b"x")),
            "holds '', an empty name",
        ),
        (
            control_tar(
                ("./control", control_text()),
                ("./junk", b"", {"pax_headers": {"path": "./md5sums/"}}),
            ),
            "holds './md5sums/', which is not a file at its top level",
        ),
        (
            control_tar(
                ("./control", control_text()),
                (
                    "./config",
                    b"",
                    {"type": tarfile.SYMTYPE, "linkname": "y", "pax_headers": {"linkpath": ".\0x"}},
                ),
            ),
            "holds './config', a link to a folder",
        ),
    ],
    ids=[
        "checksum-in-base-256",
        "mode-of-blanks",
        "uid-beyond-uid_t",
        "negative-gid",
        "mtime-beyond-time_t",
        "size-with-an-underscore",
        "pax-record-of-a-wrong-length",
        "global-header-of-garbage",
        "pax-uid-beyond-uid_t",
        "pax-mtime-beyond-time_t",
        "bad-size-after-a-lone-zero-block",
        "bad-global-header-after-a-lone-zero-block",
        "empty-name",
        "pax-path-named-as-a-folder",
        "pax-link-to-a-folder-before-a-nul",
    ],
)
def test_a_control_archive_header_tar_fails_on_is_refused(tmp_path, tar, message):
    """tarfile reads past these headers (as 0, a float, the end of the archive...); GNU
    tar fails on them, and so does every installation of the package."""
    deb = write(tmp_path, deb_of_control_archive(tar))
    with pytest.raises(InvalidPackageError) as caught:
        inspect_deb(deb)
    assert message in str(caught.value)
    assert "dpkg cannot install such a package" in str(caught.value)
    assert dpkg_refuses_to_install(deb, tmp_path) is not None, "dpkg takes it"


def hello_then(*entries) -> bytes:
    """A control archive holding the control file of `hello`, then `entries`."""
    return control_tar(("./control", control_text()), *entries)


OTHER = ("./x", control_text("other"))


@pytest.mark.parametrize(
    ("tar", "message"),
    [
        (
            with_field(
                control_tar(("./junk", b""), ("./control", control_text())),
                "./junk",
                124,
                b"\0" + b"%010o" % 1024,  # tar skips the control file, as ./junk's data
            ),
            "holds a size field tar reads as another number (after 0 bytes)",
        ),
        (
            hello_then(pax_header(b"19  path=./control\n"), OTHER),
            "holds PAX records tar reads otherwise (after 1024 bytes)",
        ),
        (
            hello_then(long_name("./junk"), long_name("./control"), OTHER),
            "holds two long names for one file",
        ),
        (
            hello_then(long_name("./junk"), pax_header(pax_record("path", "./control")), OTHER),
            "holds a long name and a PAX one after it",
        ),
        (
            hello_then(
                pax_header(pax_record("path", "./control"), tarfile.XGLTYPE),
                long_name("./junk"),
                OTHER,
            ),
            "holds a long name and a global PAX one",
        ),
        (
            hello_then(
                pax_header(pax_record("path", "./junk")),
                pax_header(pax_record("path", "./control")),
                OTHER,
            ),
            "holds two PAX headers for one file",
        ),
        (
            hello_then(
                pax_header(pax_record("path", "./junk"), tarfile.XGLTYPE),
                pax_header(pax_record("comment", "x"), tarfile.XGLTYPE),
                ("./control", control_text("other")),
            ),
            "holds a global PAX header replacing another",
        ),
        (
            control_tar(pax_header(pax_record("size", "0"), tarfile.XGLTYPE), OTHER),
            "holds a global PAX size",
        ),
        (
            control_tar(
                pax_header(pax_record("size", "1024\0")),
                ("./junk", b""),
                ("./control", control_text()),
            ),
            "holds a PAX size tar reads as another number",
        ),
        (
            control_tar(
                pax_header(pax_record("GNU.sparse.size", "abc")), ("./control", control_text())
            ),
            "holds a sparse file",
        ),
    ],
    ids=[
        "size-after-a-nul",
        "pax-record-with-two-spaces",
        "two-long-names",
        "long-name-then-pax-path",
        "long-name-and-global-path",
        "two-pax-headers",
        "global-header-replacing-another",
        "global-size",
        "pax-size-before-a-nul",
        "sparse-file",
    ],
)
def test_a_control_archive_tar_unpacks_otherwise_is_refused(tmp_path, tar, message):
    """tarfile reads one control file (or one archive) here, GNU tar another (tarfile
    takes the first long name, tar the last; tar reads on where tarfile stops...): the
    index would describe a package no client installs, or another one than it installs."""
    assert_refused_and_dpkg_reads_otherwise(tmp_path, tar, message)


@pytest.mark.parametrize(
    ("tar", "package"),
    [
        (control_tar(("./control", control_text(), {"pax_headers": {"mtime": "1."}})), "hello"),
        (control_tar(("./control", control_text(), {"pax_headers": {"mtime": "1e3"}})), "hello"),
        (control_tar(("./control", control_text(), {"pax_headers": {"uid": "1\0"}})), "hello"),
        (
            control_tar(("./x", control_text("other"), {"pax_headers": {"path": "./control\0x"}})),
            "other",
        ),
        (
            hello_then(
                ("./postinst", b"#!/bin/sh\n"),
                (
                    "./postrm",
                    b"",
                    {"type": tarfile.LNKTYPE, "pax_headers": {"linkpath": "./postinst\0x"}},
                ),
            ),
            "hello",
        ),
    ],
    ids=[
        "pax-mtime-with-a-trailing-dot",
        "pax-mtime-with-an-exponent",
        "pax-uid-before-a-nul",
        "pax-path-before-a-nul",
        "pax-hard-link-before-a-nul",
    ],
)
def test_pax_records_are_read_as_tar_reads_them(tmp_path, tar, package):
    """tar reads a PAX time's leading seconds, and a value up to a NUL: dpkg installs
    these packages, and debrepo reads the control file dpkg-deb unpacks."""
    deb = write(tmp_path, deb_of_control_archive(tar))
    assert dict(inspect_deb(deb).control)["Package"] == package
    field = subprocess.run(
        [require_tool("dpkg-deb"), "--field", str(deb), "Package"], capture_output=True
    )
    assert field.stdout == f"{package}\n".encode()
    assert dpkg_refuses_to_install(deb, tmp_path) is None


@pytest.mark.parametrize(
    "options",
    [
        ["--format=gnu", "--owner=builder:3000000", "--group=builders:4000000000"],
        ["--format=gnu", "--mtime=@10413792000"],
        ["--format=gnu", "--mtime=@-100000000000"],
        ["--format=oldgnu", "--owner=:3000000", "--mtime=@10413792000"],
        ["--format=posix", "--owner=builder:3000000", "--mtime=@10413792000.25"],
        ["--format=ustar"],
        ["--format=v7"],
    ],
    ids=[
        "gnu-base-256-owner",
        "gnu-base-256-mtime",
        "gnu-negative-mtime",
        "oldgnu",
        "posix",
        "ustar",
        "v7",
    ],
)
def test_control_archives_gnu_tar_writes_are_read(tmp_path, options):
    """Numbers too large for octal (base-256, or PAX records), in every format tar writes."""
    root = tmp_path / "control"
    root.mkdir()
    (root / "control").write_bytes(control_text())
    (root / "postinst").write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    (root / "prerm").symlink_to("postinst")
    entries = ["./", "./control", "./postinst", "./prerm"]
    tar = subprocess.run(
        [require_tool("tar"), "-cf", "-", "-C", str(root), "--no-recursion", *options, *entries],
        check=True,
        capture_output=True,
    ).stdout
    deb = write(tmp_path, deb_of_control_archive(tar))
    assert dict(inspect_deb(deb).control)["Package"] == "hello"
    assert dpkg_refuses_to_install(deb, tmp_path) is None


def test_a_control_archive_after_the_data_is_refused(tmp_path):
    """dpkg ignores it; apt-ftparchive reads a control archive there, and would index
    another package from the same file. (Other members there are ignored.)"""
    deb = write(
        tmp_path,
        installable_deb(control_text())
        + ar_member(*compress_control(tar_bytes([("./control", control_text("other"))]), "gz"))
        + ar_member("_gpgorigin", b"signature"),
    )
    assert "member 'control.tar.gz' after data.tar" in refused(tmp_path, deb.read_bytes())
    indexed = subprocess.run(
        [require_tool("apt-ftparchive"), "packages", str(deb)], capture_output=True, text=True
    )
    assert "Package: other" in indexed.stdout
    signed_only = write(
        tmp_path, installable_deb(control_text()) + ar_member("_gpgorigin", b"x"), "signed.deb"
    )
    assert dict(inspect_deb(signed_only).control)["Package"] == "hello"


def test_an_ar_size_with_a_tab_is_refused(tmp_path):
    data = bytearray(installable_deb(control_text()))
    data[56:66] = b"4\t".ljust(10)
    deb = write(tmp_path, bytes(data))
    assert "bad size in ar header of 'debian-binary'" in refused(tmp_path, bytes(data))
    info = subprocess.run([require_tool("dpkg-deb"), "--info", str(deb)], capture_output=True)
    assert info.returncode != 0, "dpkg-deb took it"


@pytest.mark.parametrize("version", [b"2.0junk\n", b"2.\n", b"3.0\n", b"2.0", b"2.99999999999\n"])
def test_a_format_version_dpkg_deb_refuses_is_refused(tmp_path, version):
    deb = write(tmp_path, hand_made_deb(debian_binary=version, data=_data_tar_gz()))
    assert "unsupported .deb format" in refused(tmp_path, hand_made_deb(debian_binary=version))
    dpkg = subprocess.run([require_tool("dpkg-deb"), "--info", str(deb)], capture_output=True)
    assert dpkg.returncode != 0, "dpkg-deb took it"


def test_a_control_file_with_crlf_line_ends_is_read_without_them(tmp_path):
    control = control_text("hello", "1.0").replace(b"\n", b"\r\n")
    members = [_control_member(control), ("data.tar.gz", _data_tar_gz())]
    deb = write(tmp_path, ar_archive([("debian-binary", b"2.0\n"), *members]))
    fields = dict(inspect_deb(deb).control)
    dpkg_deb = require_tool("dpkg-deb")
    for name in ("Package", "Version", "Maintainer", "Description"):
        shown = subprocess.run([dpkg_deb, "--field", str(deb), name], capture_output=True)
        assert shown.returncode == 0, shown.stderr
        # dpkg keeps the CR inside a value of several lines; a Packages file must not.
        assert fields[name] == shown.stdout.decode().replace("\r", "").removesuffix("\n")
    assert not any("\r" in value for value in fields.values())


def test_members_dpkg_deb_ignores_are_ignored(tmp_path):
    tar = tar_bytes([("./control", control_text())])
    members = [
        ("debian-binary", b"2.0\nlines a later format may add\n"),
        ("_before_control", b"x"),
        compress_control(tar, "gz"),
        ("_before_data", b"y"),
        ("data.tar.gz", _data_tar_gz()),
        ("after-data", b"z"),  # a control.tar there is refused: see below
        ("data.tar.gz", _data_tar_gz()),  # a second data member too is ignored
    ]
    deb = write(tmp_path, ar_archive(members))
    assert dict(inspect_deb(deb).control)["Package"] == "hello"
    dpkg = subprocess.run(
        [require_tool("dpkg-deb"), "--field", str(deb), "Package"], capture_output=True
    )
    assert dpkg.stdout == b"hello\n", dpkg.stderr


def test_a_debian_binary_member_claiming_gigabytes_is_refused_at_once(tmp_path):
    header = f"{'debian-binary':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{9999999999:<10}`\n"
    deb = write(tmp_path, b"!<arch>\n" + header.encode() + b"2.0\n")
    with deb.open("r+b") as handle:
        handle.truncate(64 << 20)  # sparse: read through, it would cost time and memory
    message = refused(tmp_path, deb.read_bytes()[:4096])
    assert "debian-binary declares 9999999999 bytes" in message


def test_data_before_control(tmp_path):
    tar = tar_bytes([("./control", control_text())])
    member, compressed = compress_control(tar, "gz")
    data = ar_archive([("debian-binary", b"2.0\n"), ("data.tar.xz", b"x"), (member, compressed)])
    assert "data.tar comes before control.tar" in refused(tmp_path, data)


def test_first_member_must_be_debian_binary(tmp_path):
    tar = tar_bytes([("./control", control_text())])
    member, compressed = compress_control(tar, "gz")
    data = ar_archive([(member, compressed), ("debian-binary", b"2.0\n"), ("data.tar", b"x")])
    assert "first member is 'control.tar.gz'" in refused(tmp_path, data)


@pytest.mark.parametrize("content", [b"3.0\n", b"1.0\n", b""])
def test_bad_debian_binary(tmp_path, content):
    assert "unsupported .deb format" in refused(tmp_path, hand_made_deb(debian_binary=content))


def test_not_an_ar_archive(tmp_path):
    assert "no ar archive signature" in refused(tmp_path, b"PK\x03\x04 this is a zip")


def test_empty_file(tmp_path):
    assert "no ar archive signature" in refused(tmp_path, b"")


def test_truncated_in_the_middle_of_the_data_member(tmp_path):
    data = hand_made_deb(data=XZ_MAGIC + b"d" * (5000 - len(XZ_MAGIC)))
    message = refused(tmp_path, data[:-1000])
    assert "truncated .deb (data.tar.xz declares 5000 bytes" in message


def test_truncated_control_member(tmp_path):
    data = hand_made_deb()
    cut = data.index(b"control.tar.gz") + 60 + 10
    assert "truncated .deb (control.tar.gz declares" in refused(tmp_path, data[:cut])


def test_truncated_debian_binary(tmp_path):
    data = b"!<arch>\n" + ar_member("debian-binary", b"2.0\n")[:62]
    assert "truncated .deb (in debian-binary)" in refused(tmp_path, data)


def test_truncated_ar_header(tmp_path):
    data = hand_made_deb()
    assert "bad ar header after" in refused(tmp_path, data + b"data.tar.gz     0 ")


def test_bad_size_in_ar_header(tmp_path):
    header = f"{'debian-binary':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{'4x':<10}`\n".encode()
    data = b"!<arch>\n" + header + b"2.0\n"
    assert "bad size in ar header of 'debian-binary'" in refused(tmp_path, data)


@pytest.mark.parametrize("size", ["-60", "+4", "1_0", "0x10"])
def test_ar_size_that_is_not_plain_digits_is_refused(tmp_path, size):
    # A negative size used to rewind the walk onto the same header: an endless loop.
    tar = tar_bytes([("./control", control_text())])
    member, compressed = compress_control(tar, "gz")
    header = f"{'data.tar.xz':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{size:<10}`\n".encode()
    data = (
        b"!<arch>\n"
        + ar_member("debian-binary", b"2.0\n")
        + ar_member(member, compressed)
        + header
        + b"x" * 64
    )
    assert "bad size in ar header of 'data.tar.xz'" in refused(tmp_path, data)


def test_bad_ar_padding(tmp_path):
    tar = tar_bytes([("./control", control_text())])
    member, compressed = compress_control(tar, "gz")
    data = (
        b"!<arch>\n"
        + ar_member("debian-binary", b"2.0\n")
        + ar_member(member, compressed)
        + ar_member("data.tar", b"odd")[:-1]
        + b"X"
        + ar_member("extra", b"xx")
    )
    assert "bad ar padding after 'data.tar'" in refused(tmp_path, data)


def test_unsupported_control_compression(tmp_path):
    data = ar_archive(
        [("debian-binary", b"2.0\n"), ("control.tar.bz2", b"BZh9"), ("data.tar", b"x")]
    )
    assert "unsupported control archive 'control.tar.bz2'" in refused(tmp_path, data)


def test_oversized_control_member_is_refused_before_reading_it(tmp_path):
    header_only = ar_member("control.tar.gz", b"", size=CONTROL_LIMIT + 1)
    data = b"!<arch>\n" + ar_member("debian-binary", b"2.0\n") + header_only
    assert "control.tar.gz is larger than 64 MiB" in refused(tmp_path, data)


def test_control_member_that_expands_beyond_the_limit(tmp_path):
    bomb = gzip.compress(b"\0" * (CONTROL_LIMIT + 2), compresslevel=1)
    data = ar_archive([("debian-binary", b"2.0\n"), ("control.tar.gz", bomb), ("data.tar", b"x")])
    assert "control.tar.gz expands beyond 64 MiB" in refused(tmp_path, data)


@pytest.mark.parametrize("kind", ["gz", "xz", "zst"])
def test_corrupt_control_compression(tmp_path, kind):
    member, _ = compress_control(b"", kind)
    data = ar_archive(
        [("debian-binary", b"2.0\n"), (member, b"garbage, not compressed"), ("data.tar", b"x")]
    )
    assert f"{member} is corrupt" in refused(tmp_path, data)


def test_control_archive_that_is_not_a_tar(tmp_path):
    data = ar_archive(
        [("debian-binary", b"2.0\n"), ("control.tar", b"x" * 1024), ("data.tar", b"x")]
    )
    assert "control.tar" in refused(tmp_path, data)


def test_control_archive_without_control_file(tmp_path):
    tar = tar_bytes([("./md5sums", b"")])
    member, compressed = compress_control(tar, "xz")
    data = ar_archive([("debian-binary", b"2.0\n"), (member, compressed), ("data.tar", b"x")])
    assert "control.tar.xz holds no control file" in refused(tmp_path, data)


def test_non_utf8_control_file(tmp_path):
    control = control_text().replace(b"Test Maintainer", b"Test M\xe4intainer")
    assert "control file is not valid UTF-8" in refused(tmp_path, hand_made_deb(control=control))


def test_duplicate_control_fields(tmp_path):
    control = control_text() + b"Version: 2.0\n"
    assert "repeats the field 'version'" in refused(tmp_path, hand_made_deb(control=control))


def test_control_file_with_two_paragraphs(tmp_path):
    control = control_text() + b"\nPackage: other\n"
    assert "exactly one paragraph, found 2" in refused(tmp_path, hand_made_deb(control=control))


def test_control_file_missing_version(tmp_path):
    control = b"Package: hello\nArchitecture: all\nDescription: x\n"
    assert "control file lacks Version" in refused(tmp_path, hand_made_deb(control=control))


def test_control_file_with_a_line_that_is_not_a_field(tmp_path):
    control = control_text() + b"garbage line\n"
    assert "is not 'Field: value'" in refused(tmp_path, hand_made_deb(control=control))


@pytest.mark.parametrize(
    ("tail", "fragment"),
    [
        # apt reads no continuation here: the Packages file would not parse for anyone.
        ("X-Note: a\n\u00a0more\n", "line 8 starts with '\\xa0': a continuation line"),
        ("X-Note: a\n\u3000more\n", "line 8 starts with '\\u3000'"),
        ("X-Note: a\n\x1fmore\n", "line 8 starts with '\\x1f'"),
        # deb822 and apt end the paragraph here: the fields after it would be lost.
        ("X-Note: a\n \t\nX-After: b\n", "holds only whitespace, which ends the paragraph"),
        ("Bad Name: b\n", "'Bad Name' is not a field name"),
    ],
    ids=["nbsp", "ideographic-space", "unit-separator", "whitespace-line", "spaced-name"],
)
def test_control_lines_apt_would_read_otherwise_are_refused(tmp_path, tail, fragment):
    control = control_text() + tail.encode("utf-8")
    assert fragment in refused(tmp_path, hand_made_deb(control=control))


def test_a_space_before_the_colon_is_read_as_dpkg_reads_it(tmp_path):
    control = control_text() + b"X-Foo : bar\n"
    fields = dict(inspect_deb(write(tmp_path, hand_made_deb(control=control))).control)
    assert fields["X-Foo"] == "bar"


def test_a_control_file_starting_with_a_continuation_is_refused(tmp_path):
    control = b" orphan\n" + control_text()
    assert "line 1 continues no field" in refused(tmp_path, hand_made_deb(control=control))


def test_continuations_by_space_or_tab_and_empty_description_lines_are_kept(tmp_path):
    control = control_text() + b"X-Note: first\n second\n\tthird\n .\n"
    fields = dict(inspect_deb(write(tmp_path, hand_made_deb(control=control))).control)
    assert fields["X-Note"] == "first\n second\n\tthird\n ."


def test_a_control_file_too_large_for_apt_is_refused_before_it_is_read(tmp_path):
    control = control_text() + b"X-Big: " + b"a" * (600 << 10) + b"\n"
    message = refused(tmp_path, hand_made_deb(control=control))
    assert f"control file is {len(control)} bytes" in message
    assert "up to 512 KiB" in message


def test_unreadable_path(tmp_path):
    with pytest.raises(InvalidPackageError, match=r"cannot read"):
        inspect_deb(tmp_path / "absent.deb")


def test_error_names_the_given_name(tmp_path):
    with pytest.raises(InvalidPackageError) as caught:
        inspect_deb(write(tmp_path, b"nope"), name="https://example.com/x.deb")
    assert str(caught.value).startswith("https://example.com/x.deb: ")


def large_deb(size: int) -> bytes:
    """A .deb whose data member is `size` bytes of noise, with a member after it."""
    noise = XZ_MAGIC + random.Random(20261124).randbytes(size - len(XZ_MAGIC))  # noqa: S311
    tar = tar_bytes([("./control", control_text())])
    member, compressed = compress_control(tar, "gz")
    return ar_archive(
        [
            ("debian-binary", b"2.0\n"),
            (member, compressed),
            ("data.tar.xz", noise),
            ("_extra", b"trailing member"),
        ]
    )


def test_parallel_hashing_of_a_large_file(tmp_path, monkeypatch):
    data = large_deb(PARALLEL_FROM + 3 * 1024 * 1024 + 1)
    assert len(data) > PARALLEL_FROM
    modes: list[bool] = []
    original = debfile._Fanout

    class Recording(original):  # type: ignore[misc, valid-type]
        def __init__(self, parallel: bool, **options) -> None:
            modes.append(parallel)
            super().__init__(parallel, **options)

    monkeypatch.setattr(debfile, "_Fanout", Recording)
    sink = io.BytesIO()
    inspection = inspect_deb(write(tmp_path, data), copy_to=sink)
    assert modes == [True]
    assert facts_of(inspection) == expected_facts(data)
    assert sink.getvalue() == data
    assert dict(inspection.control)["Package"] == "hello"


def test_small_file_hashes_serially_and_copies_exactly(tmp_path, monkeypatch):
    data = large_deb(2 * 1024 * 1024 + 7)
    assert len(data) < PARALLEL_FROM
    modes: list[bool] = []
    original = debfile._Fanout

    class Recording(original):  # type: ignore[misc, valid-type]
        def __init__(self, parallel: bool, **options) -> None:
            modes.append(parallel)
            super().__init__(parallel, **options)

    monkeypatch.setattr(debfile, "_Fanout", Recording)
    sink = io.BytesIO()
    inspection = inspect_deb(write(tmp_path, data), copy_to=sink)
    assert modes == [False]
    assert facts_of(inspection) == expected_facts(data)
    assert sink.getvalue() == data


def test_copy_to_a_real_file(tmp_path, make_deb):
    source = make_deb("copyme", "1.0")
    target = tmp_path / "copy.deb"
    with target.open("wb") as sink:
        inspect_deb(source, copy_to=sink)
    assert target.read_bytes() == source.read_bytes()
    assert target.stat().st_size == source.stat().st_size


def direct_io_works_in(folder: Path) -> bool:
    probe = folder / "probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    probe.unlink()
    return True


def deb_of_exact_size(size: int) -> bytes:
    """A large .deb (see large_deb) of exactly `size` bytes (even: ar pads odd members)."""
    overhead = len(large_deb(PARALLEL_FROM)) - PARALLEL_FROM
    data = large_deb(size - overhead)
    assert len(data) == size
    return data


def is_direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


def watch_writes(monkeypatch) -> list[bool]:
    """Whether each os.write of debfile went through O_DIRECT."""
    flags: list[bool] = []
    real_write = os.write

    def watching_write(fd, payload):
        flags.append(is_direct(fd))
        return real_write(fd, payload)

    monkeypatch.setattr(debfile.os, "write", watching_write)
    return flags


@pytest.mark.parametrize(
    "size",
    [PARALLEL_FROM + 3 * debfile.CHUNK + 12346, PARALLEL_FROM + 2 * debfile.CHUNK],
    ids=["with-a-tail", "whole-chunks"],
)
def test_large_copy_into_the_pool_is_exact_and_goes_around_the_page_cache(
    tmp_path, monkeypatch, size
):
    """The copy opened once the control file is read (held chunks replayed first)."""
    data = deb_of_exact_size(size)
    flags = watch_writes(monkeypatch)
    target = tmp_path / "copy.deb"
    sinks = []

    def open_copy(control):
        sinks.append(target.open("wb"))
        return sinks[-1]

    inspection = inspect_deb(write(tmp_path, data), open_copy=open_copy, direct_copy=True)
    assert not is_direct(sinks[0].fileno())  # left as it was given
    sinks[0].close()
    assert target.read_bytes() == data
    assert facts_of(inspection) == expected_facts(data)
    whole, tail = divmod(len(data), debfile.CHUNK)
    if direct_io_works_in(tmp_path):
        assert flags == [True] * whole + ([False] if tail else [])
    else:
        assert not any(flags)


def test_a_copy_read_back_at_once_goes_through_the_page_cache(tmp_path, monkeypatch):
    data = large_deb(PARALLEL_FROM + debfile.CHUNK)
    flags = watch_writes(monkeypatch)
    target = tmp_path / "copy.deb"
    with target.open("wb") as sink:
        inspect_deb(write(tmp_path, data), copy_to=sink)  # direct_copy defaults to False
    assert target.read_bytes() == data
    assert not any(flags)


def test_large_copy_falls_back_when_the_file_system_refuses_direct_writes(tmp_path, monkeypatch):
    data = large_deb(PARALLEL_FROM + 2 * debfile.CHUNK + 99)
    real_write = os.write
    refusals: list[int] = []

    def refusing_direct(fd, payload):
        if is_direct(fd):
            refusals.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, payload)

    monkeypatch.setattr(debfile.os, "write", refusing_direct)
    target = tmp_path / "copy.deb"
    with target.open("wb") as sink:
        inspection = inspect_deb(write(tmp_path, data), copy_to=sink, direct_copy=True)
        assert not is_direct(sink.fileno())
    assert target.read_bytes() == data
    assert facts_of(inspection) == expected_facts(data)
    # Refused once, then ordinary writes for the rest of the file.
    assert len(refusals) == (1 if direct_io_works_in(tmp_path) else 0)


def test_a_direct_write_that_fails_otherwise_is_the_copys_error(tmp_path, monkeypatch):
    if not direct_io_works_in(tmp_path):
        pytest.fail(f"{tmp_path}: this test needs a file system that takes O_DIRECT")
    data = large_deb(PARALLEL_FROM + 20 * debfile.CHUNK)
    real_write = os.write
    threads_before = threading.active_count()

    def disk_full(fd, payload):
        if is_direct(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, payload)

    monkeypatch.setattr(debfile.os, "write", disk_full)
    with (tmp_path / "copy.deb").open("wb") as sink, pytest.raises(OSError) as caught:
        inspect_deb(write(tmp_path, data), copy_to=sink, direct_copy=True)
    assert not isinstance(caught.value, InvalidPackageError)
    assert caught.value.errno == errno.ENOSPC
    assert threading.active_count() == threads_before


def test_a_pipe_is_written_through_its_file_object_not_its_descriptor(tmp_path):
    """O_DIRECT on a pipe means packet mode, which would cut the copy into pieces."""
    data = large_deb(PARALLEL_FROM + 2 * debfile.CHUNK + 5)
    read_end, write_end = os.pipe()
    received = bytearray()

    def drain() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as reader:
            while chunk := reader.read(1000):
                received.extend(chunk)

    reader_thread = threading.Thread(target=drain)
    reader_thread.start()
    with os.fdopen(write_end, "wb") as sink:
        inspect_deb(write(tmp_path, data), copy_to=sink, direct_copy=True)
    reader_thread.join()
    assert bytes(received) == data


@pytest.mark.parametrize("size", [2 * 1024 * 1024, PARALLEL_FROM + 1024 * 1024])
def test_a_copy_that_cannot_be_written_is_an_os_error_not_a_bad_package(tmp_path, size):
    data = large_deb(size)
    threads_before = threading.active_count()
    with Path("/dev/full").open("wb") as sink, pytest.raises(OSError) as caught:
        inspect_deb(write(tmp_path, data), copy_to=sink, direct_copy=True)
    assert not isinstance(caught.value, InvalidPackageError)
    assert caught.value.errno == errno.ENOSPC
    assert threading.active_count() == threads_before


def test_a_copy_that_cannot_be_opened_is_an_os_error_not_a_bad_package(tmp_path):
    def no_room(control):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as caught:
        inspect_deb(write(tmp_path, hand_made_deb()), open_copy=no_room)
    assert not isinstance(caught.value, InvalidPackageError)
    assert caught.value.errno == errno.ENOSPC


def test_copy_to_and_open_copy_together_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"not both"):
        inspect_deb(
            write(tmp_path, hand_made_deb()), copy_to=io.BytesIO(), open_copy=lambda c: None
        )


def test_copy_opened_after_the_control_file_gets_every_byte(tmp_path):
    data = large_deb(PARALLEL_FROM + 12345)
    sinks: list[io.BytesIO] = []
    seen: list[dict[str, str]] = []

    def open_copy(control):
        seen.append(dict(control))
        sinks.append(io.BytesIO())
        return sinks[-1]

    inspection = inspect_deb(write(tmp_path, data), open_copy=open_copy)
    assert [fields["Package"] for fields in seen] == ["hello"]
    assert sinks[0].getvalue() == data
    assert facts_of(inspection) == expected_facts(data)


def test_copy_opener_may_decline(tmp_path):
    data = hand_made_deb()
    inspection = inspect_deb(write(tmp_path, data), open_copy=lambda control: None)
    assert facts_of(inspection) == expected_facts(data)


def test_copy_opener_refusing_the_package_stops_the_read(tmp_path):
    def refuse(control):
        raise InvalidPackageError("pkg.deb: not wanted here")

    with pytest.raises(InvalidPackageError, match=r"not wanted here"):
        inspect_deb(write(tmp_path, hand_made_deb()), open_copy=refuse)


def test_headers_inside_an_old_style_folder_entry_are_checked(tmp_path):
    """An old-style (type "\\0") entry named "./" is a folder to tarfile and to tar, which
    both read what its size covers as headers: the header check must walk them too."""
    hidden = control_tar(long_name("./control"), long_name("./junk"), ("./x", control_text()))
    hidden += control_tar(long_name("./junk2"), long_name("./control"), OTHER)
    hidden = hidden.replace(bytes(1024), b"")  # the entries alone, no end blocks
    hidden = hidden[: -(-len(hidden.rstrip(b"\0")) // 512) * 512]
    folder = bytearray(control_tar(("./", b"x" * len(hidden)))[:512])
    folder[156:157] = b"\0"
    folder[148:156] = b" " * 8
    folder[148:156] = octal_checksum(sum(folder)).ljust(8, b"\0")
    deb = write(tmp_path, deb_of_control_archive(bytes(folder) + hidden + bytes(1024)))
    with pytest.raises(InvalidPackageError) as caught:
        inspect_deb(deb)
    assert "two long names for one file" in str(caught.value)


def test_a_symbolic_link_to_a_file_named_as_a_folder_is_refused(tmp_path):
    """dpkg opens `postrm` through `postinst/`: "Not a directory"."""
    tar = hello_then(
        ("./postinst", b"#!/bin/sh\n"),
        ("./postrm", b"", {"type": tarfile.SYMTYPE, "linkname": "postinst/"}),
    )
    deb = write(tmp_path, deb_of_control_archive(tar))
    with pytest.raises(InvalidPackageError) as caught:
        inspect_deb(deb)
    assert "a symbolic link to no file in it" in str(caught.value)
    assert dpkg_refuses_to_install(deb, tmp_path) is not None


def test_an_old_style_file_named_as_the_root_is_refused(tmp_path):
    """tarfile takes a type "\\0" entry named "/" for the archive's folder; tar strips the
    slash and fails to unpack a file named "." ("File exists")."""
    tar = control_tar(("/", b"", {"type": tarfile.DIRTYPE}), ("./control", control_text()))
    deb = write(tmp_path, deb_of_control_archive(with_field(tar, "/", 156, b"\0")))
    assert "File exists" in (dpkg_refuses_to_install(deb, tmp_path) or "")
    with pytest.raises(InvalidPackageError) as caught:
        inspect_deb(deb)
    assert "holds '/', a file named as a folder" in str(caught.value)
