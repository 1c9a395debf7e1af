import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ferx.analysis.cost import count_flops
from ferx.labels import ARCHITECTURES
from ferx.models import (
    NETWORKS,
    MiniXception,
    ModelConfig,
    Pointwise,
    build_model,
    count_parameters,
)
from ferx.models.layers import EfficientChannelAttention, SqueezeExcite, eca_kernel_size


def test_parameter_count_is_the_papers():
    model = MiniXception()
    assert count_parameters(model) == 56_951
    assert count_parameters(model, trainable_only=False) == 58_423  # Keras total (BN stats)


def test_the_default_network_is_the_mini_xception_at_twice_the_papers_widths_with_eca():
    from ferx.params import Params
    from ferx.training.run import model_config

    # the whole model section (attention included), as the train stage builds it: a change of
    # the default network must change the figures below
    section = Params().train.model
    model = build_model(model_config(section)).eval()
    assert len([m for m in model.modules() if isinstance(m, EfficientChannelAttention)]) == 4
    assert count_parameters(model) == 199_687  # ECA's four 1-D kernels: 3 + 3 + 5 + 5
    # fvcore: one multiply-add is one flop; of ECA only its Conv1d counts (2,208)
    assert count_flops(model) == 16_385_151
    assert model.features(torch.rand(2, 1, 48, 48) * 255).shape == (2, 256, 3, 3)
    # without attention: the default network to 2026-12-07 (its published figures)
    plain = build_model(model_config(section.model_copy(update={"attention": "none"}))).eval()
    assert count_parameters(plain) == 199_671
    assert count_flops(plain) == 16_382_943


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


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_pointwise_matmul_equals_a_1x1_convolution(fmt):
    for stride in (1, 2):
        layer = Pointwise(6, 10, stride=stride)
        x = torch.randn(3, 6, 11, 11).contiguous(memory_format=fmt).requires_grad_()
        # the reference in NCHW: oneDNN's channels_last 1x1 convolution backward is the kernel
        # that corrupted the heap at batch sizes not divisible by 8 (layers.Pointwise)
        x_ref = x.detach().contiguous().requires_grad_()
        expected = F.conv2d(x_ref, layer.weight, stride=stride)
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
        grad = torch.randn_like(expected)
        (gx,) = torch.autograd.grad(layer(x), x, grad)
        (gx_ref,) = torch.autograd.grad(expected, x_ref, grad)
        torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-5)


def test_channels_last_gradients_stay_channels_last_through_the_strided_shortcut():
    # a residual module's output gradient is the shortcut's plus the main path's: if the
    # stride-2 shortcut hands back an NCHW gradient, the sum is NCHW and every max-pool and
    # BatchNorm backward behind it copies to channels_last and runs its slow path
    model = MiniXception(ModelConfig(widths=(8, 16, 16), stem_width=4))
    model = model.to(memory_format=torch.channels_last)
    seen = []

    def keep_output_gradient(module, inputs, output):
        output.register_hook(seen.append)

    for module in model.residual_modules:
        module.register_forward_hook(keep_output_gradient)
    x = torch.rand(2, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    model(x).sum().backward()
    assert len(seen) == 3
    assert all(g.is_contiguous(memory_format=torch.channels_last) for g in seen)
    # the gradient as computed (a leaf's .grad would be copied to the leaf's own layout)
    layer = Pointwise(6, 10, stride=2)
    x = torch.randn(3, 6, 11, 11).contiguous(memory_format=torch.channels_last).requires_grad_()
    (gx,) = torch.autograd.grad(layer(x).sum(), x)
    assert gx.is_contiguous(memory_format=torch.channels_last)


def test_per_image_normalisation_ignores_brightness_and_contrast():
    torch.manual_seed(0)
    model = MiniXception().eval()
    x = torch.rand(4, 1, 48, 48) * 100 + 50
    torch.testing.assert_close(model(x), model(x * 1.5 + 20), rtol=1e-3, atol=2e-3)


def test_dataset_normalisation_uses_the_stored_statistics():
    model = MiniXception(ModelConfig(normalize="dataset", mean=100.0, std=50.0))
    x = torch.full((1, 1, 48, 48), 150.0)
    assert torch.allclose(model.normalize(x), torch.ones_like(x))


# parameters (trainable) and fvcore FLOPs for one 48x48 face, pinned per network
NETWORK_FIGURES = {
    "mini_xception": (56_951, 5_850_751),
    "baseline_cnn": (25_891_863, 327_505_392),
    "resnet18": (11_171_271, 1_249_822_208),
}


def test_every_architecture_params_yaml_accepts_is_built_and_pinned():
    assert set(NETWORKS) == set(ARCHITECTURES) == set(NETWORK_FIGURES)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_network_maps_raw_faces_to_seven_logits_at_its_pinned_size(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch)).eval()
    assert model.config.arch == arch
    x = torch.rand(3, 1, 48, 48) * 255
    assert model(x).shape == (3, 7)
    parameters, flops = NETWORK_FIGURES[arch]
    assert count_parameters(model) == parameters
    assert count_flops(model) == flops
    # the head is the last map to the logits: one output per class
    head_outputs = model.head.out_channels if arch == "mini_xception" else model.head.out_features
    assert head_outputs == 7


