#include "paligemma/profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

namespace pg::profile {
namespace {

struct Totals {
  int64_t calls = 0;
  double seconds = 0, flops = 0, bytes = 0;
};

struct Table {
  std::mutex mu;
  std::map<std::string, Totals> regions;
  bool on = [] {
    const char* env = std::getenv("PG_PROFILE");
    return env && *env && std::strcmp(env, "0") != 0;
  }();
};

Table& table() {
  static Table t;
  return t;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

bool enabled() { return table().on; }
void set_enabled(bool on) { table().on = on; }

void reset() {
  std::lock_guard<std::mutex> lock(table().mu);
  table().regions.clear();
}

Scope::Scope(const char* name, double flops, double bytes) : name_(name), flops_(flops), bytes_(bytes) {
  if (table().on) start_ns_ = now_ns();
}

Scope::~Scope() {
  if (start_ns_ < 0) return;
  const double s = static_cast<double>(now_ns() - start_ns_) * 1e-9;
  std::lock_guard<std::mutex> lock(table().mu);
  Totals& t = table().regions[name_];
  t.calls += 1;
  t.seconds += s;
  t.flops += flops_;
  t.bytes += bytes_;
}

std::string report() {
  std::lock_guard<std::mutex> lock(table().mu);
  std::vector<std::pair<std::string, Totals>> rows(table().regions.begin(), table().regions.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0;
  for (const auto& r : rows) total += r.second.seconds;
  std::string out = "region                          calls    seconds   share   GFLOP/s    GB/s\n";
  char line[256];
  for (const auto& [name, t] : rows) {
    std::snprintf(line, sizeof line, "%-30s %7lld %10.4f %6.1f%% %9.1f %7.1f\n", name.c_str(),
                  static_cast<long long>(t.calls), t.seconds, total > 0 ? 100.0 * t.seconds / total : 0.0,
                  t.seconds > 0 ? t.flops / t.seconds * 1e-9 : 0.0, t.seconds > 0 ? t.bytes / t.seconds * 1e-9 : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof line, "%-30s %7s %10.4f\n", "total (profiled regions)", "", total);
  out += line;
  return out;
}

}  // namespace pg::profile
