"""FER2013's seven labels, in the order of the `emotion` column (0..6)."""

CLASS_NAMES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(CLASS_NAMES)
# The CSV's Usage values and the split names used for files and metrics.
SPLITS: dict[str, str] = {
    "Training": "train",
    "PublicTest": "public_test",
    "PrivateTest": "private_test",
}
# "public_test" -> "PublicTest", for titles and reports
SPLIT_TITLES: dict[str, str] = {name: usage for usage, name in SPLITS.items()}
# the evaluated splits: metric prefix ("public/accuracy") -> split name
EVAL_SPLITS: dict[str, str] = {"public": "public_test", "private": "private_test"}
IMAGE_SIDE = 48
# the probe folders the probes stage draws under prepare.probes_dir (prepare.probes.<name> lists the
# classes of each); the explain stage explains every one of them
PROBE_SETS: tuple[str, ...] = ("test", "test2")
# the networks train.model.arch names (built in ferx/models/); the first is the default
ARCHITECTURES: tuple[str, ...] = ("mini_xception", "baseline_cnn", "resnet18")
# the PublicTest metrics that may pick the kept epoch (train.select_metric, improve.select_metric);
# ferx/metrics.py computes each of them for every evaluated split
SELECTION_METRICS: tuple[str, ...] = ("accuracy", "macro_f1", "balanced_accuracy")
