"""Import stand-ins that let upstream compressed-tensors / vLLM code be imported on a host without torch.

Two layers, both recorded so the report can say exactly what did not run for real:

* ``install_auto_stubs``: a last-resort import finder.  Any module that the normal finders cannot locate
  (torch's C extensions, triton, transformers, loguru, vllm._C, ...) is served as a permissive stub whose
  attributes are further stubs.  Upstream modules themselves (vllm/..., compressed_tensors/...) are always
  imported from the fetched source trees; the finder only fills holes *below* them.
* ``torch_shim``: when torch itself is missing, a small hand-written core (dtypes, Size, a metadata-only
  Tensor, nn.Module, nn.Parameter, tensor factories) is laid over the auto-stub, because scheme code
  compares dtypes and ``create_weights`` registers parameters whose names, shapes and dtypes we check.
  Tensors created by the shim carry shape and dtype only: no data, no arithmetic.
"""

from __future__ import annotations

import abc
import importlib
import importlib.abc
import importlib.machinery
import sys
import types

# Names of every module served by the auto-stub finder, for the "stood in for" list.
STUBBED_MODULES: list[str] = []


# --------------------------------------------------------------------------------------------------
# Permissive stubs
# --------------------------------------------------------------------------------------------------


def _is_pure_stub(cls) -> bool:
    return cls.__dict__.get("_ct_stub", False)


class _StubMeta(abc.ABCMeta):
    """Metaclass of stub classes: any unknown class attribute is another stub class.  Derived from
    ABCMeta so that upstream classes mixing a stubbed base with ABC still build."""

    def __getattr__(cls, name):
        # Real subclasses of a stub (e.g. a vLLM layer deriving from a stubbed base) must not grow
        # attributes out of thin air, or hasattr()-based logic upstream would be fooled.
        if name.startswith("__") or not _is_pure_stub(cls):
            raise AttributeError(name)
        child = make_stub_class(f"{cls._ct_path}.{name}")
        type.__setattr__(cls, name, child)
        return child

    def __call__(cls, *args, **kwargs):
        # Bare decorator use (@torch.compile, @triton.jit, @torch.inference_mode()) must hand back
        # the decorated function unchanged, otherwise upstream functions would disappear.
        if _is_pure_stub(cls) and len(args) == 1 and not kwargs and callable(args[0]):
            return args[0]
        return super().__call__(*args, **kwargs)

    def __getitem__(cls, item):  # generic-like use in annotations: torch.Tensor[...] etc.
        return cls

    def __setitem__(cls, key, value):  # config dicts patched at import (torch._inductor.config ...)
        pass

    def __contains__(cls, item):
        return False

    def __iter__(cls):
        return iter(())

    def __len__(cls):
        return 0

    def __bool__(cls):
        return True

    def __repr__(cls):
        return f"<stub {cls._ct_path}>"


class _StubBase(metaclass=_StubMeta):
    _ct_stub = True
    _ct_path = "stub"

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return make_stub_class(f"{type(self)._ct_path}.{name}")

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]):
            return args[0]
        return make_stub_class(f"{type(self)._ct_path}()")()

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __bool__(self):
        return True

    def __getitem__(self, item):
        return make_stub_class(f"{type(self)._ct_path}[]")()

    def __setitem__(self, key, value):
        pass

    def __contains__(self, item):
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    # Module-level constants upstream sometimes derive arithmetically (e.g. finfo(...).max * 0.5).
    def _arith(self, *other):
        return make_stub_class(f"{type(self)._ct_path}(op)")()

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _arith
    __truediv__ = __rtruediv__ = __neg__ = __pow__ = __floordiv__ = _arith
    __lt__ = __le__ = __gt__ = __ge__ = _arith

    def __int__(self):
        return 0

    def __index__(self):
        return 0

    def __float__(self):
        return 0.0


def make_stub_class(path: str):
    name = path.rsplit(".", 1)[-1] or "stub"
    return _StubMeta(name, (_StubBase,), {"_ct_stub": True, "_ct_path": path})


