#include "eval/model_source.h"

#include <utility>

#include "formats/registry.h"
#include "io/checkpoint.h"
#include "model/config.h"

namespace moeslim::eval {
namespace {

// CheckpointLayerSource borrows its checkpoint; this keeps one alive beside it.
class OwningCheckpointSource final : public model::LayerSource {
 public:
  OwningCheckpointSource(io::Checkpoint checkpoint, model::ModelConfig config, model::FloatPrecision precision)
      : checkpoint_(std::move(checkpoint)), source_(checkpoint_, std::move(config), precision) {}

  const model::ModelConfig& config() const override { return source_.config(); }
  model::DecoderLayer load_layer(std::int64_t layer) override { return source_.load_layer(layer); }
  void release_layer(std::int64_t layer) override { source_.release_layer(layer); }
  Tensor embedding() override { return source_.embedding(); }
  Tensor final_norm() override { return source_.final_norm(); }
  std::unique_ptr<model::Linear> lm_head() override { return source_.lm_head(); }

 private:
  io::Checkpoint checkpoint_;  // declared first: source_ holds a reference to it
  model::CheckpointLayerSource source_;
};

}  // namespace

std::unique_ptr<model::LayerSource> open_model_source(const std::filesystem::path& dir, std::int64_t layer_count,
                                                      model::FloatPrecision precision) {
  if (const formats::OutputFormat* format = formats::detect(dir)) return format->open_reader(dir, precision, layer_count);
  model::ModelConfig config = model::ModelConfig::load(dir);
  if (layer_count > 0) config.limit_layers(layer_count);
  return std::make_unique<OwningCheckpointSource>(io::Checkpoint::open(dir), std::move(config), precision);
}

}  // namespace moeslim::eval
