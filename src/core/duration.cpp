#include "core/duration.h"

#include <cmath>
#include <cstdio>

namespace pg {

std::string clock_string(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long s = static_cast<long long>(seconds);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

}  // namespace pg
