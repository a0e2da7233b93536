"""OpenPGP signing with Sequoia (pysequoia), so no `gpg` binary is ever needed.

The AWS Lambda Python runtime ships no gpg, and calling one means managing a
GNUPGHOME, an agent and a keyring on a read-only filesystem. pysequoia is the Python
binding of Sequoia-PGP, published as manylinux wheels with the library compiled in:
key generation, clear-signing (InRelease), detached signatures (Release.gpg) and
verification run in-process. apt verifies the result with gpgv or sqv.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

import pysequoia as sq
from pysequoia import packet as sq_packet

from debrepo.errors import SigningError, VerificationError
from debrepo.folders import make_folders, nearest_existing, refuse_if_others_control

log = logging.getLogger("debrepo.signing")

_EDDSA = {"EdDSA", "Ed25519", "Ed448"}
_RSA = {"RSAEncryptSign", "RSASign"}
_STRONG_HASHES = {"SHA256", "SHA384", "SHA512", "SHA3_256", "SHA3_512"}
MIN_RSA_BITS = 3072


def _reason(exc: BaseException) -> str:
    """Sequoia's error text without the Rust backtrace it may carry."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _enum_name(value: object) -> str:
    return str(value).rsplit(".", 1)[-1]


def _holds_secret_keys(key: bytes) -> bool:
    import warnings

    try:
        with warnings.catch_warnings():
            # pysequoia would rather secret keys were read as a Tsk; here a Cert is asked.
            warnings.simplefilter("ignore", DeprecationWarning)
            return bool(sq.Cert.from_bytes(key).has_secret_keys)
    except Exception:  # unreadable: let the caller's message stand
        return True


_ARMOUR_BEGIN = "-----BEGIN PGP PRIVATE KEY BLOCK-----"
_ARMOUR_END = "-----END PGP PRIVATE KEY BLOCK-----"


def _refuse_if_damaged(key: bytes, source: str) -> None:
    """SigningError if `key` is an armoured secret key that was cut short or changed
    (its armour checksum tells, RFC 4880 section 6.1): sequoia reads such a key as
    "additional packets" or "no suitable signing subkey", which sends an operator
    after the wrong cause."""
    damage = _armour_damage(key.decode("ascii", errors="replace"))
    if damage:
        raise SigningError(
            f"{source} is a damaged secret key ({damage}); restore the key file from a "
            "backup (see Signing in the README)"
        )


def _armour_damage(text: str) -> str | None:
    import base64
    import binascii

    start = text.find(_ARMOUR_BEGIN)
    if start < 0:
        return None  # not an armoured secret key: not for this check to say
    end = text.find(_ARMOUR_END, start)
    if end < 0:
        return f"cut short: no {_ARMOUR_END} line"
    lines = [line.strip() for line in text[start + len(_ARMOUR_BEGIN) : end].splitlines()]
    if "" in lines[1:]:
        lines = lines[lines.index("", 1) + 1 :]  # past the armour headers (Comment: ...)
    body = [line for line in lines if line]
    checksum = body.pop() if body and body[-1].startswith("=") and len(body[-1]) == 5 else None
    try:
        data = base64.b64decode("".join(body), validate=True)
        stated = int.from_bytes(base64.b64decode(checksum[1:], validate=True)) if checksum else None
    except (binascii.Error, ValueError):
        return "its armoured text holds characters base64 has not"
    if stated is not None and _crc24(data) != stated:
        return "its armour checksum does not match what it holds: changed or cut"
    return None


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def generate_secret_key(user_id: str) -> bytes:
    """A new ASCII-armoured Ed25519 secret key (OpenPGP v4, readable by gpgv and sqv)."""
    tsk = sq.Tsk.generate(user_id, profile=sq.Profile.RFC4880, cipher_suite=sq.CipherSuite.Cv25519)
    return str(tsk).encode("ascii")


