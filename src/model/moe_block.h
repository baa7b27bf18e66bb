// The pieces of a Qwen3-MoE MLP block that both ways of running a layer share: DecoderLayer::forward (one
// chunk of rows, every expert) and the grouped pass (grouped_layer_pass.h: every chunk, expert group by expert
// group). Sharing them is what keeps the two bit-identical.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/decoder_layer.h"
#include "model/forward_scratch.h"
#include "model/observer.h"
#include "model/token_layout.h"

namespace moeslim::model {

// Which rows each expert gets, and with what mixing weight: per expert, ascending by row.
struct ExpertRouting {
  std::vector<std::vector<std::int32_t>> rows_of;
  std::vector<std::vector<float>> weight_of;

  std::int64_t rows_in(std::int64_t expert) const {
    return static_cast<std::int64_t>(rows_of[static_cast<std::size_t>(expert)].size());
  }
};

// The router over `normed` ([layout.rows(), hidden], the MoE block's input): a float32 softmax, top-k,
// optional renormalisation. The observer sees the router's input and the choice.
ExpertRouting route_tokens(const ModelConfig& config, const MlpBlock& mlp, std::int64_t layer, const float* normed,
                           const TokenLayout& layout, ForwardObserver* observer, ForwardScratch& scratch);

// y = down(silu(gate(x)) * up(x)) for `rows` rows of x; observers see gate/up's shared input and down's input.
// y = nullptr stops before down_proj runs, for an observer that wants only the inputs (GPTQ's Hessians).
void swiglu_forward(const SwiGluMlp& mlp, std::int64_t layer, std::int64_t expert, const float* x, std::int64_t rows,
                    std::int64_t hidden, const std::uint8_t* real, ForwardObserver* observer, ForwardScratch& scratch,
                    float* y);

// One expert over its routed rows `rows[0, n)` of x ([layout.rows(), hidden]): gathers them and writes the
// expert's output for them to y [n, hidden]. `scratch` must be the calling worker's own.
void run_expert_rows(const SwiGluMlp& expert, std::int64_t layer, std::int64_t index, const float* x,
                     std::int64_t hidden, const TokenLayout& layout, const std::int32_t* rows, std::int64_t n,
                     ForwardObserver* observer, ForwardScratch& scratch, float* y);

// Experts [first, last) of a layer.
struct ExpertRange {
  std::int64_t first = 0;
  std::int64_t last = 0;
};

// One chunk of a pass as the experts see it: its first row in the pass's rows, its layout and its routing.
struct RoutedChunk {
  std::int64_t begin = 0;
  const TokenLayout* layout = nullptr;
  const ExpertRouting* routing = nullptr;
};

// Experts `group` of `layer` over their rows of every chunk, their outputs added to out ([rows, hidden], the
// chunks' rows at their `begin`) in ascending expert order, as Hugging Face adds them, so the sum does not
// depend on the threads. Each expert is one task over the threads when the observer allows it
// (kernels/threading.h: its GEMMs on one thread, chunk after chunk, with buffers of its worker's own), heaviest
// first. To bound memory the group goes in batches of consecutive experts whose outputs fit about `rows` per
// 16 workers, each batch added before the next runs. x: the MoE block's input, laid out like out.
void run_expert_group(const ModelConfig& config, const DecoderLayer& layer, ExpertRange group,
                      const std::vector<RoutedChunk>& chunks, const float* x, std::int64_t rows,
                      ForwardObserver* observer, ForwardScratch& scratch, float* out);

// Whether experts may run as tasks over the threads with this observer (kernels/threading.h).
inline bool experts_in_parallel(const ForwardObserver* observer) {
  return observer == nullptr || observer->accepts_concurrent_modules();
}

}  // namespace moeslim::model
