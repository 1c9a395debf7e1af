import csv

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFilter

from ferx.data.synthetic import make_synthetic_fer
from ferx.deploy.predict import main
from ferx.labels import CLASS_NAMES
from ferx.models import MiniXception
from ferx.models.checkpoint import save_model

FACE = make_synthetic_fer(100, seed=0).pixels[0]
FRAMES, SIZE = 12, (400, 300)


def _clip(path, frames: int = FRAMES, with_face: bool = True) -> list[int]:
    """A video of a drawn face sliding right over a noisy background; the face's x per frame."""
    face = np.asarray(
        Image.fromarray(FACE)
        .resize((160, 160), Image.Resampling.BICUBIC)
        .filter(ImageFilter.GaussianBlur(2))
    )
    background = np.random.default_rng(0).normal(120, 25, SIZE[::-1]).clip(0, 255)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, SIZE)
    xs = [20 + 18 * i for i in range(frames)]
    for x in xs:
        frame = background.astype(np.uint8)
        if with_face:
            frame[70:230, x : x + 160] = face
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return xs


@pytest.fixture()
def model_path(tmp_path):
    path = tmp_path / "m.pt"
    save_model(path, MiniXception(), source="synthetic")
    return path


def _rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _frame_count(path) -> tuple[int, tuple[int, int]]:
    capture = cv2.VideoCapture(str(path))
    n, shape = 0, None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape[1::-1]
    capture.release()
    return n, shape


def test_every_frames_face_is_boxed_labelled_and_in_the_timeline(tmp_path, model_path, capsys):
    xs = _clip(tmp_path / "clip.mp4")
    out, timeline = tmp_path / "annotated.mp4", tmp_path / "timeline.csv"
    args = [str(tmp_path / "clip.mp4"), "--model", str(model_path)]
    assert main([*args, "--video-out", str(out), "--csv", str(timeline)]) == 0
    rows = _rows(timeline)
    assert len(rows) == FRAMES  # frames x faces: one face in each
    assert [int(r["frame"]) for r in rows] == list(range(FRAMES))
    assert [float(r["time_s"]) for r in rows] == pytest.approx([i / 10 for i in range(FRAMES)])
    for row, x in zip(rows, xs, strict=True):
        centre = int(row["x"]) + int(row["width"]) / 2
        assert abs(centre - (x + 80)) < 20  # the box follows the face
        probabilities = [float(row[n]) for n in CLASS_NAMES]
        assert sum(probabilities) == pytest.approx(1, abs=1e-3)
        assert row["predicted"] == CLASS_NAMES[int(np.argmax(probabilities))]
        assert row["carried"] == "0"
    assert _frame_count(out) == (FRAMES, SIZE)
    original = cv2.VideoCapture(str(tmp_path / "clip.mp4")).read()[1]
    annotated = cv2.VideoCapture(str(out)).read()[1]
    x, y = int(rows[0]["x"]), int(rows[0]["y"])
    box_edge = annotated[y + 20 : y + 60, x - 1 : x + 2].astype(int)
    assert np.abs(box_edge - original[y + 20 : y + 60, x - 1 : x + 2]).mean() > 30  # drawn box
    captured = capsys.readouterr()
    assert f"{FRAMES} frames" in captured.out and f"{FRAMES}/{FRAMES}" in captured.err  # bar


def test_every_nth_frame_is_classified_and_its_boxes_carried_between(tmp_path, model_path):
    _clip(tmp_path / "clip.mp4")
    timeline = tmp_path / "t.csv"
    args = [str(tmp_path / "clip.mp4"), "--model", str(model_path), "--csv", str(timeline)]
    assert main([*args, "--every", "5"]) == 0
    rows = _rows(timeline)
    assert len(rows) == FRAMES
    assert [r["carried"] for r in rows] == ["0" if i % 5 == 0 else "1" for i in range(FRAMES)]
    for i, row in enumerate(rows):
        source = rows[i - i % 5]
        assert (row["x"], row["predicted"]) == (source["x"], source["predicted"])
    assert rows[5]["x"] != rows[0]["x"]  # the face moved, and frame 5 saw it


@pytest.mark.slow
def test_the_onnx_export_annotates_a_video_like_the_model_file(tmp_path, model_path):
    from ferx.deploy.export import export_onnx
    from ferx.models.checkpoint import load_model

    _clip(tmp_path / "clip.mp4", frames=4)
    export_onnx(load_model(model_path)[0], tmp_path / "m.onnx")
    for name in ("m.pt", "m.onnx"):
        args = [str(tmp_path / "clip.mp4"), "--model", str(tmp_path / name)]
        assert main([*args, "--csv", str(tmp_path / f"{name}.csv")]) == 0
    by_pt, by_onnx = _rows(tmp_path / "m.pt.csv"), _rows(tmp_path / "m.onnx.csv")
    assert [r["predicted"] for r in by_pt] == [r["predicted"] for r in by_onnx]
    for a, b in zip(by_pt, by_onnx, strict=True):
        assert [float(a[n]) for n in CLASS_NAMES] == pytest.approx(
            [float(b[n]) for n in CLASS_NAMES], abs=2e-4
        )


