// `paligemma tokenizer`: train a small PaliGemma-layout SentencePiece tokenizer on the
// "prefix"/"suffix" strings of fine-tuning JSONL files (include/paligemma/tokenizer_train.h).
#include <chrono>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "paligemma/error.h"
#include "paligemma/tokenizer_train.h"

namespace pg::cli {
namespace {

struct TokenizerArgs {
  std::vector<std::string> data;
  int vocab = 2048;
  std::string out;
  bool no_gemma_head = false;
};

int tokenizer(const TokenizerArgs& a) {
  TokenizerTrainOptions o;
  o.vocab_size = a.vocab;
  o.gemma_head_pieces = !a.no_gemma_head;
  const int min_vocab = min_tokenizer_vocab(o.gemma_head_pieces);
  if (o.vocab_size < min_vocab)
    throw Error("--vocab " + std::to_string(o.vocab_size) + " is too small: at least " + std::to_string(min_vocab) +
                (o.gemma_head_pieces ? " (" + std::to_string(min_tokenizer_vocab(false)) + " with --no-gemma-head)"
                                     : std::string()));
  for (const std::string& path : a.data) {
    const size_t before = o.texts.size();
    append_jsonl_corpus(path, o.texts);
    std::cerr << "tokenizer: " << path << ": " << (o.texts.size() - before) << " strings\n";
  }
  if (o.texts.empty()) throw Error("tokenizer corpus is empty: no prefix/suffix text in the --data files");
  std::cerr << "tokenizer: training BPE on " << o.texts.size() << " strings, vocab " << o.vocab_size << " + "
            << (kTokenizerLocPieces + kTokenizerSegPieces) << " loc/seg pieces ...\n";
  const auto start = std::chrono::steady_clock::now();
  const TokenizerTrainResult r = train_tokenizer(o, a.out);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (r.pieces < r.requested)
    std::cerr << "tokenizer: the corpus allowed only " << r.pieces << " of the " << r.requested
              << " requested pieces\n";
  std::cerr << "tokenizer: wrote " << a.out << " (" << r.pieces << " pieces; \"\\n\" " << r.newline_id
            << ", <loc0000> " << r.loc0_id << ", <seg000> " << r.seg0_id << ", <0x00> " << r.first_byte_id
            << ") in " << secs << " s\n";
  return 0;
}

}  // namespace

Runner add_tokenizer_command(CLI::App& app) {
  auto args = std::make_shared<TokenizerArgs>();
  CLI::App* cmd = app.add_subcommand(
      "tokenizer", "Train a small PaliGemma-layout SentencePiece tokenizer on JSONL prefix/suffix text");
  cmd->add_option("--data", args->data, "Fine-tuning JSONL file (repeatable); its prefix and suffix strings")
      ->required();
  cmd->add_option("--vocab", args->vocab,
                  "Pieces excluding the 1024 <loc> and 128 <seg> pieces (specials, head, 256 bytes, BPE)")
      ->capture_default_str();
  cmd->add_option("--out", args->out, "Output tokenizer.model")->required();
  cmd->add_flag("--no-gemma-head", args->no_gemma_head,
                "Only \"\\n\" after the 4 specials instead of Gemma's 105 head pieces (ids 4..108)");
  return [args] { return tokenizer(*args); };
}

}  // namespace pg::cli
