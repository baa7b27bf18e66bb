#include "model/moe_block.h"

#include <algorithm>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/profiler.h"
#include "kernels/threading.h"
#include "kernels/ops.h"
#include "model/linear_call.h"

namespace moeslim::model {

ExpertRouting route_tokens(const ModelConfig& c, const MlpBlock& mlp, std::int64_t layer, const float* normed,
                           const TokenLayout& layout, ForwardObserver* observer, ForwardScratch& scratch) {
  const std::int64_t N = layout.rows();
  const std::int64_t H = c.hidden_size;
  const std::int64_t E = c.num_experts;
  const std::int64_t K = c.num_experts_per_tok;
  const std::uint8_t* real = layout.real.data();
  observe_input(observer, {layer, ModuleRole::kRouter}, normed, N, H, real);
  float* logits = scratch.overwritten(ForwardScratch::kRouterLogits, N, E);
  run_linear(*mlp.router, normed, N, logits, ProfileKind::kRouterGemm);
  ProfileScope scope(ProfileKind::kMoeDispatch);
  kernels::softmax_rows(logits, N, E, logits);
  std::vector<std::int32_t> chosen(static_cast<std::size_t>(N * K));
  std::vector<float> weights(static_cast<std::size_t>(N * K));
  kernels::topk_rows(logits, N, E, K, chosen.data(), weights.data());
  if (c.norm_topk_prob) {
    for (std::int64_t t = 0; t < N; ++t) {
      float sum = 0;
      for (std::int64_t s = 0; s < K; ++s) sum += weights[t * K + s];
      for (std::int64_t s = 0; s < K; ++s) weights[t * K + s] /= sum;
    }
  }
  if (observer != nullptr) observer->on_routing(layer, chosen.data(), weights.data(), N, K, real);

  ExpertRouting r;
  r.rows_of.resize(static_cast<std::size_t>(E));
  r.weight_of.resize(static_cast<std::size_t>(E));
  for (std::int64_t t = 0; t < N; ++t) {
    for (std::int64_t s = 0; s < K; ++s) {
      const auto e = static_cast<std::size_t>(chosen[t * K + s]);
      r.rows_of[e].push_back(static_cast<std::int32_t>(t));
      r.weight_of[e].push_back(weights[t * K + s]);
    }
  }
  return r;
}

void swiglu_forward(const SwiGluMlp& mlp, std::int64_t layer, std::int64_t expert, const float* x, std::int64_t rows,
                    std::int64_t hidden, const std::uint8_t* real, ForwardObserver* observer, ForwardScratch& scratch,
                    float* y) {
  const std::int64_t width = mlp.gate_proj->out_features();
  observe_input(observer, {layer, ModuleRole::kGateProj, expert}, x, rows, hidden, real);
  observe_input(observer, {layer, ModuleRole::kUpProj, expert}, x, rows, hidden, real);
  float* gate = scratch.overwritten(ForwardScratch::kGate, rows, width);
  float* up = scratch.overwritten(ForwardScratch::kUp, rows, width);
  run_linear(*mlp.gate_proj, x, rows, gate, ProfileKind::kExpertGemm);
  run_linear(*mlp.up_proj, x, rows, up, ProfileKind::kExpertGemm);
  {
    ProfileScope scope(ProfileKind::kMoeDispatch);
    kernels::silu_mul(gate, up, gate, rows * width);
  }
  observe_input(observer, {layer, ModuleRole::kDownProj, expert}, gate, rows, width, real);
  if (y != nullptr) run_linear(*mlp.down_proj, gate, rows, y, ProfileKind::kExpertGemm);
}

void run_expert_rows(const SwiGluMlp& expert, std::int64_t layer, std::int64_t index, const float* x,
                     std::int64_t hidden, const TokenLayout& layout, const std::int32_t* rows, std::int64_t n,
                     ForwardObserver* observer, ForwardScratch& scratch, float* y) {
  float* g = scratch.overwritten(ForwardScratch::kExpertInput, n, hidden);
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(n));
  {
    ProfileScope scope(ProfileKind::kMoeDispatch);
    kernels::gather_rows(x, hidden, rows, n, g);
    for (std::int64_t i = 0; i < n; ++i) {
      mask[static_cast<std::size_t>(i)] = layout.real[static_cast<std::size_t>(rows[i])];
    }
  }
  swiglu_forward(expert, layer, index, g, n, hidden, mask.data(), observer, scratch, y);
}

