"""Personal data in messages: phone numbers, ID-card numbers, licence plates, e-mail addresses.

Found by jionlp's extractors and replaced by a placeholder naming the kind, so that logs (and
exported training data) keep the shape of a message without the person in it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from wangge.nlp.jionlp_loader import jionlp as load_jionlp

MASKS = {
    "cell_phone": "[手机号]",
    "landline_phone": "[电话]",
    "id_card": "[身份证号]",
    "licence_plate": "[车牌号]",
    "email": "[邮箱]",
}


@dataclass(frozen=True)
class PiiSpan:
    kind: str  # a key of MASKS
    start: int
    end: int


def find_pii(text: str) -> list[PiiSpan]:
    """The personal data in ``text``, in order, without overlaps (the earlier span wins)."""
    jionlp = load_jionlp()
    found = [
        PiiSpan(item["type"], *item["offset"])
        for item in jionlp.extract_phone_number(text, detail=True)
    ]
    for kind, extract in (
        ("id_card", jionlp.extract_id_card),
        ("licence_plate", jionlp.extract_motor_vehicle_licence_plate),
        ("email", jionlp.extract_email),
    ):
        found += [PiiSpan(kind, *item["offset"]) for item in extract(text, detail=True)]
    spans: list[PiiSpan] = []
    for span in sorted(map(partial(_trimmed, text), found), key=lambda s: (s.start, -s.end)):
        if not spans or span.start >= spans[-1].end:
            spans.append(span)
    return spans


def _trimmed(text: str, span: PiiSpan) -> PiiSpan:
    """The span without the blanks jionlp's patterns take in at its edges."""
    raw = text[span.start : span.end]
    start = span.start + len(raw) - len(raw.lstrip())
    return PiiSpan(span.kind, start, max(start, span.end - (len(raw) - len(raw.rstrip()))))


def mask_pii(text: str) -> str:
    """``text`` with each piece of personal data replaced by its kind's placeholder."""
    for span in reversed(find_pii(text)):
        text = text[: span.start] + MASKS[span.kind] + text[span.end :]
    return text


class PiiMaskingFilter(logging.Filter):
    """Masks personal data in every record a handler emits (message and arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_pii(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True
