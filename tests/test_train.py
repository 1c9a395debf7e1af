import math
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import ferx.training.loop
from ferx.labels import ARCHITECTURES
from ferx.models import MiniXception, ModelConfig, build_model
from ferx.models.checkpoint import CheckpointError, load_model, load_state, save_model, save_state
from ferx.models.inference import predict_logits
from ferx.params import AugmentParams, RuntimeParams, TrainParams
from ferx.training.augment import Mix
from ferx.training.loop import fit, freeze_all_but, train_step
from ferx.training.optim import ema_decay, make_ema, make_scheduler
from ferx.training.resume import training_sources
from ferx.training.run_spec import RunSpec, Split
from ferx.training.source_code import relative_name
from tests.conftest import tiny_splits

SPLITS = tiny_splits(160, seed=0)


def quick(**overrides) -> TrainParams:
    base = {"epochs": 3, "batch_size": 32, "lr": 3e-3, "precision": "fp32"}
    return TrainParams(**{**base, **overrides})


def run(tmp_path, params: TrainParams, name: str = "state", **spec):
    torch.manual_seed(params.seed)  # the same initial weights for every run of the same seed
    model = MiniXception(ModelConfig())
    result = fit(model, SPLITS, params, RunSpec("test", tmp_path / f"{name}.pt", **spec))
    return model, result


def _rows(history: list[dict[str, float]], drop: tuple[str, ...] = ()) -> list[dict[str, float]]:
    """The history without its timings, nor the metrics whose names start with `drop`."""
    return [
        {k: v for k, v in row.items() if k != "seconds" and not k.startswith(drop)}
        for row in history
    ]


