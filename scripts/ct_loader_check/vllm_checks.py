"""Checks run through vLLM's compressed-tensors integration: config parsing, per-layer scheme selection
(get_quant_method on uninitialised instances of vLLM's real layer classes), the parameters each selected
method registers in create_weights, and the checkpoint-name -> parameter mapping of the model loader."""

from __future__ import annotations

import copy
import importlib
import sys
import traceback
import types

from . import checkpoint as ckpt_mod
from .torch_shim import st_name

# What each checkpoint kind must select (the brief's expectation, from doc §3.a-3.c).  Key: (weight bits,
# activation kind).  MoE W4A16 prefers Marlin when vLLM's shape rule allows it (checked below).
EXPECTED_LINEAR = {(8, "a8"): "CompressedTensorsW8A8Int8", (4, "a16"): "CompressedTensorsWNA16",
                   (4, "a8"): "CompressedTensorsW4A8Int"}
EXPECTED_MOE = {(8, "a8"): ("CompressedTensorsW8A8Int8MoEMethod",),
                (4, "a16"): ("CompressedTensorsWNA16MarlinMoEMethod", "CompressedTensorsWNA16MoEMethod"),
                (4, "a8"): ("CompressedTensorsW4A8Int8MoEMethod",)}
FALLBACK_PACKED = {"qkv_proj": ["q_proj", "k_proj", "v_proj"]}


def group_kind(scheme) -> tuple:
    acts = scheme.input_activations
    return (scheme.weights.num_bits, "a16" if acts is None else f"a{acts.num_bits}")


def bare(cls, torch):
    """An instance of a real vLLM layer class without running its __init__ (which needs a distributed
    vLLM runtime): enough for isinstance/class-name based selection and for create_weights."""
    obj = cls.__new__(cls)
    torch.nn.Module.__init__(obj)
    return obj


class MoeConfigStandIn(types.SimpleNamespace):
    """Stand-in for FusedMoEConfig (built from a full VllmConfig in vLLM): the few fields the MoE method
    constructors read for a bf16, silu, no-bias, TP=1 Qwen3-MoE layer; unknown fields read as None."""

    def __getattr__(self, name):
        return None


def selected_class_from_failure(exc) -> str | None:
    """If a selected method's constructor raised, name the class whose __init__ it was."""
    tb = exc.__traceback__
    name = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "__init__" and "self" in frame.f_locals:
            cand = type(frame.f_locals["self"]).__name__
            if cand.startswith("CompressedTensors"):
                name = cand
        tb = tb.tb_next
    return name


