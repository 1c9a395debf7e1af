"""`python -m ferx.analysis.views`: whole faces against centre windows, for crop-trained models."""

import numpy as np
import pytest
import torch

from ferx.analysis import views
from ferx.models import MiniXception
from ferx.models.checkpoint import save_model
from ferx.models.inference import predict_logits, predict_tta
from tests.conftest import tiny_splits


@pytest.fixture()
def model_and_data(tmp_path):
    torch.manual_seed(0)
    model = MiniXception().eval()
    save_model(tmp_path / "model.pt", model, source="synthetic")
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    for name, split in tiny_splits(60).items():
        np.savez(prepared / f"{name}.npz", x=split.x[:, 0].numpy(), y=split.y.numpy())
    return model, prepared


def test_the_tool_prints_each_views_accuracy_as_computed_directly(model_and_data, capsys):
    model, prepared = model_and_data
    views.main([str(prepared.parent / "model.pt"), "--window", "40", "--prepared",
                str(prepared), "--splits", "public_test"])  # fmt: skip
    out = capsys.readouterr().out
    split = tiny_splits(60)["public_test"]

    def accuracy(logits):
        return f"{100 * (logits.argmax(1) == split.y).float().mean():.2f}"

    centre = split.x[..., 4:44, 4:44].contiguous()
    expected = [
        accuracy(predict_logits(model, split.x)),
        accuracy(predict_tta(model, split.x, "flip_shift", 2)),
        accuracy(predict_logits(model, centre)),
        accuracy(predict_tta(model, split.x, "flip_shift", 2, window=40)),
    ]
    row = next(line for line in out.splitlines() if line.startswith("PublicTest"))
    assert row.split()[1:5] == expected
    assert "PrivateTest" not in out


def test_centre_minus_whole_is_the_difference_of_the_columns():
    whole = np.array([1, 0, 0, 1, 0, 1, 0, 0], dtype=np.uint8)
    centre = np.array([1, 1, 1, 1, 0, 1, 0, 0], dtype=np.uint8)  # 2 more right of 8: +25 points
    scores = views.ViewScores(whole, whole, centre, whole)
    row = views.views_table({"public_test": scores}, 40, "flip_shift").splitlines()[1]
    assert row.split()[1:5] == ["37.50", "37.50", "62.50", "37.50"]
    assert "+25.00 [" in row and "; +0.00 [+0.00, +0.00]" in row


def test_a_window_too_big_to_move_is_one_line(model_and_data):
    _, prepared = model_and_data
    with pytest.raises(SystemExit, match=r"views: .*room to move 1 pixels, not 2"):
        views.main([str(prepared.parent / "model.pt"), "--window", "46",
                    "--prepared", str(prepared)])  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "20"], "--window: 24-47 pixels"),
        (["--window", "40", "--shift", "0"], "--shift: at least 1 pixel"),
        (["--window", "40", "--shift", "5"], "room to move 4 pixels, not 5"),
    ],
)
def test_bad_windows_and_shifts_are_one_line_before_any_inference(model_and_data, args, message):
    _, prepared = model_and_data
    with pytest.raises(SystemExit, match=f"views: .*{message}"):
        views.main([str(prepared.parent / "model.pt"), "--prepared", str(prepared), *args])
