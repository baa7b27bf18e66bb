"""Optional: vLLM-Ascend's own compressed-tensors scheme detection (doc §4) on the checkpoint's config."""

from __future__ import annotations

import copy

from .vllm_checks import FALLBACK_PACKED, bare

# doc §4: what Ascend registers per detected quant type (linear, MoE); None = no scheme of that kind.
ASCEND_EXPECTED = {(8, "a8"): ("W8A8_DYNAMIC", True, True), (4, "a8"): ("W4A8_DYNAMIC", False, True),
                   (4, "a16"): ("W4A16", False, True)}


def run(report, up, ck, assigned):
    import torch
    from .vllm_checks import group_kind

    mod = up.ascend
    try:
        cfg = mod.AscendCompressedTensorsConfig.from_config(copy.deepcopy(ck.qconfig))
        cfg.packed_modules_mapping = dict(FALLBACK_PACKED)
        report.check("ascend.config", True, "AscendCompressedTensorsConfig.from_config parses it")
    except Exception as exc:
        report.check("ascend.config", False, f"AscendCompressedTensorsConfig.from_config raised {exc!r}")
        return
    linear = __import__("vllm.model_executor.layers.linear", fromlist=["x"])
    kinds = {}
    for name, (_, scheme, _) in assigned.items():
        kinds.setdefault("experts" if ".experts." in name else "attn", group_kind(scheme))
    for role, kind in sorted(kinds.items()):
        qtype, has_linear, has_moe = ASCEND_EXPECTED.get(kind, ("?", False, False))
        if role == "attn":
            layer = bare(linear.QKVParallelLinear, torch)
            try:
                scheme = cfg._get_linear_scheme(layer, "model.layers.0.self_attn.qkv_proj")
                got = type(scheme).__name__
                report.check("ascend.attn", has_linear, f"qkv_proj: {qtype} -> {got}")
            except NotImplementedError as exc:
                # Ascend has no 4-bit linear scheme (doc §4): not a defect of the checkpoint's format, but
                # such a checkpoint only loads on Ascend with attention ignored or W8A8_DYNAMIC.
                if has_linear:
                    report.check("ascend.attn", False, f"qkv_proj: {qtype}: {exc}")
                else:
                    report.info("ascend.attn", f"qkv_proj: {qtype} has no Ascend linear scheme "
                                f"(NotImplementedError, as doc §4 says): this checkpoint does not load on "
                                f"vLLM-Ascend unless attention is ignored or W8A8_DYNAMIC")
        else:
            # Ascend's _get_moe_scheme = _get_quant_args + _detect_quant_type + registry lookup, then
            # instantiates the class, which needs a live vLLM config; run the three upstream steps and
            # stop before the constructor.
            fused_moe = __import__("vllm.model_executor.layers.fused_moe", fromlist=["x"])
            layer = bare(getattr(fused_moe, "RoutedExperts", None) or fused_moe.FusedMoE, torch)
            try:
                from vllm_ascend.quantization.methods import get_scheme_class

                cfg._add_fused_moe_to_target_scheme_map()
                w, a, fmt = cfg._get_quant_args(layer, "model.layers.0.mlp.experts.0.gate_proj")
                detected = cfg._detect_quant_type(w, a, fmt) if w is not None else None
                cls = get_scheme_class(detected, "moe") if detected else None
                got = f"{detected} -> {cls.__name__ if cls else None}"
                report.check("ascend.experts", has_moe and cls is not None and detected == qtype,
                             f"experts: {got} (scheme class resolved; not instantiated)")
                note = ("vLLM-Ascend MoE scheme constructor: needs a live VllmConfig; the check stops at "
                        "the registry lookup (get_scheme_class) after Ascend's own _detect_quant_type")
                if note not in up.notes:
                    up.notes.append(note)
            except Exception as exc:
                report.check("ascend.experts", False, f"experts: {exc!r}")
    if kinds.get("experts") == (4, "a16"):
        gs = ck.qconfig.get("group_size")
        wgs = next(s.weights.group_size for _, s, _ in assigned.values())
        report.check("ascend.w4a16_group_size", gs == wgs,
                     f"top-level group_size {gs!r} (Ascend's W4A16 MoE reads it, default 32) vs weights "
                     f"group_size {wgs}")
