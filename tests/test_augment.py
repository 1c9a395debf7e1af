import torch

from ferx.augment import augment_batch
from ferx.params import AugmentParams


def _batch() -> torch.Tensor:
    return torch.rand(16, 1, 48, 48, generator=torch.Generator().manual_seed(1)) * 255


def test_same_generator_seed_same_augmentation_per_sample_randomness():
    params = AugmentParams(hflip=True, rotate_deg=15, translate=0.1, scale=0.1)
    a = augment_batch(_batch(), params, torch.Generator().manual_seed(3))
    b = augment_batch(_batch(), params, torch.Generator().manual_seed(3))
    c = augment_batch(_batch(), params, torch.Generator().manual_seed(4))
    assert a.shape == (16, 1, 48, 48)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_flip_only_mirrors_some_images_and_keeps_the_rest():
    x = _batch()
    out = augment_batch(
        x,
        AugmentParams(hflip=True, rotate_deg=0, translate=0, scale=0),
        torch.Generator().manual_seed(0),
    )
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert any(flipped) and any(kept)


def test_affine_path_without_motion_is_identity_up_to_flip():
    x = _batch()
    params = AugmentParams(hflip=False, rotate_deg=1e-9, translate=0, scale=0)
    out = augment_batch(x, params, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, rtol=1e-4, atol=1e-3)


def test_augmentation_keeps_pixel_range():
    out = augment_batch(
        _batch(),
        AugmentParams(rotate_deg=30, translate=0.3, scale=0.3),
        torch.Generator().manual_seed(2),
    )
    assert out.min() >= 0 and out.max() <= 255
