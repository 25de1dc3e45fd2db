"""Reading the files a source delivers: which are data, how they are decompressed, and how
a file that cannot be read becomes a reason instead of a crash.

Every reader of JSONL or CSV in the pipeline (traces, feedback, label files) goes through
`read_lines`, so compression, a UTF-8 byte-order mark and line splitting are handled once.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet",)
# Users' exports are often compressed; these wrap a JSONL (or CSV) file.
COMPRESSION_SUFFIXES = (".gz", ".gzip", ".zst", ".zstd")
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class FileKind:
    """What a file in a day folder is: `format` is jsonl / parquet / csv, or None when the
    pipeline cannot read it; `compression` is gzip / zstd or None."""

    format: str | None
    compression: str | None


def file_kind(path: Path, text_suffixes: tuple[str, ...] = JSONL_SUFFIXES) -> FileKind:
    """Classify by name: `x.jsonl`, `x.jsonl.gz`, `x.ndjson.zst`, `x.parquet`, ..."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = None
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        compression = "gzip" if suffixes.pop() in (".gz", ".gzip") else "zstd"
    last = suffixes[-1] if suffixes else ""
    if last in PARQUET_SUFFIXES and compression is None:
        return FileKind("parquet", None)
    if last in text_suffixes:
        return FileKind("csv" if last == ".csv" else "jsonl", compression)
    return FileKind(None, compression)


def is_marker(path: Path) -> bool:
    """Hidden files and job markers (`.DS_Store`, `_SUCCESS`, `.part-0.crc`): not data."""
    return path.name.startswith((".", "_"))


def read_bytes(path: Path, compression: str | None) -> bytes:
    """The file's bytes, decompressed; raises OSError / EOFError / zstd errors when the file
    is a directory, unreadable, or truncated."""
    data = path.read_bytes()
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "zstd":
        import zstandard

        # Streamed: exports written by a streaming compressor do not record their size.
        return zstandard.ZstdDecompressor().stream_reader(data).read()
    return data


def split_lines(data: bytes, first_line: int = 1) -> list[tuple[int, str, bool]]:
    """(line number, text, is valid UTF-8) for every non-blank line of a JSONL/CSV file (or of
    a piece of one whose first line is `first_line`).

    A leading UTF-8 byte-order mark (Excel's "CSV UTF-8", some exporters) is not content.
    """
    if first_line == 1 and data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    try:
        text_lines = data.decode("utf-8").split("\n")
        decoded = [(first_line + i, line, True) for i, line in enumerate(text_lines)]
    except UnicodeDecodeError:
        decoded = []
        for i, raw in enumerate(data.split(b"\n")):
            try:
                decoded.append((first_line + i, raw.decode("utf-8"), True))
            except UnicodeDecodeError:
                decoded.append(
                    (first_line + i, raw.decode("utf-8", errors="backslashreplace"), False)
                )
    # Blank lines carry no record (a trailing newline makes one); they are not rows.
    return [(n, line.rstrip("\r"), ok) for n, line, ok in decoded if line.strip()]


@contextmanager
def open_decompressed(path: Path, compression: str | None) -> Iterator[BinaryIO]:
    """The file as a stream of its decompressed bytes."""
    with open(path, "rb") as raw:
        if compression == "gzip":
            with gzip.GzipFile(fileobj=raw) as stream:
                yield stream  # type: ignore[misc]
        elif compression == "zstd":
            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(raw) as stream:
                yield stream  # type: ignore[misc]
        else:
            yield raw


def check_readable(path: Path, kind: FileKind, chunk_bytes: int = 1 << 24) -> None:
    """Read a compressed file through to its end (raises when truncated or corrupt), so that
    a file that cannot be read whole is quarantined whole before any of its lines is used."""
    if kind.compression is None:
        if path.is_dir():
            raise IsADirectoryError(f"Is a directory: '{path}'")
        return
    with open_decompressed(path, kind.compression) as stream:
        while stream.read(chunk_bytes):
            pass


def line_table(piece: bytes, first_line: int = 1) -> pa.Table:
    """`split_lines` as an Arrow table (`source_row`, `line`, `utf8_ok`), split without a
    Python object per line: a piece that decodes as UTF-8 (the usual case) is split by Arrow;
    only a piece with undecodable bytes goes line by line to find which lines they are in."""
    try:
        text = piece.decode("utf-8")
    except UnicodeDecodeError:
        rows = split_lines(piece, first_line)
        return pa.table(
            {
                "source_row": pa.array([n for n, _, _ in rows], pa.int64()),
                "line": pa.array([line for _, line, _ in rows], pa.large_string()),
                "utf8_ok": pa.array([ok for _, _, ok in rows], pa.bool_()),
            }
        )
    if first_line == 1 and text.startswith("\ufeff"):
        text = text[1:]
    lines = pc.list_flatten(pc.split_pattern(pa.array([text], pa.large_string()), "\n"))
    numbers = pa.array(np.arange(first_line, first_line + len(lines), dtype=np.int64))
    lines = pc.utf8_rtrim(lines, characters="\r")
    # Blank lines carry no record (a trailing newline makes one); they are not rows.
    keep = pc.not_equal(pc.utf8_trim_whitespace(lines), "")
    table = pa.table({"source_row": numbers, "line": lines, "utf8_ok": pa.repeat(True, len(lines))})
    return table.filter(keep)


def iter_line_tables(path: Path, kind: FileKind, chunk_bytes: int = 1 << 22) -> Iterator[pa.Table]:
    """`line_table` of a (possibly compressed) text file, a piece at a time: memory stays at
    about `chunk_bytes` whatever the file's size."""
    with open_decompressed(path, kind.compression) as stream:
        reader = io.BufferedReader(stream, buffer_size=chunk_bytes)  # type: ignore[arg-type]
        rest, line_no = b"", 1
        while True:
            chunk = reader.read(chunk_bytes)
            if not chunk:
                break
            data = rest + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            piece, rest = data[: cut + 1], data[cut + 1 :]
            table = line_table(piece, line_no)
            line_no += piece.count(b"\n")
            if table.num_rows:
                yield table
        if rest:
            table = line_table(rest, line_no)
            if table.num_rows:
                yield table


def read_lines(path: Path, kind: FileKind) -> list[tuple[int, str, bool]]:
    """`split_lines` of a (possibly compressed) text file."""
    return split_lines(read_bytes(path, kind.compression))


def describe_error(exc: BaseException) -> str:
    """One line naming the error, for a quarantine row's detail."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


SUPPORTED = "JSONL (.jsonl, .ndjson, .json; optionally .gz or .zst) or Parquet"


def unsupported(path: Path, supported: str = SUPPORTED) -> str:
    """The quarantine reason (`reason|detail`) of a file the pipeline cannot read."""
    what = "a directory" if path.is_dir() else f"a '{''.join(path.suffixes) or path.name}' file"
    return f"unsupported_file|{what}; expected {supported}"


def text_file_lines(
    path: Path, text_suffixes: tuple[str, ...] = JSONL_SUFFIXES, supported: str = SUPPORTED
) -> tuple[list[tuple[int, str, bool]], str | None]:
    """The lines of a JSONL/CSV file, or no lines and the file's quarantine reason
    (`unsupported_file|...` or `unreadable_file|<error>`)."""
    kind = file_kind(path, text_suffixes)
    if kind.format not in ("jsonl", "csv"):
        return [], unsupported(path, supported)
    try:
        return read_lines(path, kind), None
    except Exception as exc:  # any failure to read is the file's reason, never a crash
        return [], f"unreadable_file|{describe_error(exc)}"
