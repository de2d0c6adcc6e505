"""How a message's fields become the one text the models read.

Training (a title and a body column of a file) and serving (``title`` and ``content`` of an API
request) must prepare that text the same way, or the model would see features at serving time it
was never trained on: both normalise each field with :func:`normalized`, once, and join them with
:func:`message_text`; no component normalises again.
"""

from __future__ import annotations

from collections.abc import Iterable

from wangge.nlp.normalize import normalize_text


def normalized(field: str | None) -> str:
    """A field in the one form every component reads: :func:`~wangge.nlp.normalize.
    normalize_text` with traditional characters made simplified (the gazetteer's and the
    training data's script)."""
    return normalize_text(field or "", simplify=True)


def message_text(fields: Iterable[str | None]) -> str:
    """The non-blank fields, in order, joined with a line break."""
    return "\n".join(field for field in fields if field is not None and field.strip())
