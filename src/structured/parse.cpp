// Parsing PaliGemma's detection / segmentation answers (see include/paligemma/structured.h).
#include <cmath>
#include <string_view>

#include "paligemma/generate.h"
#include "paligemma/structured.h"
#include "paligemma/tokenizer.h"

namespace pg {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

double bin_divisor(Bins bins) { return bins == Bins::Demo ? 1024.0 : 1023.0; }

// Reads "<" + tag + exactly `digits` decimal digits + ">" at text[p]. Returns the value and
// advances p, or -1 (not this tag at all) / -2 (this tag but malformed) leaving p.
int read_token(std::string_view text, size_t& p, std::string_view tag, int digits) {
  if (text.compare(p, tag.size(), tag) != 0) return -1;
  size_t q = p + tag.size();
  int value = 0;
  for (int i = 0; i < digits; ++i, ++q) {
    if (q >= text.size() || text[q] < '0' || text[q] > '9') return -2;
    value = value * 10 + (text[q] - '0');
  }
  if (q >= text.size() || text[q] != '>') return -2;
  p = q + 1;
  return value;
}

void skip_spaces(std::string_view text, size_t& p, size_t end) {
  while (p < end && is_space(text[p])) ++p;
}

// Parses one trimmed piece text[b, e). On success fills `out` (less the token spans) and returns
// ""; otherwise returns the reason.
std::string parse_object(std::string_view text, size_t b, size_t e, int width, int height, Bins bins,
                         ParsedObject& out) {
  std::string_view piece = text.substr(b, e - b);
  if (piece.compare(0, 4, "<loc") != 0) {
    if (piece.find("<loc") != std::string_view::npos) return "text before the <loc> tokens";
    return "no <loc> tokens";
  }
  size_t p = 0;
  std::vector<int> locs;
  while (true) {
    skip_spaces(piece, p, piece.size());
    int v = read_token(piece, p, "<loc", 4);
    if (v == -1) break;
    if (v == -2) return "malformed <loc> token";
    if (v > 1023) return "<loc> value " + std::to_string(v) + " > 1023";
    locs.push_back(v);
  }
  if (locs.size() != 4) return "expected 4 <loc> tokens, found " + std::to_string(locs.size());
  std::vector<int> segs;
  while (true) {
    skip_spaces(piece, p, piece.size());
    int v = read_token(piece, p, "<seg", 3);
    if (v == -1) break;
    if (v == -2) return "malformed <seg> token";
    if (v > 127) return "<seg> value " + std::to_string(v) + " > 127";
    segs.push_back(v);
  }
  if (!segs.empty() && segs.size() != 16) return "expected 0 or 16 <seg> tokens, found " + std::to_string(segs.size());
  std::string_view label = piece.substr(p);
  while (!label.empty() && is_space(label.back())) label.remove_suffix(1);
  if (label.find("<loc") != std::string_view::npos || label.find("<seg") != std::string_view::npos)
    return "<loc>/<seg> tokens after the label (missing ' ; '?)";
  const int y1 = locs[0], x1 = locs[1], y2 = locs[2], x2 = locs[3];
  if (y2 < y1) return "y2 < y1";
  if (x2 < x1) return "x2 < x1";
  const double d = bin_divisor(bins);
  out.label = std::string(label);
  out.loc = {y1, x1, y2, x2};
  out.normalized = Box{x1 / d, y1 / d, x2 / d, y2 / d};
  out.box = Box{x1 / d * width, y1 / d * height, x2 / d * width, y2 / d * height};
  if (!segs.empty()) {
    std::array<int, 16> codes{};
    for (int i = 0; i < 16; ++i) codes[i] = segs[i];
    out.seg = codes;
  }
  out.text_begin = b;
  out.text_end = e;
  return "";
}

// Maps each non-space byte of `text` to the index of the token producing it, or returns an
// empty vector when the tokens' non-space bytes are not exactly the text's.
std::vector<int> align_tokens(std::string_view text, std::span<const std::string> tokens) {
  std::vector<int> owner(text.size(), -1);
  size_t p = 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    for (char c : tokens[t]) {
      if (is_space(c)) continue;
      while (p < text.size() && is_space(text[p])) ++p;
      if (p >= text.size() || text[p] != c) return {};
      owner[p++] = static_cast<int>(t);
    }
  }
  while (p < text.size() && is_space(text[p])) ++p;
  if (p != text.size()) return {};
  return owner;
}

}  // namespace

