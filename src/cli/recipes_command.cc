// `moeslim recipes`: the bundled quantization recipes (configs/**/*.yaml), so a user can see what the one-click
// --model_type × --quant_type path resolves to and copy a file as the start of their own --config.
#include <algorithm>
#include <cstdio>
#include <string>

#include <fmt/core.h>

#include "cli/commands.h"
#include "cli/resources.h"
#include "core/error.h"
#include "formats/registry.h"
#include "quant/step_registry.h"
#include "recipe/recipe.h"

namespace moeslim::cli {
namespace {

struct RecipesOptions {
  std::string show;
  bool steps = false;
};

// The step registry: what a recipe's process list and quantize groups may name.
int print_steps() {
  std::printf("%-10s %-13s %s\n", "PROCESS", "METHOD", "WHAT IT DOES");
  for (const quant::StepEntry& e : quant::step_registry()) {
    std::printf("%-10s %-13s %s\n", e.key, *e.method != '\0' ? e.method : "-", e.summary);
  }
  std::printf("\n%-10s %-13s %s\n", "WEIGHT", "GROUP KEYS", "WHAT IT DOES");
  for (const quant::WeightMethodEntry& m : quant::weight_method_registry()) {
    std::string keys;
    for (const std::string& k : m.keys) keys += (keys.empty() ? "" : ",") + k;
    std::printf("%-10s %-13s %s\n", m.name, keys.empty() ? "-" : keys.c_str(), m.summary);
  }
  return 0;
}

// The description's lead (up to its first ": " or ". "), whitespace collapsed: one line per recipe in the listing.
std::string one_line(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  out.resize(std::min(out.find(": "), std::min(out.find(". "), out.size())));
  constexpr std::size_t kMax = 96;
  if (out.size() > kMax) out = out.substr(0, kMax - 3) + "...";
  return out;
}

// "<format>: <runtime>, <runtime>": what the recipe writes and which serving runtimes load it.
std::string output_text(const recipe::Recipe& r) {
  const formats::OutputFormat& format = formats::for_recipe(r);
  std::string runtimes;
  for (const std::string& rt : format.runtimes(formats::linear_plan(r))) {
    runtimes += (runtimes.empty() ? "" : ", ") + rt;
  }
  return std::string(format.name()) + ": " + (runtimes.empty() ? "no runtime known" : runtimes);
}

std::string match_text(const recipe::Recipe& r) {
  if (r.quant_type.empty()) return "-";
  std::string types;
  for (const auto& t : r.model_types) types += (types.empty() ? "" : ",") + t;
  return types + " " + r.quant_type;
}

int run_recipes(const RecipesOptions& o) {
  if (o.steps) return print_steps();
  const auto configs = resource_path("configs");
  const std::vector<recipe::Recipe> all = recipe::bundled_recipes(configs);
  if (!o.show.empty()) {
    std::string names;
    for (const auto& r : all) {
      if (r.name == o.show) {
        std::FILE* f = std::fopen(r.file.c_str(), "rb");
        if (f == nullptr) throw Error(ErrorCode::kIo, "cannot read the recipe file", r.file.string());
        char buf[4096];
        std::size_t n = 0;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) std::fwrite(buf, 1, n, stdout);
        std::fclose(f);
        return 0;
      }
      names += (names.empty() ? "" : ", ") + r.name;
    }
    throw Error(ErrorCode::kNotFound, "no bundled recipe named '" + o.show + "'; available: " + names,
                configs.string(), "--show");
  }
  std::printf("%-27s %-42s %-13s %-26s %-31s %-51s %s\n", "NAME", "FILE (under configs/)", "APIVERSION",
              "ONE-CLICK MATCH", "STEPS", "WRITES: RUNS ON", "PICK IT WHEN");
  for (const auto& r : all) {
    std::string steps;
    for (const std::string& s : r.step_names()) steps += (steps.empty() ? "" : ",") + s;
    std::printf("%-27s %-42s %-13s %-26s %-31s %-51s %s\n", r.name.c_str(),
                r.file.lexically_relative(configs).generic_string().c_str(), r.defaults.apiversion.c_str(),
                match_text(r).c_str(), steps.c_str(), output_text(r).c_str(),
                one_line(r.use_when.empty() ? r.description : r.use_when).c_str());
  }
  return 0;
}

}  // namespace

CommandRunner register_recipes(CLI::App& app) {
  auto opts = std::make_shared<RecipesOptions>();
  CLI::App* sub = app.add_subcommand(
      "recipes",
      "List the bundled quantization recipes (configs/**/*.yaml): name, msModelSlim API version, the\n"
      "--model_type/--quant_type pair the one-click path resolves to it (if any), its steps in order, the\n"
      "output format it writes with the serving runtimes that load it (MindIE, vLLM-Ascend, vLLM GPU,\n"
      "vLLM CPU), and when to pick it (the recipe's use_when line).\n"
      "--show NAME prints a recipe's YAML, a starting point for your own `moeslim quant --config FILE`;\n"
      "--steps lists the steps a recipe's process may name and the weight methods its quantize groups may use.\n"
      "Example: moeslim recipes --show qwen3-30b-w4a8");
  sub->add_option("--show", opts->show, "Print the YAML of the recipe with this name");
  sub->add_flag("--steps", opts->steps, "List the registered steps and weight methods instead of the recipes");
  return [opts] { return run_recipes(*opts); };
}

}  // namespace moeslim::cli
