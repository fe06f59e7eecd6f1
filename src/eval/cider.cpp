// CIDEr-D as pycocoevalcap 1.2's cider/cider_scorer.py computes it (the `Cider` class COCO
// reports), and the caption tokenisation that replaces its Java PTB tokenizer.
#include <cctype>
#include <cmath>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "paligemma/error.h"
#include "paligemma/eval.h"

namespace pg {
namespace {

using Counts = std::unordered_map<std::string, double>;  // n-gram ("w1 w2 ...") -> count

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> words;
  std::string w;
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!w.empty()) words.push_back(std::move(w));
      w.clear();
    } else {
      w += c;
    }
  }
  if (!w.empty()) words.push_back(std::move(w));
  return words;
}

// precook: counts of every k-gram, k = 1..n; one map per order.
std::vector<Counts> precook(const std::string& s, int n) {
  const std::vector<std::string> words = split_words(s);
  std::vector<Counts> counts(n);
  for (int k = 1; k <= n; ++k) {
    for (size_t i = 0; i + k <= words.size(); ++i) {
      std::string g = words[i];
      for (int j = 1; j < k; ++j) {
        g += ' ';
        g += words[i + j];
      }
      counts[k - 1][g] += 1;
    }
  }
  return counts;
}

struct Vec {
  std::vector<Counts> v;
  std::vector<double> norm;
  double length = 0;
};

}  // namespace

std::string caption_tokens(const std::string& text) {
  std::string spaced;
  spaced.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '.': case ',': case '?': case '!': case ':': case ';': case '"': case '`':
      case '(': case ')': case '[': case ']': case '{': case '}':
        spaced += ' ';
        break;
      default:
        spaced += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
  }
  std::string out;
  for (const std::string& w : split_words(spaced)) {
    if (w.find_first_not_of("-'") == std::string::npos) continue;
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

CiderScore cider_d(const std::vector<std::string>& candidates, const std::vector<std::vector<std::string>>& references,
                   int n, double sigma) {
  if (candidates.size() != references.size())
    throw Error("cider_d: " + std::to_string(candidates.size()) + " candidates but " +
                std::to_string(references.size()) + " reference lists");
  if (n < 1) throw Error("cider_d: n must be >= 1");
  CiderScore out;
  if (candidates.empty()) return out;
  std::vector<std::vector<Counts>> test;
  std::vector<std::vector<std::vector<Counts>>> refs;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (references[i].empty()) throw Error("cider_d: image " + std::to_string(i) + " has no reference");
    test.push_back(precook(candidates[i], n));
    refs.emplace_back();
    for (const std::string& r : references[i]) refs.back().push_back(precook(r, n));
  }
  // Document frequency: in how many images' reference sets each n-gram occurs.
  std::unordered_map<std::string, double> df;
  for (const auto& image_refs : refs) {
    std::unordered_set<std::string> seen;
    for (const auto& r : image_refs)
      for (const auto& order : r)
        for (const auto& [g, c] : order) seen.insert(g);
    for (const std::string& g : seen) df[g] += 1;
  }
  const double ref_len = std::log(static_cast<double>(candidates.size()));
  auto to_vec = [&](const std::vector<Counts>& counts) {
    Vec v;
    v.v.resize(n);
    v.norm.assign(n, 0.0);
    for (int k = 0; k < n; ++k) {
      for (const auto& [g, tf] : counts[k]) {
        auto it = df.find(g);
        const double d = std::log(std::max(1.0, it == df.end() ? 0.0 : it->second));
        const double w = tf * (ref_len - d);
        v.v[k][g] = w;
        v.norm[k] += w * w;
        if (k == 1) v.length += tf;  // the original counts 2-grams as the length
      }
    }
    for (double& x : v.norm) x = std::sqrt(x);
    return v;
  };
  double total = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Vec hyp = to_vec(test[i]);
    std::vector<double> score(n, 0.0);
    for (const auto& r : refs[i]) {
      const Vec ref = to_vec(r);
      const double delta = hyp.length - ref.length;
      for (int k = 0; k < n; ++k) {
        double val = 0;
        for (const auto& [g, wh] : hyp.v[k]) {
          auto it = ref.v[k].find(g);
          const double wr = it == ref.v[k].end() ? 0.0 : it->second;
          val += std::min(wh, wr) * wr;
        }
        if (hyp.norm[k] != 0 && ref.norm[k] != 0) val /= hyp.norm[k] * ref.norm[k];
        val *= std::exp(-(delta * delta) / (2 * sigma * sigma));
        score[k] += val;
      }
    }
    double mean = 0;
    for (double s : score) mean += s;
    mean /= n;
    mean /= static_cast<double>(refs[i].size());
    mean *= 10.0;
    out.per_image.push_back(mean);
    total += mean;
  }
  out.score = total / static_cast<double>(candidates.size());
  return out;
}

}  // namespace pg
