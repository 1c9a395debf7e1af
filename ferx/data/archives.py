"""The CSV inside whatever FER2013 file a user downloaded: plain, gzip, tar(.gz) or zip,
detected by content (not by name), with a one-line error for a broken or empty file."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
import zlib
from pathlib import Path

from ferx.errors import UserError


class FerDataError(UserError):
    """The input file is not a valid FER2013 CSV; the message names file, line and field."""


def read_file_bytes(path: str | Path) -> bytes:
    path = Path(path)
    if not path.exists():
        raise FerDataError(f"{path}: file not found")
    if path.is_dir():
        raise FerDataError(f"{path}: is a folder, expected a FER2013 CSV file")
    return path.read_bytes()


def read_csv_bytes(path: str | Path) -> bytes:
    """Return the CSV text of a plain, gzip, tar(.gz) or zip file, detected by content."""
    return unpack_csv(read_file_bytes(path), path)


def unpack_csv(data: bytes, path: str | Path = "<csv>") -> bytes:
    """The CSV text inside `data` (the file's bytes): gzip, tar and zip are unpacked."""
    path = Path(path)
    if not data:
        raise FerDataError(f"{path}: file is empty")
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise FerDataError(f"{path}: truncated or corrupt gzip file ({exc})") from None
    if len(data) > 262 and data[257:262] == b"ustar":
        data = _csv_from_tar(path, data)
    elif data[:4] == b"PK\x03\x04":
        data = _csv_from_zip(path, data)
    if not data:
        raise FerDataError(f"{path}: file is empty")
    return data


def _pick_csv(path: Path, names: list[str]) -> str:
    csvs = [n for n in names if n.lower().endswith(".csv") and not Path(n).name.startswith(".")]
    if not csvs:
        raise FerDataError(f"{path}: archive holds no .csv file (found: {names[:5]})")
    preferred = [n for n in csvs if Path(n).name.lower() == "fer2013.csv"]
    return (preferred or csvs)[0]


def _csv_from_tar(path: Path, data: bytes) -> bytes:
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            name = _pick_csv(path, list(members))
            extracted = tar.extractfile(members[name])
            assert extracted is not None
            return extracted.read()
    except (tarfile.TarError, EOFError) as exc:
        raise FerDataError(f"{path}: truncated or corrupt tar archive ({exc})") from None


def _csv_from_zip(path: Path, data: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.read(_pick_csv(path, archive.namelist()))
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise FerDataError(f"{path}: truncated or corrupt zip archive ({exc})") from None
