// The request pipeline: validate every request, encode the images, prefill all prompts in
// one decoder call, then decode step by step. Greedy and sampled sequences of a batch advance
// together (one decoder call per step for all of them); beam search runs its beams together.
#include "paligemma/generate.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <iterator>
#include <numeric>
#include <span>

#include "generate/sampler.h"
#include "paligemma/error.h"

namespace pg {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Prepared {
  std::vector<int> prompt_ids;
  std::vector<float> features;
  int capacity = 0;
  int max_new = 0;
};

// Every beam keeps its own KV cache and 2 * beams candidates per beam are ranked each step.
constexpr int kMaxBeams = 64;

// The positions a sequence may fill: max_position_embeddings unless the caller chose otherwise
// (RoPE itself has no hard limit, so a larger --max-context is allowed on purpose).
int context_of(const Model& model, const GenerationOptions& o) {
  return o.max_context > 0 ? o.max_context : model.config().text.max_position_embeddings;
}

void validate(const Model& model, const std::vector<Request>& requests, const GenerationOptions& o) {
  if (requests.empty()) throw Error("no requests to generate for");
  if (o.max_new_tokens < 0) throw Error("max_new_tokens must be >= 0");
  // `!(x >= 0)` also rejects NaN.
  if (o.mode == DecodingMode::Sample && !(o.temperature >= 0 && std::isfinite(o.temperature)))
    throw Error("temperature must be a finite number >= 0 (0 means greedy)");
  if (o.mode == DecodingMode::Sample && !(o.top_p > 0 && o.top_p <= 1)) throw Error("top_p must be in (0, 1]");
  if (o.mode == DecodingMode::Sample && o.top_k < 0) throw Error("top_k must be >= 0");
  if (o.mode == DecodingMode::Beam && (o.num_beams < 1 || o.num_beams > kMaxBeams))
    throw Error("num_beams must be between 1 and " + std::to_string(kMaxBeams));
  if (o.max_context < 0) throw Error("max_context must be >= 0 (0: the model's max_position_embeddings)");
  if (o.batch_size < 1) throw Error("batch_size must be >= 1");
  const int S = model.config().vision.image_size;
  const size_t expected = static_cast<size_t>(3) * S * S;
  for (size_t r = 0; r < requests.size(); ++r) {
    const Request& req = requests[r];
    if (req.prompt.empty())
      throw Error("request " + std::to_string(r) + ": prompt is empty: PaliGemma needs a task prefix such as \"caption en\"");
    for (size_t i = 0; i < req.pixels.size(); ++i)
      if (req.pixels[i].size() != expected)
        throw Error("request " + std::to_string(r) + ": image " + std::to_string(i) + " has " +
                    std::to_string(req.pixels[i].size()) + " values; the model needs 3x" + std::to_string(S) + "x" +
                    std::to_string(S));
  }
}

Prepared prepare(const Model& model, const Request& req, const GenerationOptions& o, size_t index) {
  Prepared p;
  p.prompt_ids = build_prompt(model.tokenizer(), model.config(), req.prompt, static_cast<int>(req.pixels.size()));
  const int ctx = context_of(model, o);
  const int L = static_cast<int>(p.prompt_ids.size());
  if (L >= ctx)
    throw Error("request " + std::to_string(index) + ": prompt of " + std::to_string(L) + " tokens (" +
                std::to_string(req.pixels.size() * model.config().image_tokens_per_image()) +
                " image tokens + text) does not fit the context of " + std::to_string(ctx) +
                " tokens (" + (o.max_context > 0 ? "max_context" : "text_config.max_position_embeddings") + ")");
  const int64_t image_ids = std::count(p.prompt_ids.begin(), p.prompt_ids.end(), model.config().image_token_index);
  const int64_t expected = static_cast<int64_t>(req.pixels.size()) * model.config().image_tokens_per_image();
  if (image_ids != expected)
    throw Error("request " + std::to_string(index) + ": the prompt text encodes to the image token id " +
                std::to_string(model.config().image_token_index) + " (" + std::to_string(image_ids - expected) +
                " extra); image tokens and images must match");
  p.max_new = std::min(o.max_new_tokens, ctx - L);
  p.capacity = L + p.max_new;
  return p;
}

void encode_images(const Model& model, std::span<const Request> requests, std::vector<Prepared>& prepared,
                   Timings& timings) {
  const size_t hits_before = model.image_cache().hits(), misses_before = model.image_cache().misses();
  const int N = model.config().image_tokens_per_image(), H = model.config().text.hidden_size;
  for (size_t r = 0; r < requests.size(); ++r) {
    auto& f = prepared[r].features;
    f.reserve(requests[r].pixels.size() * N * H);
    for (const auto& px : requests[r].pixels) {
      auto one = model.encode_image_cached(px);
      f.insert(f.end(), one->begin(), one->end());
    }
  }
  timings.images_from_cache = static_cast<int>(model.image_cache().hits() - hits_before);
  timings.images_encoded = static_cast<int>(model.image_cache().misses() - misses_before);
}

struct Live {  // one greedy / sampled sequence
  KVCache cache;
  std::vector<float> logits;  // of the last position
  Result* result;
  int max_new;
  bool done = false;
  Rng rng{0};
};

void finish_text(const Model& model, Result& r) {
  std::vector<int> visible = r.tokens;
  if (!visible.empty() && r.stop_reason == "eos") visible.pop_back();
  r.text = model.tokenizer().decode(visible);
  r.score = std::accumulate(r.logprobs.begin(), r.logprobs.end(), 0.0f);
}

void run_greedy_or_sample(const Model& model, std::vector<Prepared>& prepared, const GenerationOptions& o,
                          std::vector<Result>& results, Timings& timings) {
  const int V = model.vocab_size();
  const ModelConfig& config = model.config();
  std::vector<Live> live(prepared.size());
  std::vector<DecoderStep> steps;
  for (size_t r = 0; r < prepared.size(); ++r) {
    Live& s = live[r];
    const int L = static_cast<int>(prepared[r].prompt_ids.size());
    s.cache = model.new_cache(prepared[r].capacity, L);
    s.logits.resize(V);
    s.result = &results[r];
    s.max_new = prepared[r].max_new;
    s.rng = Rng(o.seed + r);
    DecoderStep st;
    st.cache = &s.cache;
    st.ids = prepared[r].prompt_ids.data();
    st.count = L;
    st.image_features = prepared[r].features.empty() ? nullptr : prepared[r].features.data();
    st.image_rows = static_cast<int>(prepared[r].features.size() / model.config().text.hidden_size);
    st.logits = s.logits.data();
    steps.push_back(st);
  }
  auto t0 = Clock::now();
  model.decode(steps);
  timings.prefill_s = seconds_since(t0);

  t0 = Clock::now();
  std::vector<int> next(live.size());
  for (;;) {
    steps.clear();
    for (size_t r = 0; r < live.size(); ++r) {
      Live& s = live[r];
      if (s.done) continue;
      Result& res = *s.result;
      if (static_cast<int>(res.tokens.size()) >= s.max_new) {
        s.done = true;
        res.stop_reason = s.max_new < o.max_new_tokens ? "context" : "max_new_tokens";
        continue;
      }
      int tok = o.mode == DecodingMode::Sample
                    ? sample_token(s.logits.data(), V, o.temperature, o.top_k, o.top_p, s.rng)
                    : argmax(s.logits.data(), V);
      res.tokens.push_back(tok);
      res.logprobs.push_back(log_prob(s.logits.data(), V, tok));
      if (o.keep_step_logits) res.step_logits.insert(res.step_logits.end(), s.logits.begin(), s.logits.end());
      if (o.stop_at_eos && config.is_eos(tok)) {
        s.done = true;
        res.stop_reason = "eos";
        continue;
      }
      if (static_cast<int>(res.tokens.size()) >= s.max_new) {
        s.done = true;
        res.stop_reason = s.max_new < o.max_new_tokens ? "context" : "max_new_tokens";
        continue;
      }
      next[r] = tok;
      DecoderStep st;
      st.cache = &s.cache;
      st.ids = &next[r];
      st.count = 1;
      st.logits = s.logits.data();
      steps.push_back(st);
    }
    if (steps.empty()) break;
    model.decode(steps);
  }
  timings.decode_s = seconds_since(t0);
}

// Beam search with the sum of log-probs as the score (no length normalisation, as
// big_vision). Each step considers the 2 * beams best continuations of every beam (as
// transformers does); an <eos> continuation ranked among the best `beams` finishes a
// hypothesis, the best `beams` others stay alive. Search ends when the best finished score
// is at least the best alive score (scores only fall as tokens are added) or at the length
// limit; the answer is the best finished or alive hypothesis.
void run_beam(const Model& model, Prepared& prep, const GenerationOptions& o, Result& result,
              Timings& timings) {
  const int V = model.vocab_size();
  const ModelConfig& config = model.config();
  const int B = o.num_beams;
  const int L = static_cast<int>(prep.prompt_ids.size());
  struct Beam {
    KVCache cache;
    std::vector<int> tokens;
    std::vector<float> logprobs;
    std::vector<float> step_logits;
    float score = 0;
    std::vector<float> logits;
  };
  struct Hyp {
    std::vector<int> tokens;
    std::vector<float> logprobs;
    std::vector<float> step_logits;
    float score;
    bool eos;
  };
  std::vector<Beam> beams(1);
  beams[0].cache = model.new_cache(prep.capacity, L);
  beams[0].logits.resize(V);
  std::vector<DecoderStep> steps(1);
  steps[0].cache = &beams[0].cache;
  steps[0].ids = prep.prompt_ids.data();
  steps[0].count = L;
  steps[0].image_features = prep.features.empty() ? nullptr : prep.features.data();
  steps[0].image_rows = static_cast<int>(prep.features.size() / model.config().text.hidden_size);
  steps[0].logits = beams[0].logits.data();
  auto t0 = Clock::now();
  model.decode(steps);
  timings.prefill_s = seconds_since(t0);
  t0 = Clock::now();

  std::vector<Hyp> finished;
  std::vector<float> lp;
  struct Cand {
    float score;
    int beam;
    int token;
    float logprob;
  };
  for (int step = 0; step < prep.max_new; ++step) {
    std::vector<Cand> cands;
    for (int b = 0; b < static_cast<int>(beams.size()); ++b) {
      log_softmax(beams[b].logits.data(), V, lp);
      const int k = std::min(V, 2 * B);
      std::vector<int> idx(V);
      std::iota(idx.begin(), idx.end(), 0);
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                        [&](int a, int c) { return lp[a] > lp[c] || (lp[a] == lp[c] && a < c); });
      for (int i = 0; i < k; ++i) cands.push_back({beams[b].score + lp[idx[i]], b, idx[i], lp[idx[i]]});
    }
    std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& c) { return a.score > c.score; });
    // Pick the continuations first, then build the new beams: a parent's last surviving child
    // takes its KV cache by move; only siblings copy it.
    std::vector<const Cand*> chosen;
    for (size_t rank = 0; rank < cands.size() && static_cast<int>(chosen.size()) < B; ++rank) {
      const Cand& c = cands[rank];
      const Beam& parent = beams[c.beam];
      if (o.stop_at_eos && config.is_eos(c.token)) {
        if (static_cast<int>(rank) < B) {
          Hyp h{parent.tokens, parent.logprobs, parent.step_logits, c.score, true};
          h.tokens.push_back(c.token);
          h.logprobs.push_back(c.logprob);
          if (o.keep_step_logits) h.step_logits.insert(h.step_logits.end(), parent.logits.begin(), parent.logits.end());
          finished.push_back(std::move(h));
        }
        continue;
      }
      chosen.push_back(&c);
    }
    std::vector<int> children_left(beams.size(), 0);
    for (const Cand* c : chosen) children_left[c->beam]++;
    std::vector<Beam> next;
    for (const Cand* c : chosen) {
      Beam& parent = beams[c->beam];
      Beam nb;
      nb.tokens = parent.tokens;
      nb.tokens.push_back(c->token);
      nb.logprobs = parent.logprobs;
      nb.logprobs.push_back(c->logprob);
      if (o.keep_step_logits) {
        nb.step_logits = parent.step_logits;
        nb.step_logits.insert(nb.step_logits.end(), parent.logits.begin(), parent.logits.end());
      }
      nb.score = c->score;
      nb.logits.resize(V);
      if (--children_left[c->beam] == 0)
        nb.cache = std::move(parent.cache);
      else
        nb.cache = parent.cache;
      next.push_back(std::move(nb));
    }
    beams = std::move(next);
    float best_finished = -INFINITY;
    for (const Hyp& h : finished) best_finished = std::max(best_finished, h.score);
    if (beams.empty() || best_finished >= beams[0].score) break;
    if (step + 1 == prep.max_new) break;  // no room to extend: alive beams end here
    steps.clear();
    for (Beam& b : beams) {
      DecoderStep st;
      st.cache = &b.cache;
      st.ids = &b.tokens.back();
      st.count = 1;
      st.logits = b.logits.data();
      steps.push_back(st);
    }
    model.decode(steps);
  }
  for (Beam& b : beams) finished.push_back({b.tokens, b.logprobs, b.step_logits, b.score, false});
  // Best score; among equal scores the earliest found.
  const Hyp* best = nullptr;
  for (const Hyp& h : finished)
    if (!best || h.score > best->score) best = &h;
  result.tokens = best->tokens;
  result.logprobs = best->logprobs;
  result.step_logits = best->step_logits;
  result.stop_reason = best->eos ? "eos" : (prep.max_new < o.max_new_tokens ? "context" : "max_new_tokens");
  timings.decode_s = seconds_since(t0);
}


