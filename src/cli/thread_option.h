// --threads, the same for every command that computes.
#pragma once

#include <CLI/CLI.hpp>

namespace moeslim::cli {

// Adds --threads to `sub`, defaulting `threads` to the CPUs this process may use (core/cpu_budget.h).
void add_threads_option(CLI::App& sub, int& threads);

}  // namespace moeslim::cli
