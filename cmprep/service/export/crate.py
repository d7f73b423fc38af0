"""The RO-Crate metadata of an exported batch (``ro-crate-metadata.json``), as the ELN file
format of TheELNConsortium reads it.

What the ELN format asks for, and where it is here: the metadata descriptor with
``version`` and ``sdPublisher`` (an Organization: cmprep, with its ``name``); the
root Dataset ``./`` whose ``hasPart`` lists the batch's own Dataset; that Dataset with
``name``, ``author`` (an ``@id`` reference to a Person), ``keywords`` (one string) and its
files; each File with ``name``, ``encodingFormat``, ``contentSize`` (a string of bytes) and
``sha256``; one Person per person who acted on or signed the batch; and ``mentions`` of
the material lots and instruments the batch used, each a contextual entity.

Building the metadata is pure: it is handed the folded batch, the files' bytes and the
people, and returns a dict.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cmprep.domain.batch import Batch
from cmprep.domain.people import User

CRATE_SPEC = "https://w3id.org/ro/crate/1.1"
CONTEXT = "https://w3id.org/ro/crate/1.1/context"
PUBLISHER = "#cmprep"  # the software that published the crate (no public home to link yet)
SITE = "#site"  # the laboratory whose database the record comes from
LICENSE = "#license"
DESCRIPTOR_VERSION = "1.0"  # of this crate's layout, as the ELN format's descriptor asks


@dataclass(frozen=True)
class Part:
    """One file of the archive: its path inside the crate, bytes and what it is."""

    path: str
    data: bytes
    encoding: str  # a media type
    description: str
    in_dataset: bool = True  # False: the archive's own tooling, at the crate's root


def person_id(name: str) -> str:
    return f"#person-{quote(name)}"


def _ref(ident: str) -> dict[str, str]:
    return {"@id": ident}


def _refs(idents: list[str]) -> list[dict[str, str]] | dict[str, str]:
    """References to IDENTS: one alone is a single value, not a list of one (RO-Crate
    recommends it)."""
    refs = [_ref(i) for i in idents]
    return refs[0] if len(refs) == 1 else refs


def people_of(batch: Batch) -> dict[str, dict[str, Any]]:
    """Everyone who wrote to the batch, and every signer, with what their signatures
    say of them (printed name, role), by user name."""
    found: dict[str, dict[str, Any]] = {}
    for e in batch.events:
        entry = found.setdefault(e.actor, {"name": e.actor, "roles": set(), "signed": set()})
        sig = e.payload.get("signature")
        if isinstance(sig, dict) and sig.get("signer"):
            who = found.setdefault(
                str(sig["signer"]), {"name": sig["signer"], "roles": set(), "signed": set()}
            )
            who["full_name"] = sig.get("full_name")
            who["roles"].add(str(sig.get("role", "")))
            who["signed"].add(str(sig.get("meaning", "")))
        entry.setdefault("full_name", None)
    return found


def _person(name: str, info: dict[str, Any], user: User | None) -> dict[str, Any]:
    full = (user.full_name if user else None) or info.get("full_name") or name
    given, _, family = str(full).rpartition(" ")
    node: dict[str, Any] = {
        "@id": person_id(name),
        "@type": "Person",
        "name": full,
        "identifier": name,
        "affiliation": _ref(SITE),  # a user of the exporting site's database
    }
    if given:
        node["givenName"], node["familyName"] = given, family
    roles = sorted(r for r in info.get("roles", set()) if r) or ([user.role.value] if user else [])
    if roles:
        node["jobTitle"] = ", ".join(roles)
    if info.get("signed"):
        node["description"] = "signed the record: " + ", ".join(sorted(info["signed"]))
    return node


def _mentions(batch: Batch) -> list[dict[str, Any]]:
    """The lots and instruments the batch's steps named, once each, as recorded then."""
    lots: dict[str, dict[str, Any]] = {}
    instruments: dict[str, dict[str, Any]] = {}
    for entry in batch.steps.values():
        for lot in entry.lots:
            node = lots.setdefault(
                str(lot.get("lot")),
                {
                    "@id": f"#lot-{quote(str(lot.get('lot')))}",
                    "@type": "Product",
                    "name": f"{lot.get('material', 'material')} lot {lot.get('lot')}",
                    "identifier": str(lot.get("lot")),
                    "category": str(lot.get("material", "")),
                    "description": f"expiry {lot.get('expiry', 'not recorded')}; used at",
                },
            )
            node["description"] += f" {entry.step.id}"
        for item in entry.equipment:
            node = instruments.setdefault(
                str(item.get("id")),
                {
                    "@id": f"#instrument-{quote(str(item.get('id')))}",
                    "@type": "IndividualProduct",
                    "name": f"{item.get('kind', 'instrument')} {item.get('id')}",
                    "identifier": str(item.get("id")),
                    "category": str(item.get("kind", "")),
                    "description": f"calibration due {item.get('calibration_due', '?')}; used at",
                },
            )
            node["description"] += f" {entry.step.id}"
    return [*lots.values(), *instruments.values()]