def run(report, up, ck, assigned):
    import torch

    mod = up.vllm_ct
    linear = importlib.import_module("vllm.model_executor.layers.linear")
    experts_cls = getattr(mod, "RoutedExperts", None) or getattr(mod, "FusedMoE")
    lmhead_cls = importlib.import_module("vllm.model_executor.layers.vocab_parallel_embedding").ParallelLMHead
    hf = ck.config
    hidden, inter, n_exp = hf["hidden_size"], hf["moe_intermediate_size"], hf["num_experts"]
    heads, kv_heads = hf["num_attention_heads"], hf["num_key_value_heads"]
    head_dim = hf.get("head_dim") or hidden // heads
    qc = ck.qconfig

    try:
        cfg = mod.CompressedTensorsConfig.from_config(copy.deepcopy(qc))
        report.check("vllm.config", True, f"CompressedTensorsConfig.from_config: targets "
                     f"{sorted(cfg.target_scheme_map)}, format {cfg.quant_format}")
    except Exception as exc:
        report.check("vllm.config", False, f"CompressedTensorsConfig.from_config raised {exc!r}")
        return
    cfg.packed_modules_mapping = packed_mapping(up)
    single_rank_tp(up)

    kinds = {}
    for name, (gname, scheme, fmt) in assigned.items():
        kinds["experts" if ".experts." in name else "attn"] = group_kind(scheme)
    params_dtype = torch.bfloat16
    layers = sorted({int(n.split(".")[2]) for n in ck.tensors if n.startswith("model.layers.")})
    ckpt_modules = ck.modules()
    claimed = set()  # checkpoint tensors some vLLM parameter takes

    for i in layers:
        p = f"model.layers.{i}"
        # --- attention linears: fused qkv and o_proj -------------------------------------------
        for vname, cls, shards, sizes in (
                ("self_attn.qkv_proj", linear.QKVParallelLinear, ["q_proj", "k_proj", "v_proj"],
                 [heads * head_dim, kv_heads * head_dim, kv_heads * head_dim]),
                ("self_attn.o_proj", linear.RowParallelLinear, None, [hidden])):
            in_size = hidden if shards else heads * head_dim
            layer = bare(cls, torch)
            check_linear(report, up, cfg, layer, f"{p}.{vname}", shards, sizes, in_size, params_dtype,
                         ck, ckpt_modules, claimed, kinds.get("attn"), tag=f"vllm.{vname.split('.')[-1]}.L{i}")
        # --- router: must stay unquantized ------------------------------------------------------
        gate = bare(linear.ReplicatedLinear, torch)
        check_linear(report, up, cfg, gate, f"{p}.mlp.gate", None, [n_exp], hidden, params_dtype, ck,
                     ckpt_modules, claimed, None, tag=f"vllm.gate.L{i}")
        # --- routed experts -----------------------------------------------------------------------
        check_moe(report, up, cfg, experts_cls, f"{p}.mlp.experts", ck, claimed, kinds.get("experts"),
                  hidden, inter, n_exp, params_dtype, tag=f"vllm.experts.L{i}")

    lm = bare(lmhead_cls, torch)
    method = cfg.get_quant_method(lm, "lm_head")
    report.check("vllm.lm_head", method is None, f"lm_head (ParallelLMHead): "
                 f"{'unquantized' if method is None else type(method).__name__}")
    # Every tensor of a quantized or router module must have been taken by a parameter.
    leftover = [n for n in ck.tensors
                if n.startswith("model.layers.") and (".self_attn." in n and "norm" not in n
                                                      or ".mlp." in n) and n not in claimed]
    report.check("vllm.no_unexpected_tensors", not leftover,
                 "every attention/MLP tensor maps to a registered vLLM parameter" if not leftover
                 else f"{len(leftover)} tensors no vLLM parameter takes (KeyError at load), e.g. {leftover[:4]}")


def single_rank_tp(up):
    """vLLM parameters ask the tensor-parallel group for rank and size; without a distributed runtime there
    is none.  Install a stand-in group that answers rank 0 of 1 (what a single-GPU load uses)."""
    ps = importlib.import_module("vllm.distributed.parallel_state")
    for group in ("_TP", "_EP"):
        if getattr(ps, group, None) is None:
            setattr(ps, group, types.SimpleNamespace(rank_in_group=0, world_size=1, rank=0, local_rank=0,
                                                     device_group=None, cpu_group=None))
    up.notes.append("vllm.distributed tensor- and expert-parallel groups: not initialised without a "
                    "distributed runtime; stand-ins answering rank 0 of world size 1")


def packed_mapping(up):
    try:
        qwen = importlib.import_module("vllm.model_executor.models.qwen3_moe")
        mapping = dict(qwen.Qwen3MoeForCausalLM.packed_modules_mapping)
        mapping.pop("gate_up_proj", None)  # only for mlp_only_layers, absent in Qwen3-MoE checkpoints
        return mapping
    except Exception as exc:
        up.notes.append(f"vllm Qwen3MoeForCausalLM.packed_modules_mapping: import failed ({type(exc).__name__}); "
                        f"used the literal {FALLBACK_PACKED}")
        return dict(FALLBACK_PACKED)


