#include "core/file.h"
#include "paligemma/checkpoint.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "paligemma/error.h"

namespace pg {

namespace {

bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

enum class PathKind { Missing, File, Directory, Other };

PathKind path_kind(const std::string& path, int* err = nullptr) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (err) *err = errno;
    return PathKind::Missing;
  }
  if (S_ISREG(st.st_mode)) return PathKind::File;
  if (S_ISDIR(st.st_mode)) return PathKind::Directory;
  return PathKind::Other;
}

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}


// The shard list of model.safetensors.index.json: tensor name -> shard file name.
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_file(index_path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(index_path + " is not valid JSON: " + e.what());
  }
  if (!index.is_object()) throw Error(index_path + " is not a JSON object");
  auto it = index.find("weight_map");
  if (it == index.end()) throw Error(index_path + " has no \"weight_map\"");
  if (!it->is_object()) throw Error(index_path + ": \"weight_map\" is not a JSON object");
  std::map<std::string, std::string> weight_map;
  for (auto e = it->begin(); e != it->end(); ++e) {
    if (!e.value().is_string())
      throw Error(index_path + ": weight_map entry for tensor " + e.key() +
                  " is not a file name string");
    const std::string shard = e.value().get<std::string>();
    if (shard.empty()) throw Error(index_path + ": weight_map maps tensor " + e.key() +
                                   " to an empty file name");
    weight_map[e.key()] = shard;
  }
  if (weight_map.empty()) throw Error(index_path + ": \"weight_map\" is empty");
  return weight_map;
}

}  // namespace

std::string canonical_tensor_name(const std::string& stored_name) {
  // Layouts seen in the wild:
  //   released (transformers < 4.52): language_model.model.*, language_model.lm_head.*,
  //                                   vision_tower.vision_model.*, multi_modal_projector.*
  //   transformers 4.52 - 4.57:       model.language_model.*, lm_head.*,
  //                                   model.vision_tower.vision_model.*, model.multi_modal_projector.*
  //   transformers 5.x:               as 4.52, but model.vision_tower.* without "vision_model."
  //                                   (SiglipVisionModel is flattened; base_model_prefix "vision_model")
  static const struct {
    const char* from;
    const char* to;
  } kRules[] = {
      {"model.language_model.", "language_model.model."},
      {"model.vision_tower.", "vision_tower."},
      {"model.multi_modal_projector.", "multi_modal_projector."},
      {"lm_head.", "language_model.lm_head."},
  };
  std::string name = stored_name;
  for (const auto& rule : kRules) {
    if (starts_with(name, rule.from)) {
      name = rule.to + name.substr(std::strlen(rule.from));
      break;
    }
  }
  static const std::string kTower = "vision_tower.";
  if (starts_with(name, kTower.c_str()) && !starts_with(name, "vision_tower.vision_model."))
    name = kTower + "vision_model." + name.substr(kTower.size());
  return name;
}

