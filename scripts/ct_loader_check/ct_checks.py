"""Checks run through compressed-tensors itself: config validation, target/ignore matching, the tensor set
each compressor expects, plus a value check of the quantized codes (a stand-in for CT's decompressor)."""

from __future__ import annotations

import math

from . import checkpoint as ckpt_mod


def module_kind(name: str, params: dict) -> str:
    """HF module class a Qwen3-MoE checkpoint module has (what CT would see on a transformers model)."""
    if name.endswith("embed_tokens"):
        return "Embedding"
    if name.endswith("norm"):
        return "Qwen3MoeRMSNorm"
    return "Linear"


def fake_module(torch, kind: str):
    """An instance of a torch.nn.Module subclass named like the HF class: CT's class matching reads only
    the class names in the MRO."""
    cls = type(kind, (torch.nn.Module,), {})
    return cls()


def is_unquantized_by_design(name: str) -> bool:
    """Router and lm_head must stay float (doc §3.d)."""
    return name.endswith("mlp.gate") or name == "lm_head"


def run(report, up, ck):
    ct = up.ct
    from compressed_tensors.quantization import QuantizationConfig
    from compressed_tensors.utils.match import is_match, match_targets
    from compressed_tensors.quantization.lifecycle.apply import _scheme_from_targets
    from compressed_tensors.compressors import BaseCompressor
    import torch

    qc = ck.qconfig
    # (a1) the pydantic model, exactly as upstream validates it.
    try:
        config = QuantizationConfig.model_validate(qc)
        report.check("ct.config", True, f"QuantizationConfig validates ({len(config.config_groups)} group(s), "
                     f"format {config.format}, {len(config.ignore or [])} ignore entries)")
    except Exception as exc:
        report.check("ct.config", False, f"QuantizationConfig rejects quantization_config: {exc}")
        return None
    report.check("ct.quant_method", qc.get("quant_method") == "compressed-tensors",
                 f"quant_method = {qc.get('quant_method')!r}")

    # (a2) per module: which group CT's own matcher assigns, and the tensor set its compressor expects.
    groups = list(config.config_groups.items())
    # Same construction as CT's apply_quantization_config: an ordered target -> scheme map; CT then
    # resolves a module matched by several targets with match_targets' precedence (name > regex > class).
    target_to_scheme = {}
    for _, scheme in groups:
        for target in scheme.targets:
            target_to_scheme[target] = scheme
    modules = ck.modules()
    assigned, problems, counts = {}, [], {}
    for name, params in sorted(modules.items()):
        kind = module_kind(name, params)
        module = fake_module(torch, kind)
        matches = []
        if is_match(name, module, list(target_to_scheme), config.ignore or []):
            chosen = _scheme_from_targets(target_to_scheme, match_targets(name, module, target_to_scheme), name)
            matches = [g for g, scheme in groups if scheme is chosen]
        if is_unquantized_by_design(name) or kind != "Linear":
            if matches:
                problems.append(f"{name} ({kind}) is matched by {matches} but must stay unquantized")
            elif set(params) != {"weight"} or params["weight"].dtype not in ckpt_mod.FLOAT_DTYPES:
                problems.append(f"{name}: unquantized module must hold one float 'weight', has "
                                + ", ".join(f"{p}:{t.dtype}" for p, t in sorted(params.items())))
            continue
        if not matches:
            quantized_tensors = set(params) - {"weight"}
            if quantized_tensors or params.get("weight") and params["weight"].dtype not in ckpt_mod.FLOAT_DTYPES:
                problems.append(f"{name} has quantized tensors {sorted(params)} but no config group targets it")
            continue
        gname = matches[0]
        scheme = config.config_groups[gname]
        fmt = scheme.format or config.format
        compressor = BaseCompressor.get_value_from_registry(fmt)
        expected = set(compressor.compression_param_names(scheme))
        if set(params) != expected:
            missing, extra = sorted(expected - set(params)), sorted(set(params) - expected)
            problems.append(f"{name}: {compressor.__name__} expects {sorted(expected)}; "
                            f"missing {missing}, unexpected {extra}")
        assigned[name] = (gname, scheme, fmt)
        counts[(gname, fmt)] = counts.get((gname, fmt), 0) + 1
    summary = ", ".join(f"{g} [{f}]: {n} modules" for (g, f), n in sorted(counts.items()))
    report.check("ct.match", not problems,
                 summary if not problems else "; ".join(problems[:6]) + (" ..." if len(problems) > 6 else ""))
    routers = [n for n in modules if is_unquantized_by_design(n)]
    report.check("ct.ignore", all(n not in assigned for n in routers) and bool(routers),
                 f"{len(routers)} router/lm_head modules unmatched by CT (ignore list honoured)")
    values(report, up, ck, assigned)
    return assigned


