#!/usr/bin/env python3
"""PyTorch-eager timing peer of `moeslim quant` with its default recipe (W8A8, m4 smoothing).

Does the work of configs/qwen3_moe/qwen3-moe-w8a8.yaml one decoder layer at a time on the CPU, written the way a
plain eager PyTorch quantizer would write it (torch tensor ops, torch's own threading, no custom kernels):

  embed both prompt sets (bf16 table, float32 activations); then for each layer
    load     copy the layer's bf16 tensors out of the mmap'd safetensors shards
    anti     float layer over the anti set, collecting per-channel max/min/|max| of q_proj's and o_proj's
             inputs; the anti set moves on through the float layers
    float    float layer over the calibration set: the reference for the per-layer error
    smooth   m4: v_proj -> o_proj (GQA mean, no shift), then input_layernorm -> q/k/v (with shift)
    wquant   per-output-channel symmetric int8 codes for q/k/v/o and every expert's gate/up/down_proj
    calib    the calibration set through the layer with fake-quantized (quantize-dequantize) linears:
             q/k/v/o static per-tensor asymmetric int8 inputs (running mean of per-batch min/max, one shared
             parameter pair for q/k/v), experts per-token symmetric int8 inputs; its outputs are the next
             layer's calibration input ("quantized propagation"); then deq_scale/quant_bias
    write    (only with --out) the layer's tensors to a safetensors file

Everything is described in docs/msmodelslim-algorithms.md (§3 m4, §4 calibration and quantization) and
docs/qwen3-moe-forward.md (§5 the forward pass). See bench/peer/README.md for how to run it and what differs
from moeslim.

Only torch and numpy are needed (Debian 12: apt-get install python3-torch python3-numpy). Token ids come from
files (a JSON list of lists of ids), e.g. written by `moeslim tokenize --output`.
"""

import argparse
import glob
import json
import math
import mmap
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

BF16 = torch.bfloat16
EPS32 = 2.0 ** -23  # float32 machine epsilon: the floor of every quantization scale
SMOOTH_ALPHA = 0.5
SMOOTH_SCALE_MIN = 1e-5

# ----------------------------------------------------------------------------------------------------------------
# safetensors, read and written by hand
# ----------------------------------------------------------------------------------------------------------------

# safetensors dtype -> (numpy dtype used to view the bytes, torch dtype to reinterpret as, or None)
_ST_READ = {
    "BF16": (np.int16, BF16),
    "F16": (np.float16, None),
    "F32": (np.float32, None),
    "F64": (np.float64, None),
    "I8": (np.int8, None),
    "U8": (np.uint8, None),
    "I16": (np.int16, None),
    "I32": (np.int32, None),
    "I64": (np.int64, None),
    "BOOL": (np.bool_, None),
}
_ST_WRITE = {
    torch.bfloat16: "BF16",
    torch.float16: "F16",
    torch.float32: "F32",
    torch.int8: "I8",
    torch.int32: "I32",
    torch.int64: "I64",
}