def check_linear(report, up, cfg, layer, vname, shards, sizes, in_size, params_dtype, ck, ckpt_modules,
                 claimed, kind, tag):
    try:
        method = cfg.get_quant_method(layer, vname)
    except Exception as exc:
        report.check(tag + ".scheme", False, f"{vname}: get_quant_method raised {exc!r}")
        return
    scheme = getattr(layer, "scheme", None)
    got = type(scheme).__name__ if scheme is not None else type(method).__name__
    want = EXPECTED_LINEAR.get(kind) if kind else "UnquantizedLinearMethod"
    report.check(tag + ".scheme", got == want, f"{vname} ({type(layer).__name__}): {got}"
                 + ("" if got == want else f", expected {want}"))
    # create_weights through the selected method, as LinearBase.__init__ would call it.
    try:
        run_create_weights(up, method, layer, in_size, sizes, params_dtype)
    except Exception as exc:
        report.check(tag + ".params", False, f"{vname}: create_weights raised {exc!r}")
        return
    params = {n: p for n, p in layer._parameters.items() if p is not None}
    ck_names = [(f"{vname.rsplit('.', 1)[0]}.{s}", idx) for idx, s in enumerate(shards)] if shards \
        else [(vname, 0)]
    problems = []
    aliases = alias_groups(params)
    for mname, idx in ck_names:
        tensors = ckpt_modules.get(mname, {})
        for pname, info in tensors.items():
            claimed.add(info.name)
            if pname not in params:
                problems.append(f"{info.name}: vLLM registers no '{pname}' for {got}")
                continue
            want_shape = shard_shape(params[pname], sizes, idx) if shards else tuple(params[pname].shape)
            problems += compare(info, params[pname], want_shape)
        for group in aliases:
            if not any(a in tensors for a in group) and not optional(group[0], scheme):
                problems.append(f"{mname}: missing tensor '{group[0]}' that {got} registers")
    summary = ", ".join(f"{n} {st_name(p.dtype)} {list(p.shape)}" for n, p in params.items())
    report.check(tag + ".params", not problems, "; ".join(problems[:5]) if problems else
                 f"{len(ck_names)} checkpoint module(s) fit {summary}")


def run_create_weights(up, method, layer, in_size, sizes, params_dtype):
    """Call the real create_weights; if only the kernel choice fails on this host, retry with the kernel
    chooser replaced (the kernel decides post-load repacking, not which tensors are loaded)."""
    kwargs = dict(input_size_per_partition=in_size, output_partition_sizes=list(sizes), input_size=in_size,
                  output_size=sum(sizes), params_dtype=params_dtype, weight_loader=lambda *a, **k: None)
    try:
        method.create_weights(layer, **kwargs)
    except Exception:
        scheme = getattr(layer, "scheme", None)
        if scheme is None:
            raise
        smod = sys.modules[type(scheme).__module__]
        patched = []
        for fn in ("choose_mp_linear_kernel", "init_int8_linear_kernel", "choose_scaled_mm_linear_kernel"):
            if hasattr(smod, fn):
                patched.append((fn, getattr(smod, fn)))
                setattr(smod, fn, _dummy_kernel_chooser)
        if not patched:
            raise
        try:
            layer._parameters.clear()
            method.create_weights(layer, **kwargs)
        finally:
            for fn, orig in patched:
                setattr(smod, fn, orig)
        note = (f"vLLM linear kernel selection ({', '.join(f for f, _ in patched)} in {smod.__name__}): "
                "fails without real torch/CPU kernels; replaced by a dummy kernel class so the rest of "
                "create_weights ran")
        if note not in up.notes:
            up.notes.append(note)


class _DummyKernel:
    __name__ = "DummyKernel"

    def __init__(self, *a, **k):
        pass


def _dummy_kernel_chooser(*args, **kwargs):
    if args or "config" in kwargs or kwargs.get("is_channelwise") is None:
        return _DummyKernel
    return _DummyKernel()


def alias_groups(params):
    """Registered names grouped by object identity (W4A8Int registers one tensor under two names)."""
    groups = {}
    for n, p in params.items():
        groups.setdefault(id(p), []).append(n)
    return list(groups.values())


def optional(pname, method) -> bool:
    """Registered parameters that are computed at load time or loaded only for act-order checkpoints."""
    if "sort_indices" in pname:
        return True
    if "g_idx" in pname:
        wq = getattr(method, "weight_quant", None)
        actorder = getattr(wq, "actorder", None) if wq is not None else getattr(method, "has_g_idx", None)
        return actorder not in ("group", True)
    return False


def shard_shape(param, sizes, idx):
    """Checkpoint shape of shard idx of a fused parameter: output dim cut to that shard."""
    shape = list(param.shape)
    cls = type(param).__name__
    if cls == "PerTensorScaleParameter":
        return (1,)
    out_dim = getattr(param, "output_dim", None)
    if out_dim is None:
        return tuple(shape)
    size = sizes[idx]
    if getattr(param, "packed_dim", None) == out_dim:
        size //= param.packed_factor
    shape[out_dim] = size
    return tuple(shape)