def _tensors(value, path: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested state (dicts, lists), by its path in it."""
    if isinstance(value, torch.Tensor):
        return {path: value}
    if not isinstance(value, dict | list | tuple):
        return {}
    items = value.items() if isinstance(value, dict) else enumerate(value)
    return {k: v for key, item in items for k, v in _tensors(item, f"{path}/{key}").items()}


def _script(monkeypatch, function: str, scripts: dict[str, list[float]]) -> None:
    """Make ferx.training.loop.<function>, which returns a row of metrics, return the real row
    but for the keys in `scripts`, which take their next scripted value at each call."""
    real = getattr(ferx.training.loop, function)
    values = {key: iter(series) for key, series in scripts.items()}

    def scripted(*args, **kwargs):
        return real(*args, **kwargs) | {key: next(series) for key, series in values.items()}

    monkeypatch.setattr(ferx.training.loop, function, scripted)


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


# the last case: every recipe option that draws its own random numbers or keeps state
EVERY_OPTION = {"ema_warmup": True, "augment": AugmentParams(crop=40, mixup=0.4, cutmix=1.0)}


@pytest.mark.parametrize(
    ("ema", "precision", "options"),
    [(0.0, "fp32", {}), (0.9, "fp32", {}), (0.0, "bf16", {}), (0.9, "fp32", EVERY_OPTION)],
)
def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, ema, precision, options):
    params = quick(epochs=4, ema=ema, precision=precision, **options)
    model_full, full = run(tmp_path, params, "full")

    def interrupt(history):
        if len(history) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, params, "killed", on_epoch_end=interrupt)
    saved = load_state(tmp_path / "killed.pt")
    assert saved["epoch"] == 2 and not saved["finished"]
    model_resumed, resumed = run(tmp_path, params, "killed")
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert resumed.best_epoch == full.best_epoch
    for key, value in full.best_state_dict.items():
        assert torch.equal(value, resumed.best_state_dict[key]), key
    # bit for bit the uninterrupted run: every metric of every epoch (learning rate and
    # training loss included), the last epoch's weights, and the optimiser's, scheduler's and
    # weight average's final state as the two finished checkpoints hold them
    assert _rows(resumed.history) == _rows(full.history)
    for key, value in model_full.state_dict().items():
        assert torch.equal(value, model_resumed.state_dict()[key]), key
    ends = [load_state(tmp_path / f"{name}.pt") for name in ("full", "killed")]
    assert ends[0]["scheduler"]["last_epoch"] == ends[1]["scheduler"]["last_epoch"] > 0
    parts = ["model", "optimizer", "best_state", *(["ema"] if ema else [])]
    for part in parts:
        theirs, ours = _tensors(ends[0][part]), _tensors(ends[1][part])
        assert theirs and theirs.keys() == ours.keys(), part
        for key, value in theirs.items():
            assert torch.equal(value, ours[key]), f"{part}{key}"


def _interrupted(tmp_path, params: TrainParams, name: str, after: int = 1, **spec) -> None:
    """A run killed after `after` epochs: its unfinished checkpoint stays behind."""

    def interrupt(history):
        if len(history) == after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, params, name, on_epoch_end=interrupt, **spec)
    assert not load_state(tmp_path / f"{name}.pt")["finished"]


def test_an_unfinished_checkpoint_of_other_params_is_not_resumed(tmp_path, capsys):
    _interrupted(tmp_path, quick(lr=1e-2), "s")
    _, again = run(tmp_path, quick(lr=3e-3), "s")
    _, reference = run(tmp_path, quick(lr=3e-3), "reference")
    assert "not resuming" in capsys.readouterr().out
    assert [r["public/loss"] for r in again.history] == [
        r["public/loss"] for r in reference.history
    ]


def test_runtime_settings_do_not_stop_a_resume(tmp_path, capsys):
    _interrupted(tmp_path, quick(), "s")
    torch.manual_seed(0)
    other = RuntimeParams(eval_batch_size=16, memory_format="contiguous")
    result = fit(MiniXception(), SPLITS, quick(), RunSpec("test", tmp_path / "s.pt"), other)
    assert "resuming after epoch 1" in capsys.readouterr().out
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    # and the schedule went on from where the interrupted run stopped (the weights are not
    # compared: another memory layout moves the last bits of sums, and two epochs of SGD
    # amplify them; test_resume_after_interruption_matches_an_uninterrupted_run pins those)
    _, expected = run(tmp_path, quick(), "reference")
    assert [r["lr"] for r in result.history] == pytest.approx([r["lr"] for r in expected.history])


def test_a_finished_checkpoint_starts_a_fresh_run(tmp_path, capsys):
    run(tmp_path, quick(epochs=1), "s")
    _, again = run(tmp_path, quick(epochs=1), "s")
    assert [r["epoch"] for r in again.history] == [1]
    assert "that run finished" in capsys.readouterr().out


def test_changed_data_outside_any_subsample_is_another_run(tmp_path, capsys):
    _interrupted(tmp_path, quick(), "s")
    x = SPLITS["train"].x.clone()
    x[5, 0, 1, 1] ^= 1  # one pixel of one image, off the old 1-in-7 grid
    changed = {**SPLITS, "train": Split(x, SPLITS["train"].y)}
    torch.manual_seed(0)
    result = fit(MiniXception(), changed, quick(), RunSpec("test", tmp_path / "s.pt"))
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert "data changed" in capsys.readouterr().out


def test_other_initial_weights_with_the_same_sum_are_another_run(tmp_path, capsys):
    torch.manual_seed(0)
    init = MiniXception().state_dict()
    _interrupted(tmp_path, quick(), "s", init_state_dict=init)
    swapped = {k: v.clone() for k, v in init.items()}
    flat = swapped["stem.0.weight"].view(-1)
    flat[0], flat[1] = flat[1].clone(), flat[0].clone()  # same float sum, other weights
    _, result = run(tmp_path, quick(), "s", init_state_dict=swapped)
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert "initial weights changed" in capsys.readouterr().out


def test_edited_training_code_makes_a_checkpoint_another_runs(tmp_path, monkeypatch, capsys):
    module = tmp_path / "loop.py"
    module.write_text("STEP = 1\n")
    monkeypatch.setattr("ferx.training.resume.training_sources", lambda: [module])
    _interrupted(tmp_path, quick(), "s")
    module.write_text("STEP = 2\n")  # the loop was edited between the kill and the rerun
    _, result = run(tmp_path, quick(), "s")
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert "code changed" in capsys.readouterr().out


def test_training_code_fingerprint_covers_every_module_training_runs():
    names = {relative_name(path) for path in training_sources()}
    training = {"loop", "optim", "resume", "progress", "run", "augment", "class_weights"}
    assert {f"ferx/training/{name}.py" for name in training} <= names
    assert {"ferx/models/mini_xception.py", "ferx/models/__init__.py"} <= names
    assert {"ferx/metrics.py", "ferx/params.py", "ferx/models/checkpoint.py"} <= names


def test_a_checkpoint_whose_weights_do_not_fit_starts_fresh_without_a_traceback(tmp_path, capsys):
    _interrupted(tmp_path, quick(), "s")
    saved = load_state(tmp_path / "s.pt")
    other = MiniXception(ModelConfig(widths=(8, 16))).state_dict()
    save_state(tmp_path / "s.pt", {**saved, "model": other})  # fingerprint kept, weights foreign
    _, result = run(tmp_path, quick(), "s")
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert "do not fit" in capsys.readouterr().out


def test_an_unreadable_checkpoint_starts_fresh(tmp_path, capsys):
    (tmp_path / "s.pt").write_bytes(b"garbage")
    _, result = run(tmp_path, quick(epochs=1), "s")
    assert [r["epoch"] for r in result.history] == [1]
    assert "unreadable" in capsys.readouterr().out


def _first_best(history, key: str) -> int:
    values = [row[key] for row in history]
    return history[values.index(max(values))]["epoch"]


LEARNING = tiny_splits(400, seed=0)  # enough faces that the epochs differ on both test splits
STILL = {"hflip": False, "rotate_deg": 0, "translate": 0, "scale": 0}


def _with_private_labels(splits: dict[str, Split], labels: torch.Tensor) -> dict[str, Split]:
    private = splits["private_test"]
    assert not torch.equal(labels, private.y)
    return {**splits, "private_test": Split(private.x, labels)}


# Every way a run scores epochs and acts on the scores, each of which must read PublicTest
# only: the train loop plain, with the weight average scored, with the plateau schedule
# (which steps on a score) and with early stopping (which stops on one); and improve's loop
# (from trained weights, class-weighted, on macro-F1) for each retrain with its own path.
PRIVATE_TEST_CASES = {
    "train": {},
    "train-ema": {"ema": 0.9},
    "train-bf16": {"precision": "bf16"},
    # four epochs: a score that is not a gain has more chances to act
    "train-plateau": {"schedule": "plateau", "plateau_patience": 0, "epochs": 4},
    "train-early-stopping": {"patience": 1, "epochs": 4},
    "improve-all": {"retrain": "all"},
    "improve-top": {"retrain": "top"},
    "improve-head": {"retrain": "head", "lr": 0.02},
}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The weights the improve cases fine-tune: two epochs on LEARNING."""
    torch.manual_seed(1)
    start = MiniXception()
    path = tmp_path_factory.mktemp("pretrained") / "pre.pt"
    fit(start, LEARNING, quick(epochs=2, batch_size=16, augment=STILL), RunSpec("pre", path))
    return {k: v.clone() for k, v in start.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(PRIVATE_TEST_CASES))
def test_private_test_labels_choose_nothing(tmp_path, request, case):
    recipe = dict(PRIVATE_TEST_CASES[case])
    retrain = recipe.pop("retrain", None)
    params = quick(**{"epochs": 3, "batch_size": 16, "augment": STILL, **recipe})
    spec: dict = {"select_metric": "accuracy"}
    if retrain is not None:  # as the improve stage runs
        spec = {
            "init_state_dict": request.getfixturevalue("pretrained"),
            "trainable": retrain,
            "select_metric": "macro_f1",
            "class_weights": torch.tensor([1.0, 3.0, 1.0, 0.5, 1.0, 1.0, 1.0]),
        }
    private = LEARNING["private_test"]
    probe = MiniXception()  # holds what an epoch scored, to predict PrivateTest with it
    predictions: list[torch.Tensor] = []  # PrivateTest predictions after each epoch

    def record(_history) -> None:
        # what the epoch scored, from the checkpoint just written: the weights, or their
        # average when EMA is on
        saved = load_state(tmp_path / "honest.pt")
        scored = saved["model"]
        if "ema" in saved:
            scored = {
                k.removeprefix("module."): v for k, v in saved["ema"].items() if k != "n_averaged"
            }
        probe.load_state_dict(scored)
        batch = RuntimeParams().eval_batch_size  # as the evaluation batches it
        predictions.append(predict_logits(probe, private.x, batch).argmax(1))

    def fit_with(splits, name, hook=None):
        torch.manual_seed(params.seed)
        run_spec = RunSpec(case, tmp_path / f"{name}.pt", on_epoch_end=hook, **spec)
        return fit(MiniXception(), splits, params, run_spec)

    metric = spec["select_metric"]
    honest = fit_with(LEARNING, "honest", record)
    # fine-tuning: the starting weights are epoch 0 and stay kept unless an epoch beats them
    scored = [{"epoch": 0, **honest.start}] if honest.start else []
    public_pick = _first_best(scored + honest.history, f"public/{metric}")
    # Two dishonest PrivateTests: shuffled labels, and labels that are the honest run's own
    # predictions at an epoch PublicTest did not pick, which makes that epoch PrivateTest's
    # best for certain (a shuffle alone can leave PrivateTest's best epoch where it was). A
    # selection that looked at PrivateTest would keep that epoch and fail this test; a schedule
    # or a stop that looked at it would change the training, which must stay the honest run's
    # to the bit, epoch by epoch.
    decoy = 1 if public_pick != 1 else 2
    order = torch.randperm(len(private), generator=torch.Generator().manual_seed(0))
    shuffled = fit_with(_with_private_labels(LEARNING, private.y[order]), "shuffled")
    planted = fit_with(_with_private_labels(LEARNING, predictions[decoy - 1]), "planted")
    assert _first_best(planted.history, f"private/{metric}") == decoy != public_pick
    for other in (shuffled, planted):
        assert other.best_epoch == honest.best_epoch == public_pick
        assert _rows(other.history, ("private/",)) == _rows(honest.history, ("private/",))
        for key, value in honest.best_state_dict.items():
            assert torch.equal(value, other.best_state_dict[key]), key


def test_fine_tuning_keeps_the_starting_weights_unless_an_epoch_beats_them(tmp_path):
    torch.manual_seed(0)
    start = MiniXception()
    fit(start, SPLITS, quick(epochs=3), RunSpec("pre", tmp_path / "pre.pt"))
    init = {k: v.clone() for k, v in start.state_dict().items()}
    # a learning rate that wrecks the weights: no epoch can beat the start on PublicTest
    _, wrecked = run(tmp_path, quick(epochs=2, lr=5.0), "w", init_state_dict=init)
    assert wrecked.best_epoch == 0 and wrecked.start is not None
    for key, value in init.items():
        assert torch.equal(wrecked.best_state_dict[key], value), key
    assert all(r["public/accuracy"] <= wrecked.start["public/accuracy"] for r in wrecked.history)
    _, gentle = run(tmp_path, quick(epochs=3, lr=1e-3), "g", init_state_dict=init)
    best = gentle.history[gentle.best_epoch - 1] if gentle.best_epoch else gentle.start
    assert best["public/accuracy"] >= gentle.start["public/accuracy"]
    assert all(r["public/accuracy"] <= best["public/accuracy"] for r in gentle.history)


# what `top` re-trains besides the head, by parameter name (a network of four modules)
TOP = {
    "mini_xception": ("residual_modules.2.", "residual_modules.3."),
    "baseline_cnn": ("classifier.",),
    "resnet18": ("body.layer4.",),
}


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize(
    ("trainable", "learns"),
    [
        ("top", lambda arch, name: name.startswith((*TOP[arch], "head."))),
        ("head", lambda arch, name: name.startswith("head.")),
        ("bias", lambda arch, name: name == "head.bias"),
    ],
)
def test_partial_training_changes_exactly_what_it_names(tmp_path, arch, trainable, learns):
    torch.manual_seed(0)
    init = {k: v.clone() for k, v in build_model(ModelConfig(arch=arch)).state_dict().items()}
    model = build_model(ModelConfig(arch=arch))
    fit(
        model,
        SPLITS,
        quick(epochs=1, lr=0.05, batch_size=80),
        RunSpec("h", tmp_path / "h.pt", init_state_dict=init, trainable=trainable),
    )
    # weights and BatchNorm running statistics alike: frozen BatchNorm layers keep theirs
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, init[name]) != learns(arch, name), name