ParsedAnswer parse_answer(const std::string& text_in, int image_width, int image_height,
                          const ParseOptions& options) {
  ParsedAnswer answer;
  std::string_view text(text_in);
  size_t first = 0;
  while (first < text.size() && is_space(text[first])) ++first;
  if (first == text.size()) return answer;
  if (image_width <= 0 || image_height <= 0) {
    answer.skipped.push_back({text_in, "image size " + std::to_string(image_width) + "x" +
                                           std::to_string(image_height) + " is not positive"});
    return answer;
  }
  std::vector<int> owner;
  if (!options.token_texts.empty()) owner = align_tokens(text, options.token_texts);

  size_t b = 0;
  while (b <= text.size()) {
    size_t e = text.find(';', b);
    if (e == std::string_view::npos) e = text.size();
    size_t tb = b, te = e;
    while (tb < te && is_space(text[tb])) ++tb;
    while (te > tb && is_space(text[te - 1])) --te;
    if (tb == te) {
      answer.skipped.push_back({std::string(text.substr(b, e - b)), "empty object"});
    } else {
      ParsedObject object;
      std::string reason = parse_object(text, tb, te, image_width, image_height, options.bins, object);
      if (!reason.empty()) {
        answer.skipped.push_back({std::string(text.substr(tb, te - tb)), std::move(reason)});
      } else {
        if (!owner.empty()) {
          object.first_token = owner[tb];
          object.token_end = owner[te - 1] + 1;
          // The label is the trailing object.label.size() bytes of the trimmed piece.
          if (object.label.empty()) {
            object.label_token_begin = object.token_end;
          } else {
            object.label_token_begin = owner[te - object.label.size()];
          }
        }
        answer.objects.push_back(std::move(object));
      }
    }
    if (e == text.size()) break;
    b = e + 1;
  }
  return answer;
}

std::vector<std::string> token_texts(const Tokenizer& tokenizer, const std::vector<int>& ids) {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int id : ids) {
    if (id < 0 || id >= tokenizer.vocab_size() || tokenizer.is_control(id)) {
      out.emplace_back();
      continue;
    }
    std::string p = tokenizer.piece(id);
    if (p == "<unk>" || p == "<image>") {
      out.emplace_back();
      continue;
    }
    if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>') {
      try {
        out.emplace_back(1, static_cast<char>(std::stoi(p.substr(3, 2), nullptr, 16)));
        continue;
      } catch (...) {
      }
    }
    std::string s;
    static const std::string kSpace = "\xE2\x96\x81";  // U+2581
    for (size_t i = 0; i < p.size();) {
      if (p.compare(i, 3, kSpace) == 0) {
        s += ' ';
        i += 3;
      } else {
        s += p[i++];
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

namespace {
double span_probability(int begin, int end, std::span<const float> logprobs) {
  if (begin < 0 || end < begin || static_cast<size_t>(end) > logprobs.size())
    return std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  for (int i = begin; i < end; ++i) sum += logprobs[i];
  return std::exp(sum);
}
}  // namespace

double object_confidence(const ParsedObject& object, std::span<const float> logprobs) {
  return span_probability(object.first_token, object.token_end, logprobs);
}

double label_confidence(const ParsedObject& object, std::span<const float> logprobs) {
  if (object.first_token < 0) return std::numeric_limits<double>::quiet_NaN();
  return span_probability(object.label_token_begin, object.token_end, logprobs);
}

void score_objects(ParsedAnswer& answer, std::span<const float> logprobs) {
  for (auto& o : answer.objects) {
    o.confidence = object_confidence(o, logprobs);
    o.label_confidence = label_confidence(o, logprobs);
  }
}

ParsedAnswer parse_result(const Result& result, const Tokenizer& tokenizer, int image_width, int image_height,
                          Bins bins) {
  std::vector<std::string> texts = token_texts(tokenizer, result.tokens);
  ParseOptions options;
  options.bins = bins;
  options.token_texts = texts;
  ParsedAnswer answer = parse_answer(result.text, image_width, image_height, options);
  score_objects(answer, result.logprobs);
  return answer;
}

}  // namespace pg
