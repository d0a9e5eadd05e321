"""Parity: the exported artifacts must compute what the PyTorch network computes, on real inputs.

Inputs are real images (the run's dataset, else Fashion-MNIST's test set) converted to the
network's input exactly as training did (``search.data.prepare``); without any dataset they
are deterministic standard-normal tensors, and the report says so.

Tolerance (fp32): the largest absolute difference of any output (logit) must be at most
``DEFAULT_ATOL`` = 1e-4, and top-1 must agree on every input whose PyTorch top-2 margin is
wider than 2 x atol (closer calls are ties within the tolerance; they are counted, not failed).
Observed differences are ~1e-6 (onnxruntime) and ~1e-5 (TFLite/XNNPACK) on trained networks.
Each backend runs its own artifact (``Backend.outputs``); this module only compares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgenas.errors import EdgeNASError

DEFAULT_ATOL = 1e-4


@dataclass
class ParityInputs:
    x: np.ndarray  # N x C x H x W float32, N a multiple of the export batch
    labels: np.ndarray | None
    source: str
    real: bool


def parity_inputs(input_shape, n: int, batch: int, data: str | None = None) -> ParityInputs:
    """``n`` inputs (rounded up to whole batches): real test images when a dataset is at hand."""
    import torch

    from edgenas.search.data import load_data, prepare

    n = max(batch, int(math.ceil(n / batch)) * batch)
    tried = []
    for spec in dict.fromkeys(s for s in (data, "fashion-mnist") if s and not s.startswith("synthetic")):
        try:
            d = load_data(spec, weights_size=0, arch_size=0, test_size=n, seed=0)
        except EdgeNASError as e:
            tried.append(f"{spec}: {e}")
            continue
        x_u8, y = d.test.x, d.test.y
        if len(y) < n:  # a small test split: repeat it
            reps = int(math.ceil(n / len(y)))
            x_u8, y = x_u8.repeat(reps, 1, 1, 1)[:n], y.repeat(reps)[:n]
        with torch.no_grad():
            x = prepare(x_u8, d, input_shape).numpy().astype(np.float32)
        return ParityInputs(x, y.numpy(), f"{d.name} test images ({n}), converted to the network input "
                                          f"{'x'.join(map(str, input_shape))}", True)
    x = np.random.default_rng(0).standard_normal((n, *input_shape)).astype(np.float32)
    why = "; ".join(tried) or "no dataset"
    return ParityInputs(x, None, f"deterministic standard-normal inputs ({n}): no real images ({why})", False)


def torch_outputs(module, x: np.ndarray, chunk: int = 256) -> np.ndarray:
    import torch

    module = module.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(x), chunk):
            outs.append(module(torch.from_numpy(x[i:i + chunk])).numpy())
    return np.concatenate(outs)


def compare(reference: np.ndarray, got: np.ndarray, atol: float = DEFAULT_ATOL) -> dict:
    """Max / mean absolute difference and top-1 agreement of ``got`` against ``reference``."""
    if reference.shape != got.shape:
        return {"passed": False, "max_abs_diff": float("inf"), "mean_abs_diff": float("inf"),
                "top1_agreement": 0.0, "top1_disagreements": len(reference), "near_ties": 0,
                "problem": f"output shape {list(got.shape)} differs from PyTorch's {list(reference.shape)}"}
    diff = np.abs(reference.astype(np.float64) - got.astype(np.float64))
    out = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
    if reference.ndim == 2 and reference.shape[1] > 1:
        a, b = reference.argmax(1), got.argmax(1)
        top2 = np.sort(reference, axis=1)[:, -2:]
        tie = (top2[:, 1] - top2[:, 0]) <= 2 * atol
        out.update(top1_agreement=float((a == b).mean()), top1_disagreements=int(((a != b) & ~tie).sum()),
                   near_ties=int(tie.sum()))
    else:
        out.update(top1_agreement=None, top1_disagreements=0, near_ties=0)
    out["passed"] = bool(out["max_abs_diff"] <= atol and out["top1_disagreements"] == 0 and np.isfinite(got).all())
    return out


def describe_failure(runtime: str, res: dict, atol: float) -> str:
    if res.get("problem"):
        return f"{runtime}: {res['problem']}"
    parts = []
    if res["max_abs_diff"] > atol or not math.isfinite(res["max_abs_diff"]):
        parts.append(f"max abs diff {res['max_abs_diff']:.3g} > {atol:g}")
    if res.get("top1_disagreements"):
        parts.append(f"top-1 differs on {res['top1_disagreements']} input(s)")
    return f"{runtime} " + ", ".join(parts or ["produced non-finite outputs"])


def trained_like(module, seed: int = 0):
    """Give BatchNorm layers trained-looking statistics and affine terms (in place; returns ``module``).

    Freshly built networks have BN at mean 0 / var 1 / scale 1, which hides conversion errors in
    BN folding; checks and benchmarks that have no trained weights use this instead.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
                if m.affine:
                    m.weight.copy_(0.5 + torch.rand(n, generator=g))
                    m.bias.copy_(0.1 * torch.randn(n, generator=g))
    return module.eval()
