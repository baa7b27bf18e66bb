// Progress with a rate and an ETA on stderr, for work that takes more than a few seconds.
// On a terminal it redraws one line; otherwise it prints a line at most every `interval` seconds.
// Nothing is printed for work that finishes within the first interval, so fast runs stay quiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace moeslim {

class Progress {
 public:
  // `unit` names what is counted ("tokens", "layers"); `total` may be 0 when unknown.
  Progress(std::string label, std::uint64_t total, std::string unit, double interval_seconds = 2.0);
  ~Progress();

  void advance(std::uint64_t n = 1);
  void set_detail(std::string detail);  // a short note shown after the counts, e.g. "layer 3/48"
  void finish();                        // prints the final line (if anything was printed before)
  double elapsed_seconds() const;

  static std::string format_duration(double seconds);  // "1:02:03", "4:05", "12s"

 private:
  void print(bool final_line);

  std::string label_;
  std::string unit_;
  std::string detail_;
  std::uint64_t total_;
  std::uint64_t done_ = 0;
  double interval_;
  bool printed_ = false;
  bool finished_ = false;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
};

}  // namespace moeslim
