#pragma once
// Training a small PaliGemma-layout SentencePiece tokenizer (for toy models trained from
// scratch: the real 257k vocabulary would dominate a small model).
//
// The trainer settings follow Gemma's trainer_spec (as tools/golden/make_tokenizer.py):
// BPE, byte_fallback, split_digits, split by unicode script / number / whitespace, no dummy
// prefix, no whitespace removal, identity normalisation, allow_whitespace_only_pieces.
//
// Id layout of the written model (H = number of head pieces, see below):
//   0 <pad>, 1 <eos>, 2 <bos>, 3 <unk>                      (as in Gemma)
//   4 .. 4+H-1            head pieces (USER_DEFINED). With gemma_head_pieces (default):
//                         <mask> [@BOS@] <unused0..99> <start_of_turn> <end_of_turn> "\n"
//                         (H = 105, "\n" = 108 as in Gemma); without: only "\n" (H = 1, "\n" = 4)
//   L = 4+H .. L+1023     <loc0000>..<loc1023>  (USER_DEFINED, one token each, consecutive)
//   S = L+1024 .. S+127   <seg000>..<seg127>    (USER_DEFINED, one token each, consecutive)
//   S+128 .. S+383        <0x00>..<0xFF> byte-fallback pieces
//   S+384 ..              the corpus' characters and learned BPE pieces
// The model has vocab_size + 1152 pieces (1152 = 1024 loc + 128 seg) when the corpus allows
// that many merges; a corpus too small to fill the vocabulary gives fewer (see the result).
#include <cstdint>
#include <string>
#include <vector>

namespace pg {

inline constexpr int kTokenizerLocPieces = 1024;
inline constexpr int kTokenizerSegPieces = 128;

struct TokenizerTrainOptions {
  std::vector<std::string> texts;  // training sentences (<locNNNN>/<segNNN> are removed from them)
  int vocab_size = 2048;           // learned + specials + head + bytes, excluding the 1152 loc/seg pieces
  uint64_t seed = 0;               // recorded only: SentencePiece BPE with one thread is deterministic
  bool gemma_head_pieces = true;   // Gemma's 105 head pieces (ids 4..108) or just "\n" (id 4)
  int max_sentence_length = 4192;  // bytes; longer sentences are skipped by the trainer
};

struct TokenizerTrainResult {
  int pieces = 0;          // total pieces of the written model
  int requested = 0;       // vocab_size + 1152
  int sentences = 0;       // non-empty sentences given to the trainer
  int loc0_id = -1, seg0_id = -1, newline_id = -1, first_byte_id = -1;
};

// Smallest vocab_size accepted: 4 specials + head pieces + 256 bytes + 1.
int min_tokenizer_vocab(bool gemma_head_pieces);

// Removes every <locNNNN> and <segNNN> token from text.
std::string strip_loc_seg_tokens(const std::string& text);

// Every "prefix" and "suffix" string of a JSONL file in the fine-tuning format, with
// loc/seg tokens stripped, appended to texts. Throws pg::Error for a missing file or a
// line that is not a JSON object (naming the file and line).
void append_jsonl_corpus(const std::string& path, std::vector<std::string>& texts);

// Trains and writes the model to out_path. Throws pg::Error for an empty corpus, a vocab
// size below min_tokenizer_vocab, a trainer failure or an unwritable out_path.
TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& options, const std::string& out_path);

}  // namespace pg
