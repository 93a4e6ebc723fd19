"""Reading an uploaded CSV or XLSX file from memory, with hard caps (hostile files, issue 20).

Both imports (ratings, organisational data) read their files through :func:`read_sheet`. Before
anything is parsed, an XLSX file's zip members are summed (a zip bomb is refused without being
inflated) and the first sheet's declared dimension is checked; while rows are read, the row and
column counts and the elapsed time are checked again (a file may declare a false dimension).
Nothing is written to disk. Refusals raise :class:`SpreadsheetRefused` with an HTTP-like status
(413 too large, 422 unreadable) and a message that names no server path.
"""

from __future__ import annotations

import csv
import io
import time
import zipfile

import pandas as pd

#: The most bytes an upload may have.
MAX_FILE_BYTES = 20 * 1024 * 1024
#: The most bytes an XLSX file's zip members may inflate to, all together.
MAX_UNCOMPRESSED_BYTES = 100 * 1024 * 1024
#: The most rows (header included) and columns a sheet may have, and cells in all.
MAX_ROWS = 200_000
MAX_COLUMNS = 64
MAX_CELLS = 2_000_000
#: The most seconds parsing may take.
MAX_PARSE_SECONDS = 30.0


class SpreadsheetRefused(ValueError):
    """A file that is not read: ``status`` 413 (over a cap) or 422 (unreadable), and why."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


def _too_large(reason: str) -> SpreadsheetRefused:
    return SpreadsheetRefused(413, reason)


def _header(names: list[object]) -> list[str]:
    """Column names as pandas gives them: text, 'Unnamed: i' for an empty one, '.1' for repeats."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        text = f"Unnamed: {i}" if name is None or str(name).strip() == "" else str(name)
        if text in seen:
            seen[text] += 1
            text = f"{text}.{seen[text]}"
        seen.setdefault(text, 0)
        out.append(text)
    return out


def _check_dimension(rows: int | None, columns: int | None) -> None:
    if rows is not None and rows > MAX_ROWS:
        raise _too_large(f"the sheet has {rows} rows; at most {MAX_ROWS} are read, split the file")
    if columns is not None and columns > MAX_COLUMNS:
        raise _too_large(
            f"the sheet has {columns} columns; at most {MAX_COLUMNS} are read, "
            "delete the unused columns"
        )
    if rows is not None and columns is not None and rows * columns > MAX_CELLS:
        raise _too_large(
            f"the sheet spans {rows} rows x {columns} columns; at most {MAX_CELLS} cells are read, "
            "delete unused rows and columns or split the file"
        )


def _read_xlsx(data: bytes, deadline: float) -> pd.DataFrame:
    from openpyxl import load_workbook  # lazy: openpyxl is read only for .xlsx uploads

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise SpreadsheetRefused(422, f"not a readable .xlsx file ({err})") from None
    inflated = sum(m.file_size for m in members)
    if len(members) > 10_000 or inflated > MAX_UNCOMPRESSED_BYTES:
        raise _too_large(
            f"the .xlsx file inflates to {inflated // (1024 * 1024)} MB; at most "
            f"{MAX_UNCOMPRESSED_BYTES // (1024 * 1024)} MB are read"
        )
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - a broken workbook is the sender's error
        raise SpreadsheetRefused(422, f"not a readable .xlsx file ({type(err).__name__})") from None
    try:
        if not workbook.worksheets:
            raise SpreadsheetRefused(422, "the .xlsx file has no sheet")
        sheet = workbook.worksheets[0]
        try:
            declared_rows, declared_columns = sheet.max_row, sheet.max_column
        except Exception:  # noqa: BLE001 - no or a broken dimension: the counts below decide
            declared_rows = declared_columns = None
        _check_dimension(declared_rows, declared_columns)
        rows: list[tuple] = []
        width = 0
        cells = 0
        # Bounded reads: a false or missing dimension cannot make openpyxl pad beyond the caps.
        read_columns = min(declared_columns or MAX_COLUMNS + 1, MAX_COLUMNS + 1)
        for row in sheet.iter_rows(max_row=MAX_ROWS + 1, max_col=read_columns, values_only=True):
            used = [i for i, v in enumerate(row) if v is not None]
            if used and used[-1] >= MAX_COLUMNS:
                _check_dimension(None, used[-1] + 1)
            if used:
                width = max(width, used[-1] + 1)
                cells += len(used)
            rows.append(row)
            if len(rows) > MAX_ROWS:
                _check_dimension(len(rows), None)
            if cells > MAX_CELLS:
                raise _too_large(
                    f"the sheet has more than {MAX_CELLS} filled cells; split the file"
                )
            if len(rows) % 256 == 0 and time.monotonic() > deadline:
                raise _too_large(
                    f"reading the file took longer than {MAX_PARSE_SECONDS:g} s; split the file"
                )
    except SpreadsheetRefused:
        raise
    except Exception as err:  # noqa: BLE001 - malformed XML inside the workbook
        raise SpreadsheetRefused(422, f"not a readable .xlsx file ({type(err).__name__})") from None
    finally:
        workbook.close()
    while rows and all(v is None or (isinstance(v, str) and not v.strip()) for v in rows[-1]):
        rows.pop()  # trailing empty rows are spreadsheet leftovers
    if not rows:
        return pd.DataFrame()
    header = _header([*rows[0][:width], *[None] * (width - len(rows[0]))])
    body = [tuple(r[:width]) + (None,) * (width - len(r)) for r in rows[1:]]
    return pd.DataFrame(body, columns=header, dtype=object)


