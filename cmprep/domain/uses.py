"""The lots a batch used, as query rows: what a recall reads.

Why a projection: "which batches used lot FBS-24-0711?" is asked when a supplier recalls a
lot, and answering it by reading every batch's events cost more with every batch the lab
made. One row per (batch, step, lot), kept by the write path beside the batch row, rebuilt
from the log with the other query tables and compared by verification, makes it one
indexed query. Pure: rows from a folded batch.
"""

from __future__ import annotations

from typing import Any

from cmprep.domain.batch import Batch


def lot_uses(batch: Batch) -> list[dict[str, Any]]:
    """Each lot a step of BATCH named, with when (performed) and by whom, in step order."""
    return [
        {
            "batch_id": batch.id,
            "step": entry.step.id,
            "lot": str(used.get("lot")),
            "material": used.get("material"),
            "used_at": str(entry.performed_at or entry.recorded_at or ""),
            "used_by": str(entry.actor or ""),
        }
        for entry in batch.steps.values()
        for used in entry.lots
    ]


__all__ = ["lot_uses"]
