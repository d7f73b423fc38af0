"""Every public key each person has held, and from when.

Apart from ``cmprep.domain.keys`` (which makes and opens keys with the cryptography library):
the ring holds public keys as text, so the people fold and a command that only reads (a
batch status) carry it without loading the library.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class KeyRing:
    """Every public key each person has held, from when: a signature is checked against
    the key valid when it was made, so a later reset does not void earlier signatures and
    an old key cannot sign anything dated after its replacement."""

    held: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # name -> (since, key)

    def issue(self, name: str, since: str, public: str) -> None:
        self.held.setdefault(name.casefold(), []).append((since, public))

    def key_at(self, name: str, at: str) -> str | None:
        found = None
        for since, public in self.held.get(name.casefold(), []):
            if since <= at:
                found = public
        return found
