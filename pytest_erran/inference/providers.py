"""onnxruntime execution providers: the ones asked for, checked against what is installed."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ErranError

DEFAULT = ("CPUExecutionProvider",)

# The package that brings each provider (onnxruntime itself brings only the CPU one, and CoreML
# on macOS); installing it replaces the plain `onnxruntime` package.
PACKAGES = {
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "TensorrtExecutionProvider": "onnxruntime-gpu",
    "ROCMExecutionProvider": "onnxruntime-rocm",
    "MIGraphXExecutionProvider": "onnxruntime-rocm",
    "DmlExecutionProvider": "onnxruntime-directml",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
    "QNNExecutionProvider": "onnxruntime-qnn",
    "CoreMLExecutionProvider": "onnxruntime (its macOS build)",
}


def checked_providers(wanted: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """`wanted` in order (default: the CPU provider), each one installed; else an error naming
    the first missing one and the package that brings it."""
    if not wanted:
        return list(DEFAULT)
    for name in wanted:
        if name not in available:
            package = PACKAGES.get(name)
            bring = (f"install {package} (pip install 'pytest-erran[gpu]' for CUDA)" if package else
                     "check the name")
            raise ErranError(f"providers: {name} is not available in this onnxruntime (available: "
                             f"{', '.join(available)}); {bring}, or remove it from `providers`")
    return list(wanted)
