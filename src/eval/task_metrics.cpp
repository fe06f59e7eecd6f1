// Per-task scoring of PaliGemma answers (see paligemma/eval.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "paligemma/error.h"
#include "paligemma/eval.h"
#include "paligemma/segmentation.h"
#include "paligemma/tokenizer.h"

namespace pg {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
std::string ascii_lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::vector<std::string> split_ws(const std::string& s) {
  std::vector<std::string> out;
  std::string w;
  for (char c : s) {
    if (is_space(c)) {
      if (!w.empty()) out.push_back(std::move(w));
      w.clear();
    } else {
      w += c;
    }
  }
  if (!w.empty()) out.push_back(std::move(w));
  return out;
}

// vqaEval.py's contractions table (VQAEval.__init__), verbatim.
const std::unordered_map<std::string, std::string>& contractions() {
  static const std::unordered_map<std::string, std::string> table = {
      {"aint", "ain't"},
      {"arent", "aren't"},
      {"cant", "can't"},
      {"couldve", "could've"},
      {"couldnt", "couldn't"},
      {"couldn'tve", "couldn't've"},
      {"couldnt've", "couldn't've"},
      {"didnt", "didn't"},
      {"doesnt", "doesn't"},
      {"dont", "don't"},
      {"hadnt", "hadn't"},
      {"hadnt've", "hadn't've"},
      {"hadn'tve", "hadn't've"},
      {"hasnt", "hasn't"},
      {"havent", "haven't"},
      {"hed", "he'd"},
      {"hed've", "he'd've"},
      {"he'dve", "he'd've"},
      {"hes", "he's"},
      {"howd", "how'd"},
      {"howll", "how'll"},
      {"hows", "how's"},
      {"Id've", "I'd've"},
      {"I'dve", "I'd've"},
      {"Im", "I'm"},
      {"Ive", "I've"},
      {"isnt", "isn't"},
      {"itd", "it'd"},
      {"itd've", "it'd've"},
      {"it'dve", "it'd've"},
      {"itll", "it'll"},
      {"let's", "let's"},
      {"maam", "ma'am"},
      {"mightnt", "mightn't"},
      {"mightnt've", "mightn't've"},
      {"mightn'tve", "mightn't've"},
      {"mightve", "might've"},
      {"mustnt", "mustn't"},
      {"mustve", "must've"},
      {"neednt", "needn't"},
      {"notve", "not've"},
      {"oclock", "o'clock"},
      {"oughtnt", "oughtn't"},
      {"ow's'at", "'ow's'at"},
      {"'ows'at", "'ow's'at"},
      {"'ow'sat", "'ow's'at"},
      {"shant", "shan't"},
      {"shed've", "she'd've"},
      {"she'dve", "she'd've"},
      {"she's", "she's"},
      {"shouldve", "should've"},
      {"shouldnt", "shouldn't"},
      {"shouldnt've", "shouldn't've"},
      {"shouldn'tve", "shouldn't've"},
      {"somebody'd", "somebodyd"},
      {"somebodyd've", "somebody'd've"},
      {"somebody'dve", "somebody'd've"},
      {"somebodyll", "somebody'll"},
      {"somebodys", "somebody's"},
      {"someoned", "someone'd"},
      {"someoned've", "someone'd've"},
      {"someone'dve", "someone'd've"},
      {"someonell", "someone'll"},
      {"someones", "someone's"},
      {"somethingd", "something'd"},
      {"somethingd've", "something'd've"},
      {"something'dve", "something'd've"},
      {"somethingll", "something'll"},
      {"thats", "that's"},
      {"thered", "there'd"},
      {"thered've", "there'd've"},
      {"there'dve", "there'd've"},
      {"therere", "there're"},
      {"theres", "there's"},
      {"theyd", "they'd"},
      {"theyd've", "they'd've"},
      {"they'dve", "they'd've"},
      {"theyll", "they'll"},
      {"theyre", "they're"},
      {"theyve", "they've"},
      {"twas", "'twas"},
      {"wasnt", "wasn't"},
      {"wed've", "we'd've"},
      {"we'dve", "we'd've"},
      {"weve", "we've"},
      {"werent", "weren't"},
      {"whatll", "what'll"},
      {"whatre", "what're"},
      {"whats", "what's"},
      {"whatve", "what've"},
      {"whens", "when's"},
      {"whered", "where'd"},
      {"wheres", "where's"},
      {"whereve", "where've"},
      {"whod", "who'd"},
      {"whod've", "who'd've"},
      {"who'dve", "who'd've"},
      {"wholl", "who'll"},
      {"whos", "who's"},
      {"whove", "who've"},
      {"whyll", "why'll"},
      {"whyre", "why're"},
      {"whys", "why's"},
      {"wont", "won't"},
      {"wouldve", "would've"},
      {"wouldnt", "wouldn't"},
      {"wouldnt've", "wouldn't've"},
      {"wouldn'tve", "wouldn't've"},
      {"yall", "y'all"},
      {"yall'll", "y'all'll"},
      {"y'allll", "y'all'll"},
      {"yall'd've", "y'all'd've"},
      {"y'alld've", "y'all'd've"},
      {"y'all'dve", "y'all'd've"},
      {"youd", "you'd"},
      {"youd've", "you'd've"},
      {"you'dve", "you'd've"},
      {"youll", "you'll"},
      {"youre", "you're"},
      {"youve", "you've"},
  };
  return table;
}

// processPunctuation: the checks look at the input text, the edits apply to the output.
std::string process_punctuation(const std::string& in) {
  static const char kPunct[] = {';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+',
                                '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!'};
  bool comma_digit = false;  // re.search("(\d)(,)(\d)", inText)
  for (size_t i = 1; i + 1 < in.size(); ++i)
    if (in[i] == ',' && is_digit(in[i - 1]) && is_digit(in[i + 1])) comma_digit = true;
  std::string out = in;
  for (const char c : kPunct) {
    const bool touches_space = in.find(std::string(1, c) + " ") != std::string::npos ||
                               in.find(" " + std::string(1, c)) != std::string::npos;
    std::string next;
    next.reserve(out.size());
    for (char x : out) {
      if (x != c) next += x;
      else if (!(touches_space || comma_digit)) next += ' ';
    }
    out = std::move(next);
  }
  // periodStrip "(?!<=\d)(\.)(?!\d)": a '.' not followed by a digit, removed at most 32 times
  // (re.UNICODE = 32 is passed as sub's count).
  std::string stripped;
  int removed = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '.' && !(i + 1 < out.size() && is_digit(out[i + 1])) && removed < 32) {
      ++removed;
      continue;
    }
    stripped += out[i];
  }
  return stripped;
}

