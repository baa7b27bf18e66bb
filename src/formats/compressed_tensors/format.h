// compressed-tensors as a registry entry (formats/registry.h): "compressed-tensors", its writer, reader, size
// estimate and inspection.
#pragma once

#include <memory>

#include "formats/format.h"

namespace moeslim::formats::compressed_tensors {

std::unique_ptr<OutputFormat> make_format();

}  // namespace moeslim::formats::compressed_tensors
