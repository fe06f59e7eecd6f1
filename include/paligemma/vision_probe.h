#pragma once
// What a vision tower "knows": linear probes of its pooled output on single-object world
// scenes (paligemma world's generator, one object, no text), one probe per attribute: shape,
// colour, size, and where the object is (column / row: the third of the image its box centre
// falls in, what detection needs). A multinomial logistic regression on the mean of the tower's output tokens
// (after post_layernorm, before the projector), standardised with the training scenes'
// statistics, trained on `train_images` scenes of one seed and scored on `test_images` of
// another. Accuracy near chance means the attribute is not linearly readable from the pooled
// features: a decoder trained on top will have to learn it from the tower's tokens itself.
// Used to compare towers (initialisations, SigLIP pretraining settings) without a full stage-1
// run (docs/WORLD_MODEL.md).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "paligemma/model.h"
#include "paligemma/world.h"

namespace pg {

struct VisionProbeOptions {
  int train_images = 1500;
  int test_images = 500;
  uint64_t seed = 7100001;  // training scenes; the test scenes use seed + 1000000
  std::vector<WorldShape> shapes = WorldOptions{}.shapes;
  int steps = 400;  // full-batch Adam steps of each probe
  double learning_rate = 0.05;
  double l2 = 1e-3;   // on the weights (mean squared weight times l2)
  bool quiet = true;  // false: progress on stderr
};

struct ProbeResult {
  std::string attribute;  // "shape", "colour", "size", "column", "row"
  int classes = 0;
  double train_accuracy = 0, test_accuracy = 0;
  double chance = 0;  // the test split's most common class
};

// Throws pg::Error on bad options (counts < 2, no shapes) or a model that cannot encode.
std::vector<ProbeResult> probe_vision_tower(const Model& model, const VisionProbeOptions& options);

// The probe itself, exposed for tests: standardises x [n, dim] with the training rows' mean and
// std, fits softmax regression on the first n_train rows, returns {train, test} accuracy.
std::pair<double, double> linear_probe(const std::vector<float>& x, int dim, const std::vector<int>& labels,
                                       int classes, int n_train, int steps, double learning_rate, double l2);

}  // namespace pg
