import torch

from ferx.params import AugmentParams
from ferx.training.augment import augment_batch


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


def _centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    """(row, col) of each image's brightness centre, in pixels."""
    grid = torch.arange(48, dtype=torch.float32)
    mass = images[:, 0].sum(dim=(1, 2))
    rows = (images[:, 0].sum(dim=2) * grid).sum(dim=1) / mass
    cols = (images[:, 0].sum(dim=1) * grid).sum(dim=1) / mass
    return torch.stack([rows, cols], dim=1)


def test_translation_moves_faces_by_up_to_its_fraction_of_the_side_and_no_further():
    x = torch.zeros(256, 1, 48, 48)
    x[:, :, 20:28, 20:28] = 255  # a bright square in the middle
    params = AugmentParams(hflip=False, rotate_deg=0, translate=0.1, scale=0)
    out = augment_batch(x, params, torch.Generator().manual_seed(5))
    shift = (_centre_of_mass(out) - _centre_of_mass(x)).abs()
    limit = 0.1 * 48  # translate is a fraction of the side: at most 4.8 px each way
    assert shift.max() <= limit + 0.05
    assert shift.max() >= 0.8 * limit  # 256 draws reach near the bound
    assert (shift > 0.5).float().mean() > 0.7  # and most faces move


def test_rotation_turns_by_up_to_its_angle():
    x = torch.zeros(128, 1, 48, 48)
    x[:, :, 22:26, 24:44] = 255  # a horizontal bar right of the centre
    params = AugmentParams(hflip=False, rotate_deg=20, translate=0, scale=0)
    out = augment_batch(x, params, torch.Generator().manual_seed(6))
    row, col = (_centre_of_mass(out) - 23.5).unbind(1)
    angles = torch.rad2deg(torch.atan2(row, col)).abs()
    assert angles.max() <= 20.5 and angles.max() >= 15


def test_erase_off_draws_nothing_so_default_runs_are_unchanged():
    x = _batch()
    params = AugmentParams(hflip=True, rotate_deg=10, translate=0.1, scale=0.1, erase=0.0)
    generator = torch.Generator().manual_seed(7)
    augment_batch(x, params, generator)
    reference = torch.Generator().manual_seed(7)
    augment_batch(x, AugmentParams(hflip=True, rotate_deg=10, translate=0.1, scale=0.1), reference)
    assert torch.equal(generator.get_state(), reference.get_state())


def test_erase_replaces_one_rectangle_in_about_its_share_of_faces():
    x = torch.full((400, 1, 48, 48), -1.0)  # no noise pixel can be -1
    params = AugmentParams(hflip=False, rotate_deg=0, translate=0, scale=0, erase=0.5)
    out = augment_batch(x, params, torch.Generator().manual_seed(8))
    changed = out != -1
    erased = changed.flatten(1).any(1)
    assert 0.4 < erased.float().mean() < 0.6
    for image in changed[erased][:, 0]:
        rows = image.any(1).nonzero().flatten()
        cols = image.any(0).nonzero().flatten()
        box = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all()  # one solid rectangle, nothing outside it
        assert int(image.sum()) == box.numel()
        share = box.numel() / (48 * 48)
        assert 0.015 <= share <= 0.36
        ratio = box.shape[0] / box.shape[1]
        assert 0.2 <= ratio <= 5
    values = out[changed]
    assert values.min() >= 0 and values.max() <= 255 and values.std() > 50  # uniform noise


def test_erase_always_and_never():
    x = torch.full((64, 1, 48, 48), -1.0)
    off = AugmentParams(hflip=False, rotate_deg=0, translate=0, scale=0, erase=0.0)
    on = AugmentParams(hflip=False, rotate_deg=0, translate=0, scale=0, erase=1.0)
    assert torch.equal(augment_batch(x, off, torch.Generator().manual_seed(0)), x)
    assert (augment_batch(x, on, torch.Generator().manual_seed(0)) != -1).flatten(1).any(1).all()
