"""A metadata-only torch core, used only when torch cannot be imported.

What upstream code needs from torch for *selecting* schemes and *registering* parameters is: dtype objects
that compare by identity, ``torch.Size``, tensor factories that remember shape and dtype, ``nn.Module`` with
``register_parameter``, and ``nn.Parameter`` (which vLLM subclasses for its weight parameters).  This module
provides exactly that and nothing numeric; everything else under ``torch.*`` stays an auto-stub.
"""

from __future__ import annotations

import importlib
import sys

from . import stubs


class dtype:
    """Stand-in for torch.dtype: identity-compared singletons with the safetensors name attached."""

    def __init__(self, name, st_name, itemsize, is_floating_point, is_signed=True):
        self._name = name
        self.st_name = st_name
        self.itemsize = itemsize
        self.is_floating_point = is_floating_point
        self.is_signed = is_signed

    def __repr__(self):
        return f"torch.{self._name}"

    def to_complex(self):
        raise NotImplementedError


# (torch name, safetensors name, bytes, floating); aliases follow torch's own spelling.
_DTYPES = [
    ("float32", "F32", 4, True), ("float64", "F64", 8, True), ("float16", "F16", 2, True),
    ("bfloat16", "BF16", 2, True), ("float8_e4m3fn", "F8_E4M3", 1, True),
    ("float8_e5m2", "F8_E5M2", 1, True), ("float8_e4m3fnuz", "F8_E4M3FNUZ", 1, True),
    ("float8_e5m2fnuz", "F8_E5M2FNUZ", 1, True), ("float8_e8m0fnu", "F8_E8M0", 1, True),
    ("float4_e2m1fn_x2", "F4", 1, True),
    ("int8", "I8", 1, False), ("uint8", "U8", 1, False), ("int16", "I16", 2, False),
    ("int32", "I32", 4, False), ("int64", "I64", 8, False), ("uint16", "U16", 2, False),
    ("uint32", "U32", 4, False), ("uint64", "U64", 8, False), ("bool", "BOOL", 1, False),
]
_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64",
            "int": "int32", "short": "int16"}


# Limits some upstream modules read at import time (e.g. FP8 max for scale computations).
_FINFO = {"float32": (3.4028234663852886e38, 1.1754943508222875e-38, 1.1920928955078125e-07),
          "float16": (65504.0, 6.103515625e-05, 0.0009765625),
          "bfloat16": (3.3895313892515355e38, 1.1754943508222875e-38, 0.0078125),
          "float64": (1.7976931348623157e308, 2.2250738585072014e-308, 2.220446049250313e-16),
          "float8_e4m3fn": (448.0, 0.015625, 0.125), "float8_e5m2": (57344.0, 6.103515625e-05, 0.25),
          "float8_e4m3fnuz": (240.0, 0.0078125, 0.125), "float8_e5m2fnuz": (57344.0, 3.0517578125e-05, 0.25),
          "float8_e8m0fnu": (1.7014118346046923e38, 5.877471754111438e-39, 1.0),
          "float4_e2m1fn_x2": (6.0, 1.0, 0.5)}


class finfo:
    def __init__(self, dt):
        self.max, self.tiny, self.eps = _FINFO[dt._name]
        self.min = -self.max
        self.smallest_normal = self.tiny
        self.bits = dt.itemsize * 8
        self.dtype = dt


class iinfo:
    def __init__(self, dt):
        self.bits = dt.itemsize * 8
        signed = dt._name.startswith("int")
        self.min = -(1 << (self.bits - 1)) if signed else 0
        self.max = (1 << (self.bits - 1)) - 1 if signed else (1 << self.bits) - 1
        self.dtype = dt


class Size(tuple):
    def numel(self):
        n = 1
        for d in self:
            n *= d
        return n


def _shape(args, kwargs):
    if "size" in kwargs:
        args = (kwargs["size"],)
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    return Size(int(a) for a in args)