// One batch: `prepared[r]` belongs to `requests[r]`.
std::vector<Result> generate_chunk(const Model& model, std::span<const Request> requests,
                                   std::vector<Prepared> prepared, const GenerationOptions& options) {
  std::vector<Result> results(requests.size());
  Timings timings;
  auto t0 = Clock::now();
  encode_images(model, requests, prepared, timings);
  timings.image_encode_s = seconds_since(t0);
  for (size_t r = 0; r < requests.size(); ++r) timings.prompt_tokens += static_cast<int>(prepared[r].prompt_ids.size());

  if (options.mode == DecodingMode::Beam) {
    for (size_t r = 0; r < requests.size(); ++r) {
      Timings t;
      run_beam(model, prepared[r], options, results[r], t);
      timings.prefill_s += t.prefill_s;
      timings.decode_s += t.decode_s;
    }
  } else {
    run_greedy_or_sample(model, prepared, options, results, timings);
  }
  for (size_t r = 0; r < requests.size(); ++r) {
    Result& res = results[r];
    res.prompt_ids = prepared[r].prompt_ids;
    res.image_features = std::move(prepared[r].features);
    if (res.stop_reason.empty()) res.stop_reason = "max_new_tokens";
    finish_text(model, res);
    timings.generated_tokens += static_cast<int>(res.tokens.size());
  }
  for (auto& res : results) res.timings = timings;
  return results;
}

}  // namespace

std::vector<Result> generate(const Model& model, const std::vector<Request>& requests,
                             const GenerationOptions& options) {
  validate(model, requests, options);
  // Every request is checked (prompt, context) before any work is done.
  std::vector<Prepared> prepared;
  for (size_t r = 0; r < requests.size(); ++r) prepared.push_back(prepare(model, requests[r], options, r));
  // Requests run `batch_size` at a time, so a long batch file does not hold every KV cache at once.
  std::vector<Result> results;
  for (size_t first = 0; first < requests.size(); first += options.batch_size) {
    const size_t last = std::min(requests.size(), first + static_cast<size_t>(options.batch_size));
    std::vector<Prepared> chunk(std::make_move_iterator(prepared.begin() + first),
                                std::make_move_iterator(prepared.begin() + last));
    GenerationOptions o = options;
    o.seed = options.seed + first;  // request i keeps seed + i
    for (auto& r : generate_chunk(model, std::span(requests).subspan(first, last - first), std::move(chunk), o))
      results.push_back(std::move(r));
  }
  return results;
}

}  // namespace pg
