#include "formats/inspect_report.h"

#include <fmt/core.h>

#include <algorithm>

namespace moeslim::formats {

std::string format_inspect_report(const InspectReport& r) {
  std::string s;
  s += fmt::format("directory    {}\n", r.dir.string());
  s += fmt::format("layout       {} ({}), model_quant_type {}, float dtype {}\n", r.layout,
                   r.description_file.empty() ? "no description file" : r.description_file,
                   r.model_quant_type.empty() ? "?" : r.model_quant_type, dtype_name(r.float_dtype));
  s += fmt::format("shards       {} file(s) indexed by {}: {} tensors, {} bytes\n\n", r.shard_names.size(),
                   r.index_file.empty() ? "(none)" : r.index_file, r.tensor_count, r.total_size);

  s += fmt::format("{:<16}{:>9}{:>9}{:>16}\n", "type", "modules", "tensors", "bytes");
  std::vector<std::string> order = {"W8A8", "W8A8_DYNAMIC", "W4A8_DYNAMIC", "FLOAT"};
  for (const auto& [type, summary] : r.by_type) {
    if (std::find(order.begin(), order.end(), type) == order.end()) order.push_back(type);
  }
  InspectTypeSummary total;
  for (const std::string& type : order) {
    const auto it = r.by_type.find(type);
    if (it == r.by_type.end()) continue;
    s += fmt::format("{:<16}{:>9}{:>9}{:>16}\n", type, it->second.modules, it->second.tensors, it->second.bytes);
    total.modules += it->second.modules;
    total.tensors += it->second.tensors;
    total.bytes += it->second.bytes;
  }
  s += fmt::format("{:<16}{:>9}{:>9}{:>16}\n\n", "total", total.modules, total.tensors, total.bytes);

  for (const InspectViolation& v : r.violations) s += fmt::format("VIOLATION    {}: {}\n", v.subject, v.problem);
  s += r.ok() ? fmt::format("check        OK: no violations of the {} format\n", r.layout)
              : fmt::format("check        FAILED: {} violation(s)\n", r.violations.size());
  return s;
}

}  // namespace moeslim::formats
