#include "paligemma/tokenizer_train.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <unordered_map>

#include "paligemma/error.h"

namespace pg {
namespace {

std::vector<std::string> head_pieces(bool gemma) {
  std::vector<std::string> p;
  if (gemma) {
    p = {"<mask>", "[@BOS@]"};
    for (int i = 0; i < 100; ++i) p.push_back("<unused" + std::to_string(i) + ">");
    p.push_back("<start_of_turn>");
    p.push_back("<end_of_turn>");
  }
  p.push_back("\n");
  return p;
}

std::string pad_number(int v, int width) {
  std::string s = std::to_string(v);
  return std::string(size_t(width) - s.size(), '0') + s;
}

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& s) : s_(s) {}
  bool done() const override { return i_ >= s_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return s_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& s_;
  size_t i_ = 0;
};

bool digits_at(const std::string& t, size_t pos, size_t n) {
  if (pos + n > t.size()) return false;
  for (size_t k = 0; k < n; ++k)
    if (!std::isdigit(static_cast<unsigned char>(t[pos + k]))) return false;
  return true;
}

}  // namespace

int min_tokenizer_vocab(bool gemma_head_pieces) {
  return 4 + static_cast<int>(head_pieces(gemma_head_pieces).size()) + 256 + 1;
}

std::string strip_loc_seg_tokens(const std::string& t) {
  std::string out;
  out.reserve(t.size());
  size_t i = 0;
  while (i < t.size()) {
    if (t[i] == '<') {
      if (t.compare(i, 4, "<loc") == 0 && digits_at(t, i + 4, 4) && i + 8 < t.size() && t[i + 8] == '>') {
        i += 9;
        continue;
      }
      if (t.compare(i, 4, "<seg") == 0 && digits_at(t, i + 4, 3) && i + 7 < t.size() && t[i + 7] == '>') {
        i += 8;
        continue;
      }
    }
    out.push_back(t[i++]);
  }
  return out;
}

void append_jsonl_corpus(const std::string& path, std::vector<std::string>& texts) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("tokenizer corpus " + path + " does not exist or cannot be read");
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    bool blank = true;
    for (char c : line)
      if (!std::isspace(static_cast<unsigned char>(c))) blank = false;
    if (blank) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      throw Error(path + ":" + std::to_string(lineno) + ": not valid JSON: " + e.what());
    }
    if (!j.is_object()) throw Error(path + ":" + std::to_string(lineno) + ": expected a JSON object");
    for (const char* key : {"prefix", "suffix"}) {
      auto it = j.find(key);
      if (it == j.end() || it->is_null()) continue;
      if (!it->is_string())
        throw Error(path + ":" + std::to_string(lineno) + ": \"" + key + "\" must be a string");
      std::string s = strip_loc_seg_tokens(it->get<std::string>());
      if (!s.empty()) texts.push_back(std::move(s));
    }
  }
}

TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& o, const std::string& out_path) {
  const std::vector<std::string> head = head_pieces(o.gemma_head_pieces);
  const int min_vocab = min_tokenizer_vocab(o.gemma_head_pieces);
  if (o.vocab_size < min_vocab)
    throw Error("tokenizer vocab size " + std::to_string(o.vocab_size) + " is too small: it must be at least " +
                std::to_string(min_vocab) + " (4 specials + " + std::to_string(head.size()) +
                " head pieces + 256 byte pieces + 1), loc/seg pieces not counted");
  std::vector<std::string> sentences;
  sentences.reserve(o.texts.size());
  for (const std::string& t : o.texts) {
    std::string s = strip_loc_seg_tokens(t);
    if (!s.empty()) sentences.push_back(std::move(s));
  }
  if (sentences.empty())
    throw Error("tokenizer corpus is empty: no non-empty text left after removing <loc>/<seg> tokens");

  std::string user_defined;
  auto add = [&](const std::string& p) {
    if (!user_defined.empty()) user_defined += ',';
    user_defined += p;
  };
  for (const std::string& p : head) add(p);
  for (int i = 0; i < kTokenizerLocPieces; ++i) add("<loc" + pad_number(i, 4) + ">");
  for (int i = 0; i < kTokenizerSegPieces; ++i) add("<seg" + pad_number(i, 3) + ">");
  const int requested = o.vocab_size + kTokenizerLocPieces + kTokenizerSegPieces;

  const std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(requested)},
      {"character_coverage", "1.0"},
      {"byte_fallback", "true"},
      {"split_digits", "true"},
      {"split_by_unicode_script", "true"},
      {"split_by_number", "true"},
      {"split_by_whitespace", "true"},
      {"treat_whitespace_as_suffix", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"normalization_rule_name", "identity"},
      {"pad_id", "0"},
      {"eos_id", "1"},
      {"bos_id", "2"},
      {"unk_id", "3"},
      {"pad_piece", "<pad>"},
      {"eos_piece", "<eos>"},
      {"bos_piece", "<bos>"},
      {"unk_piece", "<unk>"},
      {"user_defined_symbols", user_defined},
      {"num_threads", "1"},
      {"shuffle_input_sentence", "false"},
      {"input_sentence_size", "0"},
      {"max_sentence_length", std::to_string(o.max_sentence_length)},
      {"hard_vocab_limit", "false"},
      {"seed_sentencepiece_size", "1000000"},
      {"minloglevel", "2"},
  };
  VectorIterator it(sentences);
  std::string proto;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &proto);
  if (!status.ok()) {
    const std::string msg = status.ToString();
    std::smatch m;
    if (std::regex_search(msg, m, std::regex("(\\d+) vs (\\d+)")) && msg.find("required_chars") != std::string::npos) {
      const int need = o.vocab_size + std::stoi(m[2].str()) - std::stoi(m[1].str());
      throw Error("tokenizer vocab size " + std::to_string(o.vocab_size) +
                  " is too small for this corpus: its distinct characters need a piece each; use at least " +
                  std::to_string(need));
    }
    throw Error("tokenizer training failed: " + msg);
  }

  sentencepiece::SentencePieceProcessor sp;
  status = sp.LoadFromSerializedProto(proto);
  if (!status.ok()) throw Error("tokenizer training produced an unreadable model: " + status.ToString());

  {
    std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot write tokenizer " + out_path);
    out.write(proto.data(), static_cast<std::streamsize>(proto.size()));
    out.close();
    if (!out) throw Error("cannot write tokenizer " + out_path);
  }

  TokenizerTrainResult r;
  r.pieces = sp.GetPieceSize();
  r.requested = requested;
  r.sentences = static_cast<int>(sentences.size());
  r.loc0_id = sp.PieceToId("<loc0000>");
  r.seg0_id = sp.PieceToId("<seg000>");
  r.newline_id = sp.PieceToId("\n");
  r.first_byte_id = sp.PieceToId("<0x00>");
  return r;
}

}  // namespace pg
