#include "train/dataset.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "core/random.h"
#include "paligemma/error.h"

namespace pg::train {
namespace fs = std::filesystem;

namespace {

// One line's record, or throws pg::Error with the reason (no file:line prefix).
DatasetRecord parse_record(const std::string& text, const fs::path& base) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) throw Error("expected a JSON object with \"image\", \"prefix\" and \"suffix\"");
  DatasetRecord r;
  for (const char* key : {"prefix", "suffix"}) {
    if (!j.contains(key)) throw Error(std::string("missing \"") + key + "\"");
    if (!j[key].is_string()) throw Error(std::string("\"") + key + "\" must be a string");
  }
  r.prefix = j["prefix"].get<std::string>();
  r.suffix = j["suffix"].get<std::string>();
  if (r.prefix.empty()) throw Error("\"prefix\" is empty (PaliGemma needs a task prefix such as \"caption en\")");
  if (!j.contains("image")) throw Error("missing \"image\"");
  std::vector<std::string> names;
  if (j["image"].is_string()) {
    names.push_back(j["image"].get<std::string>());
  } else if (j["image"].is_array() && !j["image"].empty()) {
    for (const auto& v : j["image"]) {
      if (!v.is_string()) throw Error("\"image\" must be a path or a list of paths");
      names.push_back(v.get<std::string>());
    }
  } else {
    throw Error("\"image\" must be a path or a non-empty list of paths");
  }
  for (const std::string& n : names) {
    const fs::path p = fs::path(n).is_absolute() ? fs::path(n) : base / n;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) throw Error("image file " + p.string() + " does not exist");
    r.images.push_back(p.string());
  }
  if (j.contains("mask")) {
    if (!j["mask"].is_string()) throw Error("\"mask\" must be a path");
    const std::string n = j["mask"].get<std::string>();
    const fs::path p = fs::path(n).is_absolute() ? fs::path(n) : base / n;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) throw Error("mask file " + p.string() + " does not exist");
    r.mask = p.string();
  }
  return r;
}

}  // namespace

Dataset load_jsonl(const std::string& path, bool skip_bad_lines) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open training data " + path);
  Dataset d;
  d.path = path;
  const fs::path base = fs::path(path).parent_path();
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      DatasetRecord r = parse_record(text, base);
      r.line = line;
      d.records.push_back(std::move(r));
    } catch (const Error& e) {
      const std::string where = path + ":" + std::to_string(line) + ": ";
      if (!skip_bad_lines) throw Error(where + e.what());
      d.skipped.push_back({line, e.what()});
    }
  }
  if (d.records.empty())
    throw Error("training data " + path + " has no usable line" +
                (d.skipped.empty() ? std::string() : " (" + std::to_string(d.skipped.size()) + " bad lines skipped)"));
  return d;
}

bool build_sequence(const Tokenizer& tokenizer, const ModelConfig& config, const std::string& prefix,
                    const std::string& suffix, int num_images, int max_tokens, TrainExample* example,
                    TruncationStats* stats) {
  std::vector<int> ids = build_prompt(tokenizer, config, prefix, num_images);
  const int prefix_len = static_cast<int>(ids.size());
  // The suffix is tokenized on its own (the processor's text pair) and ends with <eos>.
  std::vector<int> target = tokenizer.encode(suffix);
  target.push_back(tokenizer.eos_id());
  if (max_tokens > 0 && prefix_len + static_cast<int>(target.size()) > max_tokens) {
    if (prefix_len >= max_tokens) {
      if (stats) ++stats->dropped;
      return false;
    }
    target.resize(max_tokens - prefix_len);
    if (stats) ++stats->truncated;
  }
  ids.insert(ids.end(), target.begin(), target.end());
  example->ids = std::move(ids);
  example->prefix_len = prefix_len;
  return true;
}

Image model_sized(const Image& image, int size, ResizeFilter filter) {
  if (filter == ResizeFilter::PilBicubic && image.width == size && image.height == size) return image;
  return resize_image(image, size, size, filter);
}

bool ExampleStore::add(const DatasetRecord& record, const Tokenizer& tokenizer, const ModelConfig& config,
                       TruncationStats* stats) {
  TrainExample sequence;
  if (!build_sequence(tokenizer, config, record.prefix, record.suffix, static_cast<int>(record.images.size()),
                      max_tokens_, &sequence, stats))
    return false;
  Item item;
  item.ids = std::move(sequence.ids);
  item.prefix_len = sequence.prefix_len;
  for (const std::string& path : record.images) {
    auto it = image_index_.find(path);
    if (it == image_index_.end()) {
      Image image = model_sized(load_image(path), image_size_, filter_);
      // Only a bucket key (every stored image has the model's size); equal ones are compared whole.
      const uint64_t hash = fnv1a(std::string_view(reinterpret_cast<const char*>(image.rgb.data()), image.rgb.size()));
      int index = -1;
      for (auto [c, end] = content_index_.equal_range(hash); c != end && index < 0; ++c)
        if (images_[c->second].width == image.width && images_[c->second].rgb == image.rgb) index = c->second;
      if (index < 0) {
        images_.push_back(std::move(image));
        index = static_cast<int>(images_.size()) - 1;
        content_index_.emplace(hash, index);
      }
      it = image_index_.emplace(path, index).first;
    }
    item.images.push_back(it->second);
  }
  items_.push_back(std::move(item));
  return true;
}

TrainExample ExampleStore::example(size_t i) const {
  const Item& item = items_.at(i);
  TrainExample ex;
  ex.ids = item.ids;
  ex.prefix_len = item.prefix_len;
  for (int image : item.images) {
    const std::vector<float> px = normalize_image(images_[image], filter_);
    ex.pixels.insert(ex.pixels.end(), px.begin(), px.end());
  }
  return ex;
}

std::vector<int> epoch_order(int n, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle) return order;
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) + 1);
  for (int i = n - 1; i > 0; --i) {
    const int j = static_cast<int>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

}  // namespace pg::train