def values(report, up, ck, assigned):
    """(d) Stand-in for PackedQuantizationCompressor / NaiveQuantizationCompressor.decompress: with no
    torch, decode the codes of one attention and one expert module per group in pure Python and check
    they are in range, that padding is clean, and that dequantized weights are finite and non-zero."""
    up.notes.append("compressed-tensors decompress (Packed/NaiveQuantizationCompressor.decompress): needs "
                    "real torch >= 2.10; replaced by a pure-Python decoder (checkpoint.py: unpack_int4_rows, "
                    "decode) checking code ranges, padding nibbles, weight_shape and dequantized values")
    picked = {}
    for name, (gname, scheme, fmt) in assigned.items():
        role = "expert" if ".experts." in name else "attn"
        picked.setdefault((gname, role), (name, scheme, fmt))
    for (gname, role), (name, scheme, fmt) in sorted(picked.items()):
        w = scheme.weights
        qmin, qmax = -(1 << (w.num_bits - 1)), (1 << (w.num_bits - 1)) - 1
        try:
            if fmt == "pack-quantized":
                shape = ckpt_mod.decode(ck, name + ".weight_shape")
                rows, cols = int(shape[0]), int(shape[1])
                info = ck.tensors[name + ".weight_packed"]
                if w.num_bits != 4 or info.shape != (rows, (cols + 7) // 8):
                    raise ValueError(f"weight_packed {info.shape} does not fit weight_shape {shape} at "
                                     f"{w.num_bits} bits")
                codes, bad_pad = ckpt_mod.unpack_int4_rows(ckpt_mod.decode(ck, info.name), rows, cols)
                if bad_pad:
                    raise ValueError("non-zero padding nibbles")
            else:
                rows, cols = ck.tensors[name + ".weight"].shape
                flat = ckpt_mod.decode(ck, name + ".weight")
                codes = [flat[r * cols:(r + 1) * cols] for r in range(rows)]
            scales = ckpt_mod.decode(ck, name + ".weight_scale")
            sshape = ck.tensors[name + ".weight_scale"].shape
            gs = cols if (w.group_size in (None, -1)) else w.group_size
            n_groups = 1 if w.strategy == "channel" else math.ceil(cols / gs)
            if tuple(sshape) != (rows, n_groups):
                raise ValueError(f"weight_scale shape {sshape}, expected {(rows, n_groups)}")
            lo = min(min(r) for r in codes)
            hi = max(max(r) for r in codes)
            if lo < qmin or hi > qmax:
                raise ValueError(f"codes span [{lo}, {hi}], outside int{w.num_bits} [{qmin}, {qmax}]")
            if not all(math.isfinite(s) and s > 0 for s in scales):
                raise ValueError("non-finite or non-positive scales")
            deq = [codes[r][c] * scales[r * n_groups + c // gs] for r in range(rows) for c in range(cols)]
            rms = math.sqrt(sum(x * x for x in deq) / len(deq))
            ok = rms > 0 and all(math.isfinite(x) for x in deq)
            report.check(f"ct.values.{gname}.{role}", ok,
                         f"{name}: [{rows}, {cols}] codes in [{lo}, {hi}], {n_groups} scale column(s), "
                         f"dequantized rms {rms:.4g} (stand-in decoder)")
        except Exception as exc:
            report.check(f"ct.values.{gname}.{role}", False, f"{name}: {exc}")
