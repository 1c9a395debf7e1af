import numpy as np
import pytest
import torch

from ferx.export import OnnxModel, OnnxModelError, export_onnx, parity, softmax
from ferx.inference import predict_logits
from ferx.labels import ARCHITECTURES, CLASS_NAMES
from ferx.model import ModelConfig, build_model
from ferx.synthetic import make_synthetic_fer

FACES = make_synthetic_fer(120, seed=1).pixels


def _trained_like(arch: str) -> torch.nn.Module:
    """Seeded weights, BatchNorm statistics away from their defaults and the head scaled so
    the logits reach about 10, as a trained model's do (a fresh network's are near zero and
    would hide a mismatch)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    model.eval()
    with torch.no_grad():
        peak = model(torch.from_numpy(FACES[:16]).float().unsqueeze(1)).abs().max()
        for p in model.head.parameters():
            p.mul_(10 / peak)
    return model


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_onnx_runtime_gives_pytorchs_logits_for_every_network(tmp_path, arch):
    model = _trained_like(arch)
    export_onnx(model, tmp_path / "m.onnx", {"source": "synthetic"})
    onnx_model = OnnxModel(tmp_path / "m.onnx")
    reference = predict_logits(model, torch.from_numpy(FACES).unsqueeze(1)).numpy()
    assert np.abs(reference).max() > 5  # a trained model's scale, where 1e-4 is tight
    ours = onnx_model.logits(FACES, batch_size=37)  # ragged last batch: the batch is dynamic
    assert ours.shape == (len(FACES), len(CLASS_NAMES))
    assert np.abs(ours - reference).max() < 1e-4
    assert parity(model, onnx_model, FACES)["same_predictions"] == 1.0
    assert onnx_model.meta["arch"] == arch and onnx_model.meta["source"] == "synthetic"


def test_one_raw_face_in_gives_the_logits_normalisation_included(tmp_path):
    model = _trained_like("mini_xception")
    export_onnx(model, tmp_path / "m.onnx")
    one = FACES[:1]  # uint8, no batch of its own: the caller passes raw pixels only
    expected = model(torch.from_numpy(one).float()[:, None]).detach().numpy()
    assert OnnxModel(tmp_path / "m.onnx").logits(one) == pytest.approx(expected, abs=1e-4)


def test_parity_reports_a_model_that_is_not_the_export(tmp_path):
    model = _trained_like("mini_xception")
    export_onnx(model, tmp_path / "m.onnx")
    with torch.no_grad():
        model.head.weight.add_(0.5)
    assert parity(model, OnnxModel(tmp_path / "m.onnx"), FACES)["max_abs_logit_diff"] > 1e-2


def test_a_network_that_cannot_export_is_named_with_the_reason(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("Unsupported operator aten::frobnicate\nmore lines")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    with pytest.raises(OnnxModelError, match=r"resnet18 network cannot be exported.*frobnicate"):
        export_onnx(_trained_like("resnet18"), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "not found"), (b"not onnx at all", "not a loadable ONNX model")],
)
def test_bad_onnx_files_give_a_clear_error(tmp_path, content, message):
    path = tmp_path / "m.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(OnnxModelError, match=message):
        OnnxModel(path)


def test_an_onnx_file_that_is_no_ferx_model_is_refused(tmp_path):
    torch.onnx.export(
        torch.nn.Linear(3, 2).eval(),
        (torch.zeros(1, 3),),
        str(tmp_path / "other.onnx"),
        dynamo=True,
    )
    with pytest.raises(OnnxModelError, match="not a ferx ONNX model"):
        OnnxModel(tmp_path / "other.onnx")


def test_softmax_rows_sum_to_one_and_keep_the_order():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    p = softmax(logits)
    assert p.sum(axis=1) == pytest.approx([1, 1])
    assert (p.argmax(1) == logits.argmax(1)).all()
