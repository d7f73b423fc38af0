"""What makes an exported record checkable without cmprep: the events as JSON lines with
their hash chain, a detached Ed25519 signature of the archive's manifest, and the checks
that read them back.

The manifest is the archive's ``ro-crate-metadata.json``: it names every file of the
archive with its size and SHA-256 (the ELN file format asks for both). Signing it signs
every file. The signature is a minisign signature (Ed25519 over the BLAKE2b-512 of the
manifest, then over that signature and a trusted comment), the format the ELN file
format's specification names for ``ro-crate-metadata.json.minisig``, so any minisign tool
can check it too; the public key travels beside it as ``minisign.pub``, and the person's
key fingerprint, as cmprep recorded it in the ``@users`` stream, is in the trusted
comment, to be compared with the one the exporting site publishes.

Pure: bytes in, findings out. The same checks are written again, shorter, in the script
shipped inside each archive (standard library and ``cryptography`` only), so a regulator
needs neither cmprep nor its database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from cmprep.events import GENESIS, Event, canonical_json, hash_body

METADATA = "ro-crate-metadata.json"
SIGNATURE = METADATA + ".minisig"
PUBLIC_KEY = "minisign.pub"
EVENTS = "events.jsonl"
# the first line of each minisign file: fixed, so that a changed byte in it is seen (minisign
# itself ignores this line: it is "untrusted")
SIGNATURE_COMMENT = "untrusted comment: cmprep signature of ro-crate-metadata.json"
KEY_COMMENT = "untrusted comment: cmprep export signing key"
_PREHASHED = b"ED"  # minisign: Ed25519 over BLAKE2b-512 of the file
_KEY_ALGORITHM = b"Ed"


def event_line(event: Event) -> str:
    """One event as a line of ``events.jsonl``: every field its hash covers, and the hash."""
    return canonical_json({**event.body(), "hash": event.hash})


def chain_problems(text: str) -> list[str]:
    """Why the JSON lines TEXT are not one whole hash chain ([] when they are): each line
    must hash to its ``hash``, link to the line before (the first to the genesis hash) and
    carry the next seq."""
    prev, problems = GENESIS, list[str]()
    for n, line in enumerate(text.splitlines(), start=1):
        try:
            event = json.loads(line)
            body = {k: v for k, v in event.items() if k != "hash"}
            ok = event["seq"] == n and event["prev_hash"] == prev
        except (ValueError, KeyError, TypeError, AttributeError):
            return [*problems, f"line {n} is not an event"]
        if not ok:
            problems.append(f"line {n} (seq {event.get('seq')}) does not follow line {n - 1}")
        elif hash_body(body) != event.get("hash"):
            problems.append(f"line {n} (seq {n}) does not match its hash (changed)")
        prev = str(event.get("hash"))
    return problems


# --- minisign ----------------------------------------------------------------------------
def key_id(public: bytes) -> bytes:
    """Eight bytes naming a key in minisign files: the start of its SHA-256."""
    return hashlib.sha256(public).digest()[:8]


def public_key_file(public_b64: str) -> str:
    """The minisign public key file of a key recorded as base64 raw bytes (as @users has it)."""
    raw = base64.b64decode(public_b64)
    return f"{KEY_COMMENT}\n{_b64(_KEY_ALGORITHM + key_id(raw) + raw)}\n"


def sign_file(private: Ed25519PrivateKey, data: bytes, trusted_comment: str) -> str:
    """A minisign signature file of DATA (prehashed, as minisign signs by default)."""
    raw = private.public_key().public_bytes_raw()
    signature = private.sign(hashlib.blake2b(data, digest_size=64).digest())
    trusted = trusted_comment.encode()
    global_signature = private.sign(signature + trusted)
    return (
        f"{SIGNATURE_COMMENT}\n{_b64(_PREHASHED + key_id(raw) + signature)}\n"
        f"trusted comment: {trusted_comment}\n{_b64(global_signature)}\n"
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    """Base64 that must be written exactly as we write it: a changed padding bit counts."""
    data = base64.b64decode(text, validate=True)
    if _b64(data) != text:
        raise ValueError("not canonical base64")
    return data


def signature_problem(
    signature_file: bytes, key_file: bytes, data: bytes
) -> tuple[str, str] | None:
    """(file, problem) when the minisign signature does not hold, or None when it does."""
    try:
        key_lines = key_file.decode().split("\n")
        if key_lines[0] != KEY_COMMENT or len(key_lines) != 3 or key_lines[2]:
            raise ValueError("not a key file written by cmprep")
        key = _unb64(key_lines[1])
        if len(key) != 42 or key[:2] != _KEY_ALGORITHM:
            raise ValueError("not an Ed25519 key")
        public = Ed25519PublicKey.from_public_bytes(key[10:])
    except (ValueError, UnicodeDecodeError, binascii.Error) as err:
        return PUBLIC_KEY, f"unreadable public key ({err})"
    try:
        lines = signature_file.decode().split("\n")
        if lines[0] != SIGNATURE_COMMENT or len(lines) != 5 or lines[4]:
            raise ValueError("not a signature file written by cmprep")
        sig, trusted, global_sig = _unb64(lines[1]), lines[2], _unb64(lines[3])
        if len(sig) != 74 or sig[:2] != _PREHASHED or not trusted.startswith("trusted comment: "):
            raise ValueError("not a prehashed Ed25519 signature")
    except (ValueError, UnicodeDecodeError, binascii.Error) as err:
        return SIGNATURE, f"unreadable signature ({err})"
    if sig[2:10] != key[2:10]:
        return SIGNATURE, f"made with another key than the one in {PUBLIC_KEY}"
    try:
        public.verify(global_sig, sig[10:] + trusted[len("trusted comment: ") :].encode())
    except InvalidSignature:
        return SIGNATURE, "its trusted comment or global signature was changed"
    try:
        public.verify(sig[10:], hashlib.blake2b(data, digest_size=64).digest())
    except InvalidSignature:
        return METADATA, f"changed after it was signed ({SIGNATURE} does not match it)"
    return None


def trusted_comment(signature_file: bytes) -> str:
    """The trusted comment of a signature file ("" when there is none)."""
    for line in signature_file.decode(errors="replace").split("\n"):
        if line.startswith("trusted comment: "):
            return line[len("trusted comment: ") :]
    return ""


# --- the whole archive -------------------------------------------------------------------
@dataclass
class ArchiveCheck:
    """What checking an archive found: each problem names the file it is about."""

    root: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0  # files checked against the manifest
    events: int = 0  # events whose chain was checked
    signed_by: str = ""  # the signature's trusted comment ("" when unsigned)

    @property
    def ok(self) -> bool:
        return not self.problems


def described_files(metadata: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every File entity of a crate's metadata, by its path inside the crate."""
    graph = metadata.get("@graph")
    if not isinstance(graph, list):
        raise ValueError("no @graph")
    found = {}
    for node in graph:
        kind = node.get("@type") if isinstance(node, dict) else None
        kinds = kind if isinstance(kind, list) else [kind]
        if "File" in kinds:
            path = unquote(str(node["@id"]))
            found[path.removeprefix("./")] = node
    return found


