// One decoder layer over every chunk of a token set, its experts a group at a time: the pass the quantizer
// runs, so that only one group of experts (their float weights, their codes, their runtime linears) needs to
// exist at once, however many experts a layer has and however wide they are.
//   1. attention, chunk by chunk, as DecoderLayer::forward runs it
//   2. hooks.after_attention
//   3. the MoE block's norm and router, chunk by chunk; every chunk's routing is kept
//   4. for each group of experts, in ascending order: hooks.load_experts; each expert of the group over its
//      rows of every chunk (one task per expert, over the threads, heaviest first) and their outputs added, in
//      batches of experts whose outputs fit about the set's rows per 16 threads; hooks.unload_experts
//   5. the MoE outputs added to the residual stream
// A dense layer runs its MLP chunk by chunk after step 2. Per row, the experts' outputs are added in ascending
// expert order and each expert's GEMMs see the same rows per chunk as in run_layer_chunked, so the result is
// that of run_layer_chunked bit for bit, whatever the group size and the thread count. An observer sees each
// module's inputs in chunk order, as there; only the interleaving of different modules differs.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/decoder_layer.h"
#include "model/forward_scratch.h"
#include "model/moe_block.h"
#include "model/observer.h"
#include "model/token_layout.h"

namespace moeslim::model {

// [0, num_experts) cut into consecutive ranges of `per_group` experts (the last may be shorter).
std::vector<ExpertRange> expert_groups(std::int64_t num_experts, std::int64_t per_group);

// What a group's experts see in the running pass, for a hook that needs their inputs (GPTQ's Hessians): each
// expert's routed rows of every chunk, in chunk order, as the pass feeds them to it. Valid during the hook.
class ExpertGroupInputs {
 public:
  ExpertGroupInputs(const std::vector<RoutedChunk>& chunks, const float* normed, std::int64_t hidden)
      : chunks_(chunks), normed_(normed), hidden_(hidden) {}
  // Rows routed to `expert`, pads included.
  std::int64_t rows(std::int64_t expert) const;
  // Its input rows: F32 [rows(expert), hidden]; `real` (optional) gets each row's flag (1 real token, 0 pad).
  Tensor gather(std::int64_t expert, std::vector<std::uint8_t>* real = nullptr) const;

 private:
  const std::vector<RoutedChunk>& chunks_;
  const float* normed_;
  std::int64_t hidden_;
};

struct ExpertGroupHooks {
  std::function<void()> after_attention;
  // Fills layer.mlp.experts[first, last) where they are not built yet (the pass first resizes the vector to
  // num_experts, with empty entries). `inputs`: what the group's experts are about to see.
  std::function<void(ExpertRange, const ExpertGroupInputs& inputs)> load_experts;
  // The group has run over every chunk: its experts may go.
  std::function<void(ExpertRange)> unload_experts;
};

// hidden: F32 [layout.rows(), hidden_size], updated in place. Chunks as split_into_chunks(layout, no row
// limit, max_sequences). `groups` must be [0, num_experts) in ascending order (expert_groups()); ignored for a
// dense layer. observer may be null; any hook may be empty. scratch: activation buffers to use and keep
// (a run passes one to every pass of every layer, so that they are faulted in once, not per pass: on 30B
// shapes a pass otherwise maps and zeroes over a GiB afresh); null uses buffers of the pass's own.
void run_layer_grouped(const ModelConfig& config, DecoderLayer& layer, Tensor& hidden, const TokenLayout& layout,
                       std::int64_t max_sequences, const std::vector<ExpertRange>& groups, ForwardObserver* observer,
                       const ExpertGroupHooks& hooks, ForwardScratch* scratch = nullptr);

}  // namespace moeslim::model
