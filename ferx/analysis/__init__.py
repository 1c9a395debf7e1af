"""What a trained model does: evaluation reports and confusion matrices (`evaluate`), Grad-CAM
(`explain`), baseline vs improved (`compare`), FLOPs, latency and efficiency (`cost`,
`cost_figure`), and the offline page `dvc plots` fills (`plots_page`)."""