def compare(info, param, want_shape):
    probs = []
    if tuple(info.shape) != tuple(want_shape):
        probs.append(f"{info.name}: shape {list(info.shape)}, vLLM expects {list(want_shape)}")
    pd = st_name(param.dtype)
    if pd != info.dtype:
        # copy_ converts float<->float and int->float (weight_shape); an integer param needs its dtype.
        if pd not in ckpt_mod.FLOAT_DTYPES:
            probs.append(f"{info.name}: dtype {info.dtype}, vLLM parameter is {pd}")
        elif info.dtype not in ckpt_mod.FLOAT_DTYPES and not info.name.endswith("weight_shape"):
            probs.append(f"{info.name}: dtype {info.dtype} into float parameter {pd}")
    return probs


def check_moe(report, up, cfg, experts_cls, prefix, ck, claimed, kind, hidden, inter, n_exp, params_dtype,
              tag):
    import torch

    layer = bare(experts_cls, torch)
    moe = MoeConfigStandIn(num_experts=n_exp, experts_per_token=ck.config.get("num_experts_per_tok"),
                           hidden_dim=hidden, intermediate_size_per_partition=inter, num_local_experts=n_exp,
                           in_dtype=params_dtype, is_act_and_mul=True, has_bias=False, activation="silu",
                           apply_router_weight_on_input=False, moe_backend="auto",
                           moe_parallel_config=MoeConfigStandIn(
                               tp_size=1, ep_size=1, dp_size=1, tp_rank=0, ep_rank=0, dp_rank=0,
                               use_ep=False, use_batched_activation_format=False))
    for k, v in dict(moe_config=moe, hidden_size=hidden, intermediate_size_per_partition=inter,
                     apply_router_weight_on_input=False, local_num_experts=n_exp, global_num_experts=n_exp,
                     activation="silu", has_bias=False).items():
        if not isinstance(getattr(type(layer), k, None), property):  # newer vLLM derives these from moe_config
            object.__setattr__(layer, k, v)
    want = EXPECTED_MOE.get(kind, ("UnquantizedFusedMoEMethod",)) if kind else ("UnquantizedFusedMoEMethod",)
    try:
        method = cfg.get_quant_method(layer, prefix)
        got, ctor_note = type(method).__name__, ""
    except Exception as exc:
        got = selected_class_from_failure(exc)
        if got is None:
            report.check(tag + ".method", False, f"{prefix}: get_quant_method raised {exc!r}")
            return
        method = construct_without_backend(up, cfg, layer, prefix, got)
        ctor_note = "" if method is not None else \
            f" (selected; its __init__ then raised {type(exc).__name__}: {exc})"
    ok = got in want
    report.check(tag + ".method", ok, f"{prefix} ({experts_cls.__name__}): {got}{ctor_note}"
                 + ("" if ok else f", expected {' or '.join(want)}"))
    if method is None:
        for name in ck.tensors:  # reported here, not again as unexpected tensors
            if name.startswith(prefix + "."):
                claimed.add(name)
        report.check(tag + ".params", False, f"{prefix}: {got} could not be built, its parameters are unknown")
        if ctor_note:
            note = (f"vLLM {got}.__init__: raised under the torch shim; parameter names for its experts "
                    "could not be taken from create_weights")
            if note not in up.notes:
                up.notes.append(note)
        return
    try:
        # The keyword set FusedMoE.__init__ passes (WNA16 methods also get the unsharded size).
        extra = {"global_num_experts": n_exp}
        if got in ("CompressedTensorsWNA16MarlinMoEMethod", "CompressedTensorsWNA16MoEMethod"):
            extra["intermediate_size_full"] = inter
        method.create_weights(layer, num_experts=n_exp, hidden_size=hidden,
                              intermediate_size_per_partition=inter, params_dtype=params_dtype,
                              weight_loader=lambda *a, **k: None, **extra)
    except Exception as exc:
        report.check(tag + ".params", False, f"{prefix}: {got}.create_weights raised {exc!r}: "
                     + traceback.format_exc(limit=-2).strip().splitlines()[-3])
        return
    params = {n: p for n, p in layer._parameters.items() if p is not None}
    mapping = expert_mapping(up, n_exp)
    problems, seen = [], set()
    for name, info in ck.tensors.items():
        if not name.startswith(prefix + "."):
            continue
        for param_prefix, fragment, expert_id, shard in mapping:
            if fragment in name:
                # vLLM's loader replaces the fragment by the prefix; the layer-local name follows prefix.
                local = name.replace(fragment, param_prefix)[len(prefix) + 1:]
                claimed.add(name)
                seen.add(local)
                if local not in params:
                    problems.append(f"{name} -> experts.{local}: vLLM registers no such parameter (KeyError)")
                    break
                problems += compare(info, params[local], expert_shape(params[local], shard))
                break
    # Zero-size parameters are placeholders (W4A8-int registers an empty w13_weight_packed), never loaded.
    missing = [n for n in params if n not in seen and not optional(n, method) and params[n].numel() > 0]
    if missing:
        problems.append(f"{got} registers {missing} that no checkpoint tensor fills")
    summary = ", ".join(f"{n} {st_name(p.dtype)} {list(p.shape)}" for n, p in params.items())
    report.check(tag + ".params", not problems, "; ".join(problems[:5]) if problems else
                 f"{n_exp} experts x 3 projections fit {summary}")


