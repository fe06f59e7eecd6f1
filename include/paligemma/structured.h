#pragma once
// PaliGemma's detection / segmentation answers as data, and the inverse (training targets).
//
// Answer grammar (decoded text, <loc>/<seg> kept, as pg::Result::text holds it):
//   answer  := object (";" object)*            objects are joined by " ; "
//   object  := loc{4} seg{16}? label           whitespace around each object is ignored
//   loc     := "<locNNNN>"  NNNN in 0..1023, in the order y1 x1 y2 x2
//   seg     := "<segNNN>"   NNN in 0..127, a 4x4 grid of VQ-VAE codes, row-major
//   label   := any text without <loc>/<seg> tokens; may be empty (RefCOCO fine-tunes) or
//              several words ("traffic light").
//
// Bins (how a loc value maps back to a coordinate, ParseOptions::bins):
//   Bins::Demo      (default) v / 1024 * size: Google's demo / transformers' examples
//                   ("detect cat" in the PaliGemma model card). A box never reaches the far
//                   edge (1023 -> 1023/1024 * size).
//                   Encoding (targets): floor(v * 1024) clamped to 1023, so decode(encode(v))
//                   <= v < decode(encode(v)) + 1/1024.
//   Bins::BigVision v / 1023 * size: big_vision's RefCOCO convention (0 and 1023 are the
//                   edges). Encoding: round(v * 1023), so |decode(encode(v)) - v| <= 0.5/1023.
// Coordinates are in pixels of the ORIGINAL image (the one before the square resize):
//   x = v_x / bins * width, y = v_y / bins * height. The normalised box is v / bins.
#include <array>
#include <cstddef>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace pg {

class Tokenizer;
struct Result;

enum class Bins { Demo, BigVision };

// An axis-aligned box, x0 <= x1, y0 <= y1 (pixels or normalised, as the field says).
struct Box {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  double width() const { return x1 - x0; }
  double height() const { return y1 - y0; }
  double area() const { return (x1 > x0 && y1 > y0) ? (x1 - x0) * (y1 - y0) : 0.0; }
};

struct LabeledBox {
  std::string label;
  Box box;  // pixels of the original image
};

struct ParseOptions {
  Bins bins = Bins::Demo;
  // Optional: the text of each answer token as it appears in the answer (token_texts() makes
  // it from Result::tokens). When given, each object gets its token span, so its confidence
  // can be computed from Result::logprobs. Empty: spans stay -1.
  std::span<const std::string> token_texts{};
};

struct ParsedObject {
  std::string label;
  std::array<int, 4> loc{};     // the raw bins as emitted: y1, x1, y2, x2
  Box box;                      // pixels of the original image
  Box normalized;               // [0, 1]
  std::optional<std::array<int, 16>> seg;  // the 4x4 codes (row-major) when present
  size_t text_begin = 0, text_end = 0;     // byte range of the object in the answer text
  // Token spans (indices into the answer's token list), -1 when no token_texts were given or
  // the tokens did not line up with the text. The object's tokens are [first_token, token_end);
  // its label tokens are [label_token_begin, token_end) (empty when the label is empty).
  int first_token = -1, token_end = -1, label_token_begin = -1;
  // Filled by score_objects / parse_result; NaN until then (see object_confidence).
  double confidence = std::numeric_limits<double>::quiet_NaN();
  double label_confidence = std::numeric_limits<double>::quiet_NaN();
};

struct SkippedPiece {
  std::string text;    // the piece of the answer that was not an object
  std::string reason;  // why, e.g. "expected 4 <loc> tokens, found 3"
};

struct ParsedAnswer {
  std::vector<ParsedObject> objects;  // in answer order
  std::vector<SkippedPiece> skipped;  // malformed pieces, in answer order
};

// Never throws (beyond std::bad_alloc): malformed pieces go to `skipped`, their valid
// neighbours are kept. An empty / all-whitespace answer gives no objects and nothing skipped.
// A non-positive image size gives no objects, with one skipped entry saying so.
ParsedAnswer parse_answer(const std::string& text, int image_width, int image_height,
                          const ParseOptions& options = {});

// The text each token contributes to the decoded answer: control tokens (<bos>, <eos>, <pad>),
// <unk>, ids outside the vocabulary -> ""; "▁" -> " "; byte pieces <0xNN> -> that byte;
// <locNNNN>/<segNNN> as their piece. (Alignment in parse_answer ignores whitespace, so the
// leading space SentencePiece strips from the decoded text does not matter.)
std::vector<std::string> token_texts(const Tokenizer& tokenizer, const std::vector<int>& ids);

// The probability of the object's tokens: exp(sum of logprobs over [first_token, token_end)),
// i.e. the loc, seg and label tokens (not the " ;" separator nor <eos>).
// NaN when the object has no token span or the span is outside `logprobs`.
double object_confidence(const ParsedObject& object, std::span<const float> logprobs);
// The probability of the label tokens only, exp(sum over [label_token_begin, token_end)):
// the class-token likelihood the PaliGemma 2 paper ranks detections by. 1 for an empty label
// (no tokens); NaN when the span is unknown.
double label_confidence(const ParsedObject& object, std::span<const float> logprobs);
// Sets confidence / label_confidence of every object.
void score_objects(ParsedAnswer& answer, std::span<const float> logprobs);

// For the CLI: parses result.text with token spans from result.tokens and scores each object
// from result.logprobs.
ParsedAnswer parse_result(const Result& result, const Tokenizer& tokenizer, int image_width, int image_height,
                          Bins bins = Bins::Demo);

// ---- targets (training data) ----

// A normalised coordinate v in [0, 1] (clamped) -> its bin (see Bins above).
int coordinate_to_bin(double v, Bins bins);
// "<locNNNN>" for a bin in 0..1023; throws pg::Error otherwise.
std::string loc_token(int bin);
// "<segNNN>" for a code in 0..127; throws pg::Error otherwise.
std::string seg_token(int code);

// "<loc y1><loc x1><loc y2><loc x2> label ; ..." (" label" omitted when the label is empty).
// Boxes in pixels of a width x height image, clamped to it. Throws pg::Error on a non-positive
// image size, an inverted box, or a label holding ';', '<loc' / '<seg' or a newline.
std::string detection_target(const std::vector<LabeledBox>& boxes, int image_width, int image_height,
                             Bins bins = Bins::Demo);
// "<loc..>x4<seg..>x16 label" (codes 0..127, row-major 4x4). Same checks as detection_target.
std::string segmentation_target(const LabeledBox& box, const std::array<int, 16>& codes, int image_width,
                                int image_height, Bins bins = Bins::Demo);

}  // namespace pg
