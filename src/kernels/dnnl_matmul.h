// Internal: the oneDNN side of every GEMM — engine, per-thread stream, and a cache of matmul primitives keyed
// by the full problem (types, shapes, strides, weight layout, accumulate flag, thread count).
//
// Why fixed shapes and a cache rather than DNNL_RUNTIME_DIM_VAL for M: oneDNN 2.6 serves runtime-M matmuls
// with its older gemm:jit code, not the brgemm kernels. Measured 1 thread on Sapphire Rapids: int8 falls from
// ~1400 to ~800 GOP/s and bf16 at M=64 from ~790 to ~420 GFLOP/s. A new M costs one primitive creation
// (0.05–1 ms, kernels JIT-compiled) and 40–170 KB of JIT code, so callers bucket M (row_blocks.h).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <memory>

namespace moeslim::kernels::detail {

dnnl::engine& cpu_engine();
dnnl::stream& thread_stream();

// A row-major [rows, cols] matrix with row stride ld (elements).
dnnl::memory::desc row_major_desc(std::int64_t rows, std::int64_t cols, std::int64_t ld,
                                  dnnl::memory::data_type type);
// The weight operand of Y = X·Wᵀ for W stored row-major as [n, k] with row stride ld: oneDNN's [k, n] view.
dnnl::memory::desc transposed_weight_desc(std::int64_t n, std::int64_t k, std::int64_t ld,
                                          dnnl::memory::data_type type);

struct MatmulProblem {
  dnnl::memory::desc src;
  dnnl::memory::desc weights;  // may be a packed (blocked) layout
  dnnl::memory::desc dst;
  bool accumulate = false;     // dst += result (a sum post-op) instead of dst = result
};

// A primitive and the scratchpad it needs from its caller (created with scratchpad_mode::user).
struct CachedMatmul {
  dnnl::matmul matmul;
  dnnl::memory::desc scratchpad;
};

// The primitive for a problem; created on first use, then shared. Thread-safe.
std::shared_ptr<const CachedMatmul> cached_matmul(const MatmulProblem& problem);

// Runs a matmul on caller memory (oneDNN does not write src or weights; the const_casts are for its API), with
// a scratchpad of the calling thread's own, so calls from several threads at once are safe.
void run_matmul(const MatmulProblem& problem, const void* src, const void* weights, void* dst);

// The layout oneDNN's fastest matmul wants for an [n, k] weight of `type` with activations `src_type`
// (queried once per problem kind at a representative M; the layout does not depend on M).
dnnl::memory::desc preferred_weight_desc(std::int64_t n, std::int64_t k, dnnl::memory::data_type src_type,
                                         dnnl::memory::data_type weight_type, dnnl::memory::data_type dst_type);

// Memory for a weight packed into `desc`, owned by the caller through `storage`, from LargeBufferAllocator: from
// kOwnMappingBytes up a huge-page mapping of its own (core/large_buffer.h), not oneDNN's malloc. A packed copy
// is made afresh per candidate in the α/β search (15 MB at Qwen3-30B-A3B shapes, ~80 per layer), and in 4 KiB
// pages each one cost ~3,700 page faults (a 2-layer 30B W4A8 run took 0.9–1.3 M faults in all; README,
// Performance). kIo naming the size when the memory cannot be had.
dnnl::memory owned_weight_memory(const dnnl::memory::desc& desc, std::shared_ptr<void>& storage);

// Copies (and converts) between two descriptions of the same [k, n] weight via a oneDNN reorder.
void reorder(const dnnl::memory::desc& from_desc, const void* from, const dnnl::memory::desc& to_desc, void* to);

// Whether oneDNN can run bf16 matmuls on this CPU (2.6 needs AVX-512; not on AVX2-only machines). Probed once.
// The override is for tests: it makes the GEMMs take their no-bf16 paths on any CPU.
bool onednn_has_bf16_matmul();
void set_bf16_matmul_disabled_for_testing(bool disabled);

struct MatmulCacheStats {
  std::size_t entries = 0;
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
};
MatmulCacheStats matmul_cache_stats();
void clear_matmul_cache();

}  // namespace moeslim::kernels::detail
