import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ferx.data.fercsv import FerDataError, FerTable, read_fer_csv
from ferx.data.synthetic import to_csv_text

GOOD_PIXELS = " ".join(["7"] * 2304)


def assert_same(a: FerTable, b: FerTable) -> None:
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.usage, b.usage)


def test_round_trip_keeps_every_pixel_label_and_split(small_csv, small_table):
    table = read_fer_csv(small_csv)
    assert table.pixels.dtype == np.uint8
    assert table.pixels.shape == (len(small_table.labels), 48, 48)
    assert table.labels.dtype == np.int64
    assert_same(table, small_table)


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_thread_count_does_not_change_the_result(small_csv, small_table, threads):
    assert_same(read_fer_csv(small_csv, threads=threads), small_table)


def test_pixel_values_match_a_naive_parse(small_csv):
    lines = small_csv.read_text().splitlines()[1:]
    naive = np.array([[int(v) for v in line.split(",")[1].split()] for line in lines])
    np.testing.assert_array_equal(read_fer_csv(small_csv).pixels.reshape(len(lines), -1), naive)


def test_split_returns_rows_in_file_order(small_csv, small_table):
    x, y = read_fer_csv(small_csv).split("PublicTest")
    rows = np.flatnonzero(small_table.usage == 1)
    np.testing.assert_array_equal(y, small_table.labels[rows])
    np.testing.assert_array_equal(x, small_table.pixels[rows])


