// The output formats by name, the one a recipe writes, and the one a directory on disk holds (`eval` and
// `inspect` are given a directory, not a format). Today's entries are msModelSlim's three layouts
// (formats/msmodelslim/): "ascendV1", "mindie" and "ascendV1-v1", and "compressed-tensors"
// (formats/compressed_tensors/).
#pragma once

#include <filesystem>
#include <string_view>
#include <vector>

#include "formats/format.h"
#include "recipe/recipe.h"

namespace moeslim::formats {

// Every registered format, in registry order.
std::vector<const OutputFormat*> all_formats();

// kNotFound naming the known names when there is no format called `name`.
const OutputFormat& by_name(std::string_view name);

// The format a recipe writes: "compressed-tensors" when its save.format says so; else a v1 recipe writes
// "ascendV1-v1", a v0 one its save_format ("ascendV1" or "mindie").
const OutputFormat& for_recipe(const recipe::Recipe& recipe);

// What the pipeline will write for each linear under `recipe`: the scheme of the quantize group claiming the
// module (kFloat when none does), and a float bias on q/k/v_proj when m4 smoothing folds the norm's shift
// into them (its norm-linear subgraph, which every m4 recipe has).
LinearPlanOf linear_plan(const recipe::Recipe& recipe);

// The format `dir` holds; nullptr when no registered format recognises it.
const OutputFormat* detect(const std::filesystem::path& dir);

// `inspect` of whatever `dir` holds. A directory no format recognises is inspected as the default format
// ("ascendV1"), whose report then says what is missing.
InspectReport inspect_dir(const std::filesystem::path& dir);

}  // namespace moeslim::formats
