"""Keep third-party import chatter (torchao, TF, litert progress) off the user's terminal."""

from __future__ import annotations

import logging
import os


def quiet_converters() -> None:
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("torchao", "torchao.kernel.intmm", "torch.utils._pytree", "torch.onnx", "onnxscript",
                 "torch._export", "torch.export", "absl", "jax._src.xla_bridge"):
        logging.getLogger(name).setLevel(logging.ERROR)