class SafetensorsFile:
    """One .safetensors file, memory-mapped; tensors are zero-copy views of the mapping until copied."""

    def __init__(self, path):
        self.path = path
        self._file = open(path, "rb")
        # A private (copy-on-write) mapping: numpy sees a writable buffer, so torch.from_numpy does not warn;
        # nothing ever writes to it.
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_COPY)
        header_len = int.from_bytes(self._map[:8], "little")
        header = json.loads(self._map[8:8 + header_len].decode("utf-8"))
        header.pop("__metadata__", None)
        self.entries = header
        self.data_start = 8 + header_len

    def names(self):
        return list(self.entries.keys())

    def byte_range(self, name):
        begin, end = self.entries[name]["data_offsets"]
        return self.data_start + begin, self.data_start + end

    def view(self, name):
        e = self.entries[name]
        np_dtype, torch_view = _ST_READ[e["dtype"]]
        begin, end = self.byte_range(name)
        count = (end - begin) // np.dtype(np_dtype).itemsize
        arr = np.frombuffer(self._map, dtype=np_dtype, count=count, offset=begin)
        t = torch.from_numpy(arr)
        if torch_view is not None:
            t = t.view(torch_view)
        return t.reshape(e["shape"])

    def release(self, begin, end):
        """Drop the pages of [begin, end) from this process's resident set (they are re-read if touched)."""
        if not hasattr(self._map, "madvise") or end <= begin:
            return
        page = mmap.PAGESIZE
        start = (begin // page) * page
        stop = min(len(self._map), ((end + page - 1) // page) * page)
        if stop > start:
            self._map.madvise(mmap.MADV_DONTNEED, start, stop - start)


class Checkpoint:
    """A Hugging Face checkpoint directory: config.json and one or more safetensors shards."""

    def __init__(self, model_dir):
        self.dir = model_dir
        with open(os.path.join(model_dir, "config.json")) as f:
            self.config = json.load(f)
        index = os.path.join(model_dir, "model.safetensors.index.json")
        self._files = {}
        self._where = {}
        if os.path.exists(index):
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
            for name, fname in weight_map.items():
                self._where[name] = fname
        else:
            shards = sorted(glob.glob(os.path.join(model_dir, "*.safetensors")))
            if not shards:
                raise SystemExit(f"no *.safetensors in {model_dir}")
            for path in shards:
                fname = os.path.basename(path)
                for name in self._file(fname).names():
                    self._where[name] = fname

    def _file(self, fname):
        if fname not in self._files:
            self._files[fname] = SafetensorsFile(os.path.join(self.dir, fname))
        return self._files[fname]

    def has(self, name):
        return name in self._where

    def view(self, name):
        if name not in self._where:
            raise KeyError(f"tensor {name} not in checkpoint {self.dir}")
        return self._file(self._where[name]).view(name)

    def load(self, name):
        """An owned copy of a tensor (the read)."""
        return self.view(name).clone()

    def release(self, names):
        """Give the mapped pages behind `names` back (one layer resident at a time)."""
        spans = {}
        for name in names:
            fname = self._where.get(name)
            if fname is None:
                continue
            b, e = self._file(fname).byte_range(name)
            lo, hi = spans.get(fname, (b, e))
            spans[fname] = (min(lo, b), max(hi, e))
        for fname, (b, e) in spans.items():
            self._file(fname).release(b, e)


def tensor_buffer(t):
    """The tensor's bytes as a buffer, without a copy when it is contiguous."""
    t = t.detach().contiguous()
    if t.dtype == BF16:
        t = t.view(torch.int16)
    return memoryview(t.numpy()).cast("B")


def write_safetensors(path, tensors):
    """tensors: list of (name, tensor) in write order."""
    header = {}
    offset = 0
    for name, t in tensors:
        n = t.numel() * t.element_size()
        header[name] = {"dtype": _ST_WRITE[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * ((8 - len(blob) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for _, t in tensors:
            f.write(tensor_buffer(t))
    return offset


# ----------------------------------------------------------------------------------------------------------------
# model configuration
# ----------------------------------------------------------------------------------------------------------------


class Config:
    def __init__(self, raw):
        self.raw = raw
        self.hidden = raw["hidden_size"]
        self.layers = raw["num_hidden_layers"]
        self.heads = raw["num_attention_heads"]
        self.kv_heads = raw.get("num_key_value_heads", self.heads)
        self.head_dim = raw.get("head_dim") or self.hidden // self.heads
        self.experts = raw.get("num_experts", 0)
        self.top_k = raw.get("num_experts_per_tok", 1)
        self.norm_topk = raw.get("norm_topk_prob", False)
        self.moe_inter = raw.get("moe_intermediate_size", 0)
        self.inter = raw.get("intermediate_size", 0)
        self.eps = raw.get("rms_norm_eps", 1e-6)
        self.theta = raw.get("rope_theta", 10000.0)
        self.vocab = raw["vocab_size"]
        self.mlp_only = set(raw.get("mlp_only_layers", []) or [])
        self.sparse_step = raw.get("decoder_sparse_step", 1) or 1
        if raw.get("rope_scaling"):
            print(f"warning: rope_scaling {raw['rope_scaling']} is ignored (plain RoPE is used)", file=sys.stderr)

    def is_moe(self, layer):
        return layer not in self.mlp_only and self.experts > 0 and (layer + 1) % self.sparse_step == 0


# ----------------------------------------------------------------------------------------------------------------
# data: prompts packed per batch (no padding)
# ----------------------------------------------------------------------------------------------------------------


def read_ids(path):
    with open(path) as f:
        data = json.load(f)
    out = []
    for item in data:
        ids = item["ids"] if isinstance(item, dict) else item
        if ids:
            out.append([int(i) for i in ids])
    if not out:
        raise SystemExit(f"{path}: no prompts")
    return out


class Batch:
    """The prompts of one batch, packed row after row: hidden [tokens, H]; attention stays within a prompt."""

    def __init__(self, prompts, cfg):
        self.lens = [len(p) for p in prompts]
        self.ids = torch.tensor([t for p in prompts for t in p], dtype=torch.int64)
        self.cos, self.sin = rope_tables(self.lens, cfg.head_dim, cfg.theta)
        self.hidden = None


def make_batches(prompts, batch_size, cfg):
    return [Batch(prompts[i:i + batch_size], cfg) for i in range(0, len(prompts), batch_size)]


# ----------------------------------------------------------------------------------------------------------------
# forward pieces (docs/qwen3-moe-forward.md §5)
# ----------------------------------------------------------------------------------------------------------------


def rms_norm(x, weight, eps, bias=None):
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    y = y * weight
    if bias is not None:
        y = y + bias
    return y


def rope_tables(lens, head_dim, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    pos = torch.cat([torch.arange(t, dtype=torch.int64) for t in lens]).float()
    angle = pos[:, None] * inv_freq[None, :]
    angle = torch.cat([angle, angle], dim=-1)
    return angle.cos(), angle.sin()


def apply_rope(x, cos, sin):
    """x: [tokens, heads, d], rotate-half layout."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


_masks = {}


def causal_mask(t, dtype):
    m = _masks.get((t, dtype))
    if m is None:
        m = torch.full((t, t), float("-inf"), dtype=dtype).triu(1)
        if t <= 4096:
            _masks[(t, dtype)] = m
    return m


def attention(q, k, v, lens, cfg, gemm_dtype):
    """q [N, nh, d], k/v [N, nkv, d] float32 -> [N, nh*d] float32; causal within each prompt of the packed batch.

    Eager attention as a bf16 Hugging Face model computes it (torch 1.13 has no scaled_dot_product_attention):
    scores and P·V as matmuls in the GEMM dtype, scaled and masked in place, softmax accumulated in float32.
    """
    nh, nkv, d = cfg.heads, cfg.kv_heads, cfg.head_dim
    g = nh // nkv
    scale = d ** -0.5
    q, k, v = q.to(gemm_dtype), k.to(gemm_dtype), v.to(gemm_dtype)
    out = []
    start = 0
    for t in lens:
        qs = q[start:start + t].transpose(0, 1)  # [nh, t, d]
        ks = k[start:start + t].transpose(0, 1)  # [nkv, t, d]
        vs = v[start:start + t].transpose(0, 1)
        # GQA: kv head j serves query heads j*g .. j*g+g-1
        ks = ks[:, None].expand(nkv, g, t, d).reshape(nh, t, d)
        vs = vs[:, None].expand(nkv, g, t, d).reshape(nh, t, d)
        scores = torch.matmul(qs, ks.transpose(1, 2))
        scores.mul_(scale)
        scores.add_(causal_mask(t, gemm_dtype))
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(gemm_dtype)
        del scores
        o = torch.matmul(probs, vs)  # [nh, t, d]
        out.append(o.transpose(0, 1).reshape(t, nh * d))
        start += t
    return torch.cat(out, dim=0).float()


# ----------------------------------------------------------------------------------------------------------------
# one decoder layer's tensors
# ----------------------------------------------------------------------------------------------------------------

ATTN_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_LINEARS = ("gate_proj", "up_proj", "down_proj")


def layer_tensor_names(cfg, layer):
    p = f"model.layers.{layer}."
    names = [p + "input_layernorm.weight", p + "post_attention_layernorm.weight",
             p + "self_attn.q_norm.weight", p + "self_attn.k_norm.weight"]
    names += [p + f"self_attn.{n}.weight" for n in ATTN_LINEARS]
    if cfg.is_moe(layer):
        names.append(p + "mlp.gate.weight")
        for e in range(cfg.experts):
            names += [p + f"mlp.experts.{e}.{n}.weight" for n in MLP_LINEARS]
    else:
        names += [p + f"mlp.{n}.weight" for n in MLP_LINEARS]
    return names


class LayerWeights:
    """The bf16 tensors of one layer (plus the m4 edits once smoothing ran)."""

    def __init__(self, ckpt, cfg, layer):
        p = f"model.layers.{layer}."
        self.layer = layer
        self.moe = cfg.is_moe(layer)
        self.names = layer_tensor_names(cfg, layer)
        self.in_norm = ckpt.load(p + "input_layernorm.weight")
        self.in_norm_bias = None  # m4 gives every norm a bias; only input_layernorm's becomes nonzero
        self.post_norm = ckpt.load(p + "post_attention_layernorm.weight")
        self.q_norm = ckpt.load(p + "self_attn.q_norm.weight")
        self.k_norm = ckpt.load(p + "self_attn.k_norm.weight")
        self.attn = {n: ckpt.load(p + f"self_attn.{n}.weight") for n in ATTN_LINEARS}
        self.attn_bias = {}  # m4's shift bias of q/k/v
        if self.moe:
            self.router = ckpt.load(p + "mlp.gate.weight")
            self.experts = [{n: ckpt.load(p + f"mlp.experts.{e}.{n}.weight") for n in MLP_LINEARS}
                            for e in range(cfg.experts)]
        else:
            self.router = None
            self.experts = [{n: ckpt.load(p + f"mlp.{n}.weight") for n in MLP_LINEARS}]
        ckpt.release(self.names)


# ----------------------------------------------------------------------------------------------------------------
# statistics and fake quantization
# ----------------------------------------------------------------------------------------------------------------


class ChannelStats:
    """Running per-channel max, min and max |x| over every row seen (m4's statistics, §3.3)."""

    def __init__(self):
        self.max = None
        self.min = None

    def observe(self, x):
        mx, mn = x.amax(dim=0), x.amin(dim=0)
        if self.max is None:
            self.max, self.min = mx, mn
        else:
            self.max = torch.maximum(self.max, mx)
            self.min = torch.minimum(self.min, mn)

    def abs_max(self):
        return torch.maximum(self.max.abs(), self.min.abs())


class StaticObserver:
    """Per-tensor min-max observer: the parameters are the mean over batches of each batch's extremes (§4.4)."""

    def __init__(self):
        self.mins = []
        self.maxs = []
        self.scale = None
        self.offset = None

    def observe(self, x):
        self.mins.append(x.min().to(BF16))
        self.maxs.append(x.max().to(BF16))
        x_min = torch.stack(self.mins).mean()  # bf16 tensor mean, as msModelSlim's observer holds them
        x_max = torch.stack(self.maxs).mean()
        zero = torch.zeros((), dtype=BF16)
        mn = torch.minimum(x_min, zero)
        mx = torch.maximum(x_max, zero)
        self.scale = ((mx - mn) / 255).clamp(min=EPS32)
        self.offset = -128 - torch.round(mn / self.scale)

    def fake_quant(self, x):
        s = self.scale.float()
        o = self.offset.float()
        q = torch.clamp(torch.round(x / s + o), -128, 127)
        return (q - o) * s


def fake_quant_per_token(x):
    """Symmetric int8 per row (the W8A8_DYNAMIC runtime's activation quantization, §4.7)."""
    s = (x.abs().amax(dim=-1, keepdim=True) / 127).clamp(min=EPS32)
    return torch.clamp(torch.round(x / s), -127, 127) * s


def quantize_weight(w):
    """Per-output-channel symmetric int8 in the weight dtype (§4.3): codes int8 [out, in], scale bf16 [out, 1]."""
    scale = (w.abs().amax(dim=1, keepdim=True) / 127).clamp(min=EPS32)
    codes = torch.clamp(torch.round(w / scale), -127, 127).to(torch.int8)
    return codes, scale


def dequantize_weight(codes, scale, gemm_dtype):
    if gemm_dtype == BF16:
        return codes.to(BF16) * scale  # rounded to bf16, as a bf16 fake-quant weight is
    return codes.float() * scale.float()


# ----------------------------------------------------------------------------------------------------------------
# m4 smoothing (docs/msmodelslim-algorithms.md §3), in bf16 tensor ops
# ----------------------------------------------------------------------------------------------------------------


def m4_scales(act_abs_max, weight_abs_max):
    w = weight_abs_max.clamp(min=SMOOTH_SCALE_MIN)
    s = act_abs_max.pow(SMOOTH_ALPHA) / w.pow(1.0 - SMOOTH_ALPHA)
    return s.clamp(min=SMOOTH_SCALE_MIN)


def smooth_m4(lw, cfg, stats_qkv, stats_o):
    nkv, d = cfg.kv_heads, cfg.head_dim
    g = cfg.heads // cfg.kv_heads
    # ov: v_proj rows / r, o_proj columns * r, with r the mean of s over each kv group's query heads
    a = stats_o.abs_max().to(BF16)
    wo, wv = lw.attn["o_proj"], lw.attn["v_proj"]
    s = m4_scales(a, wo.abs().amax(dim=0))
    r = s.view(nkv, g, d).mean(dim=1)  # [nkv, d]
    lw.attn["v_proj"] = wv / r.reshape(-1, 1)
    lw.attn["o_proj"] = wo * r[:, None, :].expand(nkv, g, d).reshape(1, -1)
    # norm-linear: input_layernorm -> q, k, v with shift (reads v_proj after ov)
    a = stats_qkv.abs_max().to(BF16)
    shift = (stats_qkv.max.to(BF16) + stats_qkv.min.to(BF16)) / 2
    qkv = [lw.attn[n] for n in ("q_proj", "k_proj", "v_proj")]
    w_abs = torch.stack([w.abs().amax(dim=0) for w in qkv]).amax(dim=0)
    s = m4_scales(a, w_abs)
    lw.in_norm = lw.in_norm / s
    lw.in_norm_bias = -shift / s
    for n, w in zip(("q_proj", "k_proj", "v_proj"), qkv):
        lw.attn_bias[n] = F.linear(shift[None, :], w)[0]  # W·shift from the weight before scaling
        lw.attn[n] = w * s[None, :]


# ----------------------------------------------------------------------------------------------------------------
# layer runners: the float layer and the fake-quantized one share the forward
# ----------------------------------------------------------------------------------------------------------------


class LayerRunner:
    def __init__(self, cfg, lw, gemm_dtype):
        self.cfg = cfg
        self.moe = lw.moe
        self.dt = gemm_dtype
        self.in_norm = lw.in_norm.float()
        self.in_norm_bias = None if lw.in_norm_bias is None else lw.in_norm_bias.float()
        self.post_norm = lw.post_norm.float()
        self.q_norm = lw.q_norm.float()
        self.k_norm = lw.k_norm.float()
        self.router = None if lw.router is None else lw.router.to(gemm_dtype)
        self.bias = {n: b.to(gemm_dtype) for n, b in lw.attn_bias.items()}
        self.expert_tokens = torch.zeros(max(1, cfg.experts if lw.moe else 1), dtype=torch.int64)

    # hooks overridden by the subclasses
    def attn_input(self, group, x):
        return x

    def linear(self, name, x):
        raise NotImplementedError

    def expert(self, e, x):
        raise NotImplementedError

    def forward(self, batch, h):
        cfg = self.cfg
        n = h.shape[0]
        x = rms_norm(h, self.in_norm, cfg.eps, self.in_norm_bias)
        x = self.attn_input("qkv", x)
        q = self.linear("q_proj", x).view(n, cfg.heads, cfg.head_dim)
        k = self.linear("k_proj", x).view(n, cfg.kv_heads, cfg.head_dim)
        v = self.linear("v_proj", x).view(n, cfg.kv_heads, cfg.head_dim)
        q = apply_rope(rms_norm(q, self.q_norm, cfg.eps), batch.cos, batch.sin)
        k = apply_rope(rms_norm(k, self.k_norm, cfg.eps), batch.cos, batch.sin)
        o = attention(q, k, v, batch.lens, cfg, self.dt)
        o = self.attn_input("o", o)
        h = h + self.linear("o_proj", o)
        b = rms_norm(h, self.post_norm, cfg.eps)
        return h + (self.sparse_moe(b) if self.moe else self.expert(0, b))

    def sparse_moe(self, b):
        cfg = self.cfg
        logits = F.linear(b.to(self.dt), self.router).float()
        probs = torch.softmax(logits, dim=-1)
        weights, chosen = torch.topk(probs, cfg.top_k, dim=-1)
        if cfg.norm_topk:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        flat = chosen.reshape(-1)
        counts = torch.bincount(flat, minlength=cfg.experts)
        self.expert_tokens += counts
        order = torch.sort(flat, stable=True)[1]  # (token, slot) pairs grouped by expert, ascending
        token_of = order // cfg.top_k
        weight_of = weights.reshape(-1)[order]
        out = torch.zeros_like(b)
        start = 0
        for e, c in enumerate(counts.tolist()):
            if c == 0:
                continue
            rows = token_of[start:start + c]
            y = self.expert(e, b.index_select(0, rows))
            out.index_add_(0, rows, y * weight_of[start:start + c, None])
            start += c
        return out


class FloatRunner(LayerRunner):
    """The float layer: bf16 weights (or float32 with --precision f32); optional m4 statistics."""

    def __init__(self, cfg, lw, gemm_dtype, collect_stats=False):
        super().__init__(cfg, lw, gemm_dtype)
        self.w = {n: w.to(gemm_dtype) for n, w in lw.attn.items()}
        self.experts = [{n: w.to(gemm_dtype) for n, w in ex.items()} for ex in lw.experts]
        self.stats = {"qkv": ChannelStats(), "o": ChannelStats()} if collect_stats else None

    def attn_input(self, group, x):
        if self.stats is not None:
            self.stats[group].observe(x)
        return x

    def linear(self, name, x):
        return F.linear(x.to(self.dt), self.w[name], self.bias.get(name)).float()

    def expert(self, e, x):
        w = self.experts[e]
        xd = x.to(self.dt)
        gate = F.linear(xd, w["gate_proj"]).float()
        up = F.linear(xd, w["up_proj"]).float()
        return F.linear((F.silu(gate) * up).to(self.dt), w["down_proj"]).float()


class QuantLayer:
    """The int8 result of one layer: codes and scales of every quantized linear."""

    def __init__(self, lw):
        self.attn = {n: quantize_weight(w) for n, w in lw.attn.items()}
        self.experts = [{n: quantize_weight(w) for n, w in ex.items()} for ex in lw.experts]


class QuantRunner(LayerRunner):
    """The layer with fake-quantized linears: static per-tensor inputs for attention, per-token for experts."""

    def __init__(self, cfg, lw, ql, gemm_dtype):
        super().__init__(cfg, lw, gemm_dtype)
        self.w = {n: dequantize_weight(c, s, gemm_dtype) for n, (c, s) in ql.attn.items()}
        self.experts = [{n: dequantize_weight(c, s, gemm_dtype) for n, (c, s) in ex.items()}
                        for ex in ql.experts]
        self.observers = {"qkv": StaticObserver(), "o": StaticObserver()}
        self.calibrating = True

    def attn_input(self, group, x):
        obs = self.observers[group]
        if self.calibrating:
            obs.observe(x)  # take the batch first, then quantize it with the running parameters
        return obs.fake_quant(x)

    def linear(self, name, x):
        return F.linear(x.to(self.dt), self.w[name], self.bias.get(name)).float()

    def expert(self, e, x):
        w = self.experts[e]
        xd = fake_quant_per_token(x).to(self.dt)
        gate = F.linear(xd, w["gate_proj"]).float()
        up = F.linear(xd, w["up_proj"]).float()
        act = fake_quant_per_token(F.silu(gate) * up)
        return F.linear(act.to(self.dt), w["down_proj"]).float()


def static_parameters(codes, weight_scale, obs, bias):
    """deq_scale and quant_bias of a static W8A8 linear (§4.6)."""
    deq = (obs.scale * weight_scale.reshape(-1)).float()
    corr = codes.to(torch.int32).sum(dim=1).float() * obs.offset.float()
    b = torch.zeros_like(deq) if bias is None else bias.float()
    quant_bias = torch.round(b / deq - corr).to(torch.int32)
    return deq, quant_bias


# ----------------------------------------------------------------------------------------------------------------
# the quantization run
# ----------------------------------------------------------------------------------------------------------------


class Timer:
    def __init__(self):
        self.rows = []  # (layer or label, {phase: seconds})
        self.current = None

    def start_row(self, label):
        self.current = {}
        self.rows.append((label, self.current))

    def add(self, phase, seconds):
        self.current[phase] = self.current.get(phase, 0.0) + seconds


class phase:
    def __init__(self, timer, name):
        self.timer, self.name = timer, name

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        self.timer.add(self.name, time.perf_counter() - self.t0)


def run_layer(runner, batches):
    for b in batches:
        b.hidden = runner.forward(b, b.hidden)


def relative_update_error(quant, ref, inputs):
    err = upd = 0.0
    for q, r, x in zip(quant, ref, inputs):
        err += float((q.double() - r.double()).pow(2).sum())
        upd += float((r.double() - x.double()).pow(2).sum())
    return math.sqrt(err / upd) if upd > 0 else 0.0


def embed(ckpt, batches_list):
    table = ckpt.view("model.embed_tokens.weight")
    for batches in batches_list:
        for b in batches:
            b.hidden = table.index_select(0, b.ids).float()
    ckpt.release(["model.embed_tokens.weight"])


def layer_output_tensors(cfg, lw, ql, qrunner):
    """The layer's tensors in the W8A8 (ascendV1) naming, and each one's description type."""
    p = f"model.layers.{lw.layer}."
    out, kinds = [], {}

    def put(name, t, kind):
        out.append((name, t))
        kinds[name] = kind

    def norm(name, w, b):
        put(p + name + ".weight", w.to(BF16), "FLOAT")
        put(p + name + ".bias", (torch.zeros_like(w) if b is None else b).to(BF16), "FLOAT")

    for n in ATTN_LINEARS:
        codes, ws = ql.attn[n]
        obs = qrunner.observers["o" if n == "o_proj" else "qkv"]
        bias = lw.attn_bias.get(n)
        deq, qb = static_parameters(codes, ws, obs, bias)
        base = p + f"self_attn.{n}."
        put(base + "weight", codes, "W8A8")
        if bias is not None:
            put(base + "bias", bias.to(BF16), "FLOAT")
        put(base + "weight_scale", ws, "W8A8")
        put(base + "weight_offset", torch.zeros_like(ws), "W8A8")
        put(base + "input_scale", obs.scale.reshape(1), "W8A8")
        put(base + "input_offset", obs.offset.reshape(1), "W8A8")
        put(base + "quant_bias", qb, "W8A8")
        put(base + "deq_scale", deq, "W8A8")
    norm("self_attn.q_norm", lw.q_norm, None)
    norm("self_attn.k_norm", lw.k_norm, None)
    norm("input_layernorm", lw.in_norm, lw.in_norm_bias)
    norm("post_attention_layernorm", lw.post_norm, None)
    if lw.moe:
        put(p + "mlp.gate.weight", lw.router, "FLOAT")
        prefixes = [p + f"mlp.experts.{e}." for e in range(cfg.experts)]
    else:
        prefixes = [p + "mlp."]
    for prefix, ex in zip(prefixes, ql.experts):
        for n in MLP_LINEARS:
            codes, ws = ex[n]
            put(prefix + n + ".weight", codes, "W8A8_DYNAMIC")
            put(prefix + n + ".weight_scale", ws, "W8A8_DYNAMIC")
            put(prefix + n + ".weight_offset", torch.zeros_like(ws), "W8A8_DYNAMIC")
    return out, kinds


def quantize_model(args, ckpt, cfg):
    gemm_dtype = BF16 if args.precision == "bf16" else torch.float32
    anti_prompts = read_ids(args.anti_ids)
    calib_prompts = read_ids(args.calib_ids)
    n_layers = cfg.layers if args.layers <= 0 else min(args.layers, cfg.layers)
    timer = Timer()
    t_total = time.perf_counter()

    timer.start_row("setup")
    with phase(timer, "embed"):
        anti = make_batches(anti_prompts, args.batch_size, cfg)
        calib = make_batches(calib_prompts, args.batch_size, cfg)
        embed(ckpt, [anti, calib])
    print(f"anti set: {len(anti_prompts)} prompts, {sum(b.ids.numel() for b in anti)} tokens, {len(anti)} batches; "
          f"calibration set: {len(calib_prompts)} prompts, {sum(b.ids.numel() for b in calib)} tokens, "
          f"{len(calib)} batches of up to {args.batch_size}")

    if args.out:
        os.makedirs(args.out, exist_ok=True)
    weight_map, description, total_size = {}, {}, 0
    kept = []  # (float runner, quant runner) per layer, only for --eval-ids
    layer_reports = []

    for layer in range(n_layers):
        timer.start_row(layer)
        with phase(timer, "load"):
            lw = LayerWeights(ckpt, cfg, layer)
        with phase(timer, "anti"):
            frun = FloatRunner(cfg, lw, gemm_dtype, collect_stats=True)
            run_layer(frun, anti)  # the anti set moves on through the float layers
        with phase(timer, "float"):
            frun.stats, stats = None, frun.stats
            inputs = [b.hidden for b in calib]
            reference = [frun.forward(b, b.hidden) for b in calib]
        if not args.eval_ids:
            del frun
        with phase(timer, "smooth"):
            smooth_m4(lw, cfg, stats["qkv"], stats["o"])
        with phase(timer, "wquant"):
            ql = QuantLayer(lw)
            if not args.eval_ids:
                lw.experts = None  # the float experts are no longer needed (one copy of the layer resident)
        with phase(timer, "calib"):
            qrun = QuantRunner(cfg, lw, ql, gemm_dtype)
            run_layer(qrun, calib)  # quantized propagation: the next layer is calibrated on these outputs
            qrun.calibrating = False
            rel = relative_update_error([b.hidden for b in calib], reference, inputs)
            tensors, kinds = layer_output_tensors(cfg, lw, ql, qrun)
        del reference, inputs
        hit = int((qrun.expert_tokens > 0).sum()) if lw.moe else 1
        layer_reports.append({"layer": layer, "relative_error": rel, "experts_hit": hit,
                              "finite": all(bool(torch.isfinite(b.hidden).all()) for b in calib + anti)})
        if args.out:
            with phase(timer, "write"):
                fname = f"quant_model_weight_w8a8_dynamic-layer{layer:05d}.safetensors"
                total_size += write_safetensors(os.path.join(args.out, fname), tensors)
                for name, _ in tensors:
                    weight_map[name] = fname
                description.update(kinds)
        if args.eval_ids:
            kept.append((frun, qrun))
        del tensors, kinds, ql, lw
        if not args.eval_ids:
            del qrun
        r = layer_reports[-1]
        print(f"layer {layer}: rel. error {rel:.4g}, experts hit {hit}, finite {r['finite']}, "
              f"{sum(timer.current.values()):.2f} s", flush=True)

    if args.out:
        timer.start_row("finish")
        with phase(timer, "write"):
            tensors = [("model.embed_tokens.weight", ckpt.view("model.embed_tokens.weight")),
                       ("model.norm.weight", ckpt.view("model.norm.weight")),
                       ("model.norm.bias", torch.zeros_like(ckpt.view("model.norm.weight")))]
            if ckpt.has("lm_head.weight"):
                tensors.append(("lm_head.weight", ckpt.view("lm_head.weight")))
            fname = "quant_model_weight_w8a8_dynamic-base.safetensors"
            total_size += write_safetensors(os.path.join(args.out, fname), tensors)
            ckpt.release([n for n, _ in tensors])
            for name, _ in tensors:
                weight_map[name] = fname
                description[name] = "FLOAT"
            with open(os.path.join(args.out, "quant_model_weight_w8a8_dynamic.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {"total_size": total_size}, "weight_map": weight_map}, f, indent=2)
            desc = {"version": "1.0.0", "model_quant_type": "W8A8"}
            desc.update(description)
            desc.update({"kv_quant_type": None, "fa_quant_type": None, "group_size": 0})
            with open(os.path.join(args.out, "quant_model_description.json"), "w") as f:
                json.dump(desc, f, indent=2)
            cfg_out = dict(cfg.raw)
            cfg_out["quantize"] = "w8a8_dynamic"
            with open(os.path.join(args.out, "config.json"), "w") as f:
                json.dump(cfg_out, f, indent=4)

    wall = time.perf_counter() - t_total
    all_final = [b.hidden for b in calib]
    finite = all(bool(torch.isfinite(h).all()) for h in all_final)
    return timer, wall, layer_reports, finite, kept


# ----------------------------------------------------------------------------------------------------------------
# verification helpers (not part of the timed work)
# ----------------------------------------------------------------------------------------------------------------


def logits_of(ckpt, cfg, h, gemm_dtype):
    norm = ckpt.view("model.norm.weight").float()
    head = ckpt.view("lm_head.weight" if ckpt.has("lm_head.weight") else "model.embed_tokens.weight")
    x = rms_norm(h, norm, cfg.eps)
    return F.linear(x.to(gemm_dtype), head.to(gemm_dtype)).float()


def check_reference(args, ckpt, cfg):
    """Float forward of the reference prompts, layer by layer, compared with reference.safetensors."""
    gemm_dtype = BF16 if args.precision == "bf16" else torch.float32
    with open(os.path.join(args.check_reference, "reference.json")) as f:
        ref_json = json.load(f)
    ref = SafetensorsFile(os.path.join(args.check_reference, "reference.safetensors"))
    prompts = [p["ids"] for p in ref_json["prompts"]]
    batches = [Batch([p], cfg) for p in prompts]
    embed(ckpt, [batches])
    worst_hidden = 0.0
    for layer in range(cfg.layers):
        lw = LayerWeights(ckpt, cfg, layer)
        run_layer(FloatRunner(cfg, lw, gemm_dtype), batches)
        key = f"prompt.0.hidden.after_layer.{layer}"
        if key in ref.entries:
            r = ref.view(key).float()
            e = float((batches[0].hidden - r).norm() / r.norm())
            worst_hidden = max(worst_hidden, e)
            print(f"hidden after layer {layer} (prompt 0): relative L2 {e:.3g}")
    worst = 0.0
    for i, b in enumerate(batches):
        key = f"prompt.{i}.logits"
        if key not in ref.entries:
            continue
        r = ref.view(key).float()
        lg = logits_of(ckpt, cfg, b.hidden, gemm_dtype)
        e = float((lg - r).norm() / r.norm())
        agree = float((lg.argmax(-1) == r.argmax(-1)).float().mean())
        worst = max(worst, e)
        print(f"prompt {i} ({b.lens[0]} tokens): logits relative L2 {e:.3g}, top-1 agreement {agree:.3f}")
    print(f"worst: hidden {worst_hidden:.3g}, logits {worst:.3g} (precision {args.precision})")


def eval_windows(args, cfg):
    with open(args.eval_ids) as f:
        docs = json.load(f)
    eot = args.eot_id if args.eot_id is not None else cfg.raw.get("bos_token_id", 151643)
    stream = []
    for d in docs[: args.eval_max_docs or None]:
        stream += list(d["ids"] if isinstance(d, dict) else d) + [eot]
    w = args.eval_window
    return [stream[i:i + w] for i in range(0, len(stream), w) if len(stream[i:i + w]) >= 2]


def evaluate(args, ckpt, cfg, kept):
    """Perplexity of the float layers and of the fake-quantized ones (their final static parameters)."""
    gemm_dtype = BF16 if args.precision == "bf16" else torch.float32
    windows = eval_windows(args, cfg)
    results = {}
    for label, idx in (("float", 0), ("fake-quant", 1)):
        batches = make_batches(windows, 16, cfg)
        embed(ckpt, [batches])
        for runners in kept:
            run_layer(runners[idx], batches)
        nll, count = 0.0, 0
        for b in batches:
            lg = logits_of(ckpt, cfg, b.hidden, gemm_dtype)
            logp = torch.log_softmax(lg, dim=-1)
            start = 0
            for t in b.lens:
                tgt = b.ids[start + 1:start + t]
                nll -= float(logp[start:start + t - 1].gather(1, tgt[:, None]).double().sum())
                count += t - 1
                start += t
        results[label] = math.exp(nll / count)
        print(f"perplexity ({label}, {len(kept)} layers, {count} predicted tokens): {results[label]:.4f}")
    return results


# ----------------------------------------------------------------------------------------------------------------
# allocator: eager PyTorch allocates a fresh output tensor for nearly every op. On a machine where a page fault is
# expensive (measured on the Firecracker VMs this project runs on: ~10 us per 4 KiB page, so first-touching a fresh
# 512 MiB tensor costs 1.4 s against 0.02 s to refill it) glibc's malloc, which returns every large block to the
# kernel on free, makes the run mostly page faults. The usual PyTorch-on-CPU remedy is a caching malloc via
# LD_PRELOAD; it is applied by re-executing this script once with the environment set.
# ----------------------------------------------------------------------------------------------------------------

_ALLOC_ENV = "TORCH_M4_PEER_ALLOCATOR"
_ALLOCATORS = {
    "tcmalloc": ("libtcmalloc_minimal.so.4", {"TCMALLOC_RELEASE_RATE": "0",
                                              "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 50)}),
    "jemalloc": ("libjemalloc.so.2", {"MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"}),
}


def _find_library(soname):
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib"):
        path = os.path.join(d, soname)
        if os.path.exists(path):
            return path
    return None


def select_allocator(choice):
    """Re-exec with a caching malloc preloaded (once); returns a description of the allocator in use."""
    active = os.environ.get(_ALLOC_ENV)
    if active is not None:
        return active
    if choice == "system":
        os.environ[_ALLOC_ENV] = "system (glibc malloc)"
        return os.environ[_ALLOC_ENV]
    names = ["tcmalloc", "jemalloc"] if choice == "auto" else [choice]
    for name in names:
        soname, env = _ALLOCATORS[name]
        path = _find_library(soname)
        if path is None:
            continue
        new_env = dict(os.environ)
        new_env.update(env)
        new_env["LD_PRELOAD"] = (path + " " + new_env.get("LD_PRELOAD", "")).strip()
        new_env[_ALLOC_ENV] = f"{name} ({path}, " + ", ".join(f"{k}={v}" for k, v in env.items()) + ")"
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable] + sys.argv, new_env)
    print(f"warning: no {' or '.join(names)} found (apt-get install libtcmalloc-minimal4); using glibc malloc",
          file=sys.stderr)
    os.environ[_ALLOC_ENV] = "system (glibc malloc; no caching malloc found)"
    return os.environ[_ALLOC_ENV]


# ----------------------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="Hugging Face Qwen3-MoE checkpoint directory")
    ap.add_argument("--anti-ids", help="JSON list of token-id lists: the anti-outlier (smoothing statistics) set")
    ap.add_argument("--calib-ids", help="JSON list of token-id lists: the calibration set")
    ap.add_argument("--batch-size", type=int, default=4, help="prompts per batch (default 4)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's default)")
    ap.add_argument("--precision", choices=["bf16", "f32"], default="bf16",
                    help="GEMM dtype of every pass (default bf16, as moeslim's float passes; f32 for checks)")
    ap.add_argument("--layers", type=int, default=0, help="quantize only the first N layers (0 = all)")
    ap.add_argument("--out", help="write the quantized tensors here (safetensors, one file per layer)")
    ap.add_argument("--json", help="write the timings and per-layer results as JSON to this file")
    ap.add_argument("--check-reference", metavar="DIR",
                    help="instead of quantizing: float forward of DIR/reference.json's prompts, compared with "
                         "DIR/reference.safetensors (independent float32 reference outputs)")
    ap.add_argument("--eval-ids", help="after quantizing, perplexity of the float and fake-quantized layers on "
                                       "this tokenized text (JSON list of id lists or of {\"ids\": [...]}); "
                                       "keeps every layer in memory: small models only")
    ap.add_argument("--eval-window", type=int, default=256)
    ap.add_argument("--eval-max-docs", type=int, default=0)
    ap.add_argument("--eot-id", type=int, help="separator after each eval document (default: config bos_token_id)")
    ap.add_argument("--allocator", choices=["auto", "tcmalloc", "jemalloc", "system"], default="auto",
                    help="malloc for the run (default auto: tcmalloc, else jemalloc, else glibc); see README")
    args = ap.parse_args()
    allocator = select_allocator(args.allocator)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    ckpt = Checkpoint(args.model)
    cfg = Config(ckpt.config)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, precision {args.precision}, "
          f"model {args.model}: {cfg.layers} layers, hidden {cfg.hidden}, {cfg.heads}/{cfg.kv_heads} heads, "
          f"{cfg.experts} experts top-{cfg.top_k}")
    print(f"allocator: {allocator}")

    with torch.inference_mode():
        if args.check_reference:
            check_reference(args, ckpt, cfg)
            print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
            return
        if not args.anti_ids or not args.calib_ids:
            ap.error("--anti-ids and --calib-ids are required")
        timer, wall, reports, finite, kept = quantize_model(args, ckpt, cfg)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print_table(timer, wall, peak_mib, finite)
        ppl = evaluate(args, ckpt, cfg, kept) if args.eval_ids else None

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "precision": args.precision,
                       "allocator": allocator,
                       "batch_size": args.batch_size, "wall_s": wall, "peak_rss_mib": peak_mib,
                       "finite": finite, "phases": [{"row": str(r), **p} for r, p in timer.rows],
                       "layers": reports, "perplexity": ppl}, f, indent=2)
    if not finite:
        sys.exit(1)


def print_table(timer, wall, peak_mib, finite):
    phases = ["embed", "load", "anti", "float", "smooth", "wquant", "calib", "write"]
    used = [p for p in phases if any(p in row for _, row in timer.rows)]
    print()
    print("seconds per phase (time.perf_counter)")
    print(f"{'row':>8} " + " ".join(f"{p:>8}" for p in used) + f" {'total':>9}")
    sums = {p: 0.0 for p in used}
    for label, row in timer.rows:
        for p in used:
            sums[p] += row.get(p, 0.0)
        cells = " ".join(f"{row[p]:8.3f}" if p in row else f"{'':>8}" for p in used)
        print(f"{str(label):>8} {cells} {sum(row.values()):9.3f}")
    print(f"{'sum':>8} " + " ".join(f"{sums[p]:8.3f}" for p in used) + f" {sum(sums.values()):9.3f}")
    print(f"total wall {wall:.3f} s; torch {torch.__version__}; torch.get_num_threads() {torch.get_num_threads()}; "
          f"peak RSS {peak_mib:.0f} MiB; outputs finite: {finite}")


if __name__ == "__main__":
    main()
