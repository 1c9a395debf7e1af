import torch
import torch.nn.functional as F

from ferx.model import MiniXception, ModelConfig, Pointwise, count_parameters


def test_parameter_count_is_the_papers():
    model = MiniXception()
    assert count_parameters(model) == 56_951
    assert count_parameters(model, trainable_only=False) == 58_423  # Keras total (BN stats)


def test_output_and_feature_shapes():
    model = MiniXception().eval()
    x = torch.rand(5, 1, 48, 48) * 255
    assert model(x).shape == (5, 7)
    assert model.features(x).shape == (5, 128, 3, 3)
    assert model.head(model.features(x)).shape == (5, 7, 3, 3)


def test_width_param_scales_the_model():
    small = MiniXception(ModelConfig(widths=(8, 16), stem_width=4))
    assert small(torch.rand(2, 1, 48, 48)).shape == (2, 7)
    assert count_parameters(small) < count_parameters(MiniXception())


def test_pointwise_matmul_equals_a_1x1_convolution():
    for stride in (1, 2):
        layer = Pointwise(6, 10, stride=stride)
        x = torch.randn(3, 6, 11, 11, requires_grad=True)
        expected = F.conv2d(x, layer.weight, stride=stride)
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
        grad = torch.randn_like(expected)
        (gx,) = torch.autograd.grad(layer(x), x, grad)
        (gx_ref,) = torch.autograd.grad(expected, x, grad)
        torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-5)


def test_per_image_normalisation_ignores_brightness_and_contrast():
    torch.manual_seed(0)
    model = MiniXception().eval()
    x = torch.rand(4, 1, 48, 48) * 100 + 50
    torch.testing.assert_close(model(x), model(x * 1.5 + 20), rtol=1e-3, atol=2e-3)


def test_dataset_normalisation_uses_the_stored_statistics():
    model = MiniXception(ModelConfig(normalize="dataset", mean=100.0, std=50.0))
    x = torch.full((1, 1, 48, 48), 150.0)
    assert torch.allclose(model.normalize(x), torch.ones_like(x))
