#include "paligemma/model.h"

#include <unistd.h>

#include <filesystem>

#include "model/weights.h"
#include "paligemma/backend.h"
#include "paligemma/error.h"

namespace pg {

Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& model_dir, const ModelOptions& options) {
  if (!std::filesystem::is_directory(model_dir))
    throw Error("model directory " + model_dir + " does not exist or is not a directory");
  return load(model_dir, Checkpoint::open(model_dir), options);
}

std::unique_ptr<Model> Model::load(const std::string& model_dir, const Checkpoint& weights,
                                   const ModelOptions& options) {
  if (!std::filesystem::is_directory(model_dir))
    throw Error("model directory " + model_dir + " does not exist or is not a directory");
  std::unique_ptr<Model> m(new Model());
  m->dir_ = model_dir;
  m->options_ = options;
  if (options.threads < 0 || options.threads > 1024)
    throw Error("threads must be between 0 (all cores) and 1024, not " + std::to_string(options.threads));
  if (options.threads > 0) set_threads(options.threads);
  if (options.kv_cache != DType::F32 && options.kv_cache != DType::BF16)
    throw Error(std::string("KV cache dtype must be F32 or BF16, not ") + dtype_name(options.kv_cache));
  m->config_ = load_model_config(model_dir);
  m->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(model_dir + "/tokenizer.model"));
  const int tok_vocab = m->tokenizer_->vocab_size();
  if (tok_vocab > m->config_.text.vocab_size)
    throw Error(model_dir + "/tokenizer.model has " + std::to_string(tok_vocab) +
                " pieces, more than text_config.vocab_size " + std::to_string(m->config_.text.vocab_size) +
                " in config.json");
  m->checkpoint_ = weights;
  m->weights_ = load_weights(m->checkpoint_, m->config_);
  if (!options.lora_dir.empty()) attach_lora(options.lora_dir, m->checkpoint_, *m->weights_);
  const double ram = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  if (options.populate_weights && static_cast<double>(m->checkpoint_.total_bytes()) < 0.8 * ram)
    m->checkpoint_.populate();
  if (options.image_cache_entries < 0) throw Error("image_cache_entries must be >= 0");
  m->image_cache_ = std::make_unique<ImageFeatureCache>(options.image_cache_entries);
  return m;
}

ImageFeatureCache::Features Model::encode_image_cached(const std::vector<float>& pixels) const {
  const int S = config_.vision.image_size;
  const size_t expected = static_cast<size_t>(config_.vision.num_channels) * S * S;
  if (pixels.size() != expected)
    throw Error("image has " + std::to_string(pixels.size()) + " values, the model expects " +
                std::to_string(expected) + " (" + std::to_string(config_.vision.num_channels) + " x " +
                std::to_string(S) + " x " + std::to_string(S) + ")");
  return image_cache_->get_or_compute(pixels,
                                      [this](const std::vector<float>& px) { return encode_image(px.data()); });
}

}  // namespace pg
