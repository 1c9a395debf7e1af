import pytest
import torch

from ferx.models import MiniXception
from ferx.models.inference import (
    TTA_VIEWS,
    predict_logits,
    predict_tta,
    tta_views,
    window_views,
)

FACES = (torch.rand(5, 1, 48, 48, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)


def _model() -> MiniXception:
    torch.manual_seed(0)
    return MiniXception().eval()


def test_one_view_is_the_single_view_prediction():
    model = _model()
    single = predict_logits(model, FACES, batch_size=2)
    one_view = predict_tta(model, FACES, "none", batch_size=2)
    torch.testing.assert_close(one_view, torch.log_softmax(single, dim=1))
    assert torch.equal(one_view.argmax(1), single.argmax(1))


def test_flip_tta_averages_the_probabilities_of_the_face_and_its_mirror():
    model = _model()
    by_hand = (
        torch.softmax(model(FACES.float()), 1) + torch.softmax(model(FACES.flip(-1).float()), 1)
    ) / 2
    torch.testing.assert_close(predict_tta(model, FACES, "flip"), torch.log(by_hand))
    assert not torch.allclose(by_hand, torch.softmax(model(FACES.float()), 1))


def test_flip_shift_views_move_a_planted_pixel_two_pixels_each_way():
    image = torch.zeros(1, 1, 48, 48, dtype=torch.uint8)
    image[0, 0, 20, 10] = 255
    views = tta_views(image, "flip_shift", shift=2)
    assert len(views) == TTA_VIEWS["flip_shift"] == 10
    assert all(v.shape == image.shape and v.dtype == torch.uint8 for v in views)
    where = {tuple(torch.nonzero(v[0, 0])[0].tolist()) for v in views}
    plain = {(20, 10), (22, 10), (18, 10), (20, 12), (20, 8)}
    mirrored = {(r, 47 - c) for r, c in plain}
    assert where == plain | mirrored


def test_shifted_views_repeat_the_edge_instead_of_adding_a_black_border():
    image = torch.full((1, 1, 48, 48), 200, dtype=torch.uint8)
    assert all(int(v.min()) == 200 for v in tta_views(image, "flip_shift", shift=3))


def test_unknown_tta_is_refused():
    with pytest.raises(ValueError, match="unknown TTA 'crop'"):
        tta_views(FACES, "crop")


def test_window_views_are_the_centre_window_and_its_moves_inside_the_face():
    image = torch.arange(48 * 48).reshape(1, 1, 48, 48)  # each pixel names its place
    views = window_views(image, 40, "flip_shift", shift=2)
    assert len(views) == TTA_VIEWS["flip_shift"]
    assert all(v.shape == (1, 1, 40, 40) for v in views)
    corners = [(int(v[0, 0, 0, 0]) // 48, int(v[0, 0, 0, 0]) % 48) for v in views[:5]]
    assert corners == [(4, 4), (2, 4), (6, 4), (4, 2), (4, 6)]  # centre, up, down, left, right
    assert torch.equal(views[5], image.flip(-1)[..., 4:44, 4:44])  # the mirror's centre
    assert torch.equal(window_views(image, 40, "none")[0], image[..., 4:44, 4:44])


def test_a_window_with_no_room_to_move_is_refused():
    with pytest.raises(ValueError, match="room to move 1 pixels, not 2"):
        window_views(FACES, 46, "flip_shift", shift=2)
    with pytest.raises(ValueError, match="a 50-pixel window"):
        window_views(FACES, 50, "none")


def test_window_tta_averages_the_probabilities_of_the_windows():
    model = _model()
    by_hand = sum(
        torch.softmax(model(view.float()), 1) for view in window_views(FACES, 40, "flip_shift")
    )
    got = predict_tta(model, FACES, "flip_shift", window=40)
    torch.testing.assert_close(got, torch.log(by_hand / 10))
