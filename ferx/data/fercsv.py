"""Read FER2013 CSVs fast, in every form users download, with errors that name line and field.

The file is parsed as bytes with numpy: line and comma positions are found in one pass, the
short fields (emotion, Usage) are compared as a fixed-width character matrix, and the 2,304
pixels of every row are decoded by shifted digit arithmetic over the whole pixel block, split
into one chunk per CPU thread (numpy releases the GIL). No Python loop touches pixels.

Accepted: `emotion,pixels,Usage` (Kaggle), `emotion, Usage, pixels` (ICML variant), CRLF line
ends, a UTF-8 BOM, quoted fields; gzip, tar(.gz) and zip archives are unpacked by archives.py.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferx.data.archives import FerDataError, read_csv_bytes
from ferx.labels import IMAGE_SIDE, NUM_CLASSES, SPLITS

PIXELS_PER_IMAGE = IMAGE_SIDE * IMAGE_SIDE
COLUMNS = ("emotion", "pixels", "usage")
_SHORT_FIELD_WIDTH = 24  # emotion and Usage values are compared as fixed-width byte strings


@dataclass(frozen=True)
class FerTable:
    pixels: np.ndarray  # uint8, N x 48 x 48, in file order
    labels: np.ndarray  # int64, N
    usage: np.ndarray  # int8 index into USAGES, N

    def split(self, usage: str) -> tuple[np.ndarray, np.ndarray]:
        rows = self.usage == USAGES.index(usage)
        return self.pixels[rows], self.labels[rows]


USAGES: tuple[str, ...] = tuple(SPLITS)  # Training, PublicTest, PrivateTest


# ---------------------------------------------------------------------------- header
def _column_order(path: Path, header: bytes) -> list[int]:
    """Index of emotion, pixels and usage in the header (names trimmed, case-insensitive)."""
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError:
        raise FerDataError(f"{path}: line 1: not a text CSV (binary data?)") from None
    names = [n.strip().strip('"').strip().lower() for n in text.split(",")]
    missing = [c for c in COLUMNS if c not in names]
    extra = [n for n in names if n not in COLUMNS]
    if missing or extra or len(names) != len(COLUMNS):
        shown = text if len(text) < 80 else text[:77] + "..."
        raise FerDataError(
            f"{path}: line 1: header must name the columns emotion, pixels, Usage "
            f"(any order); found {shown!r}"
            + (f", missing {missing}" if missing else "")
            + (f", unexpected {extra}" if extra else "")
        )
    return [names.index(c) for c in COLUMNS]


# ---------------------------------------------------------------------------- parsing
def parse_fer_csv(data: bytes, path: str | Path = "<csv>", threads: int | None = None) -> FerTable:
    """Parse FER2013 CSV text (bytes) into arrays; raise FerDataError on any bad row."""
    path = Path(path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b"\x00" in data[:65536]:
        raise FerDataError(f"{path}: line 1: not a text CSV (binary data?)")
    end = len(data)
    while end and data[end - 1] in b"\n ":  # trailing blank lines; no copy of the text
        end -= 1
    header_end = data.find(b"\n", 0, end)
    if header_end < 0:
        _column_order(path, data[:end])  # a lone valid header is "header only", else an error
        raise FerDataError(f"{path}: has a header but no data rows")
    order = _column_order(path, data[:header_end])
    if data.find(b'"', header_end) >= 0:
        data = data.replace(b'"', b"")  # FER fields never contain quotes: quoting is cosmetic
        end = len(data.rstrip(b"\n "))
    # Positions below are absolute offsets into `data`; the body is [header_end + 1, end).
    buf = np.frombuffer(data, dtype=np.uint8, count=end)
    body_start = header_end + 1

    newlines, commas = _find_newlines_and_commas(buf, body_start, threads)
    line_ends = np.append(newlines, end)
    line_starts = np.concatenate(([body_start], line_ends[:-1] + 1))
    n_rows = len(line_ends)
    per_line = np.diff(np.searchsorted(commas, np.concatenate(([body_start], line_ends))))
    if (bad := np.flatnonzero(per_line != len(COLUMNS) - 1)).size:
        row = int(bad[0])
        raise FerDataError(
            f"{path}: line {row + 2}: expected {len(COLUMNS)} comma-separated fields "
            f"(emotion, pixels, Usage), found {per_line[row] + 1}"
        )
    commas = commas.reshape(n_rows, len(COLUMNS) - 1)
    starts = np.column_stack((line_starts, commas + 1))
    ends = np.column_stack((commas, line_ends))
    spans = {c: (starts[:, i], ends[:, i]) for c, i in zip(COLUMNS, order, strict=True)}

    labels = _parse_labels(path, buf, *spans["emotion"])
    usage = _parse_usage(path, buf, *spans["usage"])
    pixels = _parse_pixels(path, data, *spans["pixels"], threads=threads)
    for index, name in enumerate(USAGES):
        if not np.any(usage == index):
            raise FerDataError(f"{path}: the {name} split has no rows (Usage column)")
    return FerTable(pixels.reshape(n_rows, IMAGE_SIDE, IMAGE_SIDE), labels, usage)


_SCAN_CHUNK = 1 << 20


def _find_newlines_and_commas(
    buf: np.ndarray, start: int, threads: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of every newline and comma in buf[start:], scanned in cache-sized chunks.

    One comparison over the whole 300 MB buffer would allocate 300 MB of booleans and spend
    more time in page faults than in comparing.
    """

    def scan(lo: int) -> tuple[np.ndarray, np.ndarray]:
        chunk = buf[lo : lo + _SCAN_CHUNK]
        return np.flatnonzero(chunk == ord("\n")) + lo, np.flatnonzero(chunk == ord(",")) + lo

    with ThreadPoolExecutor(_workers(threads)) as pool:
        parts = list(pool.map(scan, range(start, len(buf), _SCAN_CHUNK)))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _workers(threads: int | None) -> int:
    return max(1, min(threads or os.cpu_count() or 1, 16))


