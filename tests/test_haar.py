"""ferx.data.haar, OpenCV's frontal-face cascade run with numpy, against OpenCV itself."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from ferx.data import faces, haar
from ferx.data.synthetic import make_synthetic_fer

cv2 = pytest.importorskip("cv2")  # the pipeline installs it: the reference to compare with

FACES = make_synthetic_fer(40, seed=0)


def _photo(index: int, size=(300, 420), at=(180, 70), side=160) -> np.ndarray:
    """A drawn face, upscaled and softened, pasted into a blurred noisy grey 'photo'."""
    rng = np.random.default_rng(index)
    noise = rng.integers(0, 256, size, dtype=np.uint8)
    canvas = Image.fromarray(noise).filter(ImageFilter.GaussianBlur(3))
    face = Image.fromarray(FACES.pixels[index]).resize((side, side), Image.Resampling.BICUBIC)
    canvas.paste(face.filter(ImageFilter.GaussianBlur(2)), at)
    return np.asarray(canvas)


def _opencv(gray: np.ndarray, min_size: int) -> list[tuple]:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    found = cascade.detectMultiScale(gray, 1.1, 5, minSize=(min_size, min_size))
    return sorted(tuple(int(v) for v in box) for box in found)


def test_the_shipped_cascade_is_opencvs_and_loads_whole():
    shipped = haar.CASCADE_FILE.read_bytes()
    theirs = (cv2.data.haarcascades + "haarcascade_frontalface_default.xml").encode()
    assert shipped == open(theirs, "rb").read()  # noqa: SIM115 (read at once)
    stages = haar.load_cascade()
    assert len(stages) == 25 and sum(len(s.thresholds) for s in stages) == 2913
    assert stages[0].rects.shape == (9, 3, 4) and stages[0].weights.dtype == np.float32


@pytest.mark.parametrize("index", range(6))
def test_faces_found_are_opencvs_to_two_pixels(index):
    gray = _photo(index)
    min_size = max(24, min(gray.shape) // 10)
    ours, theirs = sorted(haar.detect(gray, 1.1, 5, min_size)), _opencv(gray, min_size)
    assert len(ours) == len(theirs) >= 1
    for a, b in zip(ours, theirs, strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 2, (ours, theirs)


def test_noise_and_flat_images_hold_no_face_and_bad_input_is_refused():
    noise = np.random.default_rng(0).integers(0, 256, (200, 260), dtype=np.uint8)
    assert haar.detect(noise, 1.1, 5, 24) == _opencv(noise, 24) == []
    assert haar.detect(np.full((100, 100), 128, np.uint8)) == []
    assert haar.detect(np.zeros((10, 10), np.uint8)) == []  # smaller than one window
    with pytest.raises(ValueError, match="2-D uint8"):
        haar.detect(np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(ValueError, match="above 1"):
        haar.detect(noise, scale_factor=1.0)


def test_the_resize_is_opencvs_bilinear_to_a_grey_level():  # the cascade's: LINEAR_EXACT
    gray = _photo(0)
    for width, height in ((210, 150), (191, 136), (37, 26), (420, 300)):
        theirs = cv2.resize(gray, (width, height), interpolation=cv2.INTER_LINEAR_EXACT)
        ours = haar.shrink(gray, width, height)
        assert ours.shape == theirs.shape
        assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_the_windows_evaluated_are_opencvs_walk_along_each_row():
    def walked(rejects):  # cv2's loop: x += step, and once more after a stage-0 reject
        seen, x = np.zeros(len(rejects), dtype=bool), 0
        while x < len(rejects):
            seen[x] = True
            x += 2 if rejects[x] else 1
        return seen

    rng = np.random.default_rng(0)
    for p in (0.0, 0.3, 0.7, 1.0):
        rows = rng.random((50, 37)) < p
        expected = np.stack([walked(row) for row in rows])
        assert np.array_equal(haar.visited(rows), expected), p


def test_grouping_keeps_crowded_groups_and_drops_small_ones_inside_large():
    near = [(100, 100, 50, 50), (102, 101, 50, 50), (98, 99, 52, 52), (101, 100, 49, 49)]
    lonely = [(300, 10, 40, 40)]
    assert haar.group(near + lonely, min_neighbors=3) == [(100, 100, 50, 50)]
    assert haar.group(near + lonely, min_neighbors=4) == []  # 4 hits: not more than 4
    assert haar.group(near + lonely, 0) == near + lonely  # 0: no grouping
    inner = [(110, 110, 20, 20)] * 2  # a small group inside the crowded one
    assert haar.group(near + inner, min_neighbors=1) == [(100, 100, 50, 50)]
    for i, box in enumerate(near):  # the groups are the same in any order
        assert haar.group(near[i:] + near[:i] + [box], 3) == haar.group([*near, box], 3)


def test_prediction_finds_faces_without_opencv(monkeypatch):
    gray = _photo(3)
    with_opencv = faces.find_faces(gray)
    monkeypatch.setattr(faces, "_opencv_cascade", lambda: None)
    without = faces.find_faces(gray)
    assert len(without) == len(with_opencv) == 1
    assert max(abs(a - b) for a, b in zip(without[0], with_opencv[0], strict=True)) <= 2
