// Opening whatever model directory the user names: a float Hugging Face checkpoint or a quantized output
// directory (one a registered output format recognises, formats/registry.h), as one model::LayerSource, so
// `eval` measures either.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>

#include "model/causal_lm.h"
#include "model/linear.h"

namespace moeslim::eval {

// The format's reader when formats::detect(dir) finds one, else a CheckpointLayerSource that owns its checkpoint.
// layer_count > 0 keeps only the first layer_count decoder layers (kInvalidArgument beyond the model's).
// precision applies to float weight GEMMs; the router and lm_head always run in float32.
std::unique_ptr<model::LayerSource> open_model_source(const std::filesystem::path& dir, std::int64_t layer_count,
                                                      model::FloatPrecision precision);

}  // namespace moeslim::eval
