"""Lists across batches, read from the query tables as they are printed.

A list over years of batches must cost what its rows cost, not what the history costs: the
filters run in the database, only the columns shown are read, and rows reach the shell one
by one. This module imports nothing but the store's filters, so a list command does not
load the protocol models, the signing code or the renderer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cmprep.store.query import ROW, BatchFilter, DeviationFilter

if TYPE_CHECKING:
    from cmprep.store.base import EventStore

Rows = Iterator[tuple[Any, ...]]


# the states every protocol's batches can be in, as the pipeline names them (equal to
# domain.pipeline's AWAITING_REVIEW, ON_HOLD and FINAL, tested): a list filtered by one of
# them needs neither the stored protocols nor the state machine's import
FIXED_STATES = ("awaiting_review", "on_hold", "released", "rejected")


class QueryService:
    """The batch and deviation lists; each call reads its rows afresh."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def batches(self, where: BatchFilter | None, columns: tuple[str, ...]) -> Rows:
        """COLUMNS of the batches matching WHERE, by start then id; ``ROW``: each whole
        row as JSON text."""
        return self.store.batch_table(where or BatchFilter(), columns)

    def batch_filter(self, state: str | None, protocol_id: str | None) -> BatchFilter:
        """The filter of a batch list as a person typed it: a protocol id in any case, a
        state as ``awaiting-review`` or ``Awaiting_Review``. An unknown protocol or state is
        NotFound listing the known ones: an empty list would read as "no such batches".

        Only then are the stored protocols read (their step ids name the stages a batch in
        progress is at); a list without a filter reads nothing more."""
        if not state and not protocol_id:
            return BatchFilter()
        typed = (state or "").strip().casefold().replace("-", "_").replace(" ", "_")
        if not protocol_id and typed in FIXED_STATES:  # no protocol needs to be read
            return BatchFilter(state=typed)
        from cmprep.domain import ids
        from cmprep.domain.pipeline import AWAITING_REVIEW, FINAL, ON_HOLD
        from cmprep.domain.protocols import PROTOCOLS_STREAM, fold_protocols
        from cmprep.errors import Hint, NotFound

        stored = list(fold_protocols(self.store.events(PROTOCOLS_STREAM)).values())
        if protocol_id:
            known = sorted({p.id for p in stored})
            found = ids.same(protocol_id, known)
            if found is None:
                raise NotFound(
                    f"no protocol {protocol_id!r}{ids.suggestion(protocol_id, known)}; "
                    f"protocols in this database: {', '.join(known) or 'none yet'}",
                    hint=Hint("list_protocols"),
                )
            protocol_id = found
        if state:
            fixed = [AWAITING_REVIEW, ON_HOLD, *FINAL]
            stages = sorted(
                {
                    str(s.get("branch") or s.get("id"))
                    for p in stored
                    if protocol_id in (None, p.id)
                    for s in p.content.get("steps", [])
                }
            )
            typed = state.strip()
            found = ids.same(typed, [*fixed, *stages]) or ids.same(
                typed.replace("-", "_").replace(" ", "_"), fixed
            )
            if found is None:
                raise NotFound(
                    f"no batch state {state!r}; a batch is {', '.join(fixed)}, or in progress "
                    f"at a stage: {', '.join(stages) or 'none yet'}"
                )
            state = found
        return BatchFilter(state=state, protocol_id=protocol_id)

    def deviations(self, where: DeviationFilter | None, columns: tuple[str, ...]) -> Rows:
        """COLUMNS of the deviations matching WHERE, by id; ``ROW``: each whole row as
        JSON text."""
        return self.store.deviation_table(where or DeviationFilter(), columns)


__all__ = ["ROW", "QueryService", "Rows"]
