"""Prediction installs without torch: the wheel, installed with no extra in a fresh virtual
environment (its dependencies from the package registry, as a user's `pip install` gets them),
classifies a photo with an ONNX model and says what the pipeline's tools need."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from ferx.data.synthetic import make_synthetic_fer
from ferx.deploy.export import export_onnx
from ferx.models import MiniXception
from tests.conftest import PROJECT_ROOT


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


@pytest.mark.slow
def test_the_wheel_without_extras_predicts_with_onnx_and_installs_no_torch(tmp_path):
    wheels = tmp_path / "wheels"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), "."],
                 cwd=PROJECT_ROOT)  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("ferx-*.whl")
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    installed = _run([str(python), "-m", "pip", "install", "-q", str(wheel)])
    assert installed.returncode == 0, installed.stderr

    listed = _run([str(python), "-m", "pip", "list", "--format=json"])
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"ferx", "numpy", "pillow", "onnxruntime"} <= names
    assert not names & {"torch", "torchvision", "opencv-python-headless", "dvc", "pandas"}

    torch.manual_seed(1)
    model = MiniXception().eval()
    with torch.no_grad():
        model.head.weight.mul_(30)  # confident, face-dependent predictions
    export_onnx(model, tmp_path / "m.onnx", {"source": "real"})
    faces = make_synthetic_fer(40, seed=0)  # its face 3 is one the cascade finds (test_haar)
    face = Image.fromarray(faces.pixels[3]).resize((160, 160), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(3).integers(0, 256, (300, 420), dtype=np.uint8)
    # blurred noise: on a flat background the cascade (OpenCV's too) finds no face
    canvas = Image.fromarray(noise).filter(ImageFilter.GaussianBlur(3))
    canvas.paste(face.filter(ImageFilter.GaussianBlur(2)), (180, 70))
    canvas.save(tmp_path / "photo.png")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    start = time.perf_counter()
    helped = _run([str(bin_dir / "ferx-predict"), "--help"], cwd=tmp_path, env=env)
    help_seconds = time.perf_counter() - start
    assert helped.returncode == 0 and "ferx-predict" in helped.stdout
    args = [str(bin_dir / "ferx-predict"), "photo.png", "--model", "m.onnx", "--json"]
    predicted = _run(args, cwd=tmp_path, env=env)
    assert predicted.returncode == 0, predicted.stderr
    (found,) = json.loads(predicted.stdout)["predictions"]
    assert found["error"] is None and found["predicted"] is not None
    x, y, w, h = found["face_box"]  # found by the numpy cascade: there is no OpenCV
    assert abs(x + w / 2 - 260) < 40 and abs(y + h / 2 - 150) < 40

    from ferx.deploy.release import released_model

    if released_model() is not None:  # the wheel carries the committed release: no --model
        plain = _run([str(bin_dir / "ferx-predict"), "photo.png", "--json"], cwd=tmp_path, env=env)
        assert plain.returncode == 0, plain.stderr
        answer = json.loads(plain.stdout)
        assert "ferx's released model" in answer["model_is"]
        assert "site-packages" in answer["model"]  # the installed wheel's copy, not the repo's
        assert answer["predictions"][0]["predicted"] is not None

    # the Python API, the same face and label
    code = (
        "from ferx import Recognizer; import json; "
        "(face,) = Recognizer('m.onnx').predict('photo.png'); "
        "print(json.dumps([face.label, list(face.box)]))"
    )
    api = _run([str(python), "-c", code], cwd=tmp_path, env=env)
    assert api.returncode == 0, api.stderr
    assert json.loads(api.stdout) == [found["predicted"], found["face_box"]]

    # what needs the pipeline says so in one line
    (tmp_path / "m.pt").write_bytes(b"")
    torch_model = _run([str(bin_dir / "ferx-predict"), "photo.png", "--model", "m.pt"],
                       cwd=tmp_path, env=env)  # fmt: skip
    assert torch_model.returncode == 2
    assert "needs torch" in torch_model.stderr and "pipeline extra" in torch_model.stderr
    (tmp_path / "clip.mp4").write_bytes(b"")
    video = _run([str(bin_dir / "ferx-predict"), "clip.mp4", "--model", "m.onnx"],
                 cwd=tmp_path, env=env)  # fmt: skip
    assert video.returncode == 2 and "needs cv2" in video.stderr and "video extra" in video.stderr
    ablate = _run([str(bin_dir / "ferx-ablate"), "x.yaml"], cwd=tmp_path, env=env)
    assert ablate.returncode == 2 and ablate.stderr.startswith("error: ferx-ablate needs")
    size = sum(p.stat().st_size for p in venv.rglob("*") if p.is_file()) / 2**20
    print(f"light install: venv {size:.0f} MiB, `ferx-predict --help` {help_seconds:.2f} s")
