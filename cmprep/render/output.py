"""Getting a rendered document out: PDF from the HTML, files written whole or not at all,
and CSV cells that a spreadsheet cannot run as formulas."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cmprep.errors import Hint, MissingExtra

if TYPE_CHECKING:  # a list's CSV cells need neither pathlib nor the package's folders
    from pathlib import Path


def to_pdf(html: str) -> bytes:
    """A PDF of standalone HTML (the print CSS is inline), via WeasyPrint."""
    try:
        from weasyprint import HTML
    except ImportError:  # the optional extra is not installed
        raise MissingExtra(
            "PDF output needs WeasyPrint, which is not installed",
            hint=Hint("install_extra", extra="pdf", package="weasyprint"),
        ) from None
    from cmprep.resources import templates_dir

    pdf: bytes = HTML(string=html, base_url=str(templates_dir())).write_pdf()
    return pdf


def write_output(content: str | bytes | Iterable[str], path: str | os.PathLike[str]) -> Path:
    """Write a rendered document atomically: complete, or not at all.

    The text goes to a temporary file in the same folder, is flushed to disk, then renamed
    over the target, so a reader (or a crash) never sees half a record. A document given
    in parts (a long report) is written part by part, never held whole.
    """
    from pathlib import Path

    target = Path(path)
    parts: Iterable[bytes] = (
        [content.encode("utf-8")]
        if isinstance(content, str)
        else [content]
        if isinstance(content, bytes)
        else (part.encode("utf-8") for part in content)
    )
    mode = (target.stat().st_mode & 0o777) if target.exists() else 0o644
    import tempfile  # a file written, not a list printed: loaded here

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; a printed record is for others to read
        with os.fdopen(fd, "wb") as handle:
            for data in parts:
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas in exported text (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") and not _is_number(value):
        return "'" + value
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