def _variants(text: str, tmp_path: Path) -> dict[str, Path]:
    raw = text.encode()
    paths = {}
    paths["gzip"] = tmp_path / "generated.csv.gz"
    paths["gzip"].write_bytes(gzip.compress(raw))
    paths["tar.gz"] = tmp_path / "fer2013.tar.gz"
    with tarfile.open(paths["tar.gz"], "w:gz") as tar:
        info = tarfile.TarInfo("fer2013/fer2013.csv")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
        readme = tarfile.TarInfo("fer2013/README")
        readme.size = 2
        tar.addfile(readme, io.BytesIO(b"hi"))
    paths["zip"] = tmp_path / "fer2013.zip"
    with zipfile.ZipFile(paths["zip"], "w") as archive:
        archive.writestr("fer2013.csv", raw)
    paths["crlf+bom"] = tmp_path / "crlf.csv"
    paths["crlf+bom"].write_bytes(b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n"))
    lines = text.splitlines()
    quoted = [lines[0]] + [",".join(f'"{f}"' for f in line.split(",")) for line in lines[1:]]
    paths["quoted"] = tmp_path / "quoted.csv"
    paths["quoted"].write_text("\n".join(quoted) + "\n\n")
    return paths


def test_containers_and_dialects_give_identical_arrays(tmp_path, small_table):
    for name, path in _variants(to_csv_text(small_table), tmp_path).items():
        try:
            assert_same(read_fer_csv(path), small_table)
        except AssertionError as exc:
            raise AssertionError(f"variant {name} differs") from exc


def test_icml_variant_with_spaced_header_and_other_column_order(tmp_path, small_table):
    text = to_csv_text(small_table, header="emotion, Usage, pixels")
    lines = text.splitlines()
    spaced = [lines[0]] + [line.replace(",", ", ", 2) for line in lines[1:]]
    path = tmp_path / "icml_face_data.csv"
    path.write_text("\n".join(spaced) + "\n")
    assert_same(read_fer_csv(path), small_table)


def _csv(tmp_path: Path, rows: list[str], header: str = "emotion,pixels,Usage") -> Path:
    base = [
        f"0,{GOOD_PIXELS},Training",
        f"1,{GOOD_PIXELS},PublicTest",
        f"2,{GOOD_PIXELS},PrivateTest",
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([header, *base, *rows]) + "\n")
    return path


BAD_ROWS = {
    "too few pixels": (
        "3," + " ".join(["1"] * 2303) + ",Training",
        "line 6: field 'pixels' must hold 2304",
        "found 2303",
    ),
    "too many pixels": (
        "3," + " ".join(["1"] * 2305) + ",Training",
        "line 6: field 'pixels'",
        "found 2305",
    ),
    "missing field": (f"3,{GOOD_PIXELS}", "line 6: expected 3 comma-separated fields", "found 2"),
    "extra field": (f"3,{GOOD_PIXELS},Training,x", "line 6: expected 3", "found 4"),
    "empty pixels": ("3,,Training", "line 6: field 'pixels'", "found 0"),
    "non-integer pixel": (
        "3," + " ".join(["1"] * 2303) + " 1.5,Training",
        "line 6: field 'pixels' value '1.5'",
        "not an integer",
    ),
    "negative pixel": (
        "3,-1 " + " ".join(["1"] * 2303) + ",Training",
        "line 6: field 'pixels' value '-1'",
        "not an integer",
    ),
    "pixel above 255": (
        "3,256 " + " ".join(["1"] * 2303) + ",Training",
        "line 6: field 'pixels' value 256",
        "outside 0-255",
    ),
    "four digit pixel": (
        "3,1000 " + " ".join(["1"] * 2303) + ",Training",
        "line 6: field 'pixels' value '1000'",
        "more than 3 digits",
    ),
    "label 7": (f"7,{GOOD_PIXELS},Training", "line 6: field 'emotion'", "found '7'"),
    "label not an integer": (
        f"happy,{GOOD_PIXELS},Training",
        "line 6: field 'emotion'",
        "found 'happy'",
    ),
    "label float": (f"3.0,{GOOD_PIXELS},Training", "line 6: field 'emotion'", "found '3.0'"),
    "unknown usage": (f"3,{GOOD_PIXELS},Validation", "line 6: field 'Usage'", "found 'Validation'"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_row_names_line_and_field(tmp_path, case):
    row, *fragments = BAD_ROWS[case]
    with pytest.raises(FerDataError) as info:
        read_fer_csv(_csv(tmp_path, [f"4,{GOOD_PIXELS},Training", row]))
    message = str(info.value)
    assert "bad.csv" in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_bad_row_deep_in_a_large_file_reports_its_own_line(tmp_path):
    rows = [f"3,{GOOD_PIXELS},Training"] * 700 + ["3,1 2 x3" + " 1" * 2301 + ",Training"]
    with pytest.raises(FerDataError, match=r"line 705: field 'pixels' value 'x3'"):
        read_fer_csv(_csv(tmp_path, rows), threads=2)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "file is empty"),
        (b"emotion,pixels,Usage\n", "header but no data rows"),
        (b"emotion,pixels,Usage\r\n\r\n", "header but no data rows"),
        (b"label,pixels,Usage\n0,1,Training\n", "missing ['emotion']"),
        (b"emotion,pixels\n0,1\n", "missing ['usage']"),
        (b"emotion,pixels,Usage,extra\n", "unexpected ['extra']"),
        (bytes(range(256)) * 40, "line 1: not a text CSV"),
        (b"\x1f\x8b\x08\x00garbage-after-gzip-magic", "truncated or corrupt gzip"),
    ],
)
def test_bad_files(tmp_path, content, expected):
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    with pytest.raises(FerDataError) as info:
        read_fer_csv(path)
    assert expected in str(info.value)


def test_truncated_gzip_is_refused(tmp_path, small_table):
    packed = gzip.compress(to_csv_text(small_table).encode())
    path = tmp_path / "generated.csv.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(FerDataError, match="truncated or corrupt gzip"):
        read_fer_csv(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FerDataError, match="file not found"):
        read_fer_csv(tmp_path / "nope.csv")
    with pytest.raises(FerDataError, match="is a folder"):
        read_fer_csv(tmp_path)


def test_split_without_rows_is_refused(tmp_path):
    path = tmp_path / "two_splits.csv"
    path.write_text(f"emotion,pixels,Usage\n0,{GOOD_PIXELS},Training\n1,{GOOD_PIXELS},PublicTest\n")
    with pytest.raises(FerDataError, match="the PrivateTest split has no rows"):
        read_fer_csv(path)


def test_archive_without_csv_is_refused(tmp_path):
    path = tmp_path / "fer2013.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("fer2013/notes.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(FerDataError, match=r"archive holds no \.csv"):
        read_fer_csv(path)
