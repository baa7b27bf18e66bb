#include "kernels/dnnl_matmul.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/large_buffer.h"
#include "core/log.h"
#include "kernels/threading.h"

namespace moeslim::kernels::detail {
namespace {

using dt = dnnl::memory::data_type;

// With M bucketed (row_blocks.h) a run needs ~12 entries per weight shape, plus attention's; when full, the
// cache starts over rather than tracking recency (creation is cheap next to the GEMMs that would refill it).
// 1024 entries hold at most ~170 MB of JIT code.
constexpr std::size_t kMaxCachedPrimitives = 1024;

struct Cache {
  std::mutex mutex;
  std::unordered_map<std::string, std::shared_ptr<const CachedMatmul>> primitives;
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
};

Cache& cache() {
  static Cache c;
  return c;
}

void append_i64(std::string& key, std::int64_t v) { key.append(reinterpret_cast<const char*>(&v), sizeof v); }

// Everything of a memory descriptor that makes two problems different primitives.
void append_desc(std::string& key, const dnnl::memory::desc& desc) {
  const dnnl_memory_desc_t& d = desc.data;
  append_i64(key, d.ndims);
  append_i64(key, d.data_type);
  append_i64(key, d.format_kind);
  for (int i = 0; i < d.ndims; ++i) {
    append_i64(key, d.dims[i]);
    append_i64(key, d.padded_dims[i]);
    append_i64(key, d.padded_offsets[i]);
  }
  append_i64(key, d.offset0);
  if (d.format_kind == dnnl_blocked) {
    const dnnl_blocking_desc_t& b = d.format_desc.blocking;
    for (int i = 0; i < d.ndims; ++i) append_i64(key, b.strides[i]);
    append_i64(key, b.inner_nblks);
    for (int i = 0; i < b.inner_nblks; ++i) {
      append_i64(key, b.inner_blks[i]);
      append_i64(key, b.inner_idxs[i]);
    }
  }
  append_i64(key, d.extra.flags);
  append_i64(key, d.extra.compensation_mask);
  append_i64(key, d.extra.asymm_compensation_mask);
}

std::string problem_key(const MatmulProblem& p) {
  std::string key;
  key.reserve(512);
  append_desc(key, p.src);
  append_desc(key, p.weights);
  append_desc(key, p.dst);
  append_i64(key, p.accumulate ? 1 : 0);
  // oneDNN splits work at creation time for the thread count of that moment.
  append_i64(key, num_threads());
  return key;
}

std::shared_ptr<const CachedMatmul> create(const MatmulProblem& p) {
  dnnl::primitive_attr attr;
  // The caller's scratchpad (run_matmul: one per thread). oneDNN's own is shared by all primitives unless the
  // library was built for concurrent execution (Debian's is not), so two GEMMs running at once on different
  // threads (experts in parallel) would overwrite each other's partial results.
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (p.accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  try {
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(p.src, p.weights, p.dst), attr, cpu_engine());
    const std::string_view impl = pd.impl_info_str();
    if (impl.rfind("ref", 0) == 0) {
      // Correct but very slow; the strides or types are unusual for this CPU's optimised kernels.
      log_warn("oneDNN chose its reference matmul ({}) for an {}x{}x{} problem", impl, p.src.dims()[0], p.dst.dims()[1],
               p.src.dims()[1]);
    }
    return std::make_shared<const CachedMatmul>(CachedMatmul{dnnl::matmul(pd), pd.scratchpad_desc()});
  } catch (const dnnl::error& e) {
    throw Error(ErrorCode::kInternal, std::string("oneDNN cannot create a matmul: ") + e.what());
  }
}

}  // namespace

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& thread_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

dnnl::memory::desc row_major_desc(std::int64_t rows, std::int64_t cols, std::int64_t ld, dt type) {
  return dnnl::memory::desc({rows, cols}, type, dnnl::memory::dims{ld, 1});
}

dnnl::memory::desc transposed_weight_desc(std::int64_t n, std::int64_t k, std::int64_t ld, dt type) {
  return dnnl::memory::desc({k, n}, type, dnnl::memory::dims{1, ld});
}

std::shared_ptr<const CachedMatmul> cached_matmul(const MatmulProblem& problem) {
  const std::string key = problem_key(problem);
  Cache& c = cache();
  {
    std::lock_guard lock(c.mutex);
    const auto it = c.primitives.find(key);
    if (it != c.primitives.end()) {
      ++c.hits;
      return it->second;
    }
    ++c.misses;
  }
  auto primitive = create(problem);  // outside the lock: creation JIT-compiles kernels
  std::lock_guard lock(c.mutex);
  if (c.primitives.size() >= kMaxCachedPrimitives) c.primitives.clear();
  c.primitives.emplace(key, primitive);
  return primitive;
}

void run_matmul(const MatmulProblem& problem, const void* src, const void* weights, void* dst) {
  apply_num_threads();
  const auto primitive = cached_matmul(problem);
  dnnl::engine& engine = cpu_engine();
  dnnl::memory src_mem(problem.src, engine, const_cast<void*>(src));
  dnnl::memory weights_mem(problem.weights, engine, const_cast<void*>(weights));
  dnnl::memory dst_mem(problem.dst, engine, dst);
  // This thread's scratchpad, 64-byte aligned, grown to the largest a primitive has asked for (kept for the
  // thread's life).
  constexpr std::size_t kAlign = 64;
  thread_local std::vector<std::byte> scratch;
  const std::size_t need = primitive->scratchpad.get_size();
  if (scratch.size() < need + kAlign) scratch.resize(need + kAlign);
  void* base = scratch.data();
  std::size_t space = scratch.size();
  dnnl::memory scratch_mem(primitive->scratchpad, engine, std::align(kAlign, need, base, space));
  dnnl::stream& stream = thread_stream();
  primitive->matmul.execute(stream, {{DNNL_ARG_SRC, src_mem},
                                     {DNNL_ARG_WEIGHTS, weights_mem},
                                     {DNNL_ARG_DST, dst_mem},
                                     {DNNL_ARG_SCRATCHPAD, scratch_mem}});
  stream.wait();
}

dnnl::memory owned_weight_memory(const dnnl::memory::desc& desc, std::shared_ptr<void>& storage) {
  const std::size_t bytes = std::max<std::size_t>(desc.get_size(), 1);
  std::byte* p = nullptr;
  try {
    p = LargeBufferAllocator<std::byte>().allocate(bytes);  // a mapping of its own when large
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kIo, "out of memory allocating " + std::to_string(bytes) + " bytes for a packed weight");
  }
  storage = std::shared_ptr<void>(
      p, [bytes](void* q) { LargeBufferAllocator<std::byte>().deallocate(static_cast<std::byte*>(q), bytes); });
  return dnnl::memory(desc, cpu_engine(), storage.get());
}

