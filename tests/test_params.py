import pytest
import yaml

from ferx.labels import SELECTION_METRICS
from ferx.params import Params, ParamsError, load_params, validate_params
from tests.conftest import PROJECT_ROOT


def test_shipped_params_yaml_is_valid_and_matches_the_defaults():
    # a key left out of params.yaml means the same as the shipped file says
    params = load_params(PROJECT_ROOT / "params.yaml")
    assert params == Params()
    # the default network is the mini-Xception at twice the paper's widths (chosen on
    # PublicTest); ModelConfig's own default, what old checkpoints load as, stays the paper's
    assert params.train.model.widths == [32, 64, 128, 256]
    # with ECA since 2026-12-08 (ablations/stronger.yaml: the rule's winner on PublicTest)
    assert params.train.model.attention == "eca"


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("")
    assert load_params(path) == Params()


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        ({"prepare": {"seeed": 1}}, ["prepare.seeed: unknown key"]),
        ({"prepar": {}}, ["prepar: unknown key"]),
        (
            {"prepare": {"synthetic": {"n_samples": "many"}}},
            ["prepare.synthetic.n_samples", "integer"],
        ),
        ({"prepare": {"synthetic": {"n_samples": 2.5}}}, ["prepare.synthetic.n_samples"]),
        ({"prepare": {"synthetic": {"n_samples": True}}}, ["prepare.synthetic.n_samples"]),
        (
            {"prepare": {"synthetic": {"n_samples": 10}}},
            ["prepare.synthetic.n_samples", "greater than or equal to 70"],
        ),
        (
            {"prepare": {"probes": {"test": ["happy", "joy"]}}},
            ["prepare.probes.test.1", "must be 'angry'"],
        ),
        (
            {"prepare": {"probes": {"test2": ["sad", "sad"]}}},
            ["prepare.probes.test2", "names a class twice"],
        ),
        ({"prepare": {"probes": {"test": []}}}, ["prepare.probes.test"]),
        ({"train": {"lr": -1}}, ["train.lr", "greater than 0"]),
        ({"train": {"lr": "fast"}}, ["train.lr", "expected a number"]),
        ({"train": {"lr": True}}, ["train.lr", "boolean"]),
        ({"train": {"schedule": "linear"}}, ["train.schedule", "'cosine'"]),
        ({"train": {"epochs": 0, "batch_size": "x"}}, ["train.epochs", "train.batch_size"]),
        (
            {"improve": {"retrain": "head", "init": "scratch"}},
            ["improve:", "init must be baseline"],
        ),
        (
            {"improve": {"retrain": "bias", "init": "scratch"}},
            ["improve:", "retrain: bias", "init must be baseline"],
        ),
        ({"improve": {"retrain": "body"}}, ["improve.retrain", "'all'"]),
        ({"train": {"model": {"arch": "vgg"}}}, ["train.model.arch", "'mini_xception'"]),
        ({"train": {"augment": {"crop": 12}}}, ["train.augment", "crop: 0 (off) or 24-47"]),
        ({"train": {"augment": {"crop": 48}}}, ["train.augment.crop", "less than or equal to 47"]),
        ({"train": {"augment": {"mixup": -0.2}}}, ["train.augment.mixup"]),
        (
            {
                "train": {
                    "augment": {"crop": 40},
                    "model": {"arch": "baseline_cnn", "attention": "none"},
                }
            },
            ["train:", "augment.crop", "whole 48x48 faces"],
        ),
        (
            {"train": {"model": {"arch": "resnet18", "attention": "se"}}},
            ["train:", "model.attention: se is mini_xception only"],
        ),
        (
            # the default's eca, with another network set alone: the error says what to add
            {"train": {"model": {"arch": "baseline_cnn"}}},
            ["train:", "model.attention: eca is mini_xception only", "set model.attention: none"],
        ),
        ({"train": {"model": {"attention": "cbam"}}}, ["train.model.attention", "'eca'"]),
        ({"train": {"ema_warmup": True}}, ["train:", "ema_warmup: true needs ema > 0"]),
        (
            {"train": {"schedule": "plateau", "warmup_epochs": 1}},
            ["train:", "warmup_epochs: the plateau schedule has no warm-up"],
        ),
        (
            {"improve": {"epochs": 2, "warmup_epochs": 3}},
            ["improve:", "warmup_epochs: 3 is more than epochs (2)"],
        ),
        ({"evaluate": {"tta": "ten_crop"}}, ["evaluate.tta", "'flip_shift'"]),
        ({"evaluate": {"tta_shift": 0}}, ["evaluate.tta_shift"]),
        ([1, 2], ["expected a mapping"]),
        (
            {"explain": {"probe_dirs": ["data/probes/test"]}},
            ["explain.probe_dirs: unknown key, replaced by explain.user_probes"],
        ),
        (
            {"explain": {"user_probes": "data/probes/mine"}},
            ["explain.user_probes: data/probes/mine overlaps prepare.probes_dir", "deleted"],
        ),
        (
            {"explain": {"user_probes": "data"}},
            ["explain.user_probes: data overlaps prepare.out_dir"],
        ),
        (
            {"prepare": {"out_dir": "faces/prepared"}, "explain": {"user_probes": "faces"}},
            ["explain.user_probes: faces overlaps prepare.out_dir (faces/prepared)"],
        ),
    ],
)
def test_bad_params_name_the_key(raw, fragments):
    with pytest.raises(ParamsError) as info:
        validate_params(raw)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_yaml_scientific_notation_without_dot_is_a_number(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 1e-3\n")
    assert yaml.safe_load(path.read_text())["train"]["lr"] == "1e-3"  # the YAML 1.1 trap
    assert load_params(path).train.lr == pytest.approx(0.001)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")
    path = tmp_path / "params.yaml"
    path.write_text("prepare: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(path)


@pytest.mark.parametrize("section", ["train", "improve"])
def test_both_selections_accept_exactly_the_selection_metrics(section):
    import torch  # here only: the rest of this file needs no torch

    from ferx.metrics import summary_metrics

    # one list, ferx.labels.SELECTION_METRICS, and each of them a metric every evaluation has
    for metric in SELECTION_METRICS:
        chosen = getattr(validate_params({section: {"select_metric": metric}}), section)
        assert chosen.select_metric == metric
    with pytest.raises(ParamsError, match=f"{section}.select_metric"):
        validate_params({section: {"select_metric": "f1"}})
    assert set(SELECTION_METRICS) <= set(summary_metrics(torch.zeros(2, 7), torch.tensor([0, 1])))
