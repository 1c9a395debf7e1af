import pytest
import torch

from ferx.params import AugmentParams
from ferx.training.augment import (
    _flip_and_warp,
    augment_batch,
    mix_batch,
    random_crop,
    random_erase,
)


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


def test_random_crops_are_windows_of_each_image_at_their_own_places():
    x = _batch()
    out = random_crop(x, 40, torch.Generator().manual_seed(2))
    assert out.shape == (16, 1, 40, 40)
    places = []
    for image, crop in zip(x, out, strict=True):
        found = [
            (top, left)
            for top in range(9)
            for left in range(9)
            if torch.equal(image[:, top : top + 40, left : left + 40], crop)
        ]
        assert len(found) == 1  # random pixels: exactly one window matches
        places.append(found[0])
    assert len(set(places)) > 8  # each image its own place, not one for the batch


def test_a_crop_as_big_as_the_image_keeps_it_and_a_bigger_one_is_refused():
    x = _batch()
    assert torch.equal(random_crop(x, 48, torch.Generator().manual_seed(0)), x)
    with pytest.raises(ValueError, match="49-pixel crop"):
        random_crop(x, 49, torch.Generator())


def test_new_options_off_draw_no_random_numbers_so_old_runs_keep_their_bits():
    # today's recipe with crop, mixup and cutmix off: the same images from the same draws as
    # the composition of before (flip and warp, then erasing), and the generator ends in the
    # same state, so every later batch of an epoch is drawn as before too
    params = AugmentParams(erase=0.5, crop=0, mixup=0.0, cutmix=0.0)  # explicit: defaults move
    ours, theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    out = augment_batch(_batch(), params, ours)
    mixed, mix = mix_batch(out, params, ours)
    before = random_erase(_flip_and_warp(_batch(), params, theirs), 0.5, theirs)
    assert mix is None and mixed is out
    assert torch.equal(out, before)
    assert torch.equal(ours.get_state(), theirs.get_state())


def test_mixup_mixes_each_face_with_its_partner_by_the_batch_weight():
    x = _batch()
    mixed, mix = mix_batch(
        x, AugmentParams(mixup=0.4, cutmix=0.0), torch.Generator().manual_seed(1)
    )
    assert 0 < mix.weight < 1 and sorted(mix.partner.tolist()) == list(range(16))
    torch.testing.assert_close(mixed, mix.weight * x + (1 - mix.weight) * x[mix.partner])
    again, same = mix_batch(
        x, AugmentParams(mixup=0.4, cutmix=0.0), torch.Generator().manual_seed(1)
    )
    assert torch.equal(again, mixed) and same.weight == mix.weight


def test_cutmix_pastes_one_box_of_the_partner_and_weighs_by_the_area_left():
    x = _batch()
    for seed in range(20):
        params = AugmentParams(mixup=0.0, cutmix=1.0)
        mixed, mix = mix_batch(x, params, torch.Generator().manual_seed(seed))
        from_partner = (mixed == x[mix.partner]) & (mixed != x)
        area = from_partner[0, 0].float().mean().item()
        # the weight is the share of pixels still the face's own (partner == self: all own)
        if not torch.equal(mix.partner[:1], torch.tensor([0])):
            assert abs(mix.weight - (1 - area)) < 1e-6
        rows = from_partner[0, 0].any(dim=1).nonzero()
        cols = from_partner[0, 0].any(dim=0).nonzero()
        if len(rows):  # one rectangle: every pixel between its extremes came from the partner
            box = from_partner[0, 0, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            assert box.all()
        keep = torch.ones(48, 48, dtype=torch.bool)
        keep[from_partner[0, 0]] = False
        assert torch.equal(mixed[0, 0][keep], x[0, 0][keep])


def test_with_both_mixings_on_each_batch_is_one_or_the_other():
    x = _batch()
    kinds = set()
    for seed in range(30):
        params = AugmentParams(mixup=0.4, cutmix=1.0)
        mixed, mix = mix_batch(x, params, torch.Generator().manual_seed(seed))
        blended = torch.allclose(mixed, mix.weight * x + (1 - mix.weight) * x[mix.partner])
        kinds.add("mixup" if blended and mix.weight not in (0.0, 1.0) else "cutmix")
    assert kinds == {"mixup", "cutmix"}
