"""Signing keys: each person's Ed25519 key pair, kept so that only their password opens it.

Why keys and not only hashes: a hash of signed content can be recomputed by anyone who can
edit the database file, so a content hash alone proves nothing about *who* signed. An
Ed25519 signature can only be made with the private key, and the private key is stored
encrypted under a key derived from the person's password (scrypt, then AES-GCM), so editing
the file without the password cannot produce a signature that verifies against the public
key recorded in the @users stream.

A live session holds the same private key wrapped under its random token instead, so a
logged-in person's entries are attributable without typing the password for each one; the
token lives only in the person's own session file, never in the database.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

ALGORITHM = "ed25519"
# the key-wrapping cost follows the password hash cost (people.SCRYPT_N), passed in
_R, _P = 8, 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


class KeyLocked(Exception):
    """The wrapped key did not open: a wrong password or token, or a damaged key."""


def new_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_text(private: Ed25519PrivateKey) -> str:
    """The public key as recorded in @users (raw 32 bytes, base64)."""
    return _b64(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def fingerprint(public: str) -> str:
    """A short name for a public key, printed in the trail when a key is issued."""
    return hashlib.sha256(_unb64(public)).hexdigest()[:16]


def _raw(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def wrap_with_password(private: Ed25519PrivateKey, password: str, cost: int) -> str:
    """The private key encrypted under scrypt(password); the public key is bound in as
    associated data, so a wrapped key cannot be paired with someone else's public key."""
    salt, nonce = os.urandom(16), os.urandom(12)
    kek = hashlib.scrypt(password.encode(), salt=salt, n=cost, r=_R, p=_P, dklen=32)
    sealed = AESGCM(kek).encrypt(nonce, _raw(private), public_text(private).encode())
    return f"scrypt-aesgcm${cost}${_b64(salt)}${_b64(nonce)}${_b64(sealed)}"


def unwrap_with_password(wrapped: str, password: str, public: str) -> Ed25519PrivateKey:
    try:
        scheme, cost, salt, nonce, sealed = wrapped.split("$")
        if scheme != "scrypt-aesgcm":
            raise ValueError(scheme)
        kek = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(cost), r=_R, p=_P, dklen=32
        )
        raw = AESGCM(kek).decrypt(_unb64(nonce), _unb64(sealed), public.encode())
    except (ValueError, InvalidTag) as err:
        raise KeyLocked("the signing key does not open with this password") from err
    return Ed25519PrivateKey.from_private_bytes(raw)


def _token_key(token: str) -> bytes:
    # the token is 256 random bits: a plain hash derives a key as strong as it
    return hashlib.sha256(b"cmprep session key|" + token.encode()).digest()


def wrap_with_token(private: Ed25519PrivateKey, token: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_token_key(token)).encrypt(nonce, _raw(private), public_text(private).encode())
    return f"token-aesgcm${_b64(nonce)}${_b64(sealed)}"


def unwrap_with_token(wrapped: str, token: str, public: str) -> Ed25519PrivateKey:
    try:
        scheme, nonce, sealed = wrapped.split("$")
        if scheme != "token-aesgcm":
            raise ValueError(scheme)
        raw = AESGCM(_token_key(token)).decrypt(_unb64(nonce), _unb64(sealed), public.encode())
    except (ValueError, InvalidTag) as err:
        raise KeyLocked("the session key does not open with this token") from err
    return Ed25519PrivateKey.from_private_bytes(raw)


def sign(private: Ed25519PrivateKey, message: bytes) -> str:
    return _b64(private.sign(message))


def is_valid(public: str, message: bytes, signature: str) -> bool:
    """Whether SIGNATURE over MESSAGE was made with the private half of PUBLIC."""
    try:
        Ed25519PublicKey.from_public_bytes(_unb64(public)).verify(_unb64(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True
