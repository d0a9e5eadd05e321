"""What an int8 export must prove, for every backend that ships one (ONNX Runtime, TFLite, ...).

An int8 artifact cannot match PyTorch to 1e-4 as an fp32 one does (parity.py): quantization moves
every logit. What matters instead is what the network decides, measured on the real test set:

- accuracy of the int8 artifact against the fp32 network (PyTorch) on the same images: at most
  ``MAX_ACCURACY_DROP`` (1 point) lower;
- top-1 agreement of the two: at least ``MIN_AGREEMENT`` (98%) of the images get the same class;
- size: the artifact's bytes against the fp32 file's (``float_bytes`` in the backend's ship info).

Calibration data for the quantizer comes from the *training* images of the run's dataset
(``calibration_images``), never the test images the checks above use.
"""

from __future__ import annotations

import numpy as np

from edgenas.quant.calibration import CalibrationSet, from_images

MAX_ACCURACY_DROP = 0.01
MIN_AGREEMENT = 0.98
#: training images a whole network is calibrated on (ORT's and TFLite's examples use 100-500)
CALIBRATION_IMAGES = 256


def calibration_images(data: str | None, input_shape, batch: int, n_images: int = CALIBRATION_IMAGES,
                       seed: int = 0) -> CalibrationSet:
    """``n_images`` training images of ``data`` (default Fashion-MNIST) as the network sees them, in batches."""
    import torch

    from edgenas.search.data import load_data, prepare

    spec = data or "fashion-mnist"
    d = load_data(spec, weights_size=n_images, arch_size=0, test_size=0, seed=seed)
    with torch.no_grad():
        x = prepare(d.weights.x, d, input_shape).numpy()
    return from_images(x, batch, f"{d.name} training images ({len(x)}, seed {seed}), "
                                 f"input {'x'.join(map(str, input_shape))}")


def check(reference: np.ndarray, got: np.ndarray, labels: np.ndarray | None, artifact_bytes: int,
          float_bytes: int | None) -> tuple[dict, list[tuple[str, str]]]:
    """(report entry, failures) of an int8 artifact's outputs ``got`` against the fp32 network's ``reference``.

    Without labels (no real test set) only agreement is checked, and the entry says so.
    """
    if reference.shape != got.shape:
        return ({"passed": False, "max_abs_diff": float("inf"), "top1_agreement": 0.0,
                 "problem": f"output shape {list(got.shape)} differs from PyTorch's {list(reference.shape)}"},
                [("int8", f"int8 output shape {list(got.shape)} differs from PyTorch's {list(reference.shape)}")])
    ref_top, top = reference.argmax(1), got.argmax(1)
    entry = {"n": int(len(got)), "max_abs_diff": float(np.abs(reference - got).max()),
             "top1_agreement": float((ref_top == top).mean()), "min_top1_agreement": MIN_AGREEMENT,
             "bytes": int(artifact_bytes), "float_bytes": float_bytes,
             "size_ratio": round(artifact_bytes / float_bytes, 4) if float_bytes else None}
    failures = []
    if entry["top1_agreement"] < MIN_AGREEMENT:
        failures.append(("int8_agreement", f"int8 top-1 agrees with the fp32 network on "
                                           f"{100 * entry['top1_agreement']:.2f}% of {entry['n']} test images "
                                           f"(needs >= {100 * MIN_AGREEMENT:g}%)"))
    if labels is not None:
        fp32_acc, int8_acc = float((ref_top == labels).mean()), float((top == labels).mean())
        entry.update({"fp32_accuracy": fp32_acc, "int8_accuracy": int8_acc,
                      "accuracy_change_points": round(100 * (int8_acc - fp32_acc), 3),
                      "max_accuracy_drop_points": 100 * MAX_ACCURACY_DROP})
        if fp32_acc - int8_acc > MAX_ACCURACY_DROP:
            failures.append(("int8_accuracy", f"int8 accuracy {100 * int8_acc:.2f}% is "
                                              f"{100 * (fp32_acc - int8_acc):.2f} points below fp32's "
                                              f"{100 * fp32_acc:.2f}% (allowed: {100 * MAX_ACCURACY_DROP:g})"))
    else:
        entry["accuracy"] = "not checked: no labelled test images"
    entry["passed"] = not failures
    return entry, failures


def markdown_line(name: str, e: dict) -> str:
    """One report.md line for an int8 runtime's entry."""
    acc = (f"accuracy {100 * e['int8_accuracy']:.2f}% vs fp32 {100 * e['fp32_accuracy']:.2f}% "
           f"({e['accuracy_change_points']:+.2f} points), " if "int8_accuracy" in e else "")
    size = f", size {100 * e['size_ratio']:.0f}% of fp32" if e.get("size_ratio") else ""
    return (f"- int8 {name} on {e.get('n', 0)} test images: {acc}top-1 agreement "
            f"{100 * e.get('top1_agreement', 0):.2f}%{size}" + ("" if e.get("passed") else " FAILED"))
