"""Reading message tables in whatever form they arrive, and writing results back.

Messages come as CSV or TSV exports (UTF-8 from newer systems, GBK/GB18030 from older Chinese
Windows software), Excel workbooks, JSON Lines, or Hugging Face datasets saved with
``save_to_disk``. :func:`read_table` turns any of them into a DataFrame of strings,
:func:`resolve_columns` finds the title, body, label, time and id columns under their usual
Chinese or English names, and :func:`load_messages` checks every row before training sees it.

Row numbers
-----------
Every error names the row a person has to look at to fix it:

* CSV, TSV, XLSX: the row as a spreadsheet shows it: the header is row 1, the first record
  row 2, and a record whose quoted field spans several lines is still a single row;
* JSON Lines: the line number;
* a JSON list or a Hugging Face dataset: the 1-based position of the record.

Rows with no content at all (blank lines, empty spreadsheet rows) are skipped; the other rows
keep their numbers.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import openpyxl
import pandas as pd
from charset_normalizer import from_bytes
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.utils.exceptions import InvalidFileException

from wangge.errors import DataError
from wangge.nlp.fields import message_text, normalized

logger = logging.getLogger(__name__)

#: The names each kind of column goes by, in order of preference (compared case-insensitively,
#: ignoring surrounding whitespace and byte-order marks).
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "title": ("留言主题", "主题", "标题", "title", "subject"),
    "body": (
        "留言详情",
        "留言内容",
        "正文",
        "详情",
        "内容",
        "问题描述",
        "诉求内容",
        "事件描述",
        "描述",
        "content",
        "text",
        "body",
        "description",
    ),  # fmt: skip
    "label": ("一级标签", "一级分类", "标签", "category", "label"),
    "time": ("留言时间", "时间", "created_at"),
    "id": ("留言编号", "编号", "id", "message_id"),
    # Structured location fields, read by routing (wangge.batch.messages).
    "address": ("地址", "详细地址", "事发地址", "address"),
    "latitude": ("纬度", "latitude", "lat"),
    "longitude": ("经度", "longitude", "lon", "lng"),
    "grid": ("网格", "网格编号", "所属网格", "grid_id", "grid"),
    "department": ("部门", "处理部门", "承办单位", "department"),
    "reporter": ("留言用户", "用户", "reporter", "user_id", "user"),
    # Reactions, for the heat of a case (wangge ingest).
    "likes": ("点赞数", "点赞", "likes"),
    "dislikes": ("反对数", "反对", "dislikes"),
}

# Extension -> delimiter; None means "sniff it".
_DELIMITED: dict[str, str | None] = {".csv": None, ".txt": None, ".tsv": "\t"}
_EXCEL = (".xlsx", ".xlsm")
_JSON_LINES = (".jsonl", ".ndjson")
_READABLE = (*_DELIMITED, *_EXCEL, *_JSON_LINES, ".json")
_WRITABLE = (".csv", *_JSON_LINES, ".xlsx")

#: A column the names do not place, whose typical (median) non-blank value is at least this
#: many characters, mostly letters (CJK or Latin), is taken for message text: scoring the
#: title alone beside it would ignore most of the message.
LONG_TEXT_CHARS = 20
_LONG_TEXT_SAMPLE = 1000

_SNIFF_DELIMITERS = ",\t;|"
_SNIFF_CHARS = 64 * 1024
# pandas counts this row from 0, the header being row 0.
_UNCLOSED_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


@dataclass(frozen=True)
class ColumnSpec:
    """Which columns of a table hold what; ``text`` is never empty."""

    text: tuple[str, ...]
    label: str | None = None
    time: str | None = None
    id: str | None = None


@dataclass
class LoadedMessages:
    """A checked table of messages.

    ``frame`` keeps every original column (to write results next to them) and has a fresh
    0-based index; ``fields`` (each row's text columns, normalised), ``texts`` (those joined:
    what the models read), ``labels`` and ``rows`` are aligned with it. ``rows[i]`` is the
    row number of ``frame.iloc[i]`` in the source file (see the module docstring). ``labels``
    is ``None`` when the table has no label column, and holds ``""`` for rows without a label
    when labels are not required. ``empty`` lists the positions of rows without text (their
    text is ``""``), kept only when the loader was asked to (``allow_empty``).
    """

    frame: pd.DataFrame
    columns: ColumnSpec
    path: Path
    fields: list[tuple[str, ...]]
    texts: list[str]
    labels: list[str] | None
    rows: list[int]
    empty: list[int] = field(default_factory=list)

    def empty_errors(self) -> list[DataError]:
        """Each row without text as the error naming its file, row and column(s)."""
        return [_empty_text(self, index) for index in self.empty]

    def error(self, message: str, index: int, column: str | None = None) -> DataError:
        """The error ``message`` about the row at position ``index`` (and ``column``), naming
        the file and the row as the file numbers it."""
        return DataError(message, path=self.path, row=self.rows[index], column=column)


@dataclass(frozen=True)
class FileSummary:
    """What a file command did: the rows it wrote, the text columns it read, and the rows
    without text (written flagged), each as the error naming its file, row and column."""

    rows: int
    text_columns: tuple[str, ...]
    empty: list[DataError]

    @classmethod
    def of(cls, data: LoadedMessages, **figures: Any) -> Self:
        """The summary of writing ``data``; ``figures`` are those a subclass adds."""
        return cls(len(data.frame), data.columns.text, data.empty_errors(), **figures)


def _empty_text(data: LoadedMessages, index: int) -> DataError:
    text = data.columns.text
    names = " and ".join(repr(c) for c in text)
    verb = "is" if len(text) == 1 else "are all"
    return data.error(f"no text: {names} {verb} empty", index, text[0] if len(text) == 1 else None)


def titles_and_bodies(data: LoadedMessages) -> list[tuple[str, str]]:
    """Each row's title and body, normalised: with two or more text columns the first is the
    title and the rest, joined like :func:`~wangge.nlp.fields.message_text`, the body; with
    one, all is body."""
    if len(data.columns.text) == 1:
        return [("", message_text(fields)) for fields in data.fields]
    return [(fields[0], message_text(fields[1:])) for fields in data.fields]


def read_table(
    path: str | Path, *, sheet: str | int | None = None, split: str | None = None
) -> pd.DataFrame:
    """Read a table of messages; every cell becomes a string, missing values ``""``.

    The format follows the extension: ``.csv``/``.txt`` (delimiter sniffed, ``,`` when in
    doubt), ``.tsv``, ``.xlsx``/``.xlsm`` (first sheet, or ``sheet`` by name or 0-based
    position), ``.jsonl``/``.ndjson`` (one object per line), ``.json`` (a list of objects). A
    directory is read as a Hugging Face dataset saved with ``save_to_disk``; of a
    ``DatasetDict`` the ``split`` split is taken, else ``train``, else the only one.

    Text files are decoded as UTF-8 (with or without a byte-order mark), else GB18030 (which
    covers GBK and GB2312), else as charset-normalizer guesses. Text is returned as is;
    normalisation happens later. JSON values that are not strings are kept as their JSON text
    (``1``, ``true``, ``["a", "b"]``). Rows with no content at all are dropped.

    Raises :class:`~wangge.errors.DataError` for a missing, empty, undecodable or malformed
    file, naming the row when one is to blame.
    """
    return _read_table_rows(Path(path), sheet=sheet, split=split)[0]


def find_column(frame: pd.DataFrame, kind: str) -> str | None:
    """The first column of ``frame`` named as :data:`COLUMN_NAMES` lists for ``kind``."""
    lookup: dict[str, str] = {}
    for column in frame.columns:
        lookup.setdefault(_canonical(column), column)
    return next((lookup[n] for n in COLUMN_NAMES[kind] if _canonical(n) in lookup), None)


def resolve_columns(
    frame: pd.DataFrame,
    *,
    path: str | Path,
    text_columns: Sequence[str] | None = None,
    label_column: str | None = None,
    time_column: str | None = None,
    id_column: str | None = None,
    require_label: bool,
) -> ColumnSpec:
    """Find the columns holding the text, label, time and id of each message.

    A column named explicitly must exist (an exact match wins, otherwise a match ignoring case
    and surrounding whitespace). Others are looked up under :data:`COLUMN_NAMES`; the text is
    the title column then the body column, whichever exist; a title found without a body while
    another column holds long text (:data:`LONG_TEXT_CHARS`) raises a DataError naming them,
    rather than scoring titles alone. ``path`` only serves the error messages. An empty
    ``text_columns`` means "detect them", like ``None``.
    """
    lookup: dict[str, str] = {}
    for column in frame.columns:
        lookup.setdefault(_canonical(column), column)

    def explicit(name: str) -> str:
        if name in frame.columns:
            return name
        if _canonical(name) in lookup:
            return lookup[_canonical(name)]
        raise DataError(
            f"no such column; the columns are: {_listing(frame.columns)}", path=path, column=name
        )

    def detect(kind: str) -> str | None:
        return find_column(frame, kind)

    if isinstance(text_columns, str):
        text_columns = (text_columns,)
    if text_columns:
        text = tuple(explicit(name) for name in text_columns)
    else:
        title, body = detect("title"), detect("body")
        if title is not None and body is None:
            _refuse_title_alone(frame, title, path)
        text = tuple(c for c in (title, body) if c is not None)
        if not text:
            raise DataError(
                "no text column found; a title column is one of "
                f"{_listing(COLUMN_NAMES['title'])} and a body column one of "
                f"{_listing(COLUMN_NAMES['body'])}, but the columns are: "
                f"{_listing(frame.columns)}. Name the text columns with --text-column.",
                path=path,
            )

    label = explicit(label_column) if label_column is not None else detect("label")
    if label is None and require_label:
        raise DataError(
            f"no label column found; it is one of {_listing(COLUMN_NAMES['label'])}, but the "
            f"columns are: {_listing(frame.columns)}. Name it with --label-column.",
            path=path,
        )
    return ColumnSpec(
        text=text,
        label=label,
        time=explicit(time_column) if time_column is not None else detect("time"),
        id=explicit(id_column) if id_column is not None else detect("id"),
    )


def _refuse_title_alone(frame: pd.DataFrame, title: str, path: str | Path) -> None:
    """Raise when a title column was found but no body column, while another column holds long
    text (probably the body under a name not in :data:`COLUMN_NAMES`): scoring the title alone
    would quietly ignore most of each message."""
    known = {find_column(frame, kind) for kind in COLUMN_NAMES} - {None}
    long = [
        column
        for column in frame.columns
        if column not in known and _is_long_text(frame[column].iloc[:_LONG_TEXT_SAMPLE])
    ]
    if long:
        options = " ".join(f"--text-column {c}" for c in (title, *long))
        raise DataError(
            f"only the title column {title!r} was recognised, but {_listing(long)} "
            f"{'holds' if len(long) == 1 else 'hold'} long text too; name the text columns "
            f"(e.g. {options}), or pass --text-column {title} to read the title alone",
            path=path,
        )


def _is_long_text(values: pd.Series) -> bool:
    """Whether a column's typical non-blank value is a sentence or more of text."""
    cells = [value.strip() for value in values if value.strip()]
    if not cells:
        return False
    lengths = sorted(len(cell) for cell in cells)
    letters = sorted(sum(ch.isalpha() for ch in cell) / len(cell) for cell in cells)
    middle = len(cells) // 2
    return lengths[middle] >= LONG_TEXT_CHARS and letters[middle] >= 0.5