class Tensor:
    """Shape and dtype only.  Enough for create_weights to register parameters we can inspect."""

    def __init__(self, shape=(), dtype_=None):
        self.shape = Size(shape)
        self.dtype = dtype_
        self.requires_grad = False
        self.device = "cpu"

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        return len(self.shape)

    ndim = property(dim)

    def numel(self):
        return self.shape.numel()

    def to(self, *args, **kwargs):
        return self

    def fill_(self, *args):
        return self

    def zero_(self):
        return self

    def __repr__(self):
        return f"ShimTensor(shape={list(self.shape)}, dtype={self.dtype})"


def _factory(fill=None):
    def make(*args, dtype=None, **kwargs):
        return Tensor(_shape(args, kwargs), dtype or _MODULE.float32)

    return make


def _tensor(data, dtype=None, **kwargs):
    shape = []
    probe = data
    while isinstance(probe, (list, tuple)):
        shape.append(len(probe))
        probe = probe[0] if probe else None
    if dtype is None:
        dtype = _MODULE.float32 if isinstance(probe, float) else _MODULE.int64
    return Tensor(shape, dtype)


class Module:
    """nn.Module stand-in: keeps parameters in a dict, as register_parameter / setattr do in torch."""

    def __init__(self, *args, **kwargs):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})

    def register_parameter(self, name, param):
        self._parameters[name] = param

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._parameters[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        params = self.__dict__.get("_parameters", {})
        if name in params:
            return params[name]
        raise AttributeError(name)

    def named_parameters(self):
        return list(self._parameters.items())

    def register_module(self, name, module):
        self._modules[name] = module


class Parameter(Tensor):
    """nn.Parameter stand-in; vLLM's BasevLLMParameter subclasses it and calls __new__(cls, data=...)."""

    def __new__(cls, data=None, requires_grad=True):
        obj = Tensor.__new__(cls)
        Tensor.__init__(obj, data.shape if data is not None else (), data.dtype if data is not None else None)
        return obj

    def __init__(self, *args, **kwargs):
        pass


_MODULE = None


def _overlay_torch(mod):
    global _MODULE
    _MODULE = mod
    # Bind the common subpackages as modules now: `import torch; torch.nn.Module` must reach the
    # shim's Module, not an attribute stub.
    sys.modules["torch"] = mod
    for sub in ("nn", "nn.parameter", "nn.functional", "distributed", "library", "cuda"):
        importlib.import_module("torch." + sub)
    mod.__version__ = "0.0.0+ct-loader-check-shim"
    mod.dtype = dtype
    for name, st, size, fp in _DTYPES:
        setattr(mod, name, dtype(name, st, size, fp))
    for alias, target in _ALIASES.items():
        setattr(mod, alias, getattr(mod, target))
    mod.Size = Size
    mod.finfo = finfo
    mod.iinfo = iinfo
    mod.Tensor = Tensor
    for fname in ("empty", "zeros", "ones", "rand", "randn", "full", "empty_like"):
        setattr(mod, fname, _factory())
    mod.tensor = _tensor
    mod.is_tensor = lambda x: isinstance(x, Tensor)


def _overlay_nn(mod):
    mod.Module = Module
    mod.Parameter = Parameter


def _overlay_nn_parameter(mod):
    mod.Parameter = Parameter
    mod.UninitializedParameter = Parameter


def install():
    stubs.register_overlay("torch", _overlay_torch)
    stubs.register_overlay("torch.nn", _overlay_nn)
    stubs.register_overlay("torch.nn.parameter", _overlay_nn_parameter)
    stubs.register_overlay("torch.nn.modules.module", _overlay_nn)


def st_name(dt) -> str:
    """Safetensors dtype name of a (shim or real) torch dtype."""
    if isinstance(dt, dtype):
        return dt.st_name
    text = str(dt).replace("torch.", "")
    for name, st, _, _ in _DTYPES:
        if name == text:
            return st
    return text
