#pragma once
// The checkpoint's `tokenizer.model` (SentencePiece) and the PaliGemma prompt format.
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace pg {

struct ModelConfig;

class Tokenizer {
 public:
  // Throws pg::Error naming the file if it is missing or not a SentencePiece model.
  static Tokenizer load(const std::string& path);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  std::vector<int> encode(const std::string& text) const;
  // Text of the ids as the transformers processor's decode(skip_special_tokens=True) shows it:
  // <bos>/<eos>/<pad>/<unk>/<image> and ids past the tokenizer's vocabulary are dropped;
  // <locNNNN> and <segNNN> stay visible.
  std::string decode(const std::vector<int>& ids) const;
  // One id's piece as stored ("<loc0012>", "▁cat", "<0x0A>"); "" outside the vocabulary.
  std::string piece(int id) const;
  int piece_to_id(const std::string& piece) const;  // -1 when unknown
  int vocab_size() const;
  bool is_control(int id) const;

  int bos_id() const { return bos_id_; }
  int eos_id() const { return eos_id_; }
  int pad_id() const { return pad_id_; }
  // The id of <loc0000> / <seg000>, or -1 when the tokenizer has none.
  int loc0_id() const { return loc0_id_; }
  int seg0_id() const { return seg0_id_; }

 private:
  Tokenizer();
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
  int bos_id_ = 2, eos_id_ = 1, pad_id_ = 0, loc0_id_ = -1, seg0_id_ = -1;
};

// The prompt exactly as transformers' PaliGemmaProcessor builds it:
//   <image> x (tokens per image * num_images), <bos>, tokens of (prefix + "\n").
// Throws on an empty prefix.
std::vector<int> build_prompt(const Tokenizer& tokenizer, const ModelConfig& config, const std::string& prefix,
                              int num_images);

}  // namespace pg
