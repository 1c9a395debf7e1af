"""dvc stage `export@<model>`: the model as ONNX, checked against PyTorch on PrivateTest."""

import argparse
from pathlib import Path

from ferx import paths
from ferx.atomic import write_json
from ferx.cli import run_stage
from ferx.data.splits import data_source, load_split
from ferx.deploy.export import export_checked
from ferx.models.checkpoint import load_model
from ferx.params import Params

# ONNX Runtime must give PyTorch's logits to this precision, or the export is not the model
TOLERANCE = 1e-4


def main(params: Params, model_name: str) -> None:
    model, meta = load_model(paths.model_file(model_name), params.train.model.arch)
    target = paths.onnx_file(model_name)
    report = paths.export_report(model_name)
    report.unlink(missing_ok=True)  # written only for a file that passed the check below
    images, _ = load_split(Path(params.prepare.out_dir) / "private_test.npz")
    runtime = params.runtime
    check = export_checked(
        model, target, images, TOLERANCE, meta, runtime.eval_batch_size, runtime.threads
    )
    write_json(
        report,
        {
            "source": data_source(params.prepare.out_dir),
            "model": model_name,
            "arch": model.config.arch,
            "onnx": str(target),
            "file_bytes": target.stat().st_size,
            "parity_split": "PrivateTest",
            "tolerance": TOLERANCE,
            **check,
        },
    )
    print(
        f"export {model_name}: {target} ({target.stat().st_size / 1e3:.0f} kB); ONNX Runtime vs "
        f"PyTorch on {check['n_images']} PrivateTest faces: max |logit diff| "
        f"{check['max_abs_logit_diff']:.2e}, same prediction {check['same_predictions']:.2%}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, choices=["baseline", "improved"])
    args = parser.parse_args()
    run_stage(lambda params: main(params, args.model))