def test_unknown_trainable_part_is_refused():
    with pytest.raises(ValueError, match="all, top, head, bias"):
        freeze_all_but(build_model(ModelConfig()), "body")


def test_logged_lr_is_the_mean_rate_the_epoch_used_and_loss_is_plain_cross_entropy(tmp_path):
    _, result = run(tmp_path, quick(epochs=2, lr=1e-2, label_smoothing=0.3))
    last = result.history[-1]
    assert last["lr"] > 0  # cosine reaches 0 only after the last step
    steps = -(-len(SPLITS["train"]) // 32)
    expected = [
        1e-2 * 0.5 * (1 + math.cos(math.pi * s / (2 * steps))) for s in range(steps, 2 * steps)
    ]
    assert last["lr"] == pytest.approx(sum(expected) / steps, rel=1e-6)
    # label smoothing raises the objective above plain cross-entropy on the same batches
    assert last["train/objective"] > last["train/loss"]


def test_early_stopping_watches_the_public_test_selection_metric_only(
    tmp_path, monkeypatch, capsys
):
    # Scripted scores: PublicTest accuracy (the selection metric) gains at epochs 1 and 3 only
    # and again from epoch 6; every other score, PublicTest's other metrics, PrivateTest's and
    # the training set's, gains every epoch. Patience 2 stops before epoch 6, after epoch 5.
    gains = [0.1 * epoch for epoch in range(1, 9)]
    _script(
        monkeypatch,
        "_evaluate",
        {
            "public/accuracy": [0.3, 0.3, 0.4, 0.4, 0.4, 0.5, 0.6, 0.7],
            "public/loss": [1 - g for g in gains],
            "public/macro_f1": gains,
            "public/balanced_accuracy": gains,
            "private/loss": [1 - g for g in gains],
            **{f"private/{m}": gains for m in ("accuracy", "macro_f1", "balanced_accuracy")},
        },
    )
    _script(
        monkeypatch,
        "_train_one_epoch",
        {"train/loss": [1 - g for g in gains], "train/accuracy": gains},
    )
    _, result = run(tmp_path, quick(epochs=8, patience=2, select_metric="accuracy"))
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4, 5]
    assert result.best_epoch == 3
    assert "early stop, no PublicTest gain in 2 epochs" in capsys.readouterr().out


