"""issue 43's int8 gate: an int8 copy only when it is faster and keeps 99 % of the labels."""

import json

import numpy as np
import pytest

from ferx.deploy.int8 import MIN_AGREEMENT, judge_int8, quantize
from ferx.onnx_model import META_KEY, OnnxModel

LABELS = np.arange(1000) % 7


def _changed(labels: np.ndarray, how_many: int) -> np.ndarray:
    """The labels with the first `how_many` moved to the next class."""
    out = labels.copy()
    out[:how_many] = (out[:how_many] + 1) % 7
    return out


def test_an_int8_model_that_is_faster_and_agrees_is_accepted():
    verdict = judge_int8(LABELS, _changed(LABELS, 10), 1000.0, 1500.0)  # exactly 99 %
    assert verdict.accepted
    assert verdict.agreement == pytest.approx(MIN_AGREEMENT)
    assert verdict.speedup == pytest.approx(1.5)
    assert verdict.reason.startswith("accepted: 1.50x faster")


def test_an_int8_model_that_disagrees_too_much_is_refused_even_when_faster():
    verdict = judge_int8(LABELS, _changed(LABELS, 11), 1000.0, 3000.0)  # 98.9 %
    assert not verdict.accepted
    assert verdict.reason == "refused: same label on 98.90 % of the faces, under 99 %"


def test_an_int8_model_that_is_not_faster_is_refused_even_when_it_agrees():
    verdict = judge_int8(LABELS, LABELS, 1000.0, 1000.0)
    assert not verdict.accepted
    assert verdict.reason == "refused: 1.00x the float model's faces/s, not faster"


def test_a_refusal_names_every_reason():
    verdict = judge_int8(LABELS, _changed(LABELS, 40), 1000.0, 500.0)
    assert not verdict.accepted
    assert "96.00 %" in verdict.reason and "0.50x" in verdict.reason


@pytest.mark.parametrize(
    "float_labels, int8_labels, speeds",
    [
        (LABELS, LABELS[:-1], (1.0, 2.0)),
        (LABELS[:0], LABELS[:0], (1.0, 2.0)),
        (LABELS, LABELS, (0.0, 2.0)),
    ],
    ids=["lengths differ", "no faces", "no speed"],
)
def test_the_gate_refuses_inputs_it_cannot_judge(float_labels, int8_labels, speeds):
    with pytest.raises(ValueError, match="judge_int8"):
        judge_int8(float_labels, int8_labels, *speeds)


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_an_int8_copy_opens_as_a_ferx_model_and_says_it_is_int8(tmp_path, mode):
    torch = pytest.importorskip("torch")
    from ferx.data.synthetic import make_synthetic_fer
    from ferx.deploy.export import export_onnx
    from ferx.models import ModelConfig, build_model

    torch.manual_seed(0)
    source = tmp_path / "float.onnx"
    export_onnx(build_model(ModelConfig(widths=(8, 16))).eval(), source, {"source": "synthetic"})
    faces = make_synthetic_fer(64, seed=0).pixels[:64]
    out = quantize(source, tmp_path / "int8.onnx", mode, calibration=faces)
    int8, float_model = OnnxModel(out), OnnxModel(source)
    assert int8.meta["int8"] == mode and int8.meta["source"] == "synthetic"
    assert (
        json.loads(float_model.session.get_modelmeta().custom_metadata_map[META_KEY]).get("int8")
        is None
    )  # the float file is left as it was
    logits = int8.logits(faces)
    assert logits.shape == (64, 7) and np.isfinite(logits).all()
    import onnx

    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert ops & {"DynamicQuantizeLinear", "QuantizeLinear", "ConvInteger", "MatMulInteger"}


def test_static_quantisation_without_calibration_faces_is_refused(tmp_path):
    with pytest.raises(ValueError, match="calibration"):
        quantize(tmp_path / "float.onnx", tmp_path / "int8.onnx", "static")


def test_quantize_will_not_overwrite_its_model_nor_copy_a_foreign_one(tmp_path):
    onnx = pytest.importorskip("onnx")
    model = tmp_path / "float.onnx"
    model.write_bytes(b"not touched")
    with pytest.raises(ValueError, match="the model itself"):
        quantize(model, tmp_path / "." / "float.onnx", "dynamic")
    assert model.read_bytes() == b"not touched"
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(graph), str(model))
    with pytest.raises(ValueError, match="not a ferx export"):
        quantize(model, tmp_path / "int8.onnx", "dynamic")
    assert not (tmp_path / "int8.onnx").exists()