class OpenPGPSigner:
    """Signs Release files with one OpenPGP secret key held in memory."""

    def __init__(
        self,
        secret_key: bytes,
        *,
        source: str,
        remedy: str | None = None,
    ) -> None:
        self.source = source
        try:
            self._tsk = sq.Tsk.from_bytes(secret_key)
        except Exception as exc:  # pysequoia raises plain RuntimeError/ValueError
            _refuse_if_damaged(secret_key, source)
            remedy = remedy or (
                "point --key-file (DEBREPO_KEY_FILE) at the signing key, or, for a "
                "repository not yet published, run `debrepo key generate`"
            )
            raise SigningError(
                f"{source} is not an OpenPGP secret key ({_reason(exc)}); {remedy}"
            ) from None
        try:
            self._signer = self._tsk.signer()
        except Exception as exc:
            _refuse_if_damaged(secret_key, source)  # sequoia reads past a changed byte
            if not _holds_secret_keys(secret_key):
                remedy = remedy or (
                    "point --key-file (DEBREPO_KEY_FILE) at the secret key, or run "
                    "`debrepo key generate`"
                )
                raise SigningError(
                    f"{source} holds only a public key, not an OpenPGP secret key; {remedy}"
                ) from None
            raise SigningError(
                f"{source}: no usable signing key ({_reason(exc)}); keys protected by a "
                "passphrase are not supported, export the key without one"
            ) from None
        self._cert = self._tsk.extract_certificate()
        self.fingerprint = self._cert.fingerprint
        self._check_strength()

    def _check_strength(self) -> None:
        probe = sq.Sig.from_bytes(self.detached_signature(b"debrepo key check\n"))
        algorithm = _enum_name(probe.key_algorithm)
        digest = _enum_name(probe.hash_algorithm)
        if digest not in _STRONG_HASHES:
            raise SigningError(
                f"{self.source}: signatures use {digest}; SHA-256 or stronger is required"
            )
        if algorithm in _EDDSA:
            return
        if algorithm not in _RSA:
            raise SigningError(
                f"{self.source}: signing key uses {algorithm}; use Ed25519 or RSA of "
                f"at least {MIN_RSA_BITS} bits"
            )
        for packet in sq_packet.PacketPile.from_bytes(bytes(self._cert)):
            if packet.fingerprint == probe.issuer_fingerprint:
                body = packet.body  # pysequoia does not expose the key size: read it
                bits = int.from_bytes(body[6:8], "big") if len(body) > 8 else 0
                if bits < MIN_RSA_BITS:
                    raise SigningError(
                        f"{self.source}: RSA signing key has {bits} bits; at least "
                        f"{MIN_RSA_BITS} are required"
                    )
                return
        raise SigningError(f"{self.source}: cannot find the key that made the probe signature")

    def clearsign(self, data: bytes) -> bytes:
        try:
            return bytes(sq.sign(self._signer, data, mode=sq.SignatureMode.CLEAR))
        except Exception as exc:
            raise SigningError(f"clear-signing with {self.source} failed: {_reason(exc)}") from None

    def detached_signature(self, data: bytes) -> bytes:
        try:
            return bytes(sq.sign(self._signer, data, mode=sq.SignatureMode.DETACHED, armor=True))
        except Exception as exc:
            raise SigningError(f"signing with {self.source} failed: {_reason(exc)}") from None

    def public_key_binary(self) -> bytes:
        return bytes(self._cert)

    def public_key_armored(self) -> bytes:
        return str(self._cert).encode("ascii")


def load_or_create_signer(path: Path, user_id: str, *, to_sign: bool = True) -> OpenPGPSigner:
    """The signer for the key at `path`; a new Ed25519 key is generated there if absent.

    The key file is written with mode 0600 in a 0700 directory, atomically, and never
    over another: two first runs racing end up signing with the one key that won. A key
    `to_sign` with must be one no other user could have chosen (`refuse_a_key_others_
    control`); one only shown or compared need not.
    """
    if not path.exists():
        refuse_a_folder_others_control(nearest_existing(path.parent), path)
        secret = generate_secret_key(user_id)
        try:
            make_folders(path.parent, 0o700)
            temp = path.with_name(f".tmp-{os.urandom(6).hex()}-{path.name}")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secret)
            try:
                created = _link_unless_present(temp, path)
            finally:
                temp.unlink(missing_ok=True)
        except OSError as exc:
            raise SigningError(
                f"{path}: cannot write the new signing key: {exc.strerror}"
            ) from None
        if created:
            signer = OpenPGPSigner(secret, source=str(path))
            log.warning("generated a new signing key %s at %s", signer.fingerprint.upper(), path)
            return signer
    secret = read_key_file(path)
    if to_sign:
        refuse_a_key_others_control(path)
    return OpenPGPSigner(secret, source=str(path))


MAX_KEY_FILE_BYTES = 1 << 20  # an armoured RSA-4096 secret key is under 8 KiB


def read_key_file(path: Path) -> bytes:
    """The bytes of a key file: a regular file of at most MAX_KEY_FILE_BYTES (a device or
    a huge file named by mistake would otherwise exhaust memory)."""
    try:
        # O_NONBLOCK: opening a FIFO named by mistake would wait for a writer for ever.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise SigningError(f"{path}: not a regular file, so not a key file")
            with os.fdopen(descriptor, "rb", closefd=False) as handle:
                data = handle.read(MAX_KEY_FILE_BYTES + 1)
        finally:
            os.close(descriptor)
    except OSError as exc:
        raise SigningError(f"{path}: cannot read the signing key: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise SigningError(
            f"{path}: over {MAX_KEY_FILE_BYTES // 1024} KiB, so not a key file; check "
            "--key-file (DEBREPO_KEY_FILE)"
        )
    return data


def refuse_a_key_others_control(path: Path) -> None:
    """ConfigError if another user could have chosen the key at `path`: the file, or the
    folder it is in (where it could be replaced), is theirs or writable by everyone."""
    refuse_if_others_control(
        path,
        sticky_ok=False,
        could="have chosen the key the repository is signed with, so it does not sign",
        own="a key of your own (--key-file)",
    )
    refuse_a_folder_others_control(Path(os.path.realpath(path)).parent, path)


