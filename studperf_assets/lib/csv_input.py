"""CSV files as ``studperf train`` and ``studperf predict`` both read them: one reader, so the
two commands accept the same files and refuse the others with the same one line.

Accepted: what spreadsheets and CSV writers produce. UTF-8 with or without a byte-order mark
(Excel's "CSV UTF-8" writes one), LF, CRLF or CR line ends, commas, a header row whose names
match exactly (case included; spaces or tabs around a name are ignored, as around a number),
quoting as the ``csv`` module's excel dialect writes it. Blank lines, and rows of empty
fields only (Excel writes those for formatted empty cells), carry no record and are skipped;
row numbers count the other rows (1 = first data row).

Invisible characters around a header name are ignored too, and said: Unicode whitespace
(a no-break space U+00A0, an ideographic space...) and format characters (a zero-width space
U+200B, a further byte-order mark U+FEFF, a word joiner...), as copying from a web page or
saving twice leaves them. Each such name gives one line in ``CsvTable.notes`` naming the
column and the characters ("in.csv: column StudentID: ignored U+200B (ZERO WIDTH SPACE)
around its name"), which both commands print. Before, a header cell ``StudentID\u200b`` or
a file starting with two BOMs made ``predict`` score with an empty StudentID column while
``train`` refused the file. An invisible character inside a name is not ignored: the
refusal names it.

Refused, with a CsvFileError naming the file and what to do: another encoding (the byte and
line; Windows-1252 is named when the byte means something there), UTF-16 or UTF-32, NUL
bytes, semicolons or tabs as delimiter, a column missing or named twice, no data row, broken
quoting (the line). A row with more or fewer fields than the header is the caller's to report
(``width_problem``): training refuses the file, prediction reports the row.

The tokenizer is the standard library's ``csv`` (strict). pandas' C parser is faster but
differs from it on ragged and whitespace-only rows (a first row one field too long silently
makes the first column the index and shifts the others), which is how two readers came to
disagree. clevercsv and
charset-normalizer guess a dialect or an encoding and read the file anyway; here a file in
another one is refused with what to do, which takes a byte-order-mark check and Python's
strict UTF-8 decoder, no library.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain

SAVE_AS = 'save it as "CSV UTF-8 (Comma delimited)"'
OTHER_DELIMITERS = {";": "semicolons", "\t": "tabs"}
WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16: it starts with the UTF-16 LE mark
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class CsvFileError(ValueError):
    """A file this reader refuses; the message is one line naming the file and the fix."""


@dataclass
class CsvTable:
    """A checked header and the data rows still to be read (each a list of fields; a broken
    record raises CsvFileError when reading reaches it)."""

    source: str
    header: list[str]
    positions: dict[str, int]  # every column asked for that the header has -> its index
    rows: Iterator[list[str]]
    notes: list[str] = field(default_factory=list)  # one line each: what was ignored

    def width_problem(self, row: Sequence[str]) -> str | None:
        """Why a row cannot be read by position (fields shifted or lost), or None."""
        if len(row) == len(self.header):
            return None
        return f"{len(row)} fields, the header has {len(self.header)}"


def read_table(
    data: bytes, source: str, required: Sequence[str], optional: Sequence[str] = ()
) -> CsvTable:
    """Check ``data`` (a whole file) and its header; raise CsvFileError. ``source`` names
    the file in messages; ``optional`` columns are located if present."""
    body = utf8_body(data, source)
    rows = _records(body, source)
    header = next(rows, None)
    if header is None:
        raise CsvFileError(f"{source}: empty file (no header row)")
    names = [header_name(name) for name in header]
    notes = [
        f"{source}: column {name}: ignored {_described(set(raw) - set(name))} around its name"
        for raw, name in zip(header, names, strict=True)
        if raw.strip(" \t") != name
    ]
    wanted = (*required, *optional)
    _check_columns(names, ",".join(header), required, wanted, source)
    first = next(rows, None)
    if first is None:
        raise CsvFileError(f"{source}: a header but no rows")
    positions = {name: i for i, name in enumerate(names) if name in wanted}
    return CsvTable(source, names, positions, chain([first], rows), notes)


def _invisible(char: str) -> bool:
    """Unicode whitespace (NBSP, ideographic space...) or a format character (U+200B,
    U+FEFF, U+2060...): nothing a reader sees in a header cell."""
    return char.isspace() or unicodedata.category(char) == "Cf"


def header_name(cell: str) -> str:
    """A header cell's name: invisible characters (``_invisible``) around it removed."""
    start, end = 0, len(cell)
    while start < end and _invisible(cell[start]):
        start += 1
    while end > start and _invisible(cell[end - 1]):
        end -= 1
    return cell[start:end]