void run_expert_group(const ModelConfig& config, const DecoderLayer& layer, ExpertRange group,
                      const std::vector<RoutedChunk>& chunks, const float* x, std::int64_t set_rows,
                      ForwardObserver* observer, ForwardScratch& scratch, float* out) {
  const std::int64_t H = config.hidden_size;
  const bool parallel = experts_in_parallel(observer);
  const int workers = kernels::task_worker_count(parallel);
  scratch.prepare_workers(workers);
  const std::int64_t budget = set_rows * ((workers + 15) / 16);
  struct Task {
    std::int64_t expert = 0;
    std::int64_t rows = 0;    // over every chunk
    std::int64_t offset = 0;  // its first row in the batch's output
  };
  std::int64_t next = group.first;
  while (next < group.last) {
    std::vector<Task> tasks;  // ascending
    std::int64_t total = 0;
    for (; next < group.last; ++next) {
      std::int64_t rows = 0;
      for (const RoutedChunk& c : chunks) rows += c.routing->rows_in(next);
      if (rows == 0) continue;
      if (total > 0 && total + rows > budget) break;
      tasks.push_back({next, rows, total});
      total += rows;
    }
    if (tasks.empty()) continue;
    std::vector<std::size_t> order(tasks.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (parallel) {
      std::stable_sort(order.begin(), order.end(),
                       [&](std::size_t a, std::size_t b) { return tasks[a].rows > tasks[b].rows; });
    }
    float* y = scratch.overwritten(ForwardScratch::kExpertOutput, total, H);
    kernels::run_tasks(static_cast<std::int64_t>(order.size()), parallel, [&](std::int64_t t, int worker) {
      throw_if_interrupted();
      const Task& task = tasks[order[static_cast<std::size_t>(t)]];
      const SwiGluMlp& expert = layer.mlp.experts[static_cast<std::size_t>(task.expert)];
      if (!expert.gate_proj || !expert.up_proj || !expert.down_proj) {
        throw Error(ErrorCode::kInternal, "expert " + std::to_string(task.expert) + " of layer " +
                                              std::to_string(layer.index) + " was not loaded before its group ran");
      }
      std::int64_t row = task.offset;
      for (std::size_t c = 0; c < chunks.size(); ++c) {
        const std::int64_t n = chunks[c].routing->rows_in(task.expert);
        if (n == 0) continue;
        run_expert_rows(expert, layer.index, task.expert, x + chunks[c].begin * H, H, *chunks[c].layout,
                        chunks[c].routing->rows_of[static_cast<std::size_t>(task.expert)].data(), n, observer,
                        scratch.worker(worker), y + row * H);
        row += n;
      }
    });
    ProfileScope scope(ProfileKind::kMoeDispatch);
    for (const Task& task : tasks) {
      std::int64_t row = task.offset;
      const auto e = static_cast<std::size_t>(task.expert);
      for (std::size_t c = 0; c < chunks.size(); ++c) {
        const ExpertRouting& r = *chunks[c].routing;
        const std::int64_t n = r.rows_in(task.expert);
        if (n == 0) continue;
        kernels::add_weighted_rows(y + row * H, n, H, r.rows_of[e].data(), r.weight_of[e].data(),
                                   out + chunks[c].begin * H);
        row += n;
      }
    }
  }
}

}  // namespace moeslim::model