dnnl::memory::desc preferred_weight_desc(std::int64_t n, std::int64_t k, dt src_type, dt weight_type, dt dst_type) {
  // M = 256 is a typical calibration chunk; the packed layout was measured to be the same for M = 1..2048.
  constexpr std::int64_t kRepresentativeM = 256;
  apply_num_threads();
  try {
    const dnnl::matmul::primitive_desc pd(
        dnnl::matmul::desc(row_major_desc(kRepresentativeM, k, k, src_type),
                           dnnl::memory::desc({k, n}, weight_type, dnnl::memory::format_tag::any),
                           row_major_desc(kRepresentativeM, n, n, dst_type)),
        cpu_engine());
    return pd.weights_desc();
  } catch (const dnnl::error& e) {
    throw Error(ErrorCode::kInternal, std::string("oneDNN cannot plan a matmul: ") + e.what());
  }
}

void reorder(const dnnl::memory::desc& from_desc, const void* from, const dnnl::memory::desc& to_desc, void* to) {
  apply_num_threads();
  dnnl::engine& engine = cpu_engine();
  dnnl::memory from_mem(from_desc, engine, const_cast<void*>(from));
  dnnl::memory to_mem(to_desc, engine, to);
  dnnl::stream& stream = thread_stream();
  try {
    dnnl::reorder(from_mem, to_mem).execute(stream, from_mem, to_mem);
  } catch (const dnnl::error& e) {
    throw Error(ErrorCode::kInternal, std::string("oneDNN cannot reorder a weight: ") + e.what());
  }
  stream.wait();
}

namespace {
std::atomic<bool> g_bf16_disabled_for_testing{false};
}  // namespace

bool onednn_has_bf16_matmul() {
  static const bool available = [] {
    try {
      apply_num_threads();
      const dnnl::matmul::primitive_desc pd(
          dnnl::matmul::desc(row_major_desc(16, 32, 32, dt::bf16),
                             dnnl::memory::desc({32, 16}, dt::bf16, dnnl::memory::format_tag::any),
                             row_major_desc(16, 16, 16, dt::f32)),
          cpu_engine());
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return available && !g_bf16_disabled_for_testing.load(std::memory_order_relaxed);
}

void set_bf16_matmul_disabled_for_testing(bool disabled) {
  g_bf16_disabled_for_testing.store(disabled, std::memory_order_relaxed);
}

MatmulCacheStats matmul_cache_stats() {
  Cache& c = cache();
  std::lock_guard lock(c.mutex);
  return {c.primitives.size(), c.hits, c.misses};
}

void clear_matmul_cache() {
  Cache& c = cache();
  std::lock_guard lock(c.mutex);
  c.primitives.clear();
}

}  // namespace moeslim::kernels::detail
