"""Locating the fetched source trees and importing the upstream modules from them.

Everything imported here comes from the trees under the sources directory; the stand-ins of stubs.py and
torch_shim.py only fill the holes that a CPU-only host without torch leaves.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import subprocess
import sys
import types

from . import stubs, torch_shim

# Third-party packages that upstream imports but that are not installable here (no PyPI).  They are
# served as auto-stubs *only if* a real one cannot be imported.
AUTO_STUB_ROOTS = [
    "torch", "triton", "transformers", "loguru", "numpy", "safetensors", "huggingface_hub", "tqdm",
    "psutil", "zmq", "cbor2", "gguf", "aiohttp", "openai_harmony", "openai", "accelerate",
    "vllm._C", "compressed_tensors.version", "filelock", "PIL", "pybase64", "cachetools",
    # vLLM-Ascend's device stack
    "torch_npu", "torchair", "mindie_turbo", "acl", "vllm_ascend.vllm_ascend_C",
]

# Upstream modules that exist but are forced to stubs: attention layers and their kernel registry are
# imported by compressed_tensors.py only to test isinstance(layer, Attention), which none of our fake
# layers is, and their import runs torch op registration that needs the real torch.
FORCED_STUBS = ["vllm.model_executor.layers.attention", "vllm.ir", "vllm.kernels"]

TREES = {"compressed-tensors": "src", "vllm": "", "vllm-ascend": ""}


def find_sources(root: str) -> dict:
    """name -> tree path for the trees present under root."""
    found = {}
    for name in TREES:
        path = os.path.join(root, name)
        if os.path.isdir(path):
            found[name] = path
    return found


def tree_commit(path: str) -> str:
    """The commit a tree was extracted from: a COMMIT file written at extraction, else git."""
    marker = os.path.join(path, "COMMIT")
    if os.path.isfile(marker):
        with open(marker) as f:
            return f.read().strip()
    try:
        out = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown (no COMMIT file, not a git checkout)"


class Upstream:
    """The imported upstream modules plus notes on how the import environment was built."""

    def __init__(self, sources: dict):
        self.sources = sources
        self.notes: list[str] = []  # "stood in for" entries beyond the auto-stubbed module list
        self.real_torch = False
        self.ct = None
        self.vllm_ct = None
        self.vllm_error = None
        self.ascend = None
        self.ascend_error = None

    # ------------------------------------------------------------------------------------------
    def setup(self):
        for name in ("compressed-tensors", "vllm", "vllm-ascend"):
            if name in self.sources:
                sys.path.insert(0, os.path.join(self.sources[name], TREES[name]))
        try:
            import torch  # a real torch new enough for upstream is used as is

            # Debian's python3-torch is 1.13: it lacks the float8 dtypes CT and vLLM name at import time.
            if not hasattr(torch, "float8_e4m3fn"):
                found = torch.__version__
                for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
                    del sys.modules[name]
                raise ImportError(f"torch {found} is too old for the upstream trees")
            self.real_torch = True
        except ImportError as exc:
            if "too old" in str(exc):
                self.notes.append(f"real {exc}; it was unloaded and the shim used instead")
            torch_shim.install()
            self.notes.append(
                "torch: not installable here (needs >= 2.10). A metadata-only shim provides dtypes, "
                "Size, finfo/iinfo, a shape+dtype Tensor, nn.Module/nn.Parameter and tensor factories "
                "(scripts/ct_loader_check/torch_shim.py); all other torch.* names are auto-stubs")
        packaging_from = stubs.alias_vendored_packaging()
        if packaging_from and packaging_from != "installed":
            self.notes.append(f"packaging: not installed; the real copy vendored by pip ({packaging_from})")
        roots = [r for r in AUTO_STUB_ROOTS if not (r == "torch" and self.real_torch)]
        stubs.force_stubs(FORCED_STUBS)
        stubs.install_auto_stubs(roots)
        stubs.fake_metadata_for_stubs({r.split(".")[0] for r in roots})
        # Upstream logs at INFO through its own loggers; keep the PASS/FAIL report readable.
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
        logging.disable(logging.WARNING)

    def import_ct(self):
        ver = types.ModuleType("compressed_tensors.version")
        ver.__version__ = ver.version = "0.0.0+source-tree"
        sys.modules.setdefault("compressed_tensors.version", ver)
        self.notes.append("compressed_tensors.version: generated at build time (setuptools_scm), absent "
                          "from a source tree; a module with a placeholder version string")
        self.ct = importlib.import_module("compressed_tensors")
        return self.ct

    def import_vllm(self):
        self._vllm_version_module()
        try:
            # Pin the platform first: upstream modules bind current_platform when they are imported.
            self._force_cpu_platform()
            self.vllm_ct = importlib.import_module(
                "vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors")
        except Exception as exc:  # the report names the failure; the CT checks still run
            self.vllm_error = f"{type(exc).__name__}: {exc}"
        return self.vllm_ct

    def _vllm_version_module(self):
        """vllm/_version.py is generated at build time.  Plugins (vLLM-Ascend) branch on it, so give the
        release a tree was tagged with (from its COMMIT note, e.g. 'tag v0.19.0'), else a dev version."""
        commit = tree_commit(self.sources["vllm"])
        match = re.search(r"tag v(\d+\.\d+\.\d+)", commit)
        version = match.group(1) if match else "0.0.0.dev0"
        mod = types.ModuleType("vllm._version")
        mod.__version__ = mod.version = version
        mod.__version_tuple__ = mod.version_tuple = tuple(int(x) if x.isdigit() else x for x in version.split("."))
        sys.modules["vllm._version"] = mod
        self.notes.append(f"vllm._version: generated at build time; set to {version!r}")

    def _force_cpu_platform(self):
        """vLLM picks its platform from the installed package's version; a source tree has none.  Pin
        the real CpuPlatform class, which is the platform a CPU-only host would resolve to."""
        platforms = importlib.import_module("vllm.platforms")
        cpu = importlib.import_module("vllm.platforms.cpu")
        platforms._current_platform = cpu.CpuPlatform()
        self.notes.append("vllm.platforms.current_platform: pinned to vLLM's own CpuPlatform (platform "
                          "detection needs an installed vllm distribution)")

    def import_ascend(self):
        if "vllm-ascend" not in self.sources:
            return None
        # _build_info is generated when vLLM-Ascend is built for a device; A2 (Atlas 800 A2) is the
        # common target and only affects kernel choices, not scheme detection.
        info = types.ModuleType("vllm_ascend._build_info")
        info.__device_type__ = "A2"
        sys.modules["vllm_ascend._build_info"] = info
        self.notes.append("vllm_ascend._build_info: generated at build time; device type set to 'A2'")
        try:
            self.ascend = importlib.import_module("vllm_ascend.quantization.compressed_tensors_config")
        except Exception as exc:
            self.ascend_error = f"{type(exc).__name__}: {exc}"
        return self.ascend