def construct_without_backend(up, cfg, layer, prefix, cls_name):
    """get_moe_method chose cls_name but its __init__ failed in the GPU kernel-backend oracle.  Build it
    again with the module's select_*_backend functions answering 'no backend' (the backend decides the
    kernels, not the parameter names) so create_weights can run."""
    pkg = "vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors_moe"
    cls = None
    for name, mod in list(sys.modules.items()):
        if name.startswith(pkg) and hasattr(mod, cls_name):
            cls, module = getattr(mod, cls_name), mod
            break
    if cls is None:
        return None
    patched = [(n, getattr(module, n)) for n in dir(module) if n.startswith("select_") and "backend" in n]
    for n, _ in patched:
        setattr(module, n, lambda *a, **k: (None, None))
    try:
        d = cfg.get_scheme_dict(layer, prefix + ".0.gate_proj")
        method = cls(d.get("weights"), d.get("input_activations"), layer.moe_config)
    except Exception:
        return None
    finally:
        for n, fn in patched:
            setattr(module, n, fn)
    note = (f"vLLM MoE kernel-backend oracle ({', '.join(n for n, _ in patched)} in {module.__name__}): "
            f"finds no backend on this host; answered 'none' so {cls_name} could be built for create_weights")
    if note not in up.notes:
        up.notes.append(note)
    return method


def expert_shape(param, shard):
    """Checkpoint shape of one expert's shard: the per-expert slice, un-transposed for methods whose
    parameters are stored transposed (Marlin/WNA16), with the 2*I axis halved for w1/w3."""
    shape = list(param.shape[1:])
    if getattr(param, "is_transposed", False) and len(shape) == 2:
        shape.reverse()
    if shard in ("w1", "w3") and len(shape) == 2:
        shape[0] //= 2
    return tuple(shape)


def expert_mapping(up, n_exp):
    mod = up.vllm_ct
    experts_cls = getattr(mod, "RoutedExperts", None) or getattr(mod, "FusedMoE")
    try:
        import torch

        model = bare(type("Qwen3MoeModelStandIn", (torch.nn.Module,), {}), torch)
        model.named_parameters = lambda: []
        return experts_cls.make_expert_params_mapping(model, "gate_proj", "down_proj", "up_proj", n_exp)
    except TypeError:
        try:
            return experts_cls.make_expert_params_mapping("gate_proj", "down_proj", "up_proj", n_exp)
        except Exception:
            pass
    except Exception:
        pass
    up.notes.append("vllm FusedMoE.make_expert_params_mapping: could not run under the shim; the mapping "
                    "experts.{e}.gate_proj./up_proj. -> experts.w13_ (w1/w3), down_proj. -> experts.w2_ "
                    "was built from doc §3.a")
    out = []
    for e in range(n_exp):
        for shard, w in (("w1", "gate_proj"), ("w2", "down_proj"), ("w3", "up_proj")):
            out.append(("experts.w13_" if w != "down_proj" else "experts.w2_", f"experts.{e}.{w}.", e, shard))
    return out