def test_plateau_schedule_steps_on_the_public_test_selection_metric_only(tmp_path, monkeypatch):
    # Scripted scores: PublicTest accuracy (the selection metric) fails to gain at epochs 2 and
    # 4, each of which halves the rate from the next epoch on (plateau_patience 0); every
    # other score gains every epoch and must halve nothing.
    gains = [0.1 * epoch for epoch in range(1, 6)]
    _script(
        monkeypatch,
        "_evaluate",
        {
            "public/accuracy": [0.3, 0.3, 0.4, 0.4, 0.5],
            "public/macro_f1": gains,
            "public/balanced_accuracy": gains,
            **{f"private/{m}": gains for m in ("accuracy", "macro_f1", "balanced_accuracy")},
        },
    )
    params = quick(epochs=5, schedule="plateau", plateau_patience=0, plateau_factor=0.5)
    _, result = run(tmp_path, params)
    lr = params.lr
    assert [row["lr"] for row in result.history] == pytest.approx([lr, lr, lr / 2, lr / 2, lr / 4])


def test_class_weights_change_the_training(tmp_path):
    _, plain = run(tmp_path, quick(epochs=1), "p")
    weights = torch.tensor([1.0, 20.0, 1.0, 0.2, 1.0, 1.0, 1.0])
    _, weighted = run(tmp_path, quick(epochs=1), "w", class_weights=weights)
    assert plain.history[0]["train/loss"] != weighted.history[0]["train/loss"]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_model_file_round_trip(tmp_path, arch):
    config = ModelConfig(arch=arch, widths=(8, 16), normalize="dataset", mean=3.0, std=2.0)
    model = build_model(config)
    save_model(tmp_path / "m.pt", model, best_epoch=7)
    # the file alone says which network it holds: no params.yaml needed
    loaded, meta = load_model(tmp_path / "m.pt")
    assert meta == {"best_epoch": 7} and loaded.config == model.config and not loaded.training
    assert type(loaded) is type(model)
    x = torch.rand(2, 1, 48, 48) * 255
    torch.testing.assert_close(loaded(x), model.eval()(x))
    assert load_model(tmp_path / "m.pt", expect_arch=arch)[0].config.arch == arch
    other = next(a for a in ARCHITECTURES if a != arch)
    with pytest.raises(CheckpointError, match=f"holds a {arch} network, but params.yaml asks"):
        load_model(tmp_path / "m.pt", expect_arch=other)


