#include "core/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <csignal>

#include "core/error.h"

namespace moeslim {
namespace {

volatile std::sig_atomic_t g_requested = 0;

void on_signal(int sig) {
  if (g_requested) {  // the second signal: the default action (terminate) right away
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  g_requested = 1;
  static const char kMessage[] =
      "\nmoeslim: stopping at the next safe point and removing the partial output (signal again to stop now)\n";
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // reads and writes in progress carry on; the flag is polled
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

bool interrupt_requested() { return g_requested != 0; }

void throw_if_interrupted() {
  if (g_requested) throw Error(ErrorCode::kInterrupted, "interrupted by a signal; the partial output was removed");
}

}  // namespace moeslim