class StubModule(types.ModuleType):
    """A module whose unknown attributes are stub classes; a package, so submodules import too."""

    def __init__(self, name):
        super().__init__(name)
        self.__path__ = []
        self._ct_stub_module = True

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = make_stub_class(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _StubLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return StubModule(spec.name)

    def exec_module(self, module):
        overlay = _OVERLAYS.get(module.__name__)
        if overlay is not None:
            overlay(module)


class _StubFinder(importlib.abc.MetaPathFinder):
    """Placed last on sys.meta_path: only modules nobody else can find reach it."""

    def __init__(self, roots):
        self.roots = set(roots) if roots else None

    def find_spec(self, fullname, path=None, target=None):
        if self.roots is not None and not _parent_is_stub(fullname) and not any(
            fullname == r or fullname.startswith(r + ".") for r in self.roots
        ):
            return None
        STUBBED_MODULES.append(fullname)
        return importlib.machinery.ModuleSpec(fullname, _StubLoader(), is_package=True)


def _parent_is_stub(fullname: str) -> bool:
    parent = fullname.rpartition(".")[0]
    return bool(parent) and getattr(sys.modules.get(parent), "_ct_stub_module", False)


# Overlays: hand-written parts laid over a stub module when it is created (module name -> function).
_OVERLAYS: dict = {}


def install_auto_stubs(roots):
    """Serve missing modules as stubs, only under the given (dotted) names: stdlib probes such as
    ``import _winapi`` must keep failing as they would anywhere."""
    sys.meta_path.append(_StubFinder(roots))


class _ForcedStubFinder(_StubFinder):
    """Placed first on sys.meta_path: upstream modules that exist but only matter at run time
    (attention backends, kernel registries) and whose import cannot succeed without real torch."""

    def find_spec(self, fullname, path=None, target=None):
        if any(fullname == r or fullname.startswith(r + ".") for r in self.roots):
            STUBBED_MODULES.append(fullname)
            return importlib.machinery.ModuleSpec(fullname, _StubLoader(), is_package=True)
        return None


def force_stubs(names):
    sys.meta_path.insert(0, _ForcedStubFinder(names))


def summarize_stubbed() -> list[str]:
    """Top-level packages (plus vllm/compressed_tensors submodules) that were stubbed, deduplicated."""
    seen = []
    for name in STUBBED_MODULES:
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] in ("vllm", "compressed_tensors", "vllm_ascend") else parts[0]
        if key not in seen:
            seen.append(key)
    return seen


def register_overlay(module_name, fn):
    _OVERLAYS[module_name] = fn


def alias_vendored_packaging():
    """`packaging` is pure Python and pip vendors it; use that real copy instead of a stub."""
    try:
        import packaging  # noqa: F401
        return "installed"
    except ImportError:
        pass
    try:
        import pip._vendor.packaging as vendored
        import pip._vendor.packaging.version  # noqa: F401
        import pip._vendor.packaging.specifiers  # noqa: F401
        import pip._vendor.packaging.requirements  # noqa: F401
    except ImportError:
        return None
    sys.modules["packaging"] = vendored
    for sub in ("version", "specifiers", "requirements", "markers", "utils", "tags"):
        mod = sys.modules.get("pip._vendor.packaging." + sub)
        if mod is not None:
            sys.modules["packaging." + sub] = mod
    return "pip._vendor.packaging"


FAKE_DIST_VERSION = "99.0.0"


def fake_metadata_for_stubs(roots):
    """importlib.metadata.version() of a stubbed distribution answers FAKE_DIST_VERSION instead of raising:
    upstream gates code on installed versions at import time, and a stub has none."""
    import importlib.metadata as md

    real_version = md.version

    def version(name):
        try:
            return real_version(name)
        except md.PackageNotFoundError:
            if name.replace("-", "_") in roots:
                return FAKE_DIST_VERSION
            raise

    md.version = version