def test_model_files_from_before_the_choice_of_network_load_as_mini_xception(tmp_path):
    torch.manual_seed(0)
    model = MiniXception()
    save_model(tmp_path / "m.pt", model)
    state = load_state(tmp_path / "m.pt")
    old_config = {k: v for k, v in state["config"].items() if k != "arch"}
    save_state(
        tmp_path / "old.pt", {**state, "format": "ferx-mini-xception/1", "config": old_config}
    )
    loaded, _ = load_model(tmp_path / "old.pt", expect_arch="mini_xception")
    x = torch.rand(2, 1, 48, 48) * 255
    torch.testing.assert_close(loaded(x), model.eval()(x))


def test_model_files_from_before_the_residual_modules_rename_still_load(tmp_path):
    torch.manual_seed(0)
    model = MiniXception()
    save_model(tmp_path / "m.pt", model)
    state = load_state(tmp_path / "m.pt")
    # MiniXception.residual_modules was called modules_ when these files were written
    old = {
        k.replace("residual_modules.", "modules_.", 1): v for k, v in state["state_dict"].items()
    }
    assert sum(k.startswith("modules_.") for k in old) > 0
    save_state(tmp_path / "old.pt", {**state, "state_dict": old})
    loaded, _ = load_model(tmp_path / "old.pt", expect_arch="mini_xception")
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