std::string process_digit_article(const std::string& in) {
  static const std::unordered_map<std::string, std::string> kNumbers = {
      {"none", "0"}, {"zero", "0"}, {"one", "1"},   {"two", "2"},   {"three", "3"}, {"four", "4"},
      {"five", "5"}, {"six", "6"},  {"seven", "7"}, {"eight", "8"}, {"nine", "9"},  {"ten", "10"}};
  std::vector<std::string> words;
  for (std::string w : split_ws(ascii_lower(in))) {
    auto it = kNumbers.find(w);
    if (it != kNumbers.end()) w = it->second;
    if (w == "a" || w == "an" || w == "the") continue;
    words.push_back(std::move(w));
  }
  std::string out;
  for (std::string& w : words) {
    auto it = contractions().find(w);
    if (it != contractions().end()) w = it->second;
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

bool exact_match_any(const std::string& prediction, const std::vector<std::string>& targets) {
  const std::string p = trim(prediction);
  for (const std::string& t : targets)
    if (trim(t) == p) return true;
  return false;
}

const BinaryMask& checked_mask(const BinaryMask& m, int width, int height, size_t index) {
  if (m.width != width || m.height != height)
    throw Error("example " + std::to_string(index) + ": ground-truth mask is " + std::to_string(m.width) + "x" +
                std::to_string(m.height) + " but the image is " + std::to_string(width) + "x" +
                std::to_string(height));
  if (m.data.size() != static_cast<size_t>(width) * height)
    throw Error("example " + std::to_string(index) + ": ground-truth mask holds " + std::to_string(m.data.size()) +
                " values, expected " + std::to_string(static_cast<size_t>(width) * height));
  return m;
}

std::optional<Box> mask_bounds(const BinaryMask& m) {
  int x0 = m.width, y0 = m.height, x1 = -1, y1 = -1;
  for (int y = 0; y < m.height; ++y)
    for (int x = 0; x < m.width; ++x)
      if (m.data[static_cast<size_t>(y) * m.width + x]) {
        x0 = std::min(x0, x);
        x1 = std::max(x1, x);
        y0 = std::min(y0, y);
        y1 = std::max(y1, y);
      }
  if (x1 < 0) return std::nullopt;
  return Box{static_cast<double>(x0), static_cast<double>(y0), static_cast<double>(x1 + 1),
             static_cast<double>(y1 + 1)};
}

std::optional<BinaryMask> first_object_mask(const ParsedAnswer& answer, const MaskCodec& codec, int W, int H) {
  if (answer.objects.empty() || !answer.objects[0].seg) return std::nullopt;
  ParsedAnswer first;
  first.objects.push_back(answer.objects[0]);
  return decode_masks(first, codec, W, H)[0];
}

}  // namespace

EvalTask task_of_prefix(const std::string& prefix) {
  size_t b = 0;
  while (b < prefix.size() && is_space(prefix[b])) ++b;
  size_t e = b;
  while (e < prefix.size() && !is_space(prefix[e])) ++e;
  const std::string word = ascii_lower(prefix.substr(b, e - b));
  if (word == "caption") return EvalTask::Caption;
  if (word == "answer" || word == "question") return EvalTask::Answer;
  if (word == "detect") return EvalTask::Detect;
  if (word == "segment") return EvalTask::Segment;
  if (word == "ocr") return EvalTask::Ocr;
  return EvalTask::Other;
}

const char* task_name(EvalTask task) {
  switch (task) {
    case EvalTask::Caption: return "caption";
    case EvalTask::Answer: return "answer";
    case EvalTask::Detect: return "detect";
    case EvalTask::Segment: return "segment";
    case EvalTask::Ocr: return "ocr";
    case EvalTask::Other: return "other";
  }
  return "other";
}

std::string trim(const std::string& text) {
  size_t b = 0, e = text.size();
  while (b < e && is_space(text[b])) ++b;
  while (e > b && is_space(text[e - 1])) --e;
  return text.substr(b, e - b);
}

std::string vqa_normalize(const std::string& answer) {
  std::string s = answer;
  for (char& c : s)
    if (c == '\n' || c == '\t') c = ' ';
  return process_digit_article(process_punctuation(trim(s)));
}

double vqa_accuracy(const std::string& prediction, const std::vector<std::string>& references) {
  if (references.empty()) return 0;
  const std::string p = vqa_normalize(prediction);
  std::vector<std::string> refs;
  for (const std::string& r : references) refs.push_back(vqa_normalize(r));
  if (refs.size() == 1) return refs[0] == p ? 1.0 : 0.0;
  double sum = 0;
  for (size_t i = 0; i < refs.size(); ++i) {
    int matches = 0;
    for (size_t j = 0; j < refs.size(); ++j)
      if (j != i && refs[j] == p) ++matches;
    sum += std::min(1.0, matches / 3.0);
  }
  return sum / static_cast<double>(refs.size());
}

const TaskReport* EvalReport::find(EvalTask task) const {
  for (const TaskReport& t : tasks)
    if (t.task == task) return &t;
  return nullptr;
}

EvalReport score_examples(const std::vector<EvalExample>& examples, const EvalOptions& options) {
  EvalReport report;
  report.examples = examples.size();
  report.per_example.resize(examples.size());
  std::vector<TaskReport> tasks(kEvalTaskCount);
  for (int t = 0; t < kEvalTaskCount; ++t) tasks[t].task = static_cast<EvalTask>(t);
  std::vector<std::vector<size_t>> by_task(kEvalTaskCount);
  for (size_t i = 0; i < examples.size(); ++i) {
    const EvalExample& ex = examples[i];
    const EvalTask task = task_of_prefix(ex.prefix);
    by_task[static_cast<int>(task)].push_back(i);
    TaskReport& tr = tasks[static_cast<int>(task)];
    ++tr.examples;
    ExampleScore& es = report.per_example[i];
    es.task = task;
    es.exact_match = exact_match_any(ex.prediction, ex.targets);
    if (es.exact_match) ++tr.exact_matches;
    if (trim(ex.prediction).empty()) ++tr.empty_predictions;
    es.score = es.exact_match ? 1.0 : 0.0;
  }
  ParseOptions parse_options;
  parse_options.bins = options.bins;
  auto count_skipped = [&](TaskReport& tr, const ParsedAnswer& pred, size_t i) {
    if (pred.skipped.empty()) return;
    ++tr.malformed_answers;
    tr.skipped_pieces += pred.skipped.size();
    report.per_example[i].skipped_pieces = pred.skipped.size();
  };

  // Caption: CIDEr-D on the tokenised strings.
  {
    const auto& ids = by_task[static_cast<int>(EvalTask::Caption)];
    std::vector<std::string> cands;
    std::vector<std::vector<std::string>> refs;
    for (size_t i : ids) {
      cands.push_back(caption_tokens(examples[i].prediction));
      refs.emplace_back();
      for (const std::string& t : examples[i].targets) refs.back().push_back(caption_tokens(t));
      if (refs.back().empty()) refs.back().push_back("");
    }
    if (!ids.empty()) {
      const CiderScore c = cider_d(cands, refs);
      tasks[static_cast<int>(EvalTask::Caption)].cider = c.score;
      for (size_t k = 0; k < ids.size(); ++k) report.per_example[ids[k]].score = c.per_image[k];
    }
  }
  // Answer: VQA accuracy.
  {
    TaskReport& tr = tasks[static_cast<int>(EvalTask::Answer)];
    double sum = 0;
    for (size_t i : by_task[static_cast<int>(EvalTask::Answer)]) {
      const double a = vqa_accuracy(examples[i].prediction, examples[i].targets);
      report.per_example[i].score = a;
      sum += a;
    }
    if (tr.examples) tr.vqa_accuracy = sum / static_cast<double>(tr.examples);
  }
  // Detect: COCO mAP over the set.
  {
    TaskReport& tr = tasks[static_cast<int>(EvalTask::Detect)];
    std::vector<GroundTruthBox> gt;
    std::vector<DetectionBox> det;
    bool all_ranked = true;
    for (size_t i : by_task[static_cast<int>(EvalTask::Detect)]) {
      const EvalExample& ex = examples[i];
      const std::string id = ex.image_id.empty() ? std::to_string(i) : ex.image_id;
      report.per_example[i].score = kNaN;
      if (!ex.targets.empty()) {
        const ParsedAnswer target = parse_answer(ex.targets[0], ex.image_width, ex.image_height, parse_options);
        if (!target.skipped.empty()) ++tr.malformed_targets;
        for (const ParsedObject& o : target.objects) gt.push_back({id, o.label, o.box});
        tr.ground_truth_objects += target.objects.size();
      }
      std::vector<std::string> texts;
      ParseOptions po = parse_options;
      const bool have_scores = options.tokenizer && !ex.tokens.empty() && ex.logprobs.size() == ex.tokens.size();
      if (have_scores) {
        texts = token_texts(*options.tokenizer, ex.tokens);
        po.token_texts = texts;
      }
      ParsedAnswer pred = parse_answer(ex.prediction, ex.image_width, ex.image_height, po);
      if (have_scores) score_objects(pred, ex.logprobs);
      count_skipped(tr, pred, i);
      for (size_t k = 0; k < pred.objects.size(); ++k) {
        const ParsedObject& o = pred.objects[k];
        double score = o.confidence;
        if (!std::isfinite(score)) {
          all_ranked = false;
          score = 1.0 / (1.0 + static_cast<double>(k));  // answer order
        }
        det.push_back({id, o.label, o.box, score});
      }
      tr.predicted_objects += pred.objects.size();
      if (!have_scores) all_ranked = false;
    }
    if (tr.examples) {
      tr.detection = detection_map(gt, det);
      tr.ranked_by_confidence = all_ranked;
      if (!all_ranked)
        report.notes.push_back("detect: some predictions had no token log-probs; their objects are ranked by answer order");
    }
  }
  // Segment: RefCOCO mIoU of the first object.
  {
    TaskReport& tr = tasks[static_cast<int>(EvalTask::Segment)];
    std::vector<std::optional<BinaryMask>> pred_masks;
    std::vector<BinaryMask> gt_masks;
    std::vector<std::optional<Box>> pred_boxes;
    std::vector<Box> gt_boxes;
    const bool masks = options.codec != nullptr;
    tr.box_iou_fallback = !masks && tr.examples > 0;
    for (size_t i : by_task[static_cast<int>(EvalTask::Segment)]) {
      const EvalExample& ex = examples[i];
      const int W = ex.image_width, H = ex.image_height;
      const ParsedAnswer pred = parse_answer(ex.prediction, W, H, parse_options);
      count_skipped(tr, pred, i);
      ParsedAnswer target;
      if (!ex.targets.empty()) target = parse_answer(ex.targets[0], W, H, parse_options);
      if (!target.skipped.empty()) ++tr.malformed_targets;
      tr.predicted_objects += pred.objects.size();
      tr.ground_truth_objects += target.objects.size();
      double iou = 0;
      if (masks) {
        std::optional<BinaryMask> gt;
        if (ex.ground_truth_mask) gt = checked_mask(*ex.ground_truth_mask, W, H, i);
        else gt = first_object_mask(target, *options.codec, W, H);
        if (!gt) {
          ++tr.unscored;
          report.per_example[i].score = kNaN;
          continue;
        }
        std::optional<BinaryMask> p = first_object_mask(pred, *options.codec, W, H);
        if (p) iou = mask_iou(*p, *gt);
        pred_masks.push_back(std::move(p));
        gt_masks.push_back(std::move(*gt));
      } else {
        std::optional<Box> gt;
        if (!target.objects.empty()) gt = target.objects[0].box;
        else if (ex.ground_truth_mask) gt = mask_bounds(checked_mask(*ex.ground_truth_mask, W, H, i));
        if (!gt) {
          ++tr.unscored;
          report.per_example[i].score = kNaN;
          continue;
        }
        std::optional<Box> p;
        if (!pred.objects.empty()) p = pred.objects[0].box;
        if (p) iou = box_iou(*p, *gt);
        pred_boxes.push_back(p);
        gt_boxes.push_back(*gt);
      }
      report.per_example[i].score = iou;
    }
    if (masks) tr.referring = referring_mask_score(pred_masks, gt_masks);
    else tr.referring = referring_box_score(pred_boxes, gt_boxes);
    if (tr.box_iou_fallback)
      report.notes.push_back("segment: no mask codec (--vae vae-oid.npz): scored by the IoU of the first box, not mask IoU");
    if (tr.unscored)
      report.notes.push_back("segment: " + std::to_string(tr.unscored) +
                             " example(s) without a ground-truth mask or box were not scored");
  }
  for (TaskReport& t : tasks) {
    if (!t.examples) continue;
    t.exact_match = static_cast<double>(t.exact_matches) / static_cast<double>(t.examples);
    report.tasks.push_back(t);
  }
  return report;
}

std::string to_json(const EvalReport& report, int indent) {
  using nlohmann::json;
  json j;
  j["examples"] = report.examples;
  json tasks = json::object();
  for (const TaskReport& t : report.tasks) {
    json o;
    o["examples"] = t.examples;
    o["exact_match"] = t.exact_match;
    o["exact_matches"] = t.exact_matches;
    o["empty_predictions"] = t.empty_predictions;
    switch (t.task) {
      case EvalTask::Caption: o["cider"] = t.cider; break;
      case EvalTask::Answer: o["vqa_accuracy"] = t.vqa_accuracy; break;
      case EvalTask::Detect:
        o["map"] = t.detection.map;
        o["map50"] = t.detection.map50;
        o["map75"] = t.detection.map75;
        o["ap50_per_class"] = t.detection.ap50;
        o["ranked_by_confidence"] = t.ranked_by_confidence;
        break;
      case EvalTask::Segment:
        o["miou"] = t.referring.miou;
        o["acc50"] = t.referring.acc50;
        o["cumulative_iou"] = t.referring.cumulative_iou;
        o["scored"] = t.referring.examples;
        o["missing"] = t.referring.missing;
        o["unscored"] = t.unscored;
        o["iou"] = t.box_iou_fallback ? "box" : "mask";
        break;
      case EvalTask::Ocr:
      case EvalTask::Other: break;
    }
    if (t.task == EvalTask::Detect || t.task == EvalTask::Segment) {  // the object answers' counts
      o["predicted_objects"] = t.predicted_objects;
      o["ground_truth_objects"] = t.ground_truth_objects;
      o["malformed_answers"] = t.malformed_answers;
      o["skipped_pieces"] = t.skipped_pieces;
      o["malformed_targets"] = t.malformed_targets;
    }
    tasks[task_name(t.task)] = o;
  }
  j["tasks"] = tasks;
  j["notes"] = report.notes;
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::string format_table(const EvalReport& report) {
  std::ostringstream out;
  char line[128];
  std::snprintf(line, sizeof line, "%-8s %8s  %s\n", "task", "examples", "metrics");
  out << line;
  auto f = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4f", v);
    return std::string(b);
  };
  for (const TaskReport& t : report.tasks) {
    std::string m;
    switch (t.task) {
      case EvalTask::Caption: m = "CIDEr-D " + f(t.cider) + "  exact " + f(t.exact_match); break;
      case EvalTask::Answer: m = "VQA acc " + f(t.vqa_accuracy) + "  exact " + f(t.exact_match); break;
      case EvalTask::Detect:
        m = "mAP@0.5 " + f(t.detection.map50) + "  mAP " + f(t.detection.map) + "  mAP@0.75 " +
            f(t.detection.map75) + "  objects " + std::to_string(t.predicted_objects) + " pred / " +
            std::to_string(t.ground_truth_objects) + " gt  malformed " + std::to_string(t.malformed_answers);
        break;
      case EvalTask::Segment:
        m = std::string(t.box_iou_fallback ? "box mIoU " : "mIoU ") + f(t.referring.miou) + "  Acc@0.5 " +
            f(t.referring.acc50) + (t.box_iou_fallback ? "" : "  oIoU " + f(t.referring.cumulative_iou)) +
            "  missing " + std::to_string(t.referring.missing) + "  malformed " + std::to_string(t.malformed_answers);
        if (t.unscored) m += "  unscored " + std::to_string(t.unscored);
        break;
      case EvalTask::Ocr:
      case EvalTask::Other: m = "exact " + f(t.exact_match); break;
    }
    if (t.empty_predictions) m += "  empty " + std::to_string(t.empty_predictions);
    std::snprintf(line, sizeof line, "%-8s %8zu  ", task_name(t.task), t.examples);
    out << line << m << "\n";
  }
  for (const std::string& n : report.notes) out << "note: " << n << "\n";
  return out.str();
}

}  // namespace pg