def _described(chars: set[str]) -> str:
    """Characters as a message names them: ``U+200B (ZERO WIDTH SPACE)``, spaces and tabs
    (always ignored) left out unless nothing else is there."""
    shown = sorted(c for c in chars if c not in " \t") or sorted(chars)
    return ", ".join(f"U+{ord(c):04X} ({unicodedata.name(c, 'unnamed')})" for c in shown)


def utf8_body(data: bytes, source: str) -> bytes:
    """``data`` without a UTF-8 byte-order mark, once it is known to be UTF-8 text with no
    NUL; otherwise CsvFileError naming the encoding problem."""
    for bom, encoding in WIDE_BOMS:
        if data.startswith(bom):
            raise CsvFileError(
                f"{source}: {encoding}, not UTF-8 (it starts with a {encoding} byte-order "
                f"mark); {SAVE_AS}"
            )
    body = data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data
    nul = body.find(b"\x00")
    if nul >= 0:
        line = body.count(b"\n", 0, nul) + 1
        raise CsvFileError(
            f"{source}: NUL byte on line {line}, as in UTF-16 without a byte-order mark; {SAVE_AS}"
        )
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CsvFileError(f"{source}: {_not_utf8(body, exc)}; {SAVE_AS}") from None
    return body


def _not_utf8(body: bytes, error: UnicodeDecodeError) -> str:
    line = body.count(b"\n", 0, error.start) + 1
    bad = body[error.start : error.end]
    what = f"not UTF-8: byte {' '.join(f'0x{b:02X}' for b in bad)} on line {line}"
    try:
        meant = bad.decode("cp1252")
    except UnicodeDecodeError:
        return what
    return f"{what} ({meant!r} in Windows-1252)"


def _lines(body: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(body), encoding="utf-8", newline="")


def _records(body: bytes, source: str) -> Iterator[list[str]]:
    """Rows with at least one non-empty field; csv's errors become CsvFileError."""
    try:
        yield from filter(any, csv.reader(_lines(body), strict=True))  # no Python per row
    except csv.Error:
        line, reason = _first_error(body)
        raise CsvFileError(f"{source}: line {line}: {reason}") from None


def _first_error(body: bytes) -> tuple[int, str]:
    """The line where the first unreadable record starts (a quote left open runs to the end
    of the file), and why; read again, only once the fast pass has failed."""
    reader = csv.reader(_lines(body), strict=True)
    start = 1
    try:
        for _ in reader:
            start = reader.line_num + 1
    except csv.Error as exc:
        reason = str(exc)
        if reason == "unexpected end of data":
            reason = "a quoted field starts here and never ends"
        return start, reason
    return start, "unreadable"


def _check_columns(
    names: list[str],
    header_line: str,
    required: Sequence[str],
    wanted: Sequence[str],
    source: str,
) -> None:
    missing = [name for name in required if name not in names]
    if missing:
        for delimiter, called in OTHER_DELIMITERS.items():
            if header_line.count(delimiter) > header_line.count(","):
                raise CsvFileError(f"{source}: separated by {called}, not commas; {SAVE_AS}")
        lowered = {name.lower(): name for name in names}
        near = [f"{lowered[m.lower()]} for {m}" for m in missing if m.lower() in lowered]
        hint = f" (names are case-sensitive: the header has {', '.join(near)})" if near else ""
        visible = {"".join(c for c in name if not _invisible(c)): name for name in names}
        hidden = [
            f"{visible[m]!r} for {m}, holding {_described(set(visible[m]) - set(m))}"
            for m in missing
            if m in visible
        ]
        if hidden:
            hint = f" (the header has {'; '.join(hidden)}: invisible characters inside a name)"
        raise CsvFileError(f"{source}: missing column(s): {', '.join(missing)}{hint}")
    repeated = sorted({name for name in wanted if names.count(name) > 1})
    if repeated:
        raise CsvFileError(f"{source}: column(s) named more than once: {', '.join(repeated)}")
