"""A TFLite single op's batch-8 model is made from its batch-1 model only where that is the batch-8
conversion's file byte for byte (``edgenas.profiling.tflite_batch``), and the conversion phase uses it."""

from __future__ import annotations

import pytest

from edgenas.ops.registry import is_zero_cost
from edgenas.profiling import tflite_batch
from edgenas.profiling.base import create_backend
from edgenas.profiling.runner import convert_artifacts, nchw, op_cache_key, op_module, space_specs
from edgenas.profiling.tflite import export_tflite
from edgenas.profiling.tflite_batch import REBATCH_EXACT_OPS, rebatch

pytest.importorskip("litert_torch")


def _variants():
    """One op instance per structure (kind, kernel, stride, expanded or not, dilation, skip): shapes
    alone do not change which operators litert emits, these do (a stride-2 pool pads with SLICEs)."""
    seen = {}
    for s in space_specs(["darts", "proxyless"], "small"):
        if not is_zero_cost(s):
            seen.setdefault((s.op, s.kernel, s.stride, min(s.expand, 2), s.dilation, s.idskip), s)
    return list(seen.values())


VARIANTS = _variants()
REFUSED = next(s for s in VARIANTS if s.op == "max_pool_3x3" and s.stride == 2)  # SLICE holds the batch


def _convert(spec, tmp_path, batches=(1, 8)):
    """One module (an op build draws random weights) converted at each batch size."""
    module, paths = op_module(spec), [tmp_path / f"b{b}.tflite" for b in batches]
    for b, p in zip(batches, paths):
        export_tflite(module, nchw(spec, b), p)
    return paths


def test_every_op_kind_of_the_presets_is_checked():
    assert {s.op for s in VARIANTS} == REBATCH_EXACT_OPS


@pytest.mark.parametrize("spec", [s for s in VARIANTS if s.op in REBATCH_EXACT_OPS], ids=lambda s: s.key)
def test_rebatch_gives_the_batch_8_conversion_byte_for_byte_or_refuses(spec, tmp_path):
    one, eight = _convert(spec, tmp_path)
    made = rebatch(one, 8)
    assert made is None or made == eight.read_bytes()


def test_the_op_guard_is_what_keeps_it_exact(tmp_path, monkeypatch):
    """Not vacuous: the stride-2 pool is refused, and without the guard its rebatched file would
    differ from the batch-8 conversion (the SLICE sizes hold the batch)."""
    one, eight = _convert(REFUSED, tmp_path)
    assert rebatch(one, 8) is None
    monkeypatch.setattr(tflite_batch, "BATCH_FREE_OPS", tflite_batch.BATCH_FREE_OPS | {"SLICE", "CONCATENATION"})
    unguarded = rebatch(one, 8)
    assert unguarded is not None and unguarded != eight.read_bytes()


def test_only_fp32_single_ops_of_listed_kinds_at_batch_over_1_are_derived():
    be = create_backend("tflite")
    assert be.derived_from("sep_conv_3x3", (8, 16, 28, 28)) == (1, 16, 28, 28)
    assert be.derived_from("sep_conv_3x3", (1, 16, 28, 28)) is None
    assert be.derived_from("my_plugin_op", (8, 16, 28, 28)) is None
    assert be.derived_from(None, (8, 3, 32, 32)) is None  # a whole network: always converted
    assert create_backend("onnxruntime").derived_from("sep_conv_3x3", (8, 16, 28, 28)) is None


def test_conversion_phase_derives_batch_8_and_converts_what_is_refused(tmp_path):
    be, cache = create_backend("tflite"), tmp_path / "cache"
    sep = next(s for s in VARIANTS if s.op == "sep_conv_3x3")
    jobs = [(sep, 1), (REFUSED, 1), (sep, 8), (REFUSED, 8)]
    r = convert_artifacts(be, jobs, cache, workers=1)
    assert (r["converted"], r["derived"]) == (3, 1) and r["derived_from"] == [f"{sep.key}|b8<-b1"]
    paths = {j: be.artifact_path(cache, op_cache_key(j[0]), nchw(*j)) for j in jobs}
    assert all(p.exists() for p in paths.values())
    # the batch-1 file rebatched (each op build has its own random weights, so not a fresh conversion)
    assert paths[(sep, 8)].read_bytes() == rebatch(paths[(sep, 1)], 8)

    # batch 16 alone, the batch-1 model cached: made from it, nothing converted
    r = convert_artifacts(be, [(sep, 16)], cache, workers=1)
    assert (r["converted"], r["derived"], r["cached"]) == (0, 1, 0)


def test_a_batch_8_bundle_ships_the_rebatched_file(tmp_path):
    """Bundles take their files from the same conversion phase: the device runs the bytes a local
    table times, and the manifest's batch-8 input shape is the file's own."""
    import zipfile

    from edgenas.devices import get_profile
    from edgenas.profiling.bundle import build_bundle
    from edgenas.profiling.protocol import ProtocolSettings

    sep = next(s for s in VARIANTS if s.op == "sep_conv_3x3")
    b = build_bundle(get_profile("pixel-7"), create_backend("tflite", threads=4), [sep], [1, 8], tmp_path / "p.zip",
                     ProtocolSettings.quick(), cache=tmp_path / "cache")
    by_batch = {e["batch"]: e for e in b.manifest["entries"]}
    with zipfile.ZipFile(tmp_path / "p.zip") as z:
        one, eight = (z.read(by_batch[n]["file"]) for n in (1, 8))
    (tmp_path / "b1.tflite").write_bytes(one)
    assert eight == rebatch(tmp_path / "b1.tflite", 8)
    h, w, c = sep.in_shape
    assert by_batch[8]["input_shape"] == [8, h, w, c]