def _error_of(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def test_a_file_that_is_not_a_video_is_a_clear_error_and_writes_nothing(
    tmp_path, model_path, capsys
):
    (tmp_path / "fake.mp4").write_text("this is no video\n")
    out = tmp_path / "out.mp4"
    args = [str(tmp_path / "fake.mp4"), "--model", str(model_path), "--video-out", str(out)]
    assert main(args) == 2
    assert _error_of(capsys) == (
        f"error: {tmp_path / 'fake.mp4'}: not a readable video (no frame could be decoded)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.mp4", "m.pt"]


def test_a_video_without_a_face_is_a_clear_error_and_leaves_no_partial_output(
    tmp_path, model_path, capsys
):
    _clip(tmp_path / "empty.mp4", frames=5, with_face=False)
    args = [str(tmp_path / "empty.mp4"), "--model", str(model_path)]
    out, timeline = tmp_path / "out.mp4", tmp_path / "t.csv"
    assert main([*args, "--video-out", str(out), "--csv", str(timeline)]) == 2
    assert "no face found in any of its 5 frames (nothing written)" in _error_of(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4", "m.pt"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing/out.mp4", "cannot write there (folder"),
        ("out.gif", "cannot write a .gif video"),
        (".", "is a folder: name a file"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_any_work(
    tmp_path, model_path, capsys, target, message
):
    _clip(tmp_path / "clip.mp4", frames=2)
    args = [str(tmp_path / "clip.mp4"), "--model", str(model_path)]
    assert main([*args, "--video-out", str(tmp_path / target)]) == 2
    assert message in _error_of(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "m.pt"]


def test_a_missing_video_and_video_options_on_images_are_clear_errors(tmp_path, model_path, capsys):
    assert main([str(tmp_path / "none.mp4"), "--model", str(model_path)]) == 2
    assert _error_of(capsys).endswith("none.mp4: not found")
    Image.fromarray(FACE).save(tmp_path / "a.png")
    assert main([str(tmp_path / "a.png"), "--model", str(model_path), "--every", "2"]) == 2
    assert "are for a video file" in _error_of(capsys)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--csv", "clip.mp4"], "--csv {d}/clip.mp4 is the input {d}/clip.mp4"),
        (["--video-out", "clip.mp4"], "--video-out {d}/clip.mp4 is the input {d}/clip.mp4"),
        (["--video-out", "link.mp4"], "--video-out {d}/link.mp4 is the input {d}/clip.mp4"),
        (["--csv", "m.pt"], "--csv {d}/m.pt is the input {d}/m.pt"),
        (["--video-out", "o.mp4", "--csv", "o.mp4"], "--csv {d}/o.mp4 and --video-out {d}/o.mp4"),
    ],
)
def test_an_output_that_is_an_input_or_another_output_is_refused(
    tmp_path, model_path, capsys, options, message
):
    _clip(tmp_path / "clip.mp4", frames=2)
    (tmp_path / "link.mp4").symlink_to(tmp_path / "clip.mp4")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    options = [str(tmp_path / o) if not o.startswith("--") else o for o in options]
    assert main([str(tmp_path / "clip.mp4"), "--model", str(model_path), *options]) == 2
    assert message.format(d=tmp_path) in _error_of(capsys)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing touched


def test_gradcam_on_a_video_is_a_clear_error(tmp_path, model_path, capsys):
    _clip(tmp_path / "clip.mp4", frames=2)
    args = [str(tmp_path / "clip.mp4"), "--model", str(model_path)]
    assert main([*args, "--gradcam", str(tmp_path / "cam.png")]) == 2
    assert "--gradcam is for images" in _error_of(capsys)


@pytest.mark.parametrize("flag", ["--video-out", "--csv"])
def test_an_existing_video_or_timeline_is_kept_unless_overwrite_is_given(
    tmp_path, model_path, capsys, flag
):
    _clip(tmp_path / "clip.mp4", frames=2)
    out = tmp_path / ("out.mp4" if flag == "--video-out" else "out.csv")
    out.write_text("yours")
    args = [str(tmp_path / "clip.mp4"), "--model", str(model_path), flag, str(out)]
    assert main(args) == 2
    assert f"{flag} {out} exists; pass --overwrite" in _error_of(capsys)
    assert out.read_text() == "yours"
    assert main([*args, "--overwrite"]) == 0
    assert out.read_bytes() != b"yours"
