"""The Python API, `from ferx import Recognizer`: the same faces and numbers as ferx-predict."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ferx import Face, Recognizer, RecognizerError
from ferx.deploy.predict import main as ferx_predict
from ferx.labels import CLASS_NAMES
from ferx.models import MiniXception
from ferx.models.checkpoint import save_model
from tests.conftest import PROJECT_ROOT
from tests.test_predict import FACES, _photo


@pytest.fixture()
def model_path(tmp_path):
    path = tmp_path / "models/baseline.pt"
    save_model(path, MiniXception())
    return path


def _close(face: Face, other: Face) -> bool:
    return face.label == other.label and all(
        abs(face.probabilities[n] - other.probabilities[n]) < 1e-5 for n in CLASS_NAMES
    )


def test_every_kind_of_image_of_one_crop_gives_the_same_face(tmp_path, model_path):
    crop = FACES.pixels[3]
    Image.fromarray(crop).save(tmp_path / "crop.png")
    recognizer = Recognizer(model_path)
    rgb = np.repeat(crop[..., None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full_like(crop[..., None], 255)], axis=2)
    kinds = [
        tmp_path / "crop.png",
        str(tmp_path / "crop.png"),
        Image.fromarray(crop),
        crop,
        crop.astype(np.float32),
        crop[..., None],
        rgb,
        rgba,
    ]
    results = [recognizer.predict(image) for image in kinds]
    first = results[0][0]
    assert first.box is None  # a 48x48 crop is the face, as ferx-predict takes it
    assert first.label in CLASS_NAMES and abs(sum(first.probabilities.values()) - 1) < 1e-5
    for faces in results:
        assert len(faces) == 1 and _close(faces[0], first)


def test_a_photo_gives_what_ferx_predict_gives(tmp_path, model_path, capsys):
    _photo(tmp_path / "photo.jpg")
    faces = Recognizer(model_path).predict(tmp_path / "photo.jpg")
    assert ferx_predict([str(tmp_path / "photo.jpg"), "--model", str(model_path), "--json"]) == 0
    theirs = json.loads(capsys.readouterr().out)["predictions"][0]
    assert faces and list(faces[0].box) == theirs["face_box"]
    assert faces[0].label == theirs["predicted"]
    for name in CLASS_NAMES:  # ferx-predict rounds to 4 places
        assert faces[0].probabilities[name] == pytest.approx(
            theirs["probabilities"][name], abs=1e-4
        )
    assert faces[0].as_dict()["box"] == theirs["face_box"]


def test_a_list_or_a_stacked_batch_gives_one_list_per_image_in_order(tmp_path, model_path):
    recognizer = Recognizer(model_path)
    crops = FACES.pixels[:4]
    one_by_one = [recognizer.predict(crop)[0] for crop in crops]
    for batch in (list(crops), tuple(crops), crops):  # a list, a tuple, an N x 48 x 48 array
        results = recognizer.predict(batch)
        assert len(results) == 4
        for faces, alone in zip(results, one_by_one, strict=True):
            assert len(faces) == 1 and _close(faces[0], alone)


def test_an_empty_list_gives_an_empty_list_and_a_bad_margin_is_refused(model_path):
    assert Recognizer(model_path).predict([]) == []
    with pytest.raises(RecognizerError, match="margin must be between 0 and 1"):
        Recognizer(model_path, margin=float("nan"))


def test_whole_images_are_classified_without_detection(tmp_path, model_path):
    noise = np.random.default_rng(0).integers(0, 256, (120, 90), dtype=np.uint8)
    with pytest.raises(RecognizerError, match=r"the ndarray: no face found.*detect=False"):
        Recognizer(model_path).predict(noise)
    (face,) = Recognizer(model_path, detect=False).predict(noise)
    assert face.box is None and face.label in CLASS_NAMES


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("missing.png", r"missing.png: file not found"),
        ("notes.txt", r"notes.txt: not a readable image"),
        (np.zeros((2, 3, 48, 48, 1), np.uint8), r"shape 2x3x48x48x1; expected H x W"),
        (np.zeros(48, np.uint8), r"shape 48; expected H x W"),
        (np.full((48, 48), 300.0), r"outside 0..255"),
        (np.full((48, 48), np.nan), r"outside 0..255 \(or not finite\)"),
        (42, r"expected a path, a PIL image or a numpy array, got int"),
    ],
)
def test_what_a_caller_can_get_wrong_is_one_clear_error(tmp_path, model_path, image, message):
    (tmp_path / "notes.txt").write_text("not an image")
    if isinstance(image, str):
        image = tmp_path / image
    recognizer = Recognizer(model_path)
    with pytest.raises(RecognizerError, match=message):
        recognizer.predict(image)
    with pytest.raises(RecognizerError, match=r"image 1 \("):  # in a list: which one
        recognizer.predict([FACES.pixels[0], image])


def test_a_missing_or_wrong_model_is_a_clear_error(tmp_path, monkeypatch):
    from ferx.deploy import release

    monkeypatch.chdir(tmp_path)  # no models/ here
    monkeypatch.setattr(release, "RELEASE_DIR", tmp_path / "no_release")  # and no release
    with pytest.raises(RecognizerError, match=r"no model given and none found at models/"):
        Recognizer()
    with pytest.raises(RecognizerError, match=r"nothing.onnx: no such model file"):
        Recognizer(tmp_path / "nothing.onnx")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(RecognizerError, match=r"junk\.pt"):
        Recognizer(tmp_path / "junk.pt")


def test_with_no_argument_it_loads_the_model_ferx_predict_would(tmp_path, model_path, monkeypatch):
    monkeypatch.chdir(model_path.parents[1])
    assert Recognizer().model_path.as_posix() == "models/baseline.pt"


@pytest.mark.slow
def test_the_readme_lines_run_as_written_and_never_import_torch_with_onnx(tmp_path):
    from ferx.deploy.export import export_onnx

    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("### From Python: `Recognizer`", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    export_onnx(MiniXception(), tmp_path / "models/improved.onnx")
    _photo(tmp_path / "me.jpg")
    check = "\nimport sys\nprint(sorted({'torch', 'torchvision', 'captum'} & set(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", code + check], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    label, *_, imported = result.stdout.strip().splitlines()
    assert label.split()[0] in CLASS_NAMES
    assert imported == "[]"


def test_importing_ferx_loads_nothing_heavy():
    heavy = "{'numpy', 'PIL', 'torch', 'onnxruntime'}"
    code = f"import sys, ferx\nprint(sorted({heavy} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
