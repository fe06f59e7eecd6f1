// Linear probes of a vision tower's pooled output (include/paligemma/vision_probe.h).
#include "paligemma/vision_probe.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <tuple>

#include "paligemma/error.h"
#include "paligemma/image.h"

namespace pg {

std::pair<double, double> linear_probe(const std::vector<float>& x, int dim, const std::vector<int>& labels,
                                       int classes, int n_train, int steps, double learning_rate, double l2) {
  const int n = static_cast<int>(labels.size());
  if (dim <= 0 || classes < 2 || n_train < 1 || n_train >= n || x.size() != size_t(n) * dim)
    throw Error("linear_probe: inconsistent sizes (" + std::to_string(n) + " rows, " + std::to_string(n_train) +
                " for training, dim " + std::to_string(dim) + ", " + std::to_string(x.size()) + " values)");
  for (int y : labels)
    if (y < 0 || y >= classes) throw Error("linear_probe: label " + std::to_string(y) + " out of range");
  if (steps < 1 || !(learning_rate > 0) || !(l2 >= 0)) throw Error("linear_probe: steps, learning rate or l2 invalid");
  // Standardise with the training rows (a constant feature stays 0).
  std::vector<double> z(x.begin(), x.end()), mean(dim, 0.0), inv_std(dim, 0.0);
  for (int i = 0; i < n_train; ++i)
    for (int d = 0; d < dim; ++d) mean[d] += z[size_t(i) * dim + d] / n_train;
  for (int i = 0; i < n_train; ++i)
    for (int d = 0; d < dim; ++d) {
      const double c = z[size_t(i) * dim + d] - mean[d];
      inv_std[d] += c * c / n_train;
    }
  for (int d = 0; d < dim; ++d) inv_std[d] = inv_std[d] > 1e-12 ? 1.0 / std::sqrt(inv_std[d]) : 0.0;
  for (int i = 0; i < n; ++i)
    for (int d = 0; d < dim; ++d) z[size_t(i) * dim + d] = (z[size_t(i) * dim + d] - mean[d]) * inv_std[d];

  // Softmax regression, full batch, Adam: parameters [classes, dim + 1] (the last column a bias).
  const int P = dim + 1;
  std::vector<double> w(size_t(classes) * P, 0.0), g(w.size()), m1(w.size(), 0.0), m2(w.size(), 0.0), logits(classes);
  auto scores = [&](int i) {
    const double* row = z.data() + size_t(i) * dim;
    double top = -1e300;
    for (int c = 0; c < classes; ++c) {
      const double* wc = w.data() + size_t(c) * P;
      double s = wc[dim];
      for (int d = 0; d < dim; ++d) s += wc[d] * row[d];
      logits[c] = s;
      top = std::max(top, s);
    }
    return top;
  };
  for (int step = 1; step <= steps; ++step) {
    std::fill(g.begin(), g.end(), 0.0);
    for (int i = 0; i < n_train; ++i) {
      const double top = scores(i);
      double sum = 0;
      for (int c = 0; c < classes; ++c) sum += (logits[c] = std::exp(logits[c] - top));
      const double* row = z.data() + size_t(i) * dim;
      for (int c = 0; c < classes; ++c) {
        const double e = (logits[c] / sum - (c == labels[i] ? 1.0 : 0.0)) / n_train;
        double* gc = g.data() + size_t(c) * P;
        for (int d = 0; d < dim; ++d) gc[d] += e * row[d];
        gc[dim] += e;
      }
    }
    for (int c = 0; c < classes; ++c)
      for (int d = 0; d < dim; ++d) g[size_t(c) * P + d] += 2.0 * l2 * w[size_t(c) * P + d] / (double(classes) * dim);
    const double b1 = 0.9, b2 = 0.999, c1 = 1 - std::pow(b1, step), c2 = 1 - std::pow(b2, step);
    for (size_t k = 0; k < w.size(); ++k) {
      m1[k] = b1 * m1[k] + (1 - b1) * g[k];
      m2[k] = b2 * m2[k] + (1 - b2) * g[k] * g[k];
      w[k] -= learning_rate * (m1[k] / c1) / (std::sqrt(m2[k] / c2) + 1e-8);
    }
  }
  int right_train = 0, right_test = 0;
  for (int i = 0; i < n; ++i) {
    scores(i);
    const int best = static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (best == labels[i]) (i < n_train ? right_train : right_test)++;
  }
  return {double(right_train) / n_train, double(right_test) / (n - n_train)};
}

std::vector<ProbeResult> probe_vision_tower(const Model& model, const VisionProbeOptions& o) {
  if (o.train_images < 2 || o.test_images < 2)
    throw Error("probe: --train-images and --test-images must be at least 2");
  if (o.train_images > 1000000 || o.test_images > 1000000)
    throw Error("probe: at most 1000000 training and 1000000 test scenes");
  if (o.shapes.size() < 2) throw Error("probe: at least two shape classes are needed");
  if (o.steps < 1 || !(o.learning_rate > 0) || !(o.l2 >= 0)) throw Error("probe: steps, learning rate or l2 invalid");
  const VisionConfig& vc = model.config().vision;
  const int S = vc.image_size, Hv = vc.hidden_size, n = o.train_images + o.test_images;
  WorldOptions w;
  w.size = S;
  w.max_objects = 1;
  w.text_probability = 0;
  w.shapes = o.shapes;
  std::vector<float> features(size_t(n) * Hv, 0.0f);
  std::vector<int> shape(n), colour(n), size(n), column(n), row(n);
  std::vector<float> hidden;
  for (int i = 0; i < n; ++i) {
    const bool train = i < o.train_images;
    w.seed = train ? o.seed : o.seed + 1000000;
    const WorldScene scene = make_world_scene(w, train ? i : i - o.train_images);
    if (scene.objects.size() != 1) throw Error("probe: internal: a scene without exactly one object");
    const WorldObject& ob = scene.objects[0];
    shape[i] = static_cast<int>(std::find(o.shapes.begin(), o.shapes.end(), ob.shape) - o.shapes.begin());
    colour[i] = static_cast<int>(ob.color);
    size[i] = static_cast<int>(ob.size);
    // Which third of the image the box centre is in, across and down.
    auto third = [&](double centre) { return std::clamp(static_cast<int>(3.0 * centre / S), 0, 2); };
    column[i] = third(0.5 * (ob.box.x0 + ob.box.x1));
    row[i] = third(0.5 * (ob.box.y0 + ob.box.y1));
    const std::vector<float> pixels = preprocess_image(scene.image, S, ResizeFilter::PilBicubic);
    model.encode_image(pixels.data(), &hidden);
    const int tokens = static_cast<int>(hidden.size() / Hv);
    for (int t = 0; t < tokens; ++t)
      for (int d = 0; d < Hv; ++d) features[size_t(i) * Hv + d] += hidden[size_t(t) * Hv + d] / tokens;
    if (!o.quiet && ((i + 1) % 250 == 0 || i + 1 == n))
      std::cerr << "probe: encoded " << (i + 1) << "/" << n << " scenes\n";
  }
  std::vector<ProbeResult> results;
  auto run = [&](const char* name, const std::vector<int>& labels, int classes) {
    ProbeResult r;
    r.attribute = name;
    r.classes = classes;
    std::tie(r.train_accuracy, r.test_accuracy) =
        linear_probe(features, Hv, labels, classes, o.train_images, o.steps, o.learning_rate, o.l2);
    std::vector<int> count(classes, 0);
    for (int i = o.train_images; i < n; ++i) ++count[labels[i]];
    r.chance = double(*std::max_element(count.begin(), count.end())) / o.test_images;
    results.push_back(r);
  };
  run("shape", shape, static_cast<int>(o.shapes.size()));
  run("colour", colour, kWorldColorCount);
  run("size", size, 3);
  run("column", column, 3);
  run("row", row, 3);
  return results;
}

}  // namespace pg
