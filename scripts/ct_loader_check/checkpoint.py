"""Reading a checkpoint directory without safetensors/numpy: config.json, shard headers, raw tensor bytes.

The safetensors layout is 8 bytes little-endian header length, a JSON header (name -> dtype, shape,
data_offsets), then raw little-endian data.  Only the headers are needed for name/shape/dtype checks; the
int4 stand-in decoder reads the bytes of a few tensors.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field

BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
         "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


@dataclass
class TensorInfo:
    name: str
    dtype: str
    shape: tuple
    shard: str
    offset: int  # absolute byte offset of the data in the shard file
    nbytes: int


@dataclass
class Checkpoint:
    path: str
    config: dict
    tensors: dict = field(default_factory=dict)  # name -> TensorInfo

    @property
    def qconfig(self) -> dict:
        """quantization_config, looked up where compressed-tensors' own reader looks (doc §1.1)."""
        cfg = self.config
        for getter in (lambda c: c.get("quantization_config"),
                       lambda c: (c.get("text_config") or {}).get("quantization_config"),
                       lambda c: c.get("compression_config")):
            value = getter(cfg)
            if value:
                return value
        return {}

    def modules(self) -> dict:
        """Module name -> {param suffix: TensorInfo}: the name minus its last dotted component."""
        out: dict = {}
        for name, info in self.tensors.items():
            module, _, param = name.rpartition(".")
            out.setdefault(module, {})[param] = info
        return out

    def read(self, name: str) -> bytes:
        info = self.tensors[name]
        with open(os.path.join(self.path, info.shard), "rb") as f:
            f.seek(info.offset)
            return f.read(info.nbytes)


def load(path: str) -> Checkpoint:
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    ckpt = Checkpoint(path=path, config=config)
    shards = sorted(n for n in os.listdir(path) if n.endswith(".safetensors"))
    if not shards:
        raise FileNotFoundError(f"no .safetensors files in {path}")
    for shard in shards:
        with open(os.path.join(path, shard), "rb") as f:
            (hlen,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(hlen))
        base = 8 + hlen
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            if name in ckpt.tensors:
                raise ValueError(f"tensor {name} appears in two shards")
            start, end = meta["data_offsets"]
            ckpt.tensors[name] = TensorInfo(name, meta["dtype"], tuple(meta["shape"]), shard,
                                            base + start, end - start)
    return ckpt


# --------------------------------------------------------------------------------------------------
# Value decoding (pure Python stand-in for torch when compressed-tensors' decompressor cannot run)
# --------------------------------------------------------------------------------------------------


def decode(ckpt: Checkpoint, name: str) -> list:
    """Flat list of Python numbers for one tensor (BF16 widened to float32 exactly)."""
    info = ckpt.tensors[name]
    raw = ckpt.read(name)
    n = info.nbytes // BYTES[info.dtype]
    if info.dtype == "BF16":
        halves = struct.unpack(f"<{n}H", raw)
        return list(struct.unpack(f"<{n}f", struct.pack(f"<{n}I", *(h << 16 for h in halves))))
    fmt = {"I8": "b", "U8": "B", "I16": "h", "I32": "i", "I64": "q", "F16": "e", "F32": "f",
           "F64": "d"}[info.dtype]
    return list(struct.unpack(f"<{n}{fmt}", raw))


def unpack_int4_rows(words: list, rows: int, cols: int) -> list:
    """int32 words [rows, ceil(cols/8)] -> signed codes [rows][cols]: column c sits in word c // 8,
    bits 4*(c % 8)..+3 (column 0 lowest), stored as q + 8 (doc §2.3).  Also returns whether any padding
    nibble beyond `cols` is non-zero."""
    per_row = (cols + 7) // 8
    out, bad_padding = [], False
    for r in range(rows):
        row = []
        for j in range(per_row):
            word = words[r * per_row + j] & 0xFFFFFFFF
            for k in range(8):
                nibble = (word >> (4 * k)) & 0xF
                if 8 * j + k < cols:
                    row.append(nibble - 8)
                elif nibble:
                    bad_padding = True
        out.append(row)
    return out, bad_padding
