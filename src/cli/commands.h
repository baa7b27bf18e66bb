// Each subcommand registers itself on the root CLI11 app and returns the callback main() runs when it is chosen.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace moeslim::cli {

// Runs the chosen subcommand; returns the process exit status. Errors are thrown (moeslim::Error) and turned
// into messages by main().
using CommandRunner = std::function<int()>;

CommandRunner register_tokenize(CLI::App& app);
CommandRunner register_info(CLI::App& app);
CommandRunner register_eval(CLI::App& app);
CommandRunner register_synth(CLI::App& app);
CommandRunner register_inspect(CLI::App& app);
CommandRunner register_quant(CLI::App& app);
CommandRunner register_recipes(CLI::App& app);
CommandRunner register_report(CLI::App& app);

}  // namespace moeslim::cli
