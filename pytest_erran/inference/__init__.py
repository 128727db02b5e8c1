"""Run a model over images: decode, preprocess, batched onnxruntime, caches."""