def _read_csv(data: bytes, deadline: float) -> pd.DataFrame:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SpreadsheetRefused(
            422, f"the file is not UTF-8 text (byte {err.start + 1}); save it as CSV UTF-8"
        ) from None
    header = text.split("\n", 1)[0]
    # Swedish Excel writes ';'-separated CSV (the comma is the decimal mark); sniff the header.
    sep = ";" if header.count(";") > header.count(",") else ","
    n_rows = text.count("\n") + 1
    n_columns = next(csv.reader([header], delimiter=sep), []).__len__()
    _check_dimension(n_rows, n_columns)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            sep=sep,
            skip_blank_lines=True,
            skipinitialspace=True,
        )
    except Exception as err:  # noqa: BLE001 - ragged rows, broken quoting
        raise SpreadsheetRefused(422, f"not a readable CSV file: {err}") from None
    _check_dimension(len(frame) + 1, len(frame.columns))
    if time.monotonic() > deadline:
        raise _too_large(f"reading the file took longer than {MAX_PARSE_SECONDS:g} s")
    return frame


def read_sheet(data: bytes, suffix: str, *, max_bytes: int = MAX_FILE_BYTES) -> pd.DataFrame:
    """The first sheet of an uploaded ``.xlsx`` or ``.csv`` file as a frame: the first row is
    the header; XLSX cells keep their types (None when empty), CSV cells are text.

    Raises :class:`SpreadsheetRefused` (413 over ``max_bytes``,
    :data:`MAX_UNCOMPRESSED_BYTES`, :data:`MAX_ROWS`, :data:`MAX_COLUMNS`, :data:`MAX_CELLS` or
    :data:`MAX_PARSE_SECONDS`; 422 unreadable or another type)."""
    if len(data) > max_bytes:
        raise _too_large(f"the file is larger than {max_bytes / (1024 * 1024):g} MB")
    deadline = time.monotonic() + MAX_PARSE_SECONDS
    suffix = suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(data, deadline)
    if suffix in (".csv", ".txt"):
        return _read_csv(data, deadline)
    raise SpreadsheetRefused(422, f"unsupported file type {suffix!r}; use .csv or .xlsx")


#: What a spreadsheet program reads as the start of a formula (or of a DDE command).
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula (``=cmd|' /C calc'!A0``, ``+1+1``,
    ``@SUM(1+1)``, a leading tab or carriage return) with a ``'`` in front, shown as text; every
    other value (numbers, negative ones included) unchanged. Used for every CSV and XLSX Spira
    writes for people to open."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_frame(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with :func:`neutralise_formula` applied to its text cells (a copy)."""
    out = table.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralise_formula)
    out.columns = [neutralise_formula(c) for c in out.columns]
    return out