def refuse_a_folder_others_control(folder: Path, key_file: Path) -> None:
    """ConfigError if another user could replace the key file in `folder` (a sticky
    folder such as /tmp aside: there only the file's owner may)."""
    refuse_if_others_control(
        folder,
        sticky_ok=True,
        could=f"replace the signing key {key_file} there, so it does not sign",
        own="a folder of your own (--home, --key-file)",
    )


def _link_unless_present(temp: Path, path: Path) -> bool:
    """Give `temp`'s file the name `path` unless something holds that name already;
    whether it did. (A rename would replace a key another process just created.)"""
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP):
            raise
        # A file system without hard links: the rename, checked just before.
        if path.exists():
            return False
        os.replace(temp, path)
    return True


def keyring_certificates(keyring: bytes) -> list[sq.Cert]:
    """The certificates of a keyring (one or more certificates, binary or armoured)."""
    try:
        certs = list(sq.Cert.split_bytes(keyring))
    except Exception as exc:
        raise VerificationError(
            [f"published key is not an OpenPGP keyring ({_reason(exc)})"]
        ) from None
    if not certs:
        raise VerificationError(["published key holds no OpenPGP certificate"])
    return certs


def fingerprints_in(keyring: bytes) -> list[str]:
    """The primary key fingerprints of a keyring (lower-case hex), in its order; empty if
    the bytes are not one."""
    try:
        return [str(cert.fingerprint).lower() for cert in keyring_certificates(keyring)]
    except VerificationError:
        return []


def armor_keyring(keyring: bytes) -> bytes:
    """The ASCII-armoured form of a binary keyring. One certificate is armoured as
    `public_key_armored` writes it; several go into one block (as `gpg --export -a`)."""
    certs = keyring_certificates(keyring)
    if len(certs) == 1:
        return str(certs[0]).encode("ascii")
    return str(sq.armor(keyring, sq.ArmorKind.PublicKey)).encode("ascii")


def public_part(key: bytes, *, source: str) -> tuple[bytes, str]:
    """The binary certificate and fingerprint of the secret key in `key`, checked as the
    signer checks its own (it must be able to sign, strongly enough): a key announced
    as the next signing key must be one that can take over."""
    remedy = (
        "announce the secret key that is to sign next (only its public part is "
        "published), which shows that it can"
    )
    if not _holds_secret_keys(key):
        raise SigningError(f"{source} holds only a public key: {remedy}")
    signer = OpenPGPSigner(key, source=source, remedy=remedy)
    return signer.public_key_binary(), signer.fingerprint


_CLEARSIGN_START = b"-----BEGIN PGP SIGNED MESSAGE-----"
_SIGNATURE_START = b"-----BEGIN PGP SIGNATURE-----"
_SIGNATURE_END = b"-----END PGP SIGNATURE-----"


def clearsign_framing_problem(signed: bytes) -> str | None:
    """What apt would refuse in the framing of an InRelease file, or None. apt splits
    the file itself and takes nothing outside one signed message and its signature
    ("Clearsigned file isn't valid, got 'NOSPLIT'"); OpenPGP libraries skip such text."""
    lines = signed.split(b"\n")
    if lines[0].rstrip(b"\r") != _CLEARSIGN_START:
        return f"InRelease does not begin with {_CLEARSIGN_START.decode()}"
    while lines and not lines[-1].strip():
        lines.pop()
    if lines[-1].rstrip(b"\r") != _SIGNATURE_END:
        return f"InRelease holds text after {_SIGNATURE_END.decode()}"
    framing = [line.rstrip(b"\r") for line in lines if line.startswith(b"-----")]
    if framing != [_CLEARSIGN_START, _SIGNATURE_START, _SIGNATURE_END]:
        return "InRelease holds more than one signed message or signature"
    return None


def verify_clearsigned(signed: bytes, public_key: bytes) -> bytes:
    """The signed text of an InRelease file, if a key of the keyring `public_key` made a
    valid signature and apt can split the file."""
    framing = clearsign_framing_problem(signed)
    if framing is not None:
        raise VerificationError([framing])
    certs = keyring_certificates(public_key)
    try:
        result = sq.verify(bytes=signed, store=lambda _ids: certs)
    except Exception as exc:
        raise VerificationError([f"InRelease signature does not verify ({_reason(exc)})"]) from None
    if not result.valid_sigs or result.bytes is None:
        raise VerificationError(["InRelease carries no valid signature"])
    return bytes(result.bytes)


def verify_detached(data: bytes, signature: bytes, public_key: bytes) -> None:
    """Raise VerificationError unless `signature` is a valid signature of `data`."""
    certs = keyring_certificates(public_key)
    try:
        sig = sq.Sig.from_bytes(signature)
        result = sq.verify(bytes=data, store=lambda _ids: certs, signature=sig)
    except Exception as exc:
        raise VerificationError([f"Release.gpg does not verify Release ({_reason(exc)})"]) from None
    if not result.valid_sigs:
        raise VerificationError(["Release.gpg carries no valid signature"])
