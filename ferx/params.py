"""The one schema for params.yaml, validated before any stage does work.

DVC accepts any key that `dvc exp run -S` is given, typos included, so every stage loads
params.yaml through `load_params`, which refuses unknown keys, wrong types and out-of-range
values with one message per problem that names the key (e.g. ``prepare.seeed: unknown key``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from ferx.errors import UserError
from ferx.labels import ARCHITECTURES, CLASS_NAMES, SELECTION_METRICS

DEFAULT_PARAMS_PATH = Path("params.yaml")


class ParamsError(UserError):
    """params.yaml is missing, unreadable or does not match the schema."""


def _number_from_yaml(value: Any) -> Any:
    # PyYAML reads `1e-3` (no dot) as a string; accept numeric strings for float fields,
    # while a bool stays a type error instead of silently becoming 0.0 or 1.0.
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    return value


Float = Annotated[float, BeforeValidator(_number_from_yaml), Field(strict=False)]
ClassName = Literal[CLASS_NAMES]  # type: ignore[valid-type]
# a PublicTest metric that picks the kept epoch (PrivateTest is never used to choose)
SelectMetric = Literal[SELECTION_METRICS]  # type: ignore[valid-type]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SyntheticParams(Section):
    n_samples: int = Field(1500, ge=70, le=200_000)
    seed: int = Field(0, ge=0)


def _unique(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError(f"names a class twice ({names}); one image per class and folder")
    return names


ProbeClasses = Annotated[list[ClassName], Field(min_length=1), AfterValidator(_unique)]


class ProbeParams(Section):
    seed: int = Field(0, ge=0)
    # test: classes a model should get right; test2: the rare and confusable ones
    test: ProbeClasses = ["happy", "surprise", "neutral", "angry"]
    test2: ProbeClasses = ["disgust", "fear", "sad", "neutral"]


class PrepareParams(Section):
    # a folder holding one FER2013 file (any name, detected by content) or the file itself
    raw: str = "data/raw"
    # auto: the real file if there is one, else the synthetic stand-in (loud banner), except
    # in a DVC experiment workspace that lacks data the main workspace has (an error);
    # real: FER2013 or a clear error; synthetic: the stand-in even when FER2013 is there
    source: Literal["auto", "real", "synthetic"] = "auto"
    out_dir: str = "data/prepared"
    probes_dir: str = "data/probes"
    synthetic: SyntheticParams = SyntheticParams()
    probes: ProbeParams = ProbeParams()


class ModelParams(Section):
    # the network (ferx/models/): mini_xception (the paper's), baseline_cnn (the course
    # competition's baseline), resnet18 (torchvision's, adapted to 48x48)
    arch: Literal[ARCHITECTURES] = "mini_xception"  # type: ignore[valid-type]
    # mini_xception only: filters of the residual modules. The paper's are [16, 32, 64, 128];
    # the default doubles them (3.5x the parameters, 2.8x the GFLOPs): chosen on PublicTest,
    # see the README's "Choosing the default"
    widths: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default=[32, 64, 128, 256], min_length=1, max_length=6
    )
    stem_width: int = Field(8, ge=1, le=256)
    # per_image: standardise each face (zero mean, unit std); dataset: one global mean/std;
    # unit: pixels / 255 (the paper's Keras preprocessing scaled to [-1, 1]; both work)
    normalize: Literal["per_image", "dataset", "unit"] = "per_image"
    # mini_xception only: channel attention on each residual module's main branch, after its
    # max-pool: se (squeeze-and-excitation, Hu et al. 2018, hidden width channels / 8, at
    # least 8) or eca (efficient channel attention, Wang et al. 2020: a 1-D convolution across
    # the pooled channels); none builds exactly the network (and initial weights) of before.
    # eca is the default since 2026-12-08 (ablations/stronger.yaml, docs/results.md); the
    # other networks need none
    attention: Literal["none", "se", "eca"] = "eca"


class AugmentParams(Section):
    hflip: bool = True
    rotate_deg: Float = Field(10.0, ge=0, le=45)
    translate: Float = Field(0.1, ge=0, le=0.5)  # fraction of the image side
    scale: Float = Field(0.1, ge=0, le=0.5)  # +- relative zoom
    # random erasing (Zhong et al. 2020): the chance that a face gets one rectangle of noise,
    # 2-33% of its area, aspect 0.3-3.3; 0 turns it off (and draws no random numbers)
    erase: Float = Field(0.0, ge=0, le=1)
    # random crops: each training face becomes a random crop x crop window of itself, after
    # the flip and warp (the network is fully convolutional with global pooling, so a crop
    # costs about (crop / 48)^2 of a full face's FLOPs); evaluation sees the whole face.
    # 0 turns it off (and draws no random numbers)
    crop: int = Field(0, ge=0, le=47)
    # mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019): Beta(alpha, alpha) mixing
    # weight, one per batch, with the batch's own faces in a random order; when both are on,
    # each batch is one or the other (even odds, as timm does); 0 turns each off
    mixup: Float = Field(0.0, ge=0, le=10)
    cutmix: Float = Field(0.0, ge=0, le=10)

    @model_validator(mode="after")
    def _crop_leaves_a_face(self) -> AugmentParams:
        if 0 < self.crop < 24:
            raise ValueError(f"crop: 0 (off) or 24-47 pixels, got {self.crop}")
        return self


class TrainParams(Section):
    epochs: int = Field(40, ge=1, le=1000)
    batch_size: int = Field(32, ge=1, le=8192)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: Float = Field(1e-3, gt=0, le=10)
    weight_decay: Float = Field(0.0, ge=0, le=1)
    momentum: Float = Field(0.9, ge=0, lt=1)  # sgd only
    schedule: Literal["cosine", "plateau", "constant"] = "cosine"
    plateau_factor: Float = Field(0.5, gt=0, lt=1)  # plateau: lr *= factor ...
    plateau_patience: int = Field(2, ge=0)  # ... after this many epochs without gain
    warmup_epochs: int = Field(0, ge=0)
    patience: int = Field(0, ge=0)  # early stopping on PublicTest; 0 turns it off
    label_smoothing: Float = Field(0.1, ge=0, lt=1)
    # decay of an exponential moving average of the weights (torch.optim.swa_utils), updated
    # every step; when on, the average is what is evaluated and kept; 0 turns it off
    ema: Float = Field(0.0, ge=0, lt=1)
    # the EMA's decay warms up: min(ema, (1 + n) / (10 + n)) after n updates, so the average
    # follows the early, fast-moving weights instead of holding on to the random ones
    # (TensorFlow's ExponentialMovingAverage num_updates); false: ema from the first step
    ema_warmup: bool = False
    # auto (the default): bf16 where the hardware computes in bf16 (x86 CPUs with AVX-512 BF16
    # or AMX, kernels not capped below them; CUDA devices with bf16), fp32 everywhere else
    # (AVX2-only x86, other CPUs until measured); metrics/train.json records what ran.
    # bf16: the training forward pass and loss under bfloat16 autocast (weights, gradients
    # and optimizer stay float32; evaluations run in float32); its PublicTest cost was inside
    # the noise (ablations/precision.yaml), 1.3-1.6x fp32's speed with AVX-512 BF16, 19x
    # slower than fp32 on an AVX2-only CPU (train_and_save warns). fp32: no autocast. fp16: float16
    # autocast with a gradient scaler, CUDA only
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    # the PublicTest metric that picks the kept epoch (PrivateTest is never used to choose)
    select_metric: SelectMetric = "accuracy"
    augment: AugmentParams = AugmentParams()
    model: ModelParams = ModelParams()
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _options_the_network_has(self) -> TrainParams:
        if self.augment.crop and self.model.arch == "baseline_cnn":
            raise ValueError(
                "augment.crop: baseline_cnn's dense layers need whole 48x48 faces; "
                "crops work with mini_xception and resnet18"
            )
        if self.model.attention != "none" and self.model.arch != "mini_xception":
            raise ValueError(
                f"model.attention: {self.model.attention} is mini_xception only"
                f" (with model.arch: {self.model.arch}, set model.attention: none)"
            )
        if self.ema_warmup and self.ema == 0:
            raise ValueError("ema_warmup: true needs ema > 0 (the decay it warms up to)")
        check_warmup(self.warmup_epochs, self.epochs, self.schedule)
        return self


def check_warmup(warmup_epochs: int, epochs: int, schedule: str) -> None:
    """A warm-up the schedule would not run is refused, not ignored: plateau steps per epoch
    on PublicTest and has none; a warm-up longer than the run never reaches lr."""
    if warmup_epochs and schedule == "plateau":
        raise ValueError(
            "warmup_epochs: the plateau schedule has no warm-up; use cosine or constant"
        )
    if warmup_epochs > epochs:
        raise ValueError(f"warmup_epochs: {warmup_epochs} is more than epochs ({epochs})")


class RuntimeParams(Section):
    """How a run is computed, not what it computes. No stage declares this section in dvc.yaml
    and the resume fingerprint leaves it out, so changing it reruns nothing. (Thread count,
    device and layout change the bits, and after a few epochs the metrics: README,
    "Reproducibility, as measured"; the recipe is the same.)"""

    threads: int = Field(0, ge=0, le=256)  # 0: torch's default
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # channels_last: 1.35x faster training on CPU (1x1 convs run as GEMMs; see ferx/models/)
    memory_format: Literal["channels_last", "contiguous"] = "channels_last"
    eval_batch_size: int = Field(64, ge=1, le=65536)  # inference batch (evaluations, epochs)


class ImproveParams(Section):
    """Class-reweighted retraining; whatever is not here comes from the train section."""

    weighting: Literal["balanced", "effective", "none"] = "effective"
    beta: Float = Field(0.999, ge=0, lt=1)  # effective number of samples (Cui et al. 2019)
    init: Literal["baseline", "scratch"] = "baseline"
    # all: fine-tune every layer; top: the network's deepest layers and head (the model's
    # `top`; the early layers keep the baseline's features and cost no backward pass); head:
    # re-train only the classifier head on the baseline's features (classifier re-training,
    # Kang et al. 2020); bias: only the head's 7 biases, a learned per-class logit offset
    # (logit adjustment, Menon et al. 2021); all but `all` need init: baseline
    retrain: Literal["all", "top", "head", "bias"] = "all"
    # 0: no fine-tune (the starting weights, then logit_adjust); needs init: baseline
    epochs: int = Field(5, ge=0, le=1000)
    lr: Float = Field(3e-4, gt=0, le=10)
    schedule: Literal["cosine", "plateau", "constant"] = "cosine"
    warmup_epochs: int = Field(0, ge=0)
    select_metric: SelectMetric = "macro_f1"
    # the fine-tune's loss: tau > 0 adds tau * log prior (the Training class frequencies) to
    # the logits in the loss only (logit-adjusted loss, Menon et al. 2021; 1: the balanced
    # softmax of Ren et al. 2020); 0: the (class-weighted) cross-entropy
    loss_tau: Float = Field(0.0, ge=0, le=5)
    # shuffle: every face once an epoch; class_balanced: as many draws, each class equally
    # likely (with head: classifier re-training with class-balanced sampling, Kang et al. 2020)
    sampling: Literal["shuffle", "class_balanced"] = "shuffle"
    # after the fine-tune: none, or tuned: logits - tau * log prior with tau chosen on
    # PublicTest macro-F1 (0 to 3 by 0.05; 0 keeps the model; Menon et al. 2021), or biases:
    # one offset per class (-2 to 2 by 0.1), the seven chosen together on PublicTest macro-F1
    # by coordinate ascent (a per-class decision threshold); either is written into the
    # head's biases, so the model file and its ONNX export carry it
    logit_adjust: Literal["none", "tuned", "biases"] = "none"
    # tuned, biases: only adjustments whose PublicTest accuracy is at most this below the
    # unadjusted model's
    adjust_max_accuracy_drop: Float = Field(0.005, ge=0, le=1)

    @model_validator(mode="after")
    def _partial_retraining_needs_a_baseline(self) -> ImproveParams:
        if self.retrain != "all" and self.init != "baseline":
            raise ValueError(
                f"retrain: {self.retrain} re-trains part of the baseline; init must be baseline"
            )
        if self.epochs == 0 and self.init != "baseline":
            raise ValueError("epochs: 0 keeps the starting weights; init must be baseline")
        check_warmup(self.warmup_epochs, self.epochs, self.schedule)
        return self

    # the train keys this section replaces; improve reads every other train key (dvc.yaml's
    # improve stage declares exactly those, so a new train.epochs alone does not rerun it)
    OWN_KEYS: ClassVar[tuple[str, ...]] = (
        "epochs",
        "lr",
        "schedule",
        "warmup_epochs",
        "select_metric",
    )

    def train_params(self, train: TrainParams) -> TrainParams:
        """The train section with this run's own epochs, lr, schedule and selection."""
        return train.model_copy(update={key: getattr(self, key) for key in self.OWN_KEYS})


