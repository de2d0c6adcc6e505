"""Personal data in messages: phone numbers, ID-card numbers, licence plates, e-mail addresses.

Found by jionlp's extractors and replaced by a placeholder naming the kind, so that logs (and
exported training data) keep the shape of a message without the person in it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from urllib.parse import unquote_plus

from wangge.nlp.jionlp_loader import jionlp as load_jionlp

MASKS = {
    "cell_phone": "[手机号]",
    "landline_phone": "[电话]",
    "id_card": "[身份证号]",
    "licence_plate": "[车牌号]",
    "email": "[邮箱]",
}


#: Full-width ASCII (U+FF01–U+FF5E) and the ideographic space to their half-width forms: one
#: character for one, so that offsets found in the translated text hold in the original.
_HALF_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}

#: The blanks and hyphens (dashes) between two digits: those of a number written in groups.
_SEPARATORS_BETWEEN_DIGITS = re.compile(r"(?<=[0-9])[\s\-\u2010-\u2015]+(?=[0-9])")

#: A character of an e-mail address's local part (the common ones).
_EMAIL_LOCAL_PART = re.compile(r"[A-Za-z0-9._%+-]")

#: The ASCII punctuation next to which jionlp's e-mail pattern neither starts nor ends a match,
#: so that it missed ``?to=wang@example.com&x=1``, ``'wang@example.com'`` and ``wang+tag@…``:
#: blanked, one character for one, in the text the e-mails are searched in.
_EMAIL_EDGES = str.maketrans(dict.fromkeys("!#$%&'*+/=?^`{|}~", " "))


@dataclass(frozen=True)
class PiiSpan:
    kind: str  # a key of MASKS
    start: int
    end: int


def find_pii(text: str) -> list[PiiSpan]:
    """The personal data in ``text``, in order, without overlaps: spans that overlap are joined
    into one of the longer one's kind (浙ab1234@example.com is a plate and an e-mail).

    Full-width characters (``１３８…``, ``ｘ＠ｙ．ｃｎ``) are read as their half-width forms, and
    a number written in groups (``3301061990 0101 1234``, ``330106-19900101-1234``) is also
    read without the blanks or hyphens between its groups.
    """
    half = text.translate(_HALF_WIDTH)
    found = _extracted(half)
    compact, positions = _without_separators_between_digits(half)
    if compact != half:
        found += [
            PiiSpan(span.kind, positions[span.start], positions[span.end - 1] + 1)
            for span in _extracted(compact)
            if span.end > span.start
        ]
    spans: list[PiiSpan] = []
    for span in sorted(map(partial(_trimmed, half), found), key=lambda s: (s.start, -s.end)):
        if not spans or span.start >= spans[-1].end:
            spans.append(span)
        elif span.end > spans[-1].end:
            last = spans[-1]
            longer = span if span.end - span.start > last.end - last.start else last
            spans[-1] = PiiSpan(longer.kind, last.start, span.end)
    return spans


def _extracted(text: str) -> list[PiiSpan]:
    """What jionlp's extractors find in ``text``, possibly overlapping."""
    jionlp = load_jionlp()
    found = [
        PiiSpan(item["type"], *item["offset"])
        for item in jionlp.extract_phone_number(text, detail=True)
    ]
    for kind, extract, searched in (
        ("id_card", jionlp.extract_id_card, text),
        ("licence_plate", jionlp.extract_motor_vehicle_licence_plate, text),
        ("email", jionlp.extract_email, text.translate(_EMAIL_EDGES)),
    ):
        found += [PiiSpan(kind, *item["offset"]) for item in extract(searched, detail=True)]
    return [_whole_email(text, span) if span.kind == "email" else span for span in found]


def _whole_email(text: str, span: PiiSpan) -> PiiSpan:
    """The e-mail span widened to the start of its local part: jionlp's pattern starts a match
    only after a character that cannot be in an address, and so finds ``li@example.com`` in
    ``/wang.li@example.com`` (a URL's path) or ``?to=wang.li@example.com``."""
    start = span.start
    while start > 0 and _EMAIL_LOCAL_PART.fullmatch(text[start - 1]):
        start -= 1
    return PiiSpan(span.kind, start, span.end)


def _without_separators_between_digits(text: str) -> tuple[str, list[int]]:
    """``text`` without the blanks and hyphens between two digits, and for each character kept
    its index in ``text``."""
    dropped = {
        index
        for separators in _SEPARATORS_BETWEEN_DIGITS.finditer(text)
        for index in range(*separators.span())
    }
    kept = [index for index in range(len(text)) if index not in dropped]
    return "".join(text[index] for index in kept), kept


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
    """Masks personal data in every record a handler emits: message, arguments, exception and
    stack text.

    The arguments stay arguments (masked one by one), so formatters that read them, such as
    uvicorn's access formatter (a 5-tuple: client, method, path, HTTP version, status), still
    work. Only when the formatted message still holds personal data after that (a number split
    between the format and an argument, or in an argument that is not a string) is the masked
    message put in ``msg`` and the arguments dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_pii(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_masked_argument(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _masked_argument(arg) for key, arg in record.args.items()}
        coloured = record.__dict__.get("color_message")  # uvicorn's format for a terminal
        if isinstance(coloured, str):
            record.__dict__["color_message"] = mask_pii(coloured)
        message = record.getMessage()
        masked = mask_pii(message)
        if masked != message:
            record.msg, record.args = masked, ()
            record.__dict__.pop("color_message", None)
        if record.exc_info:
            record.exc_text = record.exc_text or _FORMATTER.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = mask_pii(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_pii(record.stack_info)
        return True


#: Formats the exceptions of log records (as :class:`logging.Formatter` does by default).
_FORMATTER = logging.Formatter()


def _masked_argument(arg: object) -> object:
    """A log record's argument with its personal data masked: a string is masked as written
    and as percent-decoded (a URL's path or query); other values are kept."""
    if not isinstance(arg, str):
        return arg
    masked = mask_pii(arg)
    decoded = unquote_plus(masked)
    if decoded != masked and mask_pii(decoded) != decoded:
        return mask_pii(decoded)
    return masked
