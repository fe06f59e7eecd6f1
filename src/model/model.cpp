#include "paligemma/model.h"

#include <cblas.h>
#include <omp.h>

#include <filesystem>

#include "model/weights.h"
#include "paligemma/error.h"

namespace pg {

Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& model_dir, const ModelOptions& options) {
  if (!std::filesystem::is_directory(model_dir))
    throw Error("model directory " + model_dir + " does not exist or is not a directory");
  std::unique_ptr<Model> m(new Model());
  m->dir_ = model_dir;
  m->options_ = options;
  if (options.threads < 0 || options.threads > 1024)
    throw Error("threads must be between 0 (all cores) and 1024, not " + std::to_string(options.threads));
  if (options.threads > 0) {
    omp_set_num_threads(options.threads);
    openblas_set_num_threads(options.threads);
  }
  m->config_ = load_model_config(model_dir);
  m->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(model_dir + "/tokenizer.model"));
  const int tok_vocab = m->tokenizer_->vocab_size();
  if (tok_vocab > m->config_.text.vocab_size)
    throw Error(model_dir + "/tokenizer.model has " + std::to_string(tok_vocab) +
                " pieces, more than text_config.vocab_size " + std::to_string(m->config_.text.vocab_size) +
                " in config.json");
  m->checkpoint_ = Checkpoint::open(model_dir);
  m->weights_ = load_weights(m->checkpoint_, m->config_);
  return m;
}

}  // namespace pg