def _short_fields(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The fields as a fixed-width bytes array, surrounding spaces removed."""
    offsets = starts[:, None] + np.arange(_SHORT_FIELD_WIDTH)
    inside = offsets < ends[:, None]
    chars = np.where(inside, buf[np.minimum(offsets, len(buf) - 1)], ord(" ")).astype(np.uint8)
    fields = np.ascontiguousarray(chars).view(f"S{_SHORT_FIELD_WIDTH}").ravel()
    fields = np.char.strip(fields)
    too_long = (ends - starts) > _SHORT_FIELD_WIDTH
    fields[too_long] = b"<too long>"
    return fields


def _parse_labels(path: Path, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    fields = _short_fields(buf, starts, ends)
    valid = [str(i).encode() for i in range(NUM_CLASSES)]
    ok = np.isin(fields, valid)
    if not ok.all():
        row = int(np.argmin(ok))
        raise FerDataError(
            f"{path}: line {row + 2}: field 'emotion' must be an integer label "
            f"0-{NUM_CLASSES - 1}, found {fields[row].decode(errors='replace')!r}"
        )
    return (fields.view(np.uint8).reshape(len(fields), -1)[:, 0] - ord("0")).astype(np.int64)


def _parse_usage(path: Path, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    fields = _short_fields(buf, starts, ends)
    usage = np.full(len(fields), -1, dtype=np.int8)
    for index, name in enumerate(USAGES):
        usage[fields == name.encode()] = index
    if (bad := np.flatnonzero(usage < 0)).size:
        row = int(bad[0])
        raise FerDataError(
            f"{path}: line {row + 2}: field 'Usage' must be one of {', '.join(USAGES)}, "
            f"found {fields[row].decode(errors='replace')!r}"
        )
    return usage


_ROWS_PER_BLOCK = 128  # ~1 MB of text: a block's temporaries stay in cache, no page faults


def _parse_pixels(
    path: Path, text: bytes, starts: np.ndarray, ends: np.ndarray, threads: int | None
) -> np.ndarray:
    n_rows = len(starts)
    pixels = np.empty((n_rows, PIXELS_PER_IMAGE), dtype=np.uint8)
    view = memoryview(text)
    starts_list, ends_list = starts.tolist(), ends.tolist()

    def parse_block(lo: int) -> None:
        hi = min(lo + _ROWS_PER_BLOCK, n_rows)
        fields = [view[s:e] for s, e in zip(starts_list[lo:hi], ends_list[lo:hi], strict=True)]
        pixels[lo:hi] = decode_pixel_rows(path, fields, first_line=lo + 2)

    with ThreadPoolExecutor(_workers(threads)) as pool:
        list(pool.map(parse_block, range(0, n_rows, _ROWS_PER_BLOCK)))
    return pixels


def decode_pixel_rows(path: Path, fields: list, first_line: int) -> np.ndarray:
    """Decode pixel fields (space-separated integers) into a (rows, 2304) uint8 array."""
    # "\n\n\n" in front makes position i - 3 valid for every token end i.
    raw = np.frombuffer(b"".join([b"\n\n\n", b"\n".join(fields), b"\n"]), dtype=np.uint8)
    digit = raw - np.uint8(ord("0"))
    is_digit = digit < 10
    is_space, is_newline = raw == ord(" "), raw == ord("\n")
    if np.count_nonzero(is_digit) + np.count_nonzero(is_space) + np.count_nonzero(
        is_newline
    ) != len(raw):
        bad = int(np.argmin(is_digit | is_space | is_newline))
        _raise_bad_pixel(path, raw, bad, first_line)
    # A token ends at a digit followed by a non-digit; its value is the up-to-3 digits ending
    # there, each earlier digit counted only while the digits are contiguous.
    end = np.flatnonzero(is_digit[:-1] & ~is_digit[1:])
    tens, hundreds = is_digit[end - 1], is_digit[end - 2] & is_digit[end - 1]
    values = digit[end].astype(np.uint16)
    values += (digit[end - 1] * tens).astype(np.uint16) * np.uint16(10)
    values += (digit[end - 2] * hundreds).astype(np.uint16) * np.uint16(100)
    if (long_token := hundreds & is_digit[end - 3]).any():
        _raise_bad_pixel(
            path, raw, int(end[np.argmax(long_token)]), first_line, "more than 3 digits"
        )

    line_end = np.flatnonzero(is_newline)[3:]
    counts = np.diff(np.searchsorted(end, line_end), prepend=0)
    if (bad_rows := np.flatnonzero(counts != PIXELS_PER_IMAGE)).size:
        row = int(bad_rows[0])
        raise FerDataError(
            f"{path}: line {first_line + row}: field 'pixels' must hold {PIXELS_PER_IMAGE} "
            f"space-separated values (48x48), found {counts[row]}"
        )
    if (over := np.flatnonzero(values > 255)).size:
        row, column = divmod(int(over[0]), PIXELS_PER_IMAGE)
        raise FerDataError(
            f"{path}: line {first_line + row}: field 'pixels' value {int(values[over[0]])} "
            f"(pixel {column + 1}) is outside 0-255"
        )
    return values.astype(np.uint8).reshape(-1, PIXELS_PER_IMAGE)


def _raise_bad_pixel(
    path: Path, raw: np.ndarray, index: int, first_line: int, why: str = "not an integer"
) -> None:
    line = first_line + int(np.count_nonzero(raw[3:index] == ord("\n")))
    lo, hi = index, index
    while lo > 3 and raw[lo - 1] not in b" \n\t":
        lo -= 1
    while hi < len(raw) and raw[hi] not in b" \n\t":
        hi += 1
    token = raw[lo:hi].tobytes().decode("utf-8", errors="replace")
    raise FerDataError(f"{path}: line {line}: field 'pixels' value {token!r} is {why}")


def read_fer_csv(path: str | Path, threads: int | None = None) -> FerTable:
    """Read and validate a FER2013 file in any accepted container."""
    return parse_fer_csv(read_csv_bytes(path), path, threads=threads)
