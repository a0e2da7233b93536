"""signing/openpgp.py: key files, key strength, and signatures gpgv accepts."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pysequoia as sq
import pytest

from debrepo.errors import SigningError, VerificationError
from debrepo.signing.openpgp import (
    OpenPGPSigner,
    armor_keyring,
    fingerprints_in,
    generate_secret_key,
    load_or_create_signer,
    public_part,
    verify_clearsigned,
    verify_detached,
)
from tests.tools import require_tool

USER_ID = "Test Repository <repo@example.com>"
RELEASE = b"Origin: Test\nLabel: Test\nSuite: stable\nDate: Tue, 24 Nov 2026 12:00:00 +0000\n"


def secret_key(cipher_suite: sq.CipherSuite) -> bytes:
    tsk = sq.Tsk.generate(USER_ID, profile=sq.Profile.RFC4880, cipher_suite=cipher_suite)
    return str(tsk).encode("ascii")


@pytest.fixture(scope="module")
def signer() -> OpenPGPSigner:
    return OpenPGPSigner(generate_secret_key(USER_ID), source="test key")


@pytest.fixture(scope="module")
def rsa3072_key() -> bytes:
    return secret_key(sq.CipherSuite.RSA3k)


def test_new_key_is_private_in_a_private_directory(tmp_path):
    path = tmp_path / "home" / "keys" / "signing-key.asc"
    signer = load_or_create_signer(path, USER_ID)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
    assert [p.name for p in path.parent.iterdir()] == ["signing-key.asc"]
    assert len(signer.fingerprint) == 40


def test_existing_key_is_loaded_not_replaced(tmp_path):
    path = tmp_path / "keys" / "signing-key.asc"
    first = load_or_create_signer(path, USER_ID)
    content = path.read_bytes()
    second = load_or_create_signer(path, USER_ID)
    assert second.fingerprint == first.fingerprint
    assert path.read_bytes() == content


def test_two_first_runs_racing_sign_with_the_key_that_was_written_first(tmp_path, monkeypatch):
    """Another process writes its new key while this one generates its own: this one
    takes the key on disk rather than replacing it (the published keyring would then
    name a key that no longer exists)."""
    from debrepo.signing import openpgp

    path = tmp_path / "keys" / "signing-key.asc"
    theirs = generate_secret_key(USER_ID)
    generate = openpgp.generate_secret_key

    def generate_while_another_process_writes(user_id: str) -> bytes:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.write_bytes(theirs)
        return generate(user_id)

    monkeypatch.setattr(openpgp, "generate_secret_key", generate_while_another_process_writes)
    signer = load_or_create_signer(path, USER_ID)

    assert path.read_bytes() == theirs
    assert signer.fingerprint == OpenPGPSigner(theirs, source="theirs").fingerprint
    assert [p.name for p in path.parent.iterdir()] == ["signing-key.asc"]


def test_generated_key_logs_its_fingerprint(tmp_path, caplog):
    signer = load_or_create_signer(tmp_path / "k.asc", USER_ID)
    assert signer.fingerprint.upper() in caplog.text


def test_garbage_key_file_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "signing-key.asc"
    path.write_bytes(b"this is not a key\n")
    with pytest.raises(SigningError) as caught:
        load_or_create_signer(path, USER_ID)
    message = str(caught.value)
    assert message.startswith(f"{path} is not an OpenPGP secret key")
    assert "debrepo key generate" in message
    assert "DEBREPO_KEY_FILE" in message
    assert "\n" not in message


def one_character_changed(armoured: bytes) -> bytes:
    lines = armoured.split(b"\n")
    middle = len(lines) // 2  # a line of the base64 body
    line = bytearray(lines[middle])
    line[10] = ord("A") if line[10] != ord("A") else ord("B")
    lines[middle] = bytes(line)
    return b"\n".join(lines)


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (
            lambda key: key[: len(key) // 2],
            "cut short: no -----END PGP PRIVATE KEY BLOCK----- line",
        ),
        (one_character_changed, "its armour checksum does not match what it holds: changed or cut"),
    ],
    ids=["truncated", "one-character-changed"],
)
def test_a_damaged_key_file_is_called_damaged_not_another_kind_of_key(tmp_path, damage, said):
    """Sequoia reads these as "additional packets, is this a keyring?" and "no suitable
    signing subkey" (which debrepo used to explain as a passphrase): the armour's own
    checksum and END line say what happened, and the fix is the backup, not a new key."""
    path = tmp_path / "signing-key.asc"
    path.write_bytes(damage(generate_secret_key(USER_ID)))
    with pytest.raises(SigningError) as caught:
        load_or_create_signer(path, USER_ID)
    message = str(caught.value)
    assert message == (
        f"{path} is a damaged secret key ({said}); restore the key file from a backup "
        "(see Signing in the README)"
    )


def test_public_key_is_not_a_signing_key(tmp_path, signer):
    path = tmp_path / "public.asc"
    path.write_bytes(signer.public_key_armored())
    with pytest.raises(SigningError) as caught:
        load_or_create_signer(path, USER_ID)
    assert str(caught.value).startswith(f"{path} holds only a public key")
    assert "passphrase" not in str(caught.value)  # not the problem, so not suggested


def test_key_path_that_is_a_directory(tmp_path):
    (tmp_path / "keydir").mkdir()
    open_before = len(list(Path("/proc/self/fd").iterdir()))
    for _ in range(3):
        with pytest.raises(SigningError, match=r"keydir: not a regular file, so not a key file"):
            load_or_create_signer(tmp_path / "keydir", USER_ID)
    assert len(list(Path("/proc/self/fd").iterdir())) == open_before  # nothing left open


def test_a_device_or_a_huge_file_as_key_file_is_refused_without_reading_it(tmp_path):
    with pytest.raises(SigningError, match=r"^/dev/zero: not a regular file, so not a key file"):
        load_or_create_signer(Path("/dev/zero"), USER_ID)  # would never end
    fifo = tmp_path / "fifo.asc"
    os.mkfifo(fifo)
    with pytest.raises(SigningError, match=rf"^{fifo}: not a regular file, so not a key file"):
        load_or_create_signer(fifo, USER_ID)  # opening would wait for a writer
    huge = tmp_path / "huge.asc"
    with huge.open("wb") as handle:
        handle.truncate(64 << 30)  # sparse: 64 GiB that no reader must load
    with pytest.raises(SigningError, match=rf"^{huge}: over 1024 KiB, so not a key file"):
        load_or_create_signer(huge, USER_ID)


def test_key_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(SigningError, match=r"cannot write the new signing key"):
        load_or_create_signer(blocker / "keys" / "k.asc", USER_ID)


def test_rsa_2048_key_is_refused():
    with pytest.raises(SigningError) as caught:
        OpenPGPSigner(secret_key(sq.CipherSuite.RSA2k), source="weak.asc")
    message = str(caught.value)
    assert message.startswith("weak.asc: ")
    assert "2048" in message
    assert "3072" in message


def test_rsa_3072_key_is_accepted(tmp_path, rsa3072_key):
    signer = OpenPGPSigner(rsa3072_key, source="rsa.asc")
    assert signer.fingerprint.lower() == str(sq.Cert.from_bytes(rsa3072_key).fingerprint).lower()
    release, signature = tmp_path / "Release", tmp_path / "Release.gpg"
    release.write_bytes(RELEASE)
    signature.write_bytes(signer.detached_signature(RELEASE))
    result = gpgv(tmp_path, signer.public_key_binary(), signature, release)
    assert result.returncode == 0, result.stderr


def test_ecdsa_key_is_refused():
    with pytest.raises(SigningError) as caught:
        OpenPGPSigner(secret_key(sq.CipherSuite.P256), source="ecdsa.asc")
    assert "use Ed25519 or RSA of at least 3072 bits" in str(caught.value)


def test_public_key_forms(signer):
    armored = signer.public_key_armored()
    binary = signer.public_key_binary()
    assert armored.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert not binary.startswith(b"-----")
    assert sq.Cert.from_bytes(binary).fingerprint == signer.fingerprint
    assert sq.Cert.from_bytes(armored).fingerprint == signer.fingerprint
    assert b"PRIVATE" not in armored


def gpgv(tmp_path: Path, keyring: bytes, *files: Path) -> subprocess.CompletedProcess[str]:
    binary = require_tool("gpgv")
    ring = tmp_path / "keyring.gpg"
    ring.write_bytes(keyring)
    return subprocess.run(
        [binary, "--keyring", str(ring), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(params=["ed25519", "rsa3072"])
def any_signer(request, signer, rsa3072_key) -> OpenPGPSigner:
    if request.param == "ed25519":
        return signer
    return OpenPGPSigner(rsa3072_key, source="rsa.asc")


def test_clearsigned_release_verifies_with_gpgv(tmp_path, any_signer):
    inrelease = tmp_path / "InRelease"
    inrelease.write_bytes(any_signer.clearsign(RELEASE))
    assert inrelease.read_bytes().startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
    result = gpgv(tmp_path, any_signer.public_key_binary(), inrelease)
    assert result.returncode == 0, result.stderr
    assert "Good signature" in result.stderr
    assert verify_clearsigned(inrelease.read_bytes(), any_signer.public_key_binary()).rstrip(
        b"\n"
    ) == RELEASE.rstrip(b"\n")


def test_detached_signature_verifies_with_gpgv(tmp_path, any_signer):
    release, signature = tmp_path / "Release", tmp_path / "Release.gpg"
    release.write_bytes(RELEASE)
    signature.write_bytes(any_signer.detached_signature(RELEASE))
    result = gpgv(tmp_path, any_signer.public_key_binary(), signature, release)
    assert result.returncode == 0, result.stderr
    verify_detached(RELEASE, signature.read_bytes(), any_signer.public_key_binary())


def test_tampered_clearsigned_text_fails(tmp_path, signer):
    signed = signer.clearsign(RELEASE)
    tampered = signed.replace(b"Suite: stable", b"Suite: stabl3")
    assert tampered != signed
    path = tmp_path / "InRelease"
    path.write_bytes(tampered)
    assert gpgv(tmp_path, signer.public_key_binary(), path).returncode != 0
    with pytest.raises(VerificationError):
        verify_clearsigned(tampered, signer.public_key_binary())


def test_tampered_release_fails_detached_verification(tmp_path, signer):
    signature = signer.detached_signature(RELEASE)
    tampered = RELEASE + b"Codename: other\n"
    release, sig = tmp_path / "Release", tmp_path / "Release.gpg"
    release.write_bytes(tampered)
    sig.write_bytes(signature)
    assert gpgv(tmp_path, signer.public_key_binary(), sig, release).returncode != 0
    with pytest.raises(VerificationError) as caught:
        verify_detached(tampered, signature, signer.public_key_binary())
    assert "Release.gpg" in str(caught.value)


def test_signature_by_another_key_fails(signer):
    other = OpenPGPSigner(generate_secret_key(USER_ID), source="other")
    with pytest.raises(VerificationError):
        verify_clearsigned(other.clearsign(RELEASE), signer.public_key_binary())
    with pytest.raises(VerificationError):
        verify_detached(RELEASE, other.detached_signature(RELEASE), signer.public_key_binary())


def test_garbage_public_key_and_signature(signer):
    with pytest.raises(VerificationError, match=r"not an OpenPGP keyring"):
        verify_clearsigned(signer.clearsign(RELEASE), b"garbage")
    with pytest.raises(VerificationError, match=r"not an OpenPGP keyring"):
        verify_detached(RELEASE, signer.detached_signature(RELEASE), b"garbage")
    with pytest.raises(VerificationError, match=r"Release.gpg does not verify"):
        verify_detached(RELEASE, b"not a signature", signer.public_key_binary())
    with pytest.raises(VerificationError, match=r"InRelease"):
        verify_clearsigned(RELEASE, signer.public_key_binary())


def test_a_keyring_of_two_keys_verifies_signatures_by_either(signer, tmp_path):
    """The keyring published while a key is announced: either key's signatures verify,
    in debrepo and in gpgv, binary or armoured; a third key's do not."""
    following = OpenPGPSigner(generate_secret_key(USER_ID), source="next key")
    keyring = signer.public_key_binary() + following.public_key_binary()
    assert fingerprints_in(keyring) == [signer.fingerprint, following.fingerprint]
    armoured = armor_keyring(keyring)
    assert armoured.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert fingerprints_in(armoured) == [signer.fingerprint, following.fingerprint]
    assert armor_keyring(signer.public_key_binary()) == signer.public_key_armored()
    gpgv = require_tool("gpgv")
    (tmp_path / "keyring.gpg").write_bytes(keyring)
    for key in (signer, following):
        assert verify_clearsigned(key.clearsign(RELEASE), keyring) == RELEASE
        verify_detached(RELEASE, key.detached_signature(RELEASE), keyring)
        (tmp_path / "InRelease").write_bytes(key.clearsign(RELEASE))
        checked = subprocess.run(
            [gpgv, "--keyring", str(tmp_path / "keyring.gpg"), str(tmp_path / "InRelease")],
            capture_output=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
    stranger = OpenPGPSigner(generate_secret_key(USER_ID), source="stranger")
    with pytest.raises(VerificationError):
        verify_clearsigned(stranger.clearsign(RELEASE), keyring)
    assert fingerprints_in(b"garbage") == []


def test_only_a_secret_key_that_can_sign_is_announced(signer, tmp_path):
    binary, fingerprint = public_part(generate_secret_key(USER_ID), source="next.asc")
    assert fingerprints_in(binary) == [fingerprint]
    with pytest.raises(SigningError, match=r"^pub\.asc holds only a public key"):
        public_part(signer.public_key_armored(), source="pub.asc")
    with pytest.raises(SigningError, match=r"^notes\.txt is not an OpenPGP secret key") as bad:
        public_part(b"garbage", source="notes.txt")
    assert "key generate" not in str(bad.value) and "announce the secret key" in str(bad.value)
