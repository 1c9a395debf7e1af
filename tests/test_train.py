import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

from ferx.checkpoint import CheckpointError, load_model, load_state, save_model, save_state
from ferx.model import MiniXception, ModelConfig
from ferx.params import TrainParams
from ferx.train import RunSpec, fit
from tests.conftest import tiny_splits

SPLITS = tiny_splits(160, seed=0)


def quick(**overrides) -> TrainParams:
    base = {"epochs": 3, "batch_size": 32, "eval_batch_size": 64, "lr": 3e-3, "device": "cpu"}
    return TrainParams(**{**base, **overrides})


def run(tmp_path, params: TrainParams, name: str = "state", **spec):
    torch.manual_seed(params.seed)
    model = MiniXception(ModelConfig())
    result = fit(model, SPLITS, params, RunSpec("test", tmp_path / f"{name}.pt", **spec))
    return model, result


def test_loss_decreases_on_a_tiny_synthetic_set(tmp_path):
    _, result = run(tmp_path, quick(epochs=4))
    losses = [row["train/loss"] for row in result.history]
    assert losses[-1] < losses[0]
    assert set(result.history[0]) >= {"public/accuracy", "private/accuracy", "public/macro_f1"}


def test_same_params_and_seed_give_identical_metrics_and_weights(tmp_path):
    model_a, a = run(tmp_path, quick(), "a")
    model_b, b = run(tmp_path, quick(), "b")
    assert a.history and [{k: v for k, v in r.items() if k != "seconds"} for r in a.history] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in b.history
    ]
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, model_b.state_dict()[key]), key


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    params = quick(epochs=4)
    _, full = run(tmp_path, params, "full")

    def interrupt(history):
        if len(history) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, params, "killed", on_epoch_end=interrupt)
    saved = load_state(tmp_path / "killed.pt")
    assert saved["epoch"] == 2 and not saved["finished"]
    _, resumed = run(tmp_path, params, "killed")
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert resumed.best_epoch == full.best_epoch
    for key, value in full.best_state_dict.items():
        assert torch.equal(value, resumed.best_state_dict[key]), key
    assert [r["public/loss"] for r in resumed.history] == [r["public/loss"] for r in full.history]


def test_a_finished_or_foreign_checkpoint_starts_a_fresh_run(tmp_path):
    run(tmp_path, quick(epochs=1), "s")
    _, again = run(tmp_path, quick(epochs=2), "s")  # other params: not resumed
    assert [r["epoch"] for r in again.history] == [1, 2]


def test_early_stopping_on_public_test(tmp_path):
    _, result = run(
        tmp_path,
        quick(
            epochs=6,
            lr=1e-12,
            patience=1,
            augment={"hflip": False, "rotate_deg": 0, "translate": 0, "scale": 0},
        ),
    )
    assert len(result.history) < 6


def test_class_weights_change_the_training(tmp_path):
    _, plain = run(tmp_path, quick(epochs=1), "p")
    weights = torch.tensor([1.0, 20.0, 1.0, 0.2, 1.0, 1.0, 1.0])
    _, weighted = run(tmp_path, quick(epochs=1), "w", class_weights=weights)
    assert plain.history[0]["train/loss"] != weighted.history[0]["train/loss"]


def test_model_file_round_trip(tmp_path):
    model = MiniXception(ModelConfig(widths=(8, 16), normalize="dataset", mean=3.0, std=2.0))
    save_model(tmp_path / "m.pt", model, best_epoch=7)
    loaded, meta = load_model(tmp_path / "m.pt")
    assert meta == {"best_epoch": 7} and loaded.config == model.config and not loaded.training
    x = torch.rand(2, 1, 48, 48) * 255
    torch.testing.assert_close(loaded(x), model.eval()(x))


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint at all", "not a loadable checkpoint"),
        (pickle.dumps(_Evil()), "not a loadable checkpoint"),
    ],
)
def test_bad_checkpoint_files_give_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_model(path)
    assert "bad.pt" in str(info.value)


def test_code_in_a_checkpoint_is_never_executed(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"x": _Evil()}, path)
    with pytest.raises(CheckpointError):
        load_state(path)
    assert "must never run" not in capsys.readouterr().out


def test_incompatible_model_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")
    save_state(tmp_path / "other.pt", {"weights": torch.zeros(3)})
    with pytest.raises(CheckpointError, match="not a ferx model file"):
        load_model(tmp_path / "other.pt")
    model = MiniXception()
    save_model(tmp_path / "m.pt", model)
    state = load_state(tmp_path / "m.pt")
    save_state(tmp_path / "classes.pt", {**state, "class_names": ["a", "b"]})
    with pytest.raises(CheckpointError, match="expected the 7 FER2013 classes"):
        load_model(tmp_path / "classes.pt")
    save_state(
        tmp_path / "arch.pt", {**state, "config": {**state["config"], "widths": [16, 32, 64]}}
    )
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_model(tmp_path / "arch.pt")


@pytest.mark.parametrize("layout", ["channels_last", "contiguous"])
def test_ragged_batches_do_not_crash_the_training_loop(tmp_path, layout):
    # channels_last training crashed here (heap corruption) for batch sizes not divisible by 8.
    # Run the real loop in a child process with ragged train and eval batches: a crash in any
    # kernel fails this test instead of killing pytest.
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from ferx.model import MiniXception
        from ferx.params import TrainParams
        from ferx.train import RunSpec, fit
        from tests.conftest import tiny_splits
        splits = tiny_splits(100, seed=1)
        params = TrainParams(epochs=1, batch_size=13, eval_batch_size=7, device="cpu",
                             memory_format={layout!r})
        fit(MiniXception(), splits, params, RunSpec("ragged", Path({str(tmp_path / "s.pt")!r})))
        print("survived")
        """
    )
    env = {**os.environ, "MALLOC_CHECK_": "3"}  # glibc aborts on heap corruption it detects
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0 and "survived" in result.stdout, result.stderr[-2000:]
