import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ferx.analysis.activations import MAPS_PER_BLOCK, plot_activations, strongest_maps
from ferx.analysis.explain import ProbeError, label_from_name, load_probes
from ferx.models import ModelConfig, build_model
from ferx.models.gradcam import explain_batch
from tests.conftest import run_stage


class PlantedNet(nn.Module):
    """score_c = mean(relu(w_c * x)) through a 1x1 'last conv': Grad-CAM is known by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.head = nn.Conv2d(1, 7, 1, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.linspace(-1.0, 2.0, 7).view(7, 1, 1, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)

    @property
    def cam_layer(self):
        return self.head

    def forward(self, x):
        return self.pool(self.head(self.relu(x / 255.0))).flatten(1)


def _planted_image() -> np.ndarray:
    image = np.full((48, 48), 10, dtype=np.uint8)
    image[30:36, 8:14] = 250  # the planted feature
    return image[None]


def test_gradcam_matches_the_hand_computation_and_peaks_on_the_planted_feature():
    model = PlantedNet()
    result = explain_batch(model, _planted_image())
    assert int(result["predicted"][0]) == 6  # the largest positive weight wins
    # Grad-CAM: alpha_k = d score_c / d A_k averaged = 1/(48*48) for k = c, 0 otherwise,
    # so the map is relu(A_c) / 2304 = relu(w_c * x / 255) / 2304; scaled to a peak of 1.
    x = _planted_image()[0] / 255.0
    expected = np.maximum(2.0 * x, 0)
    expected /= expected.max()
    np.testing.assert_allclose(result["gradcam"][0], expected, atol=1e-5)
    peak = np.unravel_index(result["gradcam"][0].argmax(), (48, 48))
    assert 30 <= peak[0] < 36 and 8 <= peak[1] < 14


def _gradcam_by_hand(model, layer, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Selvaraju et al.: weights = spatial mean of d score / d maps; relu(sum w * maps);
    bilinear upsampling to the input size. Plain autograd, no captum."""
    maps = {}
    handle = layer.register_forward_hook(lambda module, inputs, out: maps.update(a=out))
    score = model(x)[torch.arange(len(x)), target].sum()
    handle.remove()
    grads = torch.autograd.grad(score, maps["a"])[0]
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * maps["a"]).sum(dim=1, keepdim=True)).detach()
    return F.interpolate(cam, size=(48, 48), mode="bilinear", align_corners=False)[:, 0]


# Each network's Grad-CAM layer, named here rather than taken from the code, and the shape of
# its maps: a feature block before the classifier, never the 7 class maps of the logits.
CAM_LAYERS = {
    "mini_xception": (lambda m: m.residual_modules[-2], (64, 6, 6)),
    "baseline_cnn": (lambda m: m.features[-2], (256, 12, 12)),
    "resnet18": (lambda m: m.body.layer4, (512, 6, 6)),
}


@pytest.mark.parametrize("arch", list(CAM_LAYERS))
def test_gradcam_and_guided_gradcam_match_a_hand_computation_at_a_feature_block(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch)).eval()
    layer, shape = CAM_LAYERS[arch][0](model), CAM_LAYERS[arch][1]
    assert model.cam_layer is layer
    maps = {}
    handle = layer.register_forward_hook(lambda module, inputs, out: maps.update(a=out))
    model(torch.zeros(1, 1, 48, 48))
    handle.remove()
    assert maps["a"].shape[1:] == shape
    images = (np.random.default_rng(0).random((2, 48, 48)) * 255).astype(np.uint8)
    result = explain_batch(model, images)
    x = torch.from_numpy(images).float().unsqueeze(1)
    cam = _gradcam_by_hand(model, layer, x, torch.from_numpy(result["predicted"])).numpy()
    peak = cam.reshape(2, -1).max(axis=1)[:, None, None]
    np.testing.assert_allclose(result["gradcam"], cam / peak, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        result["guided_gradcam"], result["guided_backprop"] * cam, rtol=1e-4, atol=1e-6
    )


def test_shapes_and_value_ranges_on_the_real_model():
    model = build_model(ModelConfig()).eval()
    images = (np.random.default_rng(1).random((3, 48, 48)) * 255).astype(np.uint8)
    result = explain_batch(model, images)
    assert result["probabilities"].shape == (3, 7)
    np.testing.assert_allclose(result["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    for key in ("gradcam", "guided_backprop", "guided_gradcam"):
        assert result[key].shape == (3, 48, 48) and np.isfinite(result[key]).all()
    assert result["gradcam"].min() >= 0 and result["gradcam"].max() <= 1


def test_probe_loading_converts_colour_and_odd_sizes_and_skips_junk(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((80, 100, 3)) * 255).astype(np.uint8), "RGB").save(
        tmp_path / "Happy_1.jpg"
    )
    Image.fromarray((rng.random((20, 20)) * 255).astype(np.uint8), "L").save(tmp_path / "fear.png")
    (tmp_path / "sad.png").write_text("this is not an image")
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "cat.png")
    warnings = []
    probes = load_probes(tmp_path, warn=warnings.append)
    assert [(p.path.name, p.label) for p in probes] == [("Happy_1.jpg", 3), ("fear.png", 2)]
    assert all(p.image.shape == (48, 48) and p.image.dtype == np.uint8 for p in probes)
    assert any("sad.png" in w and "not a readable image" in w for w in warnings)
    assert any("cat.png" in w and "not a label" in w for w in warnings)


