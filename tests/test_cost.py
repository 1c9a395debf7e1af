import time

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from ferx.cost import count_flops, efficiency, latency_ms
from ferx.model import MiniXception, Pointwise


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
