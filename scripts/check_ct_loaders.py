#!/usr/bin/env python3
"""Loader check for moeslim's compressed-tensors checkpoints, run with the loaders' own code.

Usage: check_ct_loaders.py [--sources DIR] CHECKPOINT_DIR [CHECKPOINT_DIR ...]

DIR (or $MOESLIM_CT_SOURCES) holds source trees: DIR/compressed-tensors, DIR/vllm and optionally
DIR/vllm-ascend (see docs/loader-check.md for how to fetch them).  For each checkpoint the script imports
compressed-tensors and vLLM from those trees, with stand-ins only for what cannot be installed on a CPU-only
host (torch, kernels), and prints one PASS/FAIL line per check.  It ends with the list of upstream pieces
that were stood in for.  Exit code: 0 all passed, 1 a check failed, 77 sources absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

# No __pycache__ beside the script (the repository does not ignore it); imports of upstream trees too.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ct_loader_check import checkpoint, stubs, upstream  # noqa: E402

SKIP = 77


class Report:
    def __init__(self):
        self.failed = 0
        self.passed = 0
        self.prefix = ""

    def check(self, name, ok, detail):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'} {self.prefix}{name}: {detail}", flush=True)

    def info(self, name, detail):
        """A finding that is neither pass nor fail (e.g. a documented limitation of an optional loader)."""
        print(f"INFO {self.prefix}{name}: {detail}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", default=os.environ.get("MOESLIM_CT_SOURCES"),
                    help="directory holding compressed-tensors/, vllm/ [, vllm-ascend/] source trees "
                         "(default: $MOESLIM_CT_SOURCES)")
    ap.add_argument("checkpoints", nargs="+", help="compressed-tensors checkpoint directories")
    args = ap.parse_args(argv)

    sources = upstream.find_sources(args.sources) if args.sources else {}
    if "compressed-tensors" not in sources or "vllm" not in sources:
        print("SKIP: the compressed-tensors and vLLM source trees are absent "
              f"(--sources / MOESLIM_CT_SOURCES = {args.sources!r}). Fetch them as described in "
              "docs/loader-check.md (git trees of vllm-project/compressed-tensors and vllm-project/vllm "
              "extracted to DIR/compressed-tensors and DIR/vllm).")
        return SKIP

    up = upstream.Upstream(sources)
    for name, path in sources.items():
        print(f"source {name}: {path} @ {upstream.tree_commit(path)}")
    up.setup()
    print(f"torch: {'real torch' if up.real_torch else 'absent -> metadata-only shim'}; "
          f"python {sys.version.split()[0]} ({sys.executable})")
    report = Report()
    try:
        up.import_ct()
        report.check("import.compressed_tensors", True, "compressed_tensors imported from the source tree")
    except Exception as exc:
        report.check("import.compressed_tensors", False, f"{type(exc).__name__}: {exc}")
        return finish(report, up)
    up.import_vllm()
    report.check("import.vllm", up.vllm_ct is not None,
                 "vllm ...compressed_tensors.compressed_tensors imported from the source tree"
                 if up.vllm_ct is not None else up.vllm_error)
    if "vllm-ascend" in sources:
        up.import_ascend()
        report.check("import.vllm_ascend", up.ascend is not None,
                     "vllm_ascend.quantization.compressed_tensors_config imported"
                     if up.ascend is not None else up.ascend_error)

    from ct_loader_check import ct_checks, vllm_checks, ascend_checks

    for path in args.checkpoints:
        report.prefix = f"[{os.path.basename(os.path.normpath(path))}] "
        print(f"== checkpoint {path}")
        try:
            ck = checkpoint.load(path)
        except Exception as exc:
            report.check("read", False, f"{type(exc).__name__}: {exc}")
            continue
        report.check("read", True, f"{len(ck.tensors)} tensors in "
                     f"{len({t.shard for t in ck.tensors.values()})} shard(s)")
        assigned = ct_checks.run(report, up, ck)
        if assigned is None:
            continue
        for label, module, ready in (("vllm", vllm_checks, up.vllm_ct), ("ascend", ascend_checks, up.ascend)):
            if ready is None:
                continue
            try:
                module.run(report, up, ck, assigned)
            except Exception as exc:  # an upstream API this script does not know: report, do not crash
                report.check(f"{label}.internal", False, f"{type(exc).__name__}: {exc} "
                             f"(at {traceback.extract_tb(exc.__traceback__)[-1].name})")
    report.prefix = ""
    return finish(report, up)


def finish(report, up) -> int:
    print(f"== {report.passed} passed, {report.failed} failed")
    print("stood in for:")
    for note in dict.fromkeys(up.notes):
        print(f"  - {note}")
    forced = [m for m in upstream.FORCED_STUBS if any(s == m or s.startswith(m + ".")
                                                      for s in stubs.STUBBED_MODULES)]
    if forced:
        print(f"  - upstream modules replaced by auto-stubs (imported only for isinstance tests none of "
              f"the fake layers satisfies): {', '.join(forced)}")
    auto = [m for m in stubs.summarize_stubbed() if m not in forced and not m.startswith("vllm.model_executor")]
    if auto:
        print(f"  - missing packages served as permissive auto-stubs (attributes are placeholders, "
              f"decorators pass through): {', '.join(auto)}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