def test_resnet18_is_torchvisions_with_a_48_pixel_stem():
    model = build_model(ModelConfig(arch="resnet18"))
    assert isinstance(model.body, torchvision.models.ResNet)
    assert model.body.conv1.kernel_size == (3, 3) and model.body.conv1.stride == (1, 1)
    assert model.body.conv1.in_channels == 1 and isinstance(model.body.maxpool, nn.Identity)
    reference = torchvision.models.resnet18(num_classes=7).state_dict()
    ours = {k.removeprefix("body."): v for k, v in model.state_dict().items()}
    ours |= {f"fc.{k.removeprefix('head.')}": v for k, v in ours.items() if k.startswith("head.")}
    # same weights, same names and shapes as torchvision's, except the one-channel 3x3 stem
    assert {k for k in reference if not k.startswith("conv1")} <= set(ours)
    for key, value in reference.items():
        if not key.startswith("conv1"):
            assert ours[key].shape == value.shape, key


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture 'vgg'"):
        build_model(ModelConfig(arch="vgg"))


def _tiny_task(per_class: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Seven classes, each a bright bar at its own height on noise: any network that trains
    at all fits it in a few dozen steps."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(7).repeat_interleave(per_class)
    x = torch.rand(len(y), 1, 48, 48, generator=generator) * 60
    for i, label in enumerate(y.tolist()):
        x[i, 0, 4 + 6 * label : 8 + 6 * label, 8:40] += 180
    return x, y


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_network_learns_from_its_default_initialisation(arch):
    # The course CNN has 13 layers and no normalisation: under torch's default init its loss
    # stayed at the class prior on FER2013. Each network must start moving at once.
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch))
    x, y = _tiny_task()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(torch.log(torch.tensor(7.0)).item(), abs=0.5)
    assert sum(losses[-3:]) / 3 < 0.5 * losses[0], losses


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_what_reaches_the_head_depends_on_the_face_at_initialisation(arch):
    # Under torch's default init the course CNN (13 layers, no normalisation) shrinks the
    # signal ~3,000-fold: what reaches its head is nearly the same for every face, and on
    # FER2013 the loss stayed at the class prior's entropy for three epochs. He init restores
    # the signal at initialisation (what this pins).
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch)).eval()
    seen = []
    model.head.register_forward_pre_hook(lambda _module, inputs: seen.append(inputs[0]))
    faces = torch.rand(16, 1, 48, 48, generator=torch.Generator().manual_seed(1)) * 255
    with torch.no_grad():
        model(faces)
    spread_across_faces = seen[0].std(0).mean().item()
    assert spread_across_faces > 1e-2, spread_across_faces


def test_attention_none_builds_the_same_network_and_weights_as_before():
    # attention modules are appended after everything else: "none" draws the same initial
    # weights as the network always did, and its state has the same names
    torch.manual_seed(3)
    plain = MiniXception(ModelConfig())
    torch.manual_seed(3)
    with_se = MiniXception(ModelConfig(attention="se"))
    ours, theirs = plain.state_dict(), with_se.state_dict()
    assert set(theirs) > set(ours)
    for key, value in ours.items():
        assert torch.equal(value, theirs[key]), key
    assert not any("main.6" in key for key in ours)


@pytest.mark.parametrize(
    ("attention", "module"), [("se", SqueezeExcite), ("eca", EfficientChannelAttention)]
)
def test_attention_scales_each_residual_modules_channels_cheaply(attention, module):
    model = MiniXception(ModelConfig(attention=attention)).eval()
    blocks = [m for m in model.modules() if isinstance(m, module)]
    assert len(blocks) == 4
    assert model(torch.rand(2, 1, 48, 48) * 255).shape == (2, 7)
    assert count_flops(model) < 1.05 * count_flops(MiniXception(ModelConfig()).eval())
    maps = torch.randn(2, 16, 6, 6)
    ratio = blocks[0](maps) / maps
    # one gate per image and channel, strictly between 0 and 1: it only scales
    torch.testing.assert_close(ratio, ratio[:, :, :1, :1].expand_as(ratio))
    assert ((ratio > 0) & (ratio < 1)).all()
    assert not torch.allclose(ratio[:, 0], ratio[:, 1])


def test_eca_kernel_grows_with_the_channels_and_is_odd():
    assert [eca_kernel_size(c) for c in (16, 32, 64, 128, 256, 512)] == [3, 3, 3, 5, 5, 5]
