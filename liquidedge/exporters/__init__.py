"""Exporters: IR graph -> target artefacts (ONNX, TFLite/LiteRT, Lava, host memory graph)."""
