"""How a message's fields become the one text the models read.

Training (a title and a body column of a file) and serving (``title`` and ``content`` of an API
request) must build that text the same way, or the model would see features at serving time it
was never trained on: both call :func:`message_text`.
"""

from __future__ import annotations

from collections.abc import Iterable


def message_text(fields: Iterable[str | None]) -> str:
    """The non-blank fields, in order, joined with a line break."""
    return "\n".join(field for field in fields if field is not None and field.strip())
