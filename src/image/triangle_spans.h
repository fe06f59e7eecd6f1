#pragma once
// Antialiased bilinear resampling weights as TensorFlow's ScaleAndTranslate computes them
// (triangle kernel of radius 1 widened by the shrink factor, sample at (x + 0.5) / scale,
// span clipped to the input and renormalised); PIL's BILINEAR uses the same weights. Shared by
// the big_vision image resize (T = float: bit-exact with TF on uint8 images) and the mask
// codec's box <-> 64x64 resizes (T = double).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace pg {

template <typename T>
struct TriangleSpans {
  int span_size = 0;
  std::vector<int> starts;
  std::vector<T> weights;  // span_size per output, zero padded

  // Inputs output `x` reads: [starts[x], starts[x] + count(x, input_size)).
  int count(int x, int input_size) const { return std::min(starts[x] + span_size, input_size) - starts[x]; }
  const T* weights_of(int x) const { return weights.data() + static_cast<size_t>(span_size) * x; }
};

template <typename T>
TriangleSpans<T> triangle_spans(int output_size, int input_size) {
  const T scale = static_cast<T>(output_size) / static_cast<T>(input_size);
  const T radius = 1;
  const T inv_scale = static_cast<T>(1.0 / scale);
  const T kernel_scale = std::max(inv_scale, T(1));
  TriangleSpans<T> s;
  s.span_size = std::min(2 * static_cast<int>(std::ceil(radius * kernel_scale)) + 1, input_size);
  s.starts.assign(output_size, 0);
  s.weights.assign(static_cast<size_t>(s.span_size) * output_size, T(0));
  const T one_over_kernel_scale = T(1) / kernel_scale;
  std::vector<T> temp;
  for (int x = 0; x < output_size; ++x) {
    const T sample = (static_cast<T>(x) + T(0.5)) * inv_scale;
    if (sample < 0 || sample > static_cast<T>(input_size)) continue;  // empty span
    int64_t span_start = static_cast<int64_t>(std::ceil(sample - radius * kernel_scale - T(0.5)));
    int64_t span_end = static_cast<int64_t>(std::floor(sample + radius * kernel_scale - T(0.5)));
    span_start = std::clamp<int64_t>(span_start, 0, input_size - 1);
    span_end = std::clamp<int64_t>(span_end, 0, input_size - 1) + 1;
    T total = 0;
    temp.clear();
    for (int64_t source = span_start; source < span_end; ++source) {
      const T kernel_pos = static_cast<T>(source) + T(0.5) - sample;
      const T t = std::abs(kernel_pos * one_over_kernel_scale);
      const T weight = t < T(1) ? T(1) - t : T(0);
      total += weight;
      temp.push_back(weight);
    }
    if (std::abs(total) >= T(1000) * std::numeric_limits<T>::min()) {
      const T inv_total = T(1) / total;
      for (size_t i = 0; i < temp.size(); ++i) s.weights[static_cast<size_t>(s.span_size) * x + i] = temp[i] * inv_total;
    }
    s.starts[x] = static_cast<int>(span_start);
  }
  return s;
}

}  // namespace pg
