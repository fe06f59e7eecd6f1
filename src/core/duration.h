#pragma once
// Elapsed times and ETAs in progress lines.
#include <string>

namespace pg {

// "HH:MM:SS" (hours grow past 99 as needed); "?" for a negative or non-finite time (no
// estimate yet).
std::string clock_string(double seconds);

}  // namespace pg
