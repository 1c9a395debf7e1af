import time

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from ferx.analysis.cost import count_flops, efficiency, latency_ms, model_cost
from ferx.models import MiniXception, Pointwise


def test_flops_of_one_known_convolution_equal_the_hand_count():
    # 3x3 conv, 1 -> 8 channels, valid padding on 48x48: 46 * 46 outputs * 8 filters * 9 MACs
    assert count_flops(nn.Sequential(nn.Conv2d(1, 8, 3, bias=False))) == 46 * 46 * 8 * 9


def test_pointwise_gemm_is_counted_like_the_1x1_convolution_it_replaces():
    x = torch.zeros(1, 16, 10, 10)
    as_gemm = FlopCountAnalysis(Pointwise(16, 32).eval(), x).total()
    as_conv = FlopCountAnalysis(nn.Conv2d(16, 32, 1, bias=False).eval(), x).total()
    assert as_gemm == as_conv == 16 * 32 * 100


def test_mini_xception_costs_what_fvcore_says_of_the_paper_model():
    assert count_flops(MiniXception()) / 1e9 == pytest.approx(0.00585, rel=0.01)


def test_efficiency_is_accuracy_percent_per_gflop():
    assert efficiency(0.65, 5_850_000) == pytest.approx(65 / 0.00585)
    assert efficiency(0.5, 1_000_000_000) == pytest.approx(50.0)


class _Sleeper(nn.Module):
    """A 'model' whose forward takes a known 20 ms."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        time.sleep(0.02)
        return x.flatten(1)[:, :7] + self.weight


def test_latency_is_the_median_milliseconds_of_one_forward():
    assert latency_ms(_Sleeper(), runs=5, warmup=1) == pytest.approx(20, abs=8)


def test_operators_fvcore_cannot_count_are_listed_not_silenced():
    # max-pooling has no fvcore handle: it must show up, by name and count
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.MaxPool2d(2))
    flops, unsupported = count_flops(model, with_unsupported=True)
    assert flops == 46 * 46 * 4 * 9
    assert unsupported == {"aten::max_pool2d": 2}


@pytest.mark.slow
def test_tta_costs_its_views_and_earns_its_own_efficiency(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"0" * 10)
    model = MiniXception()
    tta = {"views": "flip_shift", "n_views": 10, "accuracy": 0.66}
    cost = model_cost(model, path, 0.64, batch=4, tta=tta)
    assert cost["arch"] == "mini_xception" and cost["file_bytes"] == 10
    assert cost["efficiency"] == pytest.approx(efficiency(0.64, cost["flops"]))
    assert cost["tta"]["gflops"] == pytest.approx(10 * cost["gflops"])
    assert cost["tta"]["efficiency"] == pytest.approx(66 / (10 * cost["gflops"]))
    assert cost["fvcore_unsupported_ops"]  # BatchNorm, pooling, adds: listed for the reader
    assert "tta" not in model_cost(model, path, 0.64, batch=4)


@pytest.mark.slow
def test_the_onnx_export_is_timed_in_onnx_runtime_on_torchs_threads(tmp_path):
    from ferx.deploy.export import export_onnx

    model = MiniXception().eval()
    path, onnx_path = tmp_path / "m.pt", tmp_path / "m.onnx"
    path.write_bytes(b"0" * 10)
    export_onnx(model, onnx_path)
    cost = model_cost(model, path, 0.64, batch=8, onnx_path=onnx_path)
    ort = cost["onnxruntime"]
    assert ort["file_bytes"] == onnx_path.stat().st_size
    assert ort["threads"] == torch.get_num_threads() == cost["threads"]
    assert ort["throughput_batch"] == 8
    assert ort["latency_ms_batch1"] > 0 and ort["throughput_img_s"] > 0
    assert "onnxruntime" not in model_cost(model, path, 0.64, batch=8)
