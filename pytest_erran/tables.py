"""Read CSV, JSONL and Parquet tables and JSON documents with a location for every row, for error
messages; turn their cells into numbers naming the first bad one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ErranError
from .files import not_a_file


def read_table(path: Path, text_columns: tuple[str, ...]) -> tuple[pd.DataFrame, list[str]]:
    """The table and, per row, where it came from ("dev.csv line 7").

    `text_columns` are read as strings whatever they look like (labels "1" and "01" differ);
    other columns become numbers where every non-empty value is one, so `where` can compare them.
    """
    if not path.is_file():
        raise ErranError(f"{path} {not_a_file(path)}; check the path in the config or option")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = _read_csv(path)
        name = path.name  # once: a million rows are common
        locations = [f"{name} line {i + 2}" for i in range(len(frame))]
    elif suffix in (".jsonl", ".ndjson"):
        frame, lines = _read_jsonl(path)
        name = path.name
        locations = [f"{name} line {n}" for n in lines]
    elif suffix in (".parquet", ".pq"):
        frame = _read_parquet(path)
        name = path.name
        locations = [f"{name} row {i + 1}" for i in range(len(frame))]
    else:
        coco = " (a COCO .json dev set needs task = \"detection\")" if suffix == ".json" else ""
        raise ErranError(f"{path}: unknown table format '{suffix}'; use .csv, .jsonl or .parquet{coco}")
    frame = frame.reset_index(drop=True)
    for column in frame.columns:
        if column in text_columns:
            frame[column] = _as_text(frame[column])
        elif not pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column]):
            frame[column] = _maybe_numeric(frame[column])
    return frame, locations


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        # pandas renames a repeated column "label.1", which nothing then reads: refuse it
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]
        _check_names(header.tolist(), f"{path} line 1", "column")
        return frame
    except pd.errors.EmptyDataError:
        raise ErranError(f"{path}: the file is empty; it needs a header row") from None
    except UnicodeDecodeError:
        raise ErranError(f"{path} line {_first_non_utf8_line(path)}: not UTF-8 text; "
                         "save the file as UTF-8") from None
    except pd.errors.ParserError as e:
        raise ErranError(f"{path}: not a readable CSV: {str(e).strip()}") from None


def _check_names(names: list, where: str, what: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ErranError(f"{where}: the {what} '{name}' appears twice, and only one of them "
                             f"would be read: keep one {what} of each name")
        seen.add(name)


def _unique_keys(pairs: list) -> dict:
    """json.loads' object_pairs_hook: a key given twice is an error (json keeps the last)."""
    _check_names([key for key, _ in pairs], "", "key")
    return dict(pairs)


