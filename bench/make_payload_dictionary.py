"""Write the preset dictionary the SQLite store packs event payloads with (run once).

Why a preset dictionary: an event's payload is a few hundred bytes of JSON whose keys
("display", "verdict", "in spec", parameter names) repeat in every event but rarely within
one, so deflate alone halves it and deflate primed with typical payloads takes it to about a
sixth. The dictionary is part of the stored format: a payload packed with dictionary N can
only be read with dictionary N, so a written dictionary is never changed; a better one is
written as the next number (``cmprep/store/packing.py`` reads every number it knows).

This script made dictionary 1 from the database ``make demo`` builds (not the bench's, which
the ratio is measured on): the first payload of each kind of event (type, step, protocol),
least frequent first, so the commonest sit nearest the data, as deflate prefers; protocol
imports and people's keys are left out. Usage:

    python bench/make_payload_dictionary.py --db demo-output/demo.db --out dictionary.bin
"""

from __future__ import annotations

import argparse
import collections
import json
import sqlite3
from pathlib import Path

from cmprep.store.packing import unpack

SIZE = 16 * 1024  # larger gains little (measured: 16 KB 148 B/event, 32 KB 146 B) and costs
# more to load at each compression
LEFT_OUT = ("protocol_imported", "user_added", "password_reset", "session_opened")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    first: dict[tuple[str, str, str], str] = {}
    count: collections.Counter[tuple[str, str, str]] = collections.Counter()
    protocol: dict[str, str] = {}
    for batch, kind, payload in conn.execute(
        "SELECT batch_id, type, payload FROM events ORDER BY rowid"
    ):
        if kind in LEFT_OUT:
            continue
        payload = unpack(payload)  # a demo made since packing stores them packed
        data = json.loads(payload)
        if kind == "batch_started":
            protocol[batch] = str(data.get("protocol_id"))
        key = (kind, str(data.get("step", "")), protocol.get(batch, ""))
        count[key] += 1
        first.setdefault(key, payload)
    ordered = sorted(first, key=lambda k: (count[k], k))
    text = "".join(first[k] for k in ordered).encode()
    Path(args.out).write_bytes(text[-SIZE:])
    print(f"{len(ordered)} kinds of event, {min(len(text), SIZE)} bytes -> {args.out}")


if __name__ == "__main__":
    main()
