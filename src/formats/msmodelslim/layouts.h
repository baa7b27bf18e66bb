// msModelSlim's three layouts as registry entries: one OutputFormat per layout, each reading its row of the
// scheme table (scheme_table.h) for writing, reading, inspecting and the size estimate.
#pragma once

#include <memory>

#include "formats/format.h"
#include "formats/msmodelslim/scheme_table.h"

namespace moeslim::formats::msmodelslim {

std::unique_ptr<OutputFormat> make_format(Layout layout);

}  // namespace moeslim::formats::msmodelslim
