#pragma once
// A small built-in profiler: wall time, call counts, FLOPs and bytes per named region
// (matmul by kind, attention, norms, ...), switched on by PG_PROFILE=1 or `--profile`.
// Regions are timed on the calling (main) thread around whole parallel kernels, so the
// numbers are what each phase costs end to end. Off, a region costs one branch.
#include <cstdint>
#include <string>

namespace pg::profile {

bool enabled();
void set_enabled(bool on);
void reset();

// Totals so far, one line per region, sorted by time: calls, seconds, share, GFLOP/s, GB/s.
std::string report();

class Scope {
 public:
  // `name` must outlive the program (a string literal).
  explicit Scope(const char* name, double flops = 0, double bytes = 0);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* name_;
  double flops_, bytes_;
  int64_t start_ns_ = -1;
};

}  // namespace pg::profile
