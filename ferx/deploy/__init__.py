"""The model outside the pipeline: ONNX export and ONNX Runtime (`export`), `ferx-predict` on
photos (`predict`) and videos (`video`)."""
