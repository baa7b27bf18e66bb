#include "quant/quant_types.h"

namespace moeslim::quant {

const char* quant_scheme_name(QuantScheme scheme) {
  switch (scheme) {
    case QuantScheme::kFloat: return "FLOAT";
    case QuantScheme::kW8A8: return "W8A8";
    case QuantScheme::kW8A8Dynamic: return "W8A8_DYNAMIC";
    case QuantScheme::kW4A8Dynamic: return "W4A8_DYNAMIC";
    case QuantScheme::kW4A16: return "W4A16";
  }
  return "?";
}

}  // namespace moeslim::quant
