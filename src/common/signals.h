// Stopping a run cleanly on SIGINT (Ctrl-C) and SIGTERM (kill, Slurm, torchrun): the first
// signal only sets a flag, which the training loop reads after every step; it then writes a
// checkpoint and throws Interrupted, and main() exits with 128 + the signal (130, 143). A second
// signal of the same kind ends the process at once (the default action).
#pragma once
#include <string>

#include "common/error.h"

namespace ewa {

// Installs the handlers (idempotent). Also ignores SIGXFSZ, so that writing past a file-size
// limit fails with an error we report instead of killing the process.
void install_stop_handlers();

// On SIGSEGV, SIGBUS, SIGILL or SIGFPE: one line naming the signal and the native backtrace on
// stderr, then the default action (core dump, exit status of the signal). Not installed in
// sanitizer builds, whose own reports are better.
void install_crash_handler();

// 0 while no stop was requested, else the first signal received (SIGINT or SIGTERM).
int stop_signal();
// Forgets a received signal (tests).
void clear_stop_signal();
// "SIGINT", "SIGTERM" or "signal N".
std::string signal_name(int sig);

// A run stopped by a signal after saving its state; `message` says how to resume.
class Interrupted : public Error {
 public:
  Interrupted(int sig, const std::string& message) : Error(message), signal_(sig) {}
  int signal() const { return signal_; }
  int exit_code() const { return 128 + signal_; }

 private:
  int signal_;
};

}  // namespace ewa
