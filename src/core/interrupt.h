// Ctrl-C and SIGTERM as a request, not a kill: the first signal sets a flag that long loops poll at safe
// points (between modules, layers, evaluation windows), where throw_if_interrupted() unwinds the run with
// Error(kInterrupted) so destructors remove temporary output. A second signal ends the process at once; what
// it leaves behind (a "<save_path>.moeslim-tmp-<pid>" directory) is removed by the next run (export/output_dir.h).
#pragma once

namespace moeslim {

// Installs the SIGINT/SIGTERM handlers (idempotent). The CLI calls it once at start.
void install_interrupt_handlers();
bool interrupt_requested();
// Throws Error(kInterrupted) once a stop was requested.
void throw_if_interrupted();

}  // namespace moeslim