def metadata(
    batch: Batch,
    parts: list[Part],
    users: dict[str, User],
    *,
    folder: str,
    created: str,
    exporter: str | None,
    version: str,
    site: str,
) -> dict[str, Any]:
    """The crate's ``ro-crate-metadata.json`` as a dict (see the module's docstring).

    SITE identifies the database the record comes from (its random id): the laboratory's
    name is not recorded in cmprep, so the site is named by it."""
    people = people_of(batch)
    if exporter:
        people.setdefault(exporter, {"name": exporter, "roles": set(), "signed": set()})
        people[exporter]["signed"].add("exported (archive signature)")
    folk = {k.casefold(): u for k, u in users.items()}
    persons = [_person(n, info, folk.get(n.casefold())) for n, info in sorted(people.items())]
    author = _ref(person_id(batch.started_by))
    mentions = _mentions(batch)
    dataset_id = f"./{quote(folder)}/"
    files: list[dict[str, Any]] = []
    for part in parts:
        files.append(
            {
                "@id": f"./{quote(part.path)}",
                "@type": "File",
                "name": part.path.rsplit("/", 1)[-1],
                "description": part.description,
                "encodingFormat": part.encoding,
                "contentSize": str(len(part.data)),
                "sha256": hashlib.sha256(part.data).hexdigest(),
                "author": _ref(person_id(exporter or batch.started_by)),
                "dateCreated": created,
            }
        )
    protocol = batch.protocol
    decision = batch.decision or {}
    dataset: dict[str, Any] = {
        "@id": dataset_id,
        "@type": "Dataset",
        "name": f"Batch record {batch.id}",
        "identifier": batch.id,
        "genre": "experiment",
        "description": (
            f"Batch {batch.id} of {protocol.title} ({protocol.id} v{protocol.version}, "
            f"protocol content hash {batch.protocol_hash}); state: {batch.state}; "
            f"{batch.seq} events, chain head {batch.head_hash}."
        ),
        "author": author,
        "keywords": ", ".join(
            ["batch record", "GMP", "MSC-conditioned medium", protocol.id, batch.state]
        ),
        "dateCreated": batch.started_at,
        "dateModified": batch.events[-1].recorded_at if batch.events else batch.started_at,
        "hasPart": _refs([f["@id"] for f, p in zip(files, parts, strict=True) if p.in_dataset]),
    }
    if mentions:
        dataset["mentions"] = _refs([m["@id"] for m in mentions])
    others = [p["@id"] for p in persons if p["@id"] != author["@id"]]
    if others:
        dataset["contributor"] = _refs(others)
    if decision:
        dataset["comment"] = str(decision.get("reason") or decision.get("comment") or "")
    root_parts = _refs(
        [dataset_id] + [f["@id"] for f, p in zip(files, parts, strict=True) if not p.in_dataset]
    )
    return {
        "@context": CONTEXT,
        "@graph": [
            {
                "@id": "ro-crate-metadata.json",
                "@type": "CreativeWork",
                "about": _ref("./"),
                "conformsTo": _ref(CRATE_SPEC),
                "dateCreated": created,
                "sdPublisher": _ref(PUBLISHER),
                "version": DESCRIPTOR_VERSION,
            },
            {
                "@id": "./",
                "@type": "Dataset",
                "name": f"cmprep export of batch {batch.id}",
                "description": (
                    f"The batch record of {batch.id} as exported by cmprep {version}: the "
                    "record, its events with their hash chain, the protocol it started "
                    "from, QC results and deviations."
                ),
                "datePublished": created,
                "license": _ref(LICENSE),
                "author": author,
                "publisher": _ref(SITE),
                "hasPart": root_parts,
            },
            {
                "@id": PUBLISHER,
                "@type": "Organization",
                "name": f"cmprep {version}",
                "description": "Batch records for MSC-conditioned medium",
            },
            {
                "@id": SITE,
                "@type": "Organization",
                "name": f"The laboratory of cmprep database {site}",
                "identifier": site,
                "description": "The site whose batch record this is, named by its database",
            },
            {
                "@id": LICENSE,
                "@type": "CreativeWork",
                "name": "All rights reserved",
                "description": "The record belongs to the site that exported it; ask it "
                "before any reuse.",
            },
            dataset,
            *files,
            *persons,
            *mentions,
        ],
    }