def load_messages(
    path: str | Path,
    *,
    text_columns: Sequence[str] | None = None,
    label_column: str | None = None,
    time_column: str | None = None,
    id_column: str | None = None,
    require_label: bool = False,
    allow_empty: bool = False,
    sheet: str | int | None = None,
    split: str | None = None,
) -> LoadedMessages:
    """Read a table (:func:`read_table`), find its columns (:func:`resolve_columns`), check rows.

    The text of a row is its non-blank text columns, each normalised, joined with ``"\\n"``
    (as the pipeline prepares it: :mod:`wangge.nlp.fields`); labels are stripped
    of surrounding whitespace. A row whose text columns are all blank (unless ``allow_empty``:
    it is then kept with the text ``""`` and listed in ``empty``), or (with ``require_label``)
    whose label is blank, raises :class:`~wangge.errors.DataError` naming the row as the user
    sees it: the spreadsheet row for CSV/TSV/XLSX (header = row 1, so the first record is row
    2), the line number for JSON Lines, the 1-based record position for a JSON list or a
    Hugging Face dataset.
    """
    path = Path(path)
    frame, rows = _read_table_rows(path, sheet=sheet, split=split)
    columns = resolve_columns(
        frame,
        path=path,
        text_columns=text_columns,
        label_column=label_column,
        time_column=time_column,
        id_column=id_column,
        require_label=require_label,
    )
    fields = [
        tuple(map(normalized, parts))
        for parts in frame[list(columns.text)].itertuples(index=False, name=None)
    ]
    texts = [message_text(parts) for parts in fields]
    labels = None if columns.label is None else [label.strip() for label in frame[columns.label]]
    loaded = LoadedMessages(frame, columns, path, fields, texts, labels, rows)
    for i, row in enumerate(rows):
        if not texts[i]:
            if not allow_empty:
                raise _empty_text(loaded, i)
            loaded.empty.append(i)
        if require_label and labels is not None and not labels[i]:
            raise DataError("the label is empty", path=path, row=row, column=columns.label)
    logger.info(
        "%s: %d messages; text from %s, label from %s",
        path,
        len(texts),
        ", ".join(columns.text),
        columns.label or "(none)",
    )
    return loaded


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` without its index, in the format the extension names.

    * ``.csv``: UTF-8 with a byte-order mark, because Excel reads a CSV without one in the
      local code page (GBK on Chinese Windows) and garbles every Chinese character. Excel still
      evaluates a cell starting with ``=`` as a formula; share ``.xlsx`` when that matters.
    * ``.jsonl``/``.ndjson``: one object per line, Chinese written as is (no ``\\uXXXX``).
    * ``.xlsx``: strings are stored as text, so a message starting with ``=`` stays a message
      instead of becoming a formula. Control characters, which XLSX cannot hold, are dropped.

    Lists and dicts become JSON text in CSV and XLSX cells and stay native in JSON Lines;
    missing values (``None``, NaN) become empty cells or ``null``. Parent directories are
    created.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _WRITABLE:
        raise DataError(
            f"cannot write {_kind(suffix)}; use one of {_listing(_WRITABLE)}",
            path=path,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.map(_cell_value).to_csv(path, index=False, encoding="utf-8-sig")
    elif suffix == ".xlsx":
        _write_excel(frame, path)
    else:
        with path.open("w", encoding="utf-8", newline="\n") as out:
            for record in frame.to_dict(orient="records"):
                out.write(json.dumps(_plain(record), ensure_ascii=False, default=str) + "\n")
    logger.info("wrote %d rows to %s", len(frame), path)


# --- reading ------------------------------------------------------------------------------


def _read_table_rows(
    path: Path, *, sheet: str | int | None, split: str | None
) -> tuple[pd.DataFrame, list[int]]:
    """The table at ``path`` with a 0-based index, and the source row number of each row."""
    suffix = path.suffix.lower()
    if path.is_dir():
        if sheet is not None:
            raise DataError("is a dataset directory; 'sheet' applies to Excel files", path=path)
        frame = _read_dataset(path, split)
    elif not path.is_file():
        raise DataError("file not found", path=path)
    elif suffix not in _READABLE:
        raise DataError(
            f"cannot read {_kind(suffix)}; use one of "
            f"{_listing(_READABLE)} or a saved Hugging Face dataset directory",
            path=path,
        )
    elif split is not None:
        raise DataError("is a file; 'split' applies to Hugging Face dataset directories", path=path)
    elif sheet is not None and suffix not in _EXCEL:
        raise DataError("is not an Excel file; 'sheet' applies to .xlsx files", path=path)
    elif suffix in _DELIMITED:
        frame = _read_delimited(path, _DELIMITED[suffix])
    elif suffix in _EXCEL:
        frame = _read_excel(path, sheet)
    elif suffix in _JSON_LINES:
        frame = _read_json_lines(path)
    else:
        frame = _read_json(path)

    if frame.columns.empty:
        raise DataError("file is empty", path=path)
    frame.columns = [str(column) for column in frame.columns]
    frame = frame.fillna("").astype(str)
    has_content = frame.apply(lambda column: column.str.strip() != "").any(axis=1)
    if not has_content.any():
        raise DataError("has a header but no rows", path=path)
    if not has_content.all():
        logger.info("%s: skipped %d blank rows", path, int((~has_content).sum()))
        frame = frame[has_content]
    rows = [int(row) for row in frame.index]
    return frame.reset_index(drop=True), rows


def _decode(path: Path) -> str:
    data = path.read_bytes()
    furthest = 0
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as error:
            furthest = max(furthest, error.start)
    best = from_bytes(data).best()
    if best is None:
        # The encoding that decodes furthest is most likely the one the file was written in, so
        # the byte that stops it is most likely the damaged one.
        line = data.count(b"\n", 0, furthest) + 1
        raise DataError(
            f"cannot be decoded as UTF-8, GB18030 or any other encoding (the first bad byte is "
            f"probably on line {line}); save it as UTF-8",
            path=path,
            row=line,
        )
    logger.warning(
        "%s is neither UTF-8 nor GB18030; reading it as %s, a guess: check the text",
        path,
        best.encoding,
    )
    return str(best)


def _sniff_delimiter(text: str) -> str:
    sample = text[:_SNIFF_CHARS]
    if len(text) > len(sample):
        sample = sample[: sample.rfind("\n") + 1] or sample
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=_SNIFF_DELIMITERS).delimiter
    except csv.Error:
        return ","
    # In a one-column file the sniffer can pick a character that merely recurs in the text.
    return delimiter if delimiter in text.split("\n", 1)[0] else ","


def _check_field_counts(text: str, delimiter: str, path: Path) -> None:
    """Raise on the first record with more or fewer fields than the header.

    pandas pads a short record with empty fields without a word, yet a short record usually
    means a message body with an unquoted line break, split into two bogus records.
    """
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader)
    if not any(field.strip() for field in header):
        raise DataError("the first line, which should be the header, is blank", path=path, row=1)
    limit = csv.field_size_limit(2**31 - 1)  # pandas has no limit on a field's length
    try:
        for row, record in enumerate(reader, start=2):
            if len(record) != len(header) and any(field.strip() for field in record):
                raise DataError(
                    f"has {len(record)} field(s) but the header has {len(header)} (an unquoted "
                    "delimiter or line break in a field?)",
                    path=path,
                    row=row,
                )
    finally:
        csv.field_size_limit(limit)


def _read_delimited(path: Path, delimiter: str | None) -> pd.DataFrame:
    text = _decode(path)
    if not text.strip():
        raise DataError("file is empty", path=path)
    if delimiter is None:
        delimiter = _sniff_delimiter(text)
    _check_field_counts(text, delimiter, path)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,  # blank lines keep their place so that row numbers hold
        )
    except pd.errors.ParserError as error:
        unclosed = _UNCLOSED_QUOTE.search(str(error))
        if unclosed:
            raise DataError(
                'a quoted field starting in this row is never closed (a stray ")',
                path=path,
                row=int(unclosed.group(1)) + 1,
            ) from error
        raise DataError(f"cannot be parsed: {str(error).strip()}", path=path) from error
    frame.index = pd.RangeIndex(2, len(frame) + 2)
    return frame


def _read_excel(path: Path, sheet: str | int | None) -> pd.DataFrame:
    try:
        with pd.ExcelFile(path, engine="openpyxl") as workbook:
            names = workbook.sheet_names
            if sheet is None:
                sheet = names[0]
            elif isinstance(sheet, int):
                if not 0 <= sheet < len(names):
                    raise DataError(
                        f"has {len(names)} sheets, no sheet at position {sheet}", path=path
                    )
                sheet = names[sheet]
            elif sheet not in names:
                raise DataError(
                    f"has no sheet {sheet!r}; the sheets are: {_listing(names)}", path=path
                )
            frame = pd.read_excel(workbook, sheet_name=sheet, dtype=str, keep_default_na=False)
    except (zipfile.BadZipFile, InvalidFileException) as error:
        raise DataError(f"is not a readable Excel workbook ({error})", path=path) from error
    if frame.columns.empty:
        raise DataError(f"sheet {sheet!r} is empty", path=path)
    frame.index = pd.RangeIndex(2, len(frame) + 2)
    return frame


def _read_json_lines(path: Path) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    rows: list[int] = []
    # split("\n") rather than splitlines(): a JSON string may hold U+2028 and similar
    # characters, which splitlines() would treat as line ends.
    for number, line in enumerate(_decode(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                f"line is not valid JSON: {error.msg} at column {error.colno}",
                path=path,
                row=number,
            ) from error
        if not isinstance(record, dict):
            raise DataError(
                f"line holds a JSON {type(record).__name__}, not an object", path=path, row=number
            )
        records.append(record)
        rows.append(number)
    return _records_frame(records, rows)


def _read_json(path: Path) -> pd.DataFrame:
    text = _decode(path)
    if not text.strip():
        raise DataError("file is empty", path=path)
    try:
        records = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}",
            path=path,
        ) from error
    if not isinstance(records, list):
        raise DataError(
            f"holds a JSON {type(records).__name__}; expected a list of objects", path=path
        )
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(
                f"record holds a JSON {type(record).__name__}, not an object", path=path, row=number
            )
    return _records_frame(records, list(range(1, len(records) + 1)))


def _records_frame(records: list[dict[str, Any]], rows: list[int]) -> pd.DataFrame:
    columns = dict.fromkeys(key for record in records for key in record)
    return pd.DataFrame(
        {c: [_json_text(record.get(c)) for record in records] for c in columns},
        index=rows,
        dtype=object,
    )


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _read_dataset(path: Path, split: str | None) -> pd.DataFrame:
    import datasets  # imported here: it takes seconds and only this format needs it

    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as error:
        raise DataError(
            "is a directory but not a Hugging Face dataset saved with save_to_disk", path=path
        ) from error
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if split is None:
            if "train" in splits or len(splits) == 1:
                split = "train" if "train" in splits else splits[0]
            else:
                raise DataError(
                    f"has the splits {_listing(splits)} and none is 'train'; choose one with split",
                    path=path,
                )
        elif split not in splits:
            raise DataError(
                f"has no split {split!r}; the splits are: {_listing(splits)}", path=path
            )
        loaded = loaded[split]
    elif split is not None:
        raise DataError(f"holds a single dataset without splits; drop split={split!r}", path=path)
    data = loaded.to_dict()
    return pd.DataFrame(
        {c: [_json_text(value) for value in values] for c, values in data.items()},
        index=range(1, loaded.num_rows + 1),
        dtype=object,
    )


def _canonical(name: object) -> str:
    return str(name).replace("\ufeff", "").strip().casefold()


def _kind(suffix: str) -> str:
    return f"{suffix} files" if suffix else "files without an extension"


def _listing(names: Sequence[Any] | pd.Index) -> str:
    return ", ".join(str(name) for name in names) or "(none)"


# --- writing ------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """``value`` with numpy types unwrapped and missing values as ``None``, ready for JSON."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _numpy_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _cell_value(value: Any) -> Any:
    """What a CSV or XLSX cell holds for ``value``: lists and dicts as JSON text."""
    if isinstance(value, str):
        return value  # most cells: the input columns
    if isinstance(value, (list, dict)):
        try:  # the fast path; NaN or other odd values take the careful one
            return json.dumps(value, ensure_ascii=False, allow_nan=False, default=_numpy_scalar)
        except (TypeError, ValueError):
            pass
    value = _plain(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def _write_excel(frame: pd.DataFrame, path: Path) -> None:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet()

    def cell(value: Any) -> Any:
        value = _cell_value(value)
        if not isinstance(value, str):
            return value
        text = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
        text.data_type = "s"  # openpyxl would store "=..." as a formula
        return text

    sheet.append([cell(str(column)) for column in frame.columns])
    for record in frame.itertuples(index=False, name=None):
        sheet.append([cell(value) for value in record])
    workbook.save(path)
