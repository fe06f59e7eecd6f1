#include "paligemma/tokenizer.h"

#include <sentencepiece_processor.h>

#include <filesystem>

#include "paligemma/config.h"
#include "paligemma/error.h"

namespace pg {

Tokenizer::Tokenizer() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw Error("tokenizer " + path + " does not exist (PaliGemma checkpoints ship tokenizer.model)");
  Tokenizer t;
  t.path_ = path;
  auto status = t.sp_->Load(path);
  if (!status.ok()) throw Error("tokenizer " + path + " is not a valid SentencePiece model: " + status.ToString());
  auto id_or = [&](const char* piece, int fallback) {
    int id = t.piece_to_id(piece);
    return id >= 0 ? id : fallback;
  };
  t.bos_id_ = t.sp_->bos_id() >= 0 ? t.sp_->bos_id() : id_or("<bos>", 2);
  t.eos_id_ = t.sp_->eos_id() >= 0 ? t.sp_->eos_id() : id_or("<eos>", 1);
  t.pad_id_ = t.sp_->pad_id() >= 0 ? t.sp_->pad_id() : id_or("<pad>", 0);
  t.loc0_id_ = t.piece_to_id("<loc0000>");
  t.seg0_id_ = t.piece_to_id("<seg000>");
  return t;
}

std::vector<int> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw Error("tokenizer " + path_ + " failed to encode text: " + status.ToString());
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::vector<int> kept;
  kept.reserve(ids.size());
  for (int id : ids)
    if (id >= 0 && id < vocab_size() && !sp_->IsControl(id) && !sp_->IsUnknown(id)) kept.push_back(id);
  std::string text;
  auto status = sp_->Decode(kept, &text);
  if (!status.ok()) throw Error("tokenizer " + path_ + " failed to decode ids: " + status.ToString());
  return text;
}

std::string Tokenizer::piece(int id) const {
  if (id < 0 || id >= vocab_size()) return "";
  return sp_->IdToPiece(id);
}

int Tokenizer::piece_to_id(const std::string& p) const {
  int id = sp_->PieceToId(p);
  // SentencePiece answers unk for unknown pieces; only the unk piece itself maps to unk.
  if (id == sp_->unk_id() && p != sp_->IdToPiece(sp_->unk_id())) return -1;
  return id;
}

int Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
bool Tokenizer::is_control(int id) const { return id >= 0 && id < vocab_size() && sp_->IsControl(id); }

std::vector<int> build_prompt(const Tokenizer& tokenizer, const ModelConfig& config, const std::string& prefix,
                              int num_images) {
  if (prefix.empty()) throw Error("prompt is empty: PaliGemma needs a task prefix such as \"caption en\"");
  std::vector<int> ids(static_cast<size_t>(config.image_tokens_per_image()) * num_images, config.image_token_index);
  ids.push_back(tokenizer.bos_id());
  std::vector<int> text = tokenizer.encode(prefix + "\n");
  ids.insert(ids.end(), text.begin(), text.end());
  return ids;
}

}  // namespace pg
