#include "formats/hf_directory.h"

#include "core/error.h"
#include "io/json_file.h"
#include "io/output_file.h"
#include "io/side_files.h"

namespace moeslim::formats {

std::vector<std::string> copy_model_side_files(const std::filesystem::path& model_dir,
                                               const std::filesystem::path& out_dir) {
  return io::copy_side_files(model_dir, out_dir, [](const std::string& name) { return name == kConfigFile; });
}

void write_edited_config(const std::filesystem::path& model_dir, const std::filesystem::path& out_dir, int indent,
                         const std::function<void(nlohmann::ordered_json&)>& edit) {
  const std::filesystem::path input = model_dir / kConfigFile;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(input, ec)) {
    throw Error(ErrorCode::kNotFound, "the model directory has no config.json", input.string());
  }
  nlohmann::ordered_json config = io::read_ordered_json_file(input);
  if (!config.is_object()) throw Error(ErrorCode::kFormat, "config.json is not a JSON object", input.string());
  edit(config);
  io::write_text_file(out_dir / kConfigFile, config.dump(indent, ' ', /*ensure_ascii=*/true));
}

void set_written_layer_count(nlohmann::ordered_json& config, std::int64_t layer_count_written,
                             const std::string& config_file) {
  if (layer_count_written < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "written layer count must be >= 0 (0 = all), got " + std::to_string(layer_count_written),
                config_file, "num_hidden_layers");
  }
  if (layer_count_written == 0) return;
  const auto it = config.find("num_hidden_layers");
  if (it == config.end()) {
    config["num_hidden_layers"] = layer_count_written;
    return;
  }
  if (!it->is_number_integer()) {
    throw Error(ErrorCode::kFormat, "num_hidden_layers is not an integer", config_file, "num_hidden_layers");
  }
  const auto input_layers = it->get<std::int64_t>();
  if (layer_count_written > input_layers) {
    throw Error(ErrorCode::kInvalidArgument,
                std::to_string(layer_count_written) + " layers written but the input model has only " +
                    std::to_string(input_layers),
                config_file, "num_hidden_layers");
  }
  *it = layer_count_written;
}

}  // namespace moeslim::formats