Checkpoint Checkpoint::open(const std::string& model_dir) {
  Checkpoint ckpt;
  ckpt.dir_ = model_dir;
  int err = 0;
  switch (path_kind(model_dir, &err)) {
    case PathKind::Missing:
      throw Error("model directory " + model_dir + " does not exist" +
                  (err && err != ENOENT ? std::string(" (") + std::strerror(err) + ")" : ""));
    case PathKind::Directory: break;
    default: throw Error("model directory " + model_dir + " is not a directory");
  }

  const std::string index_path = join(model_dir, "model.safetensors.index.json");
  const std::string single_path = join(model_dir, "model.safetensors");

  // The shard files to map (in a stable order) and, for an index, the expected placement.
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;
  const PathKind index_kind = path_kind(index_path);
  if (index_kind == PathKind::File) {
    weight_map = read_weight_map(index_path);
    std::set<std::string> unique;
    for (const auto& [tensor, shard] : weight_map) {
      if (unique.insert(shard).second) {
        const std::string shard_path = join(model_dir, shard);
        if (path_kind(shard_path) != PathKind::File)
          throw Error(index_path + " maps tensor " + tensor + " to shard " + shard +
                      ", but " + shard_path + " does not exist");
        shard_names.push_back(shard);
      }
    }
    std::sort(shard_names.begin(), shard_names.end());
  } else if (index_kind != PathKind::Missing) {
    throw Error(index_path + " is not a regular file");
  } else if (path_kind(single_path) != PathKind::Missing) {
    shard_names.push_back("model.safetensors");
  } else {
    throw Error("no model.safetensors or model.safetensors.index.json in " + model_dir);
  }

  // stored name -> (file index) for duplicate detection across shards
  std::unordered_map<std::string, size_t> stored_in;
  std::unordered_map<std::string, std::string> canonical_from;  // canonical -> stored
  for (const std::string& shard : shard_names) {
    const std::string path = join(model_dir, shard);
    auto file = std::make_shared<MappedFile>(path);
    SafetensorsFile parsed = parse_safetensors(path, file->data(), file->size());
    const size_t file_index = ckpt.files_.size();
    // Weights are read soon after opening (first forward pass): start paging them in.
    file->advise_willneed(8 + parsed.header_size);
    ckpt.files_.push_back(file);
    ckpt.file_paths_.push_back(path);

    for (TensorView& view : parsed.tensors) {
      const std::string stored = view.name;
      auto [sit, fresh] = stored_in.emplace(stored, file_index);
      if (!fresh)
        throw Error("tensor " + stored + " appears in both " + ckpt.file_paths_[sit->second] +
                    " and " + path);
      std::string canonical = canonical_tensor_name(stored);
      auto [cit, cfresh] = canonical_from.emplace(canonical, stored);
      if (!cfresh)
        throw Error("tensors " + cit->second + " and " + stored + " in " + model_dir +
                    " both map to the canonical name " + canonical +
                    " (the checkpoint mixes two name layouts)");
      view.name = canonical;
      Entry entry;
      entry.view = std::move(view);
      entry.file_index = file_index;
      entry.stored_name = stored;
      ckpt.tensors_.emplace(canonical, std::move(entry));
    }
  }

  // Every tensor the index lists must be in the shard it is mapped to. (Tensors a shard
  // holds beyond the index are kept, as transformers loads them too.)
  for (const auto& [tensor, shard] : weight_map) {
    auto sit = stored_in.find(tensor);
    if (sit == stored_in.end())
      throw Error(index_path + " maps tensor " + tensor + " to " + shard + ", but " +
                  join(model_dir, shard) + " has no such tensor");
    const std::string& actual = ckpt.file_paths_[sit->second];
    if (actual != join(model_dir, shard))
      throw Error(index_path + " maps tensor " + tensor + " to " + shard +
                  ", but it is stored in " + actual);
  }
  return ckpt;
}

bool Checkpoint::has(const std::string& canonical_name) const {
  return tensors_.count(canonical_name) != 0;
}

const TensorView& Checkpoint::get(const std::string& canonical_name) const {
  auto it = tensors_.find(canonical_name);
  if (it == tensors_.end()) throw Error("checkpoint " + dir_ + " has no tensor " + canonical_name);
  return it->second.view;
}

const TensorView& Checkpoint::get(const std::string& canonical_name,
                                  const std::vector<int64_t>& expected_shape) const {
  auto it = tensors_.find(canonical_name);
  if (it == tensors_.end()) throw Error("checkpoint " + dir_ + " has no tensor " + canonical_name);
  const Entry& entry = it->second;
  if (entry.view.shape != expected_shape) {
    std::string name = canonical_name;
    if (entry.stored_name != canonical_name) name += " (stored as " + entry.stored_name + ")";
    throw Error("tensor " + name + " in " + file_paths_[entry.file_index] + " has shape " +
                shape_string(entry.view.shape) + " but config.json implies " +
                shape_string(expected_shape));
  }
  return entry.view;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, entry] : tensors_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

const std::string& Checkpoint::file_of(const std::string& canonical_name) const {
  auto it = tensors_.find(canonical_name);
  if (it == tensors_.end()) throw Error("checkpoint " + dir_ + " has no tensor " + canonical_name);
  return file_paths_[it->second.file_index];
}

const std::string& Checkpoint::stored_name_of(const std::string& canonical_name) const {
  auto it = tensors_.find(canonical_name);
  if (it == tensors_.end()) throw Error("checkpoint " + dir_ + " has no tensor " + canonical_name);
  return it->second.stored_name;
}

size_t Checkpoint::total_bytes() const {
  size_t total = 0;
  for (const auto& [name, entry] : tensors_) total += entry.view.nbytes();
  return total;
}

Checkpoint Checkpoint::with_tensors(const std::vector<TensorView>& replacements) const {
  Checkpoint out = *this;
  for (const TensorView& r : replacements) {
    auto it = out.tensors_.find(r.name);
    if (it == out.tensors_.end()) throw Error("checkpoint " + dir_ + " has no tensor " + r.name + " to replace");
    if (r.shape != it->second.view.shape)
      throw Error("replacement for tensor " + r.name + " has another shape than the checkpoint's");
    if (r.data == nullptr) throw Error("replacement for tensor " + r.name + " has no data");
    it->second.view = r;
  }
  return out;
}

void Checkpoint::populate() const {
  const int n = static_cast<int>(files_.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < n; ++i) files_[i]->populate();
}

}  // namespace pg