def _first_non_utf8_line(path: Path) -> int:
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, list[int]]:
    records, lines = [], []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise ErranError(f"{path} line {number}: not UTF-8 text; save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as e:
                raise ErranError(f"{path} line {number}: not valid JSON ({e.msg}, column {e.colno}); "
                                 "write one JSON object per line") from None
            except ErranError as e:
                raise ErranError(f"{path} line {number}{e}") from None
            if not isinstance(record, dict):
                raise ErranError(f"{path} line {number}: each line must be a JSON object")
            records.append(record)
            lines.append(number)
    return pd.DataFrame.from_records(records), lines


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow  # noqa: F401  (pandas' own message does not say how to install it)
    except ImportError:
        raise ErranError(
            f"{path}: reading Parquet needs pyarrow: pip install 'pytest-erran[parquet]'"
        ) from None
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several unrelated types for a bad file
        raise ErranError(f"{path}: not a readable Parquet file: {e}") from None


def _as_text(column: pd.Series) -> pd.Series:
    if column.dtype != object and pd.api.types.is_string_dtype(column.dtype) and not column.isna().any():
        return column.astype(object)  # already text (every CSV cell is): nothing to convert

    def text(value) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return ""
        if isinstance(value, (list, tuple)):  # JSONL tags written as a list
            return ";".join(map(str, value))
        if isinstance(value, float) and value.is_integer():
            return str(int(value))  # JSON 1 and Parquet 1.0 both mean class "1"
        return str(value)

    return column.map(text).astype(object)


def _maybe_numeric(column: pd.Series) -> pd.Series:
    """Numbers when every non-empty value is one (vectorised: manifests have 100k rows)."""
    blank = pd.Series(is_blank(column), index=column.index)
    if blank.all() or _has_booleans(column):
        return column  # JSON true mixed with numbers is not the number 1
    try:
        converted = pd.to_numeric(column.where(~blank), errors="coerce")
    except TypeError:  # lists or dicts (JSONL) stay as they are
        return column
    if converted[~blank].isna().any():
        return column
    return converted


def _has_booleans(values: pd.Series) -> bool:
    """Whether a cell is a boolean; the scan is pandas' own (in C), so text columns cost nothing."""
    if pd.api.types.is_bool_dtype(values):
        return len(values) > 0
    if values.dtype != object:
        return False
    kind = pd.api.types.infer_dtype(values, skipna=True)
    return kind == "boolean" or (kind.startswith("mixed") and kind != "mixed-integer-float"
                                 and values.map(lambda v: isinstance(v, (bool, np.bool_))).any())


def read_json(path: Path, what: str):
    """The JSON document at `path`; `what` says which setting names it, for a missing file."""
    if not path.is_file():
        raise ErranError(f"{path} {not_a_file(path)}; check {what}")
    parsed = _fast_json(path)
    if parsed is not None:
        return parsed[0]
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ErranError(f"{path} line {e.lineno} column {e.colno}: not valid JSON: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise ErranError(f"{path}: not UTF-8 text: {e}") from None


def _fast_json(path: Path) -> tuple | None:
    """(document,) parsed by orjson when installed (pytest-erran[fast]: several times faster
    on a large COCO file); None without it, or for anything it rejects that `json` may accept
    (NaN, integers beyond 64 bits) or must report in its own words (a syntax error)."""
    try:
        import orjson
    except ImportError:
        return None
    try:
        return (orjson.loads(path.read_bytes()),)
    except (orjson.JSONDecodeError, OSError):
        return None


JSON_CHUNK_BYTES = 16 << 20


def json_list_chunks(path: Path, chunk_bytes: int | None = None):
    """A top-level JSON list of flat objects (COCO results) as an iterator of lists, each parsed
    from about `chunk_bytes` of the text when the one before is done with: a million results
    then never exist as Python objects all at once. None when orjson is not installed or the
    file is small. A file that does not cut cleanly between two objects (not a list of objects,
    a "}, {" inside a string, nested lists of objects) raises Unsplittable while iterating:
    read it whole with read_json then, which also says what is wrong with it."""
    try:
        import orjson
    except ImportError:
        return None
    chunk_bytes = chunk_bytes or JSON_CHUNK_BYTES
    try:
        data = path.read_bytes()
    except OSError:
        return None
    start = len(data) - len(data.lstrip())
    if len(data) <= chunk_bytes or data[start:start + 1] != b"[":
        return None
    between = re.compile(rb"\}\s*,\s*\{")
    pieces, position = [], start + 1
    while True:
        found = between.search(data, position + chunk_bytes)
        if found is None:
            end = data.rstrip().rfind(b"]")
            pieces.append((position, end))
            break
        pieces.append((position, found.start() + 1))
        position = found.end() - 1

    def parsed():  # one chunk at a time; each must be a list of objects, else Unsplittable
        for lo, hi in pieces:
            try:
                chunk = orjson.loads(b"[" + data[lo:hi] + b"]")
            except orjson.JSONDecodeError:
                raise Unsplittable(path) from None
            if not set(map(type, chunk)) <= {dict}:
                raise Unsplittable(path)
            yield chunk

    return parsed()


class Unsplittable(Exception):
    """json_list_chunks could not cut the file cleanly: read it whole instead."""


def is_blank(values: pd.Series | pd.DataFrame) -> np.ndarray:
    """Missing, or text that is empty once stripped: an empty cell of a table."""
    text = values.astype(str).apply(lambda column: column.str.strip()) if isinstance(values, pd.DataFrame) \
        else values.astype(str).str.strip()
    return (values.isna() | (text == "")).to_numpy()


def numbers(values: pd.Series, sources: list[str], message: str, required=True) -> np.ndarray:
    """`values` as floats (NaN where blank). A finite number is needed in every non-blank cell,
    and in every cell where `required` (a bool or a mask) holds; the first cell that fails is an
    error: `message` formatted with its {source} and {value!r}."""
    if _has_booleans(values):  # JSON true is not the number 1
        row = int(np.flatnonzero(values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(bool))[0])
        raise ErranError(message.format(source=sources[row], value=bool(values.iloc[row])))
    converted = pd.to_numeric(values, errors="coerce").to_numpy(float)
    suspects = np.flatnonzero(~np.isfinite(converted))  # blank cells, and bad ones if any
    if len(suspects):
        required = np.broadcast_to(np.asarray(required, bool), converted.shape)[suspects]
        bad = suspects[~is_blank(values.iloc[suspects]) | required]
        if len(bad):
            row = bad[0]
            raise ErranError(message.format(source=sources[row], value=values.iloc[row]))
    return converted