@pytest.mark.slow
@pytest.mark.parametrize(
    ("layout", "precision"),
    [("channels_last", "fp32"), ("contiguous", "fp32"), ("channels_last", "bf16")],
)
def test_ragged_batches_do_not_crash_the_training_loop(tmp_path, layout, precision):
    # channels_last training crashed here (heap corruption) for batch sizes not divisible by 8.
    # Run the real loop in a child process with ragged train and eval batches: a crash in any
    # kernel fails this test instead of killing pytest.
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from ferx.models import MiniXception
        from ferx.params import RuntimeParams, TrainParams
        from ferx.training.loop import fit
        from ferx.training.run_spec import RunSpec
        from tests.conftest import tiny_splits
        splits = tiny_splits(100, seed=1)
        params = TrainParams(epochs=1, batch_size=13, precision={precision!r})
        runtime = RuntimeParams(eval_batch_size=7, device="cpu", memory_format={layout!r})
        spec = RunSpec("ragged", Path({str(tmp_path / "s.pt")!r}))
        fit(MiniXception(), splits, params, spec, runtime)
        print("survived")
        """
    )
    env = {**os.environ, "MALLOC_CHECK_": "3"}  # glibc aborts on heap corruption it detects
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0 and "survived" in result.stdout, result.stderr[-2000:]


def test_ema_keeps_decay_times_the_average_plus_the_rest_times_the_weights():
    model = torch.nn.Linear(2, 1, bias=False)
    ema = make_ema(model, 0.9)
    assert make_ema(model, 0.0) is None
    expected = None
    for value in (1.0, 3.0, -2.0):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update_parameters(model)
        # the first update copies the weights; later ones move 10% of the way to them
        expected = value if expected is None else 0.9 * expected + 0.1 * value
        torch.testing.assert_close(ema.module.weight, torch.full((1, 2), expected))
    assert expected == pytest.approx(0.9 * (0.9 * 1 + 0.1 * 3) - 0.2)


def test_a_warmed_up_ema_follows_the_early_weights_then_decays_as_asked():
    model = torch.nn.Linear(2, 1, bias=False)
    ema = make_ema(model, 0.9, warmup=True)
    expected = None
    for updates, value in enumerate((1.0, 3.0, -2.0, 5.0, 4.0)):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update_parameters(model)
        decay = min(0.9, (1 + updates) / (10 + updates))  # after `updates` earlier updates
        expected = value if expected is None else decay * expected + (1 - decay) * value
        torch.testing.assert_close(ema.module.weight, torch.full((1, 2), expected))
    assert ema_decay(0.999, 1) == pytest.approx(2 / 11)
    assert ema_decay(0.999, 8990) == 0.999 and ema_decay(0.999, 8980) < 0.999


def test_a_mixed_batch_weighs_the_loss_of_its_two_labels():
    torch.manual_seed(0)
    model = MiniXception(ModelConfig(widths=(8,), stem_width=4))
    x, y = torch.rand(6, 1, 48, 48) * 255, torch.tensor([0, 1, 2, 3, 4, 5])
    partner = torch.tensor([5, 4, 3, 2, 1, 0])
    params = quick(label_smoothing=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the step changes nothing
    weights = torch.rand(7) + 0.5
    loss, logits = train_step(model, x, y, params, optimizer, weights, mix=Mix(partner, 0.3))

    def ce(labels):
        return F.cross_entropy(logits, labels, weight=weights, label_smoothing=0.1)

    torch.testing.assert_close(loss, 0.3 * ce(y) + 0.7 * ce(y[partner]))
    plain, _ = train_step(model, x, y, params, optimizer, weights, mix=Mix(partner, 1.0))
    torch.testing.assert_close(plain, ce(y))


@pytest.mark.parametrize("attention", ["se", "eca"])
def test_a_network_with_attention_trains_and_reloads(tmp_path, attention):
    torch.manual_seed(0)
    model = MiniXception(ModelConfig(widths=(8, 16), stem_width=4, attention=attention))
    fit(model, SPLITS, quick(epochs=1), RunSpec("test", tmp_path / "state.pt"))
    save_model(tmp_path / "m.pt", model.eval())
    loaded, _ = load_model(tmp_path / "m.pt")
    assert loaded.config.attention == attention
    x = torch.rand(3, 1, 48, 48) * 255
    torch.testing.assert_close(loaded(x), model(x))


def test_with_ema_the_average_is_evaluated_and_kept(tmp_path):
    # one epoch: it is kept whatever it scores, so what is kept is that epoch's average
    model, plain = run(tmp_path, quick(epochs=1), "plain")
    model_ema, averaged = run(tmp_path, quick(epochs=1, ema=0.9), "ema")
    # the same training steps either way: the raw weights end equal, the kept weights do not
    for key, value in model.state_dict().items():
        assert torch.equal(value, model_ema.state_dict()[key]), key
    assert plain.history[-1]["train/loss"] == averaged.history[-1]["train/loss"]
    assert plain.history[-1]["public/loss"] != averaged.history[-1]["public/loss"]
    saved = load_state(tmp_path / "ema.pt")["ema"]
    assert averaged.best_epoch == 1
    for key, value in averaged.best_state_dict.items():
        assert torch.equal(value, saved[f"module.{key}"]), key
    assert any(
        not torch.equal(v, model_ema.state_dict()[k]) for k, v in averaged.best_state_dict.items()
    )


def test_bf16_precision_trains_under_autocast_with_float32_weights(tmp_path, training_dtypes):
    seen = training_dtypes
    model_fp32, _ = run(tmp_path, quick(epochs=1), "fp32")
    assert set(seen) == {torch.float32}
    seen.clear()
    model_bf16, result = run(tmp_path, quick(epochs=1, precision="bf16"), "bf16")
    assert set(seen) == {torch.bfloat16}  # the training forward ran in bfloat16
    state = model_bf16.state_dict()
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())
    assert any(not torch.equal(v, model_fp32.state_dict()[k]) for k, v in state.items())
    assert math.isfinite(result.history[-1]["train/loss"])
    again, _ = run(tmp_path, quick(epochs=1, precision="bf16"), "bf16_again")
    for key, value in again.state_dict().items():
        assert torch.equal(value, state[key]), key  # deterministic on one machine


def test_a_resumed_run_records_every_sitting_and_whether_they_differ(tmp_path):
    from ferx.training.precision import resolve_precision
    from ferx.training.run import bits_record, with_sittings

    def interrupt(history):
        if len(history) == 1:
            raise KeyboardInterrupt

    # the record train_and_save makes: it must load back from a weights-only checkpoint
    first = bits_record(RuntimeParams(), resolve_precision("fp32", torch.device("cpu")))
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, quick(epochs=2), "resumed", on_epoch_end=interrupt, sitting=first)
    later = {**first, "threads": first["threads"] + 1}  # another machine: runtime is no identity
    _, result = run(tmp_path, quick(epochs=2), "resumed", sitting=later)
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert result.sittings == [{**first, "from_epoch": 1}, {**later, "from_epoch": 2}]
    record = with_sittings(later, result.sittings)
    assert record["threads"] == later["threads"] and record["mixed"]
    _, again = run(tmp_path, quick(epochs=2), "whole", sitting=first)
    assert with_sittings(first, again.sittings) == {
        **first,
        "sittings": [{**first, "from_epoch": 1}],
        "mixed": False,
    }


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_warm_up_rises_linearly_over_its_epochs_then_holds_or_follows_the_cosine(schedule):
    model = torch.nn.Linear(2, 2)
    params = TrainParams(lr=0.1, epochs=3, warmup_epochs=1, schedule=schedule)
    optimizer = torch.optim.SGD(model.parameters(), lr=params.lr)
    scheduler = make_scheduler(optimizer, params, steps_per_epoch=4)
    rates = []
    for _ in range(12):  # the rate each step uses, as the loop steps the scheduler per batch
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])  # from lr / steps up to lr
    if schedule == "constant":
        assert rates[4:] == pytest.approx([0.1] * 8)
    else:  # the cosine over the 8 steps after the warm-up, from lr down
        assert rates[4:] == pytest.approx(
            [0.05 * (1 + math.cos(math.pi * i / 8)) for i in range(8)]
        )
