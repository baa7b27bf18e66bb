// Fuzzes model.safetensors.index.json against two small, valid shards: the input is written as the index of
// a scratch model directory, which is then opened and every tensor looked up (each lookup opens its shard
// and checks its header against the index). Only moeslim::Error may come out.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/tensor.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"

namespace {

namespace fs = std::filesystem;

// The scratch directory with the shards the seed index (scripts/fuzz.sh) names.
const fs::path& model_dir() {
  static const fs::path dir = [] {
    const fs::path d = fs::temp_directory_path() / ("moeslim-fuzz-index-" + std::to_string(::getpid()));
    fs::create_directories(d);
    using moeslim::DType;
    using moeslim::Tensor;
    moeslim::io::write_safetensors(d / "model-00001-of-00002.safetensors",
                                   {{"model.embed_tokens.weight", Tensor::zeros(DType::kBF16, {4, 2})},
                                    {"model.norm.weight", Tensor::zeros(DType::kF32, {2})}});
    moeslim::io::write_safetensors(d / "model-00002-of-00002.safetensors",
                                   {{"lm_head.weight", Tensor::zeros(DType::kBF16, {4, 2})}});
    return d;
  }();
  return dir;
}

struct RemoveOnExit {
  ~RemoveOnExit() {
    std::error_code ec;
    fs::remove_all(model_dir(), ec);
  }
} remove_on_exit;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fs::path index = model_dir() / "model.safetensors.index.json";
  {
    std::ofstream out(index, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const moeslim::io::Checkpoint ckpt = moeslim::io::Checkpoint::open(model_dir());
    for (const std::string& name : ckpt.names()) {
      const moeslim::Tensor t = ckpt.tensor(name);
      if (t.nbytes() != ckpt.info(name).nbytes()) __builtin_trap();
    }
    ckpt.shard_stats();
  } catch (const moeslim::Error&) {
  }
  return 0;
}
