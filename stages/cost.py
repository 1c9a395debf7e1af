"""dvc stage `cost`: FLOPs, parameters, size, latency and efficiency of both models."""

import json

from ferx import paths
from ferx.analysis.cost import FLOP_NOTE, model_cost, plot_accuracy_vs_gflops
from ferx.atomic import write_json
from ferx.cli import run_stage
from ferx.models.checkpoint import load_model
from ferx.params import Params


def main(params: Params) -> None:
    costs, sources = {}, set()
    for name in paths.MODEL_NAMES:
        path = paths.model_file(name)
        model, meta = load_model(path, params.train.model.arch)
        sources.add(meta.get("source", "unknown"))
        report = json.loads(paths.evaluation(name, "private_test").read_text())
        tta = {**report["tta"]} if "tta" in report else None
        costs[name] = model_cost(
            model, path, report["accuracy"], params.cost.batch_size, tta, paths.onnx_file(name)
        )
        c, ort = costs[name], costs[name]["onnxruntime"]
        print(
            f"cost {name}: {c['gflops']:.5f} GFLOPs, {c['parameters']} parameters, "
            f"{c['latency_ms_batch1']:.2f} ms/image, {c['throughput_img_s']} img/s at batch "
            f"{c['throughput_batch']} ({c['threads']} threads), efficiency {c['efficiency']:.0f}; "
            f"ONNX Runtime {ort['latency_ms_batch1']:.2f} ms/image, {ort['throughput_img_s']} "
            "img/s"
        )
        if "tta" in c:
            t = c["tta"]
            print(
                f"cost {name} with {t['views']} TTA: {t['n_views']} views = {t['gflops']:.5f} "
                f"GFLOPs per face, efficiency {t['efficiency']:.0f}"
            )
        print(f"cost {name}: operators fvcore does not count: {c['fvcore_unsupported_ops']}")
    source = sources.pop() if len(sources) == 1 else "mixed"  # the data both were trained on
    write_json(paths.COST, {"source": source, "note": FLOP_NOTE, **costs})
    plot_accuracy_vs_gflops(costs, paths.COST_FIGURE, source)


if __name__ == "__main__":
    run_stage(main)