# evaluate.tta -> how many views of each face it classifies (ferx/models/inference.py makes them)
TTA_VIEWS = {"none": 1, "flip": 2, "flip_shift": 10}


class EvaluateParams(Section):
    # test-time augmentation, reported beside the single-view metrics (keys with "tta"):
    # none | flip (2 views) | flip_shift (10: the image and its mirror, each also shifted)
    tta: Literal["none", "flip", "flip_shift"] = "flip_shift"
    tta_shift: int = Field(2, ge=1, le=12)  # flip_shift: pixels each shifted view moves


class ExplainParams(Section):
    # The probe faces the probes stage draws (prepare.probes_dir: test/, test2/) are always
    # explained.
    # This folder is yours: labelled images (happy.png, sad_2.jpg, ...), any path; the stage
    # depends on it (new images rerun it) and no stage writes it; skipped while it is empty.
    user_probes: str = Field("data/user_probes", min_length=1)


class CostParams(Section):
    batch_size: int = Field(128, ge=1, le=65536)  # throughput batch


class Params(Section):
    prepare: PrepareParams = PrepareParams()
    train: TrainParams = TrainParams()
    improve: ImproveParams = ImproveParams()
    evaluate: EvaluateParams = EvaluateParams()
    explain: ExplainParams = ExplainParams()
    cost: CostParams = CostParams()
    runtime: RuntimeParams = RuntimeParams()

    @model_validator(mode="after")
    def _user_probes_apart_from_what_prepare_writes(self) -> Params:
        # DVC deletes a stage's outputs before it reruns: images inside them would be lost
        mine = Path(self.explain.user_probes).resolve()
        for key in ("out_dir", "probes_dir"):
            theirs = Path(getattr(self.prepare, key)).resolve()
            if mine.is_relative_to(theirs) or theirs.is_relative_to(mine):
                raise ValueError(
                    f"explain.user_probes: {self.explain.user_probes} overlaps prepare.{key} "
                    f"({getattr(self.prepare, key)}), which a stage rewrites (your images "
                    "would be deleted); keep your faces in a folder of their own"
                )
        return self


# keys that were replaced: the message says by what (`-S` from an old command still errs)
REPLACED_KEYS = {
    "explain.probe_dirs": "explain.user_probes (one folder of your own images; the probe "
    "faces the probes stage draws are always explained)",
}


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        if key in REPLACED_KEYS:
            return f"{key}: unknown key, replaced by {REPLACED_KEYS[key]}"
        return f"{key}: unknown key (check the spelling against params.yaml)"
    message = error["msg"]
    if error["type"] == "literal_error":
        message = f"must be {message.removeprefix('Input should be ')}"
    return f"{key}: {message} (got {error.get('input')!r})"


def validate_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate a parsed params mapping; raise ParamsError naming every bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ParamsError(f"{source}: {problems}") from None


def load_params(path: str | Path = DEFAULT_PARAMS_PATH) -> Params:
    """Read and validate params.yaml (the single source of truth for every stage)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run stages from the project root)") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    return validate_params(raw, str(path))