def test_empty_or_missing_probe_folder_is_an_error(tmp_path):
    with pytest.raises(ProbeError, match="not found"):
        load_probes(tmp_path / "nope")
    with pytest.raises(ProbeError, match="no usable probe image"):
        load_probes(tmp_path, warn=lambda m: None)


def test_label_from_name():
    from pathlib import Path

    assert label_from_name(Path("surprise-2.png")) == 5
    assert label_from_name(Path("x.png")) is None


def _explain(root):
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "stages/explain.py"), "--model", "baseline"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_explain_stage_writes_a_grid_and_json_per_probe_set(tmp_path):
    params = {
        "prepare": {"synthetic": {"n_samples": 120}},
        "train": {"epochs": 1, "batch_size": 32},
        "runtime": {"threads": 1},
    }
    for stage in ("prepare", "probes", "train"):
        assert run_stage(stage, tmp_path, params if stage == "prepare" else None).returncode == 0
    user = tmp_path / "data/user_probes"
    user.mkdir()
    (user / "README.md").write_text("put your faces here")
    result = _explain(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "data/user_probes: no images yet, skipped" in result.stdout
    summary = json.loads((tmp_path / "metrics/explain/baseline.json").read_text())
    assert set(summary["share_correct"]) == {"test", "test2"}
    images = summary["sets"]["test"]["images"]
    assert {i["true"] for i in images} == {"happy", "surprise", "neutral", "angry"}
    assert all(abs(sum(i["probabilities"].values()) - 1) < 1e-2 for i in images)
    for name in ("test", "test2"):
        assert (tmp_path / f"plots/explain/baseline/{name}.png").read_bytes()[:4] == b"\x89PNG"
        figure = tmp_path / f"plots/explain/baseline/activations_{name}.png"
        assert figure.read_bytes()[:4] == b"\x89PNG"
        record = summary["activations"][name]
        assert record["figure"] == f"plots/explain/baseline/activations_{name}.png"
        assert record["probe"] == summary["sets"][name]["images"][0]["file"]
        assert record["blocks"][0]["block"] == "stem"

    # the user's own face is explained beside the generated probes, and never removed
    Image.fromarray(np.full((60, 60), 128, np.uint8)).save(user / "sad_mine.png")
    assert _explain(tmp_path).returncode == 0
    summary = json.loads((tmp_path / "metrics/explain/baseline.json").read_text())
    assert summary["sets"]["user_probes"]["images"][0]["file"] == "sad_mine.png"
    assert (tmp_path / "plots/explain/baseline/user_probes.png").exists()
    assert (user / "sad_mine.png").exists()


EXPECTED_BLOCKS = {
    "mini_xception": ["stem", "residual 1", "residual 2", "residual 3", "residual 4"],
    "baseline_cnn": ["relu 1", "relu 2", "relu 3", "relu 4", "relu 5"],
    "resnet18": ["stem", "layer1", "layer2", "layer3", "layer4"],
}


@pytest.mark.parametrize("arch", sorted(EXPECTED_BLOCKS))
def test_activations_show_the_strongest_maps_of_every_block(arch, tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch)).train()
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    blocks, predicted = strongest_maps(model, face)
    assert model.training  # handed back in its mode
    assert [b.block for b in blocks] == EXPECTED_BLOCKS[arch]
    # the hand computation: each block's output, its channels by mean activation
    outputs = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=n: outputs.setdefault(n, o.clone()))
             for n, m in model.blocks]  # fmt: skip
    with torch.no_grad():
        logits = model.eval()(torch.tensor(face, dtype=torch.float32)[None, None])
    for hook in hooks:
        hook.remove()
    assert predicted == int(logits.argmax())
    for block in blocks:
        means = outputs[block.block][0].mean(dim=(1, 2))
        expected = torch.argsort(means, descending=True, stable=True)[:MAPS_PER_BLOCK]
        assert list(block.channels) == expected.tolist()
        assert block.maps.shape[0] == min(MAPS_PER_BLOCK, block.n_channels)
        np.testing.assert_allclose(block.maps[0], outputs[block.block][0, expected[0]], atol=1e-5)
    panels = plot_activations(face, blocks, tmp_path / "a.png", arch)
    assert panels == len(EXPECTED_BLOCKS[arch]) * MAPS_PER_BLOCK
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


def test_a_block_with_fewer_channels_than_asked_shows_them_all(tmp_path):
    model = build_model(ModelConfig(widths=(4, 8), stem_width=3))
    blocks, _ = strongest_maps(model, np.zeros((48, 48), np.uint8))
    assert [len(b.channels) for b in blocks] == [3, 4, 8]
    assert plot_activations(np.zeros((48, 48), np.uint8), blocks, tmp_path / "a.png", "t") == 15
