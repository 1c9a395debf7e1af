import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from ferx.data.synthetic import make_synthetic_fer
from ferx.deploy.predict import main
from ferx.labels import ARCHITECTURES, CLASS_NAMES
from ferx.models import MiniXception, ModelConfig, build_model
from ferx.models.checkpoint import save_model

FACES = make_synthetic_fer(100, seed=0)


@pytest.fixture()
def model_path(tmp_path):
    path = tmp_path / "models/baseline.pt"
    save_model(path, MiniXception())
    return path


def _photo(path, index: int = 0) -> None:
    """A drawn face, upscaled and softened, pasted into a larger noisy 'photo'."""
    face = Image.fromarray(FACES.pixels[index]).resize((160, 160), Image.Resampling.BICUBIC)
    background = (
        np.random.default_rng(index).normal(120, 25, (300, 400)).clip(0, 255).astype(np.uint8)
    )
    canvas = Image.fromarray(background).convert("RGB")
    canvas.paste(face.filter(ImageFilter.GaussianBlur(2)).convert("RGB"), (180, 70))
    canvas.save(path)


def test_crops_and_photos_are_classified_with_json_schema(tmp_path, model_path, capsys):
    Image.fromarray(FACES.pixels[1]).save(tmp_path / "crop.png")
    _photo(tmp_path / "photo.jpg")
    code = main(
        [
            str(tmp_path / "crop.png"),
            str(tmp_path / "photo.jpg"),
            "--model",
            str(model_path),
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == str(model_path)
    crop, photo = out["predictions"]
    for item in (crop, photo):
        assert set(item) == {"file", "predicted", "probabilities", "face_box", "error"}
        assert item["error"] is None and item["predicted"] in item["probabilities"]
        assert abs(sum(item["probabilities"].values()) - 1) < 1e-2
    assert crop["face_box"] is None  # a 48x48 crop is classified as it is
    x, y, w, h = photo["face_box"]
    assert abs(x + w / 2 - 260) < 40 and abs(y + h / 2 - 150) < 40  # found the pasted face


def test_table_output_and_gradcam_overlay(tmp_path, model_path, capsys):
    _photo(tmp_path / "photo.png", index=3)
    assert main([str(tmp_path / "photo.png"), "--model", str(model_path), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)["predictions"][0]
    code = main([str(tmp_path), "--model", str(model_path), "--gradcam", str(tmp_path / "cam.png")])
    assert code == 0
    model_line, header, rule, row = capsys.readouterr().out.strip().splitlines()
    assert model_line == f"model: {model_path}"
    assert header.split() == ["file", "emotion", *(n[:8] for n in CLASS_NAMES)]
    assert set(rule) == {"-"}
    cells = row.split()
    assert cells[0].endswith("photo.png") and cells[1] == expected["predicted"]
    shown = [float(c) for c in cells[2:]]
    assert shown == pytest.approx([expected["probabilities"][n] for n in CLASS_NAMES], abs=6e-4)
    assert (tmp_path / "cam.png").read_bytes()[:4] == b"\x89PNG"


def test_a_model_trained_on_synthetic_data_is_flagged(tmp_path, capsys):
    Image.fromarray(FACES.pixels[1]).save(tmp_path / "crop.png")
    for source, warned in (("synthetic", True), ("real", False)):
        path = tmp_path / f"{source}.pt"
        save_model(path, MiniXception(), source=source)
        assert main([str(tmp_path / "crop.png"), "--model", str(path)]) == 0
        err = capsys.readouterr().err
        assert (f"trained on {source} data, not FER2013" in err) == warned, err


def test_no_face_and_non_image_are_reported_per_file(tmp_path, model_path, capsys):
    noise = np.random.default_rng(0).integers(0, 256, (200, 300), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    (tmp_path / "notes.jpg").write_text("not an image")
    Image.fromarray(FACES.pixels[2]).save(tmp_path / "ok.png")
    files = [str(tmp_path / n) for n in ("noise.png", "notes.jpg", "ok.png")]
    assert main([*files, "--model", str(model_path), "--json"]) == 0  # one could be classified
    captured = capsys.readouterr()
    by_file = {p["file"]: p for p in json.loads(captured.out)["predictions"]}
    assert "no face found" in by_file[files[0]]["error"]
    assert by_file[files[1]]["error"] == "not a readable image"
    assert by_file[files[2]]["predicted"] is not None
    assert "noise.png" in captured.err and "notes.jpg" in captured.err


def test_nothing_classified_exits_non_zero_and_no_detect_classifies_anything(tmp_path, model_path):
    noise = np.random.default_rng(1).integers(0, 256, (120, 90), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    assert main([str(tmp_path / "noise.png"), "--model", str(model_path)]) == 1
    assert main([str(tmp_path / "noise.png"), "--model", str(model_path), "--no-detect"]) == 0


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    Image.fromarray(FACES.pixels[0]).save(tmp_path / "a.png")
    assert main([str(tmp_path / "a.png"), "--model", str(tmp_path / "none.pt")]) == 2
    assert "none.pt: not found" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_network_predicts_from_its_file_alone_with_a_gradcam(tmp_path, arch, capsys):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch)).eval()
    save_model(tmp_path / "m.pt", model)
    Image.fromarray(FACES.pixels[2]).save(tmp_path / "crop.png")
    cam = tmp_path / "cam.png"
    args = [str(tmp_path / "crop.png"), "--model", str(tmp_path / "m.pt"), "--json"]
    assert main([*args, "--gradcam", str(cam)]) == 0
    probabilities = json.loads(capsys.readouterr().out)["predictions"][0]["probabilities"]
    x = torch.from_numpy(FACES.pixels[2]).float()[None, None]
    expected = torch.softmax(model(x), 1)[0]
    assert [probabilities[n] for n in CLASS_NAMES] == pytest.approx(expected.tolist(), abs=1e-3)
    assert cam.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_the_onnx_export_gives_the_model_files_output(tmp_path, model_path, capsys):
    from ferx.deploy.export import export_onnx
    from ferx.models.checkpoint import load_model

    torch.manual_seed(1)
    model = MiniXception().eval()
    with torch.no_grad():
        model.head.weight.mul_(30)  # confident, face-dependent predictions
    save_model(model_path, model, source="real")
    export_onnx(load_model(model_path)[0], tmp_path / "m.onnx", {"source": "real"})
    _photo(tmp_path / "photo.jpg")
    for i in (1, 2, 3):
        Image.fromarray(FACES.pixels[i]).save(tmp_path / f"crop{i}.png")
    files = [str(tmp_path / n) for n in ("photo.jpg", "crop1.png", "crop2.png", "crop3.png")]
    outputs = {}
    for name in (str(model_path), str(tmp_path / "m.onnx")):
        assert main([*files, "--model", name, "--json"]) == 0
        captured = capsys.readouterr()
        assert "warning" not in captured.err  # trained on real data: nothing to flag
        outputs[name] = json.loads(captured.out)["predictions"]
    by_pt, by_onnx = outputs.values()
    assert [p["predicted"] for p in by_pt] == [p["predicted"] for p in by_onnx]
    assert [p["face_box"] for p in by_pt] == [p["face_box"] for p in by_onnx]
    for a, b in zip(by_pt, by_onnx, strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=2e-4)


@pytest.mark.slow
def test_gradcam_needs_the_model_file_not_its_onnx_export(tmp_path, model_path, capsys):
    from ferx.deploy.export import export_onnx

    export_onnx(MiniXception(), tmp_path / "m.onnx")
    Image.fromarray(FACES.pixels[0]).save(tmp_path / "a.png")
    args = [str(tmp_path / "a.png"), "--model", str(tmp_path / "m.onnx")]
    assert main([*args, "--gradcam", str(tmp_path / "cam.png")]) == 2
    assert "--gradcam needs the PyTorch model file (.pt)" in capsys.readouterr().err


@pytest.mark.slow
def test_predicting_with_the_onnx_export_never_imports_torch(tmp_path):
    import subprocess
    import sys

    from ferx.deploy.export import export_onnx

    export_onnx(MiniXception(), tmp_path / "m.onnx")
    Image.fromarray(FACES.pixels[0]).save(tmp_path / "a.png")
    code = (
        "import sys\nfrom ferx.deploy.predict import main\n"
        f"code = main([{str(tmp_path / 'a.png')!r}, '--model', {str(tmp_path / 'm.onnx')!r}])\n"
        "print(code, sorted({'torch', 'captum', 'torchvision'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 []"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("alias", ["same", "symlink", "hardlink", "model"])
def test_an_overlay_that_would_land_on_an_input_is_refused_before_any_work(
    tmp_path, model_path, capsys, alias
):
    photo = tmp_path / "me.png"
    _photo(photo)
    before = photo.read_bytes()
    target = {"same": photo, "model": model_path}.get(alias, tmp_path / "alias.png")
    if alias == "symlink":
        target.symlink_to(photo)
    elif alias == "hardlink":
        target.hardlink_to(photo)
    model_before = model_path.read_bytes()
    assert main([str(photo), "--model", str(model_path), "--gradcam", str(target)]) == 2
    err = _one_line_error(capsys)
    assert err.startswith("error: --gradcam") and "overwritten" in err
    assert photo.read_bytes() == before and model_path.read_bytes() == model_before


def test_a_derived_overlay_name_that_is_an_input_is_refused(tmp_path, model_path, capsys):
    # several images: OUT_<name>.png; here that name is one of the photos
    for name in ("happy.png", "cam_happy.png"):
        _photo(tmp_path / name)
    before = (tmp_path / "cam_happy.png").read_bytes()
    assert (
        main([str(tmp_path), "--model", str(model_path), "--gradcam", str(tmp_path / "cam.png")])
        == 2
    )
    assert "cam_happy.png" in _one_line_error(capsys)
    assert (tmp_path / "cam_happy.png").read_bytes() == before


def test_images_sharing_a_name_get_an_overlay_each(tmp_path, model_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(FACES.pixels[0]).save(tmp_path / "a/x.png")
    Image.fromarray(FACES.pixels[5]).save(tmp_path / "b/x.jpg", quality=95)
    out = tmp_path / "cam.png"
    args = [str(tmp_path / "a/x.png"), str(tmp_path / "b/x.jpg"), "--model", str(model_path)]
    assert main([*args, "--gradcam", str(out)]) == 0
    err = capsys.readouterr().err
    first, second = tmp_path / "cam_x.png", tmp_path / "cam_x-2.png"
    assert f"Grad-CAM overlay of {tmp_path / 'a/x.png'}: {first}" in err
    assert f"Grad-CAM overlay of {tmp_path / 'b/x.jpg'}: {second}" in err
    assert first.read_bytes() != second.read_bytes()  # two faces, two drawings


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--margin", "-0.5", "--margin must be between 0 and 1"),
        ("--margin", "1.5", "--margin must be between 0 and 1"),
        ("--margin", "nan", "--margin must be between 0 and 1"),
        ("--every", "0", "--every must be 1 or more"),
    ],
)
def test_out_of_range_options_are_refused(tmp_path, model_path, capsys, flag, value, expected):
    _photo(tmp_path / "me.png")
    assert main([str(tmp_path / "me.png"), "--model", str(model_path), flag, value]) == 2
    assert expected in _one_line_error(capsys)


def test_a_folder_as_the_overlay_and_a_file_named_twice(tmp_path, model_path, capsys, monkeypatch):
    photo = tmp_path / "me.png"
    _photo(photo)
    (tmp_path / "out").mkdir()
    args = [str(photo), "--model", str(model_path)]
    assert main([*args, "--gradcam", str(tmp_path / "out")]) == 2
    assert "is a folder: name a file" in _one_line_error(capsys)
    # relative paths; the image named twice and once more inside its folder: classified once,
    # and its one overlay named as for one image
    monkeypatch.chdir(tmp_path)
    model = str(model_path)
    assert main(["me.png", "./me.png", ".", "--model", model, "--gradcam", "c.png"]) == 0
    assert capsys.readouterr().out.count("me.png") == 1 and (tmp_path / "c.png").exists()
    before = photo.read_bytes()
    assert main(["me.png", "--model", model, "--gradcam", "./me.png"]) == 2
    assert "overwritten" in _one_line_error(capsys) and photo.read_bytes() == before


def test_an_existing_overlay_is_kept_unless_overwrite_is_given(tmp_path, model_path, capsys):
    photo, cam = tmp_path / "me.png", tmp_path / "cam.png"
    _photo(photo)
    cam.write_bytes(b"an earlier overlay, yours")
    args = [str(photo), "--model", str(model_path), "--gradcam", str(cam)]
    assert main(args) == 2
    assert _one_line_error(capsys) == (
        f"error: --gradcam {cam} exists; pass --overwrite to replace it, or name another file"
    )
    assert cam.read_bytes() == b"an earlier overlay, yours"
    assert main([*args, "--overwrite"]) == 0
    assert f"Grad-CAM overlay of {photo}: {cam}" in capsys.readouterr().err
    assert cam.read_bytes()[:4] == b"\x89PNG"
    # a derived name (several images: OUT_<name>.png) is an output like any other
    _photo(tmp_path / "you.png")
    (tmp_path / "cam_you.png").write_text("kept")
    several = [str(photo), str(tmp_path / "you.png"), "--model", str(model_path)]
    assert main([*several, "--gradcam", str(cam)]) == 2
    assert "cam_you.png exists; pass --overwrite" in _one_line_error(capsys)
    assert (tmp_path / "cam_you.png").read_text() == "kept"
    # --overwrite never lets an output land on an input
    before = photo.read_bytes()
    assert (
        main([str(photo), "--model", str(model_path), "--gradcam", str(photo), "--overwrite"]) == 2
    )
    assert "is the input" in _one_line_error(capsys) and photo.read_bytes() == before
