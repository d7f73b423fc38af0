"""Check a cmprep .eln archive without cmprep: python3 verify_eln.py FILE.eln

Needs Python 3.9+ and the `cryptography` package, nothing else. Checks the Ed25519
(minisign) signature of the manifest ro-crate-metadata.json with minisign.pub, each file's
size and SHA-256 against the manifest, and the hash chain of events.jsonl. Prints each
problem with the file it is in; exit status 1 on any. Compare the key fingerprint printed
with the one the exporting site published for the signer."""

import base64
import hashlib
import json
import sys
import zipfile
import zlib
from urllib.parse import unquote

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HEADS = ("untrusted comment: cmprep signature of ro-crate-metadata.json", "untrusted comment: "
         "cmprep export signing key")  # fmt: skip
SIGNED = "ro-crate-metadata.json.minisig / minisign.pub"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def signature_problem(meta: bytes, sig: bytes, key: bytes) -> str:
    """Why the signature of the manifest does not hold ("" when it does)."""
    try:
        head, line, trusted, glob, end = sig.decode().split("\n")
        key_head, key_line, key_end = key.decode().split("\n")
        s, g, k = (base64.b64decode(x, validate=True) for x in (line, glob, key_line))
        written = [base64.b64encode(x).decode() for x in (s, g, k)] == [line, glob, key_line]
        if not written or (head, key_head, end, key_end) != (*HEADS, "", "") or s[2:10] != k[2:10]:
            return f"{SIGNED}: changed, or not written by cmprep"
        public = Ed25519PublicKey.from_public_bytes(k[10:])
        public.verify(g, s[10:] + trusted.replace("trusted comment: ", "", 1).encode())
    except Exception:
        return f"{SIGNED}: missing, or changed"
    try:
        public.verify(s[10:], hashlib.blake2b(meta, digest_size=64).digest())
    except Exception:
        return "ro-crate-metadata.json: changed after it was signed"
    print(trusted)
    return ""


def chain_problems(name: str, data: bytes) -> list[str]:
    """Each line of events.jsonl must hash to its hash and link to the line before."""
    prev, bad = "0" * 64, []
    for n, line in enumerate(data.decode().splitlines(), 1):
        e = json.loads(line)
        body = {k: v for k, v in e.items() if k != "hash"}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if (e["seq"], e["prev_hash"], e["hash"]) != (n, prev, sha256(text.encode())):
            bad.append(f"{name}: line {n} breaks the hash chain")
        prev = e["hash"]
    return bad


def main(path: str) -> int:
    archive, files, bad = zipfile.ZipFile(path), {}, []
    for member in (n for n in archive.namelist() if not n.endswith("/")):
        try:
            files[member.split("/", 1)[1]] = archive.read(member)
        except (zipfile.BadZipFile, zlib.error) as err:  # a changed byte of a compressed file
            bad.append(f"{member}: {err}")
    meta = files.pop("ro-crate-metadata.json", b'{"@graph": []}')
    sig, key = files.pop("ro-crate-metadata.json.minisig", b""), files.pop("minisign.pub", b"")
    bad.append(signature_problem(meta, sig, key))
    for node in json.loads(meta)["@graph"]:
        name = unquote(str(node.get("@id"))).replace("./", "", 1)
        if "File" in str(node.get("@type")) and (data := files.pop(name, None)) is None:
            bad.append(f"{name}: named in the manifest but missing")
        elif "File" in str(node.get("@type")) and data is not None:
            if [str(len(data)), sha256(data)] != [str(node.get("contentSize")), node.get("sha256")]:
                bad.append(f"{name}: its size or SHA-256 is not the manifest's (changed)")
            elif name.endswith("events.jsonl"):
                bad += chain_problems(name, data)
    bad = [b for b in bad if b] + [f"{name}: not named in the manifest" for name in files]
    print("\n".join(bad) or "OK: every file matches the signed manifest; the chain is whole")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