def check_archive(root: str, files: Mapping[str, bytes]) -> ArchiveCheck:
    """Check an archive's files (paths inside its root folder ROOT, contents as read).

    The manifest must describe every file (but itself and its signature files) with the
    size and SHA-256 it has; the signature, when there is one, must hold for the manifest;
    every ``events.jsonl`` must be one whole hash chain.
    """
    out = ArchiveCheck(root=root)
    if METADATA not in files:
        out.problems.append((METADATA, "missing: this is not an .eln archive"))
        return out
    try:
        described = described_files(json.loads(files[METADATA]))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        out.problems.append((METADATA, f"not readable RO-Crate metadata ({err})"))
        return out
    if SIGNATURE in files:
        found = signature_problem(files[SIGNATURE], files.get(PUBLIC_KEY, b""), files[METADATA])
        out.problems += [found] if found else []
        out.signed_by = trusted_comment(files[SIGNATURE])
    else:
        out.problems.append((SIGNATURE, "missing: the archive is not signed, so a changed "
                             "manifest could not be told from the original"))  # fmt: skip
    for path, node in sorted(described.items()):
        out.problems += _file_problems(path, node, files)
        out.files += 1
        if path == EVENTS or path.endswith("/" + EVENTS):
            text = files.get(path, b"").decode(errors="replace")
            out.events += len(text.splitlines())
            out.problems += [(path, p) for p in chain_problems(text)]
    extra = sorted(set(files) - set(described) - {METADATA, SIGNATURE, PUBLIC_KEY})
    out.problems += [(path, "not named in the manifest (added)") for path in extra]
    return out


def _file_problems(
    path: str, node: Mapping[str, Any], files: Mapping[str, bytes]
) -> list[tuple[str, str]]:
    if path not in files:
        return [(path, "named in the manifest but missing from the archive")]
    data = files[path]
    if str(node.get("contentSize")) != str(len(data)):
        return [(path, f"is {len(data)} bytes; the manifest says {node.get('contentSize')}")]
    if node.get("sha256") != hashlib.sha256(data).hexdigest():
        return [(path, "its SHA-256 differs from the manifest's (changed)")]
    return []


def summary(problems: Iterable[tuple[str, str]]) -> list[str]:
    """Problems as lines a person reads: ``FILE: problem``."""
    return [f"{path}: {problem}" for path, problem in problems]
