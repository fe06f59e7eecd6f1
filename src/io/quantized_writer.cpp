// `paligemma quantize`: the streaming writer of docs/QUANTIZATION.md.
//
// The whole layout (shards, headers, offsets) is computed first from the source's dtypes and
// shapes; then each source tensor is read from the mapped checkpoint and written with pwrite
// at its place: float tensors copied in chunks, quantised matrices converted a bounded number
// of rows at a time (rows in parallel with OpenMP). Memory use is O(buffer_bytes), whatever
// the model size.
#include <fcntl.h>
#include <omp.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "kernels/quantize.h"
#include "paligemma/checkpoint.h"
#include "paligemma/config.h"
#include "paligemma/error.h"
#include "paligemma/quantize.h"

namespace pg {
namespace {

namespace fs = std::filesystem;

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}
bool contains(const std::string& s, const std::string& p) { return s.find(p) != std::string::npos; }

enum class Group { None, Vision, Text, Embedding };

// Which option decides a (canonical) tensor's type. Only 2-D ".weight" matrices of the
// attention / MLP linears, the projector, the embedding and lm_head are candidates.
Group group_of(const std::string& name, const TensorView& t) {
  if (t.shape.size() != 2 || !ends_with(name, ".weight")) return Group::None;
  if (starts_with(name, "vision_tower.vision_model.encoder.layers.") &&
      (contains(name, ".self_attn.") || contains(name, ".mlp.")))
    return Group::Vision;
  if (name == "multi_modal_projector.linear.weight") return Group::Vision;
  if (starts_with(name, "language_model.model.layers.") &&
      (contains(name, ".self_attn.") || contains(name, ".mlp.")))
    return Group::Text;
  if (name == "language_model.model.embed_tokens.weight" || name == "language_model.lm_head.weight")
    return Group::Embedding;
  return Group::None;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Data start and tensor alignment in the written shards (a cache line).
constexpr uint64_t kDataAlignment = 64;

int dtype_rank(DType d) {  // data order inside a shard: widest elements first (alignment)
  switch (d) {
    case DType::F32: return 0;
    case DType::BF16: return 1;
    case DType::F16: return 2;
    case DType::I8: return 3;
    case DType::U8: return 4;
  }
  return 5;
}

struct OutTensor {
  std::string name;  // as stored in the output (the source's spelling)
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;
  int shard = 0;
  uint64_t offset = 0;  // absolute file offset of the data
};

struct Job {
  const TensorView* src;  // canonical name in src->name
  std::string stored;
  QuantType type = QuantType::Keep;
  size_t data = 0;               // index into outs
  std::ptrdiff_t scale = -1;     // index into outs, quantised only
  uint64_t out_bytes = 0;
};

struct Shard {
  std::string file;  // final file name
  std::vector<size_t> tensors;
  std::string prefix;  // 8-byte length + padded header
  uint64_t data_bytes = 0;
};

std::string mb(uint64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  return buf;
}

void write_all(int fd, const void* data, uint64_t n, uint64_t offset, const std::string& path,
               const std::string& what) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1ull << 30));
    const ssize_t w = ::pwrite(fd, p, chunk, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      if (err == ENOSPC || err == EDQUOT)
        throw Error("cannot write " + path + " (" + what + "): disk full (" + std::strerror(err) + ")");
      throw Error("cannot write " + path + " (" + what + "): " + std::strerror(err));
    }
    if (w == 0) throw Error("cannot write " + path + " (" + what + "): write returned 0 bytes");
    p += w;
    n -= static_cast<uint64_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

// Removes the temporary files of an unfinished run.
struct TempFiles {
  std::vector<std::string> paths;
  bool committed = false;
  ~TempFiles() {
    if (committed) return;
    for (const auto& p : paths) {
      std::error_code ignored;
      fs::remove(p, ignored);
    }
  }
};

// Drops the whole pages of [p, p + n) of a read-only file mapping from this process's
// resident set once they are written out (the page cache keeps them; this only keeps RSS
// bounded when the source is much larger than memory).
void release_source(const void* p, uint64_t n) {
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool is_output_file(const std::string& name) {
  return name == "model.safetensors" || name == "model.safetensors.index.json" ||
         name == "quantization.json" || (starts_with(name, "model-") && ends_with(name, ".safetensors"));
}

}  // namespace

QuantizeSummary quantize_checkpoint(const std::string& src_dir, const std::string& out_dir,
                                    const QuantizeOptions& options,
                                    const QuantizeProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  if (out_dir.empty()) throw Error("quantize: no output directory given");
  if (options.max_shard_bytes == 0) throw Error("quantize: the shard size must be positive");

  // ---- the source ------------------------------------------------------------------------
  load_model_config(src_dir);  // a PaliGemma checkpoint? (clear errors before any work)
  Checkpoint ckpt = Checkpoint::open(src_dir);
  for (const std::string& name : ckpt.names()) {
    const TensorView& t = ckpt.get(name);
    if (t.dtype == DType::I8 || t.dtype == DType::U8 || ends_with(name, kQuantScaleSuffix))
      throw Error("checkpoint " + src_dir + " is already quantised (tensor " + ckpt.stored_name_of(name) +
                  " in " + ckpt.file_of(name) + " has dtype " + dtype_name(t.dtype) +
                  "); quantise the original float checkpoint");
  }

  // ---- the output directory --------------------------------------------------------------
  std::error_code ec;
  {
    fs::path src_abs = fs::weakly_canonical(fs::absolute(src_dir), ec);
    fs::path out_abs = fs::weakly_canonical(fs::absolute(out_dir), ec);
    if (!ec && src_abs == out_abs)
      throw Error("quantize: the output directory " + out_dir + " is the source model directory");
  }
  const fs::file_status st = fs::status(out_dir, ec);
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) throw Error("output " + out_dir + " exists and is not a directory");
    const bool empty = fs::directory_iterator(out_dir, ec) == fs::directory_iterator();
    if (ec) throw Error("cannot read output directory " + out_dir + ": " + ec.message());
    if (!empty && !options.force)
      throw Error("output directory " + out_dir +
                  " exists and is not empty (use --force to write into it anyway)");
  } else {
    fs::create_directories(out_dir, ec);
    if (ec) throw Error("cannot create output directory " + out_dir + ": " + ec.message());
  }
  if (::access(out_dir.c_str(), W_OK | X_OK) != 0)
    throw Error("output directory " + out_dir + " is not writable: " + std::strerror(errno));
  const fs::path out(out_dir);
  // An old quantization.json would mark a half-written output as complete.
  if (options.force) fs::remove(out / "quantization.json", ec);

  // ---- plan: jobs, output tensors, shards -------------------------------------------------
  std::vector<OutTensor> outs;
  std::vector<Job> jobs;
  std::map<Group, std::set<std::string>> kept_dtypes;
  QuantizeSummary summary;
  summary.out_dir = out_dir;
  for (const std::string& name : ckpt.names()) {
    const TensorView& t = ckpt.get(name);
    summary.source_bytes += t.nbytes();
    Job job;
    job.src = &t;
    job.stored = ckpt.stored_name_of(name);
    const Group g = group_of(name, t);
    switch (g) {
      case Group::Vision: job.type = options.vision; break;
      case Group::Text: job.type = options.text; break;
      case Group::Embedding: job.type = options.embedding; break;
      case Group::None: job.type = QuantType::Keep; break;
    }
    if (g != Group::None && job.type == QuantType::Keep) kept_dtypes[g].insert(lower(dtype_name(t.dtype)));
    const int64_t rows = t.shape.empty() ? 0 : t.shape[0];
    const int64_t cols = t.shape.size() == 2 ? t.shape[1] : 0;
    OutTensor d;
    d.name = job.stored;
    std::string key;
    if (job.type == QuantType::Keep) {
      d.dtype = t.dtype;
      d.shape = t.shape;
      d.nbytes = t.nbytes();
      key = dtype_name(t.dtype);
    } else {
      OutTensor s;
      s.name = job.stored + kQuantScaleSuffix;
      if (job.type == QuantType::Int8) {
        d.dtype = DType::I8;
        d.shape = {rows, cols};
        d.nbytes = static_cast<uint64_t>(rows) * cols;
        s.dtype = DType::F32;
        s.shape = {rows};
        s.nbytes = static_cast<uint64_t>(rows) * 4;
        key = "int8";
      } else {
        d.dtype = DType::U8;
        d.shape = {rows, kernels::q4_row_bytes(cols)};
        d.nbytes = static_cast<uint64_t>(rows) * kernels::q4_row_bytes(cols);
        s.dtype = DType::F16;
        s.shape = {rows, kernels::q4_blocks(cols)};
        s.nbytes = static_cast<uint64_t>(rows) * kernels::q4_blocks(cols) * 2;
        key = "q4";
      }
      job.scale = static_cast<std::ptrdiff_t>(outs.size() + 1);
      job.out_bytes += s.nbytes;
      outs.push_back(d);
      outs.push_back(s);
      job.data = outs.size() - 2;
      job.out_bytes += d.nbytes;
      summary.tensors[key] += 1;
      summary.bytes[key] += job.out_bytes;
      jobs.push_back(std::move(job));
      continue;
    }
    job.data = outs.size();
    job.out_bytes = d.nbytes;
    outs.push_back(d);
    summary.tensors[key] += 1;
    summary.bytes[key] += job.out_bytes;
    jobs.push_back(std::move(job));
  }

  // Shards: source tensors in canonical order, a matrix and its scale always together.
  std::vector<Shard> shards(1);
  for (const Job& job : jobs) {
    if (shards.back().data_bytes > 0 && shards.back().data_bytes + job.out_bytes > options.max_shard_bytes)
      shards.emplace_back();
    Shard& sh = shards.back();
    sh.tensors.push_back(job.data);
    if (job.scale >= 0) sh.tensors.push_back(static_cast<size_t>(job.scale));
    sh.data_bytes += job.out_bytes;
  }
  const int n_shards = static_cast<int>(shards.size());

  auto group_choice = [&](Group g, QuantType type) -> std::string {
    if (type != QuantType::Keep) return quant_type_name(type);
    std::string s;
    for (const auto& d : kept_dtypes[g]) s += (s.empty() ? "" : "+") + d;
    return s.empty() ? "keep" : s;
  };
  const std::string text_choice = group_choice(Group::Text, options.text);
  const std::string vision_choice = group_choice(Group::Vision, options.vision);
  const std::string embedding_choice = group_choice(Group::Embedding, options.embedding);

  uint64_t total_bytes = 0;
  for (int si = 0; si < n_shards; ++si) {
    Shard& sh = shards[si];
    char name[64];
    if (n_shards == 1) std::snprintf(name, sizeof name, "model.safetensors");
    else std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", si + 1, n_shards);
    sh.file = name;
    // Tensors whose size is a whole number of cache lines first, after a header padded to
    // one: they all start cache-line aligned, so the AMX kernels read bf16 rows in place
    // (a misaligned matrix is copied per block, ~12% slower). Then the rest, widest
    // elements first, so each stays aligned to its element size.
    std::stable_sort(sh.tensors.begin(), sh.tensors.end(), [&](size_t a, size_t b) {
      const bool la = outs[a].nbytes % kDataAlignment == 0, lb = outs[b].nbytes % kDataAlignment == 0;
      if (la != lb) return la;
      const int ra = dtype_rank(outs[a].dtype), rb = dtype_rank(outs[b].dtype);
      if (ra != rb) return ra < rb;
      return outs[a].name < outs[b].name;
    });
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    header["__metadata__"] = {{"format", "pt"},
                              {"paligemma.quantized.format", kQuantizedFormatName},
                              {"paligemma.quantized.version", std::to_string(kQuantizedFormatVersion)},
                              {"paligemma.quantized.text", text_choice},
                              {"paligemma.quantized.vision", vision_choice},
                              {"paligemma.quantized.embedding", embedding_choice}};
    uint64_t off = 0;
    for (size_t i : sh.tensors) {
      OutTensor& o = outs[i];
      o.shard = si;
      o.offset = off;  // relative for now
      header[o.name] = {{"dtype", dtype_name(o.dtype)}, {"shape", o.shape}, {"data_offsets", {off, off + o.nbytes}}};
      off += o.nbytes;
    }
    std::string text = header.dump();
    text.append((kDataAlignment - (8 + text.size()) % kDataAlignment) % kDataAlignment, ' ');
    const uint64_t n = text.size();
    for (int b = 0; b < 8; ++b) sh.prefix.push_back(static_cast<char>((n >> (8 * b)) & 0xFF));
    sh.prefix += text;
    for (size_t i : sh.tensors) outs[i].offset += sh.prefix.size();
    total_bytes += sh.data_bytes;
  }
  summary.total_bytes = total_bytes;
  summary.shards = n_shards;

  // Enough space? (Files this run replaces count as free.)
  {
    uint64_t need = total_bytes;
    for (const Shard& sh : shards) need += sh.prefix.size();
    uint64_t replaced = 0;
    for (const auto& e : fs::directory_iterator(out_dir, ec))
      if (e.is_regular_file() && is_output_file(e.path().filename().string())) replaced += e.file_size();
    struct statvfs vfs;
    if (::statvfs(out_dir.c_str(), &vfs) == 0) {
      const uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize + replaced;
      if (avail < need)
        throw Error("not enough disk space in " + out_dir + ": the quantised model needs " + mb(need) +
                    ", " + mb(avail) + " available");
    }
  }

  // ---- write ------------------------------------------------------------------------------
  TempFiles temps;
  std::vector<Fd> fds(n_shards);
  std::vector<std::string> tmp_paths(n_shards);
  for (int si = 0; si < n_shards; ++si) {
    tmp_paths[si] = (out / (shards[si].file + ".tmp")).string();
    fds[si].fd = ::open(tmp_paths[si].c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fds[si].fd < 0) throw Error("cannot create " + tmp_paths[si] + ": " + std::strerror(errno));
    temps.paths.push_back(tmp_paths[si]);
    const uint64_t size = shards[si].prefix.size() + shards[si].data_bytes;
    // Reserve the space now (a full disk fails here, not hours later). fallocate, not
    // posix_fallocate: where the filesystem cannot, skip it rather than write zeros.
    const int rc = ::fallocate(fds[si].fd, 0, 0, static_cast<off_t>(size)) == 0 ? 0 : errno;
    if (rc == ENOSPC || rc == EDQUOT)
      throw Error("cannot write " + tmp_paths[si] + ": disk full (need " + mb(size) + " for this shard)");
    write_all(fds[si].fd, shards[si].prefix.data(), shards[si].prefix.size(), 0, tmp_paths[si], "header");
  }

  const int threads = options.threads > 0 ? options.threads : omp_get_max_threads();
  const uint64_t buffer_bytes = std::max<uint64_t>(options.buffer_bytes, 1 << 16);
  std::vector<uint8_t> qbuf, sbuf, bad;
  uint64_t done = 0;
  auto report = [&](size_t index, const std::string& name, bool finished) {
    if (!progress) return;
    QuantizeProgress p;
    p.tensor_index = index;
    p.tensor_count = jobs.size();
    p.tensor = name;
    p.bytes_done = done;
    p.bytes_total = total_bytes;
    p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    p.finished = finished;
    progress(p);
  };

  for (size_t ji = 0; ji < jobs.size(); ++ji) {
    const Job& job = jobs[ji];
    const TensorView& t = *job.src;
    const OutTensor& d = outs[job.data];
    const int fd = fds[d.shard].fd;
    const std::string& path = tmp_paths[d.shard];
    report(ji + 1, job.stored, false);
    if (job.type == QuantType::Keep) {
      const uint8_t* p = static_cast<const uint8_t*>(t.data);
      for (uint64_t o = 0; o < d.nbytes; o += buffer_bytes) {
        const uint64_t n = std::min<uint64_t>(buffer_bytes, d.nbytes - o);
        write_all(fd, p + o, n, d.offset + o, path, "tensor " + d.name);
        release_source(p + o, n);
        done += n;
        if (o + n < d.nbytes) report(ji + 1, job.stored, false);
      }
      continue;
    }
    const OutTensor& s = outs[static_cast<size_t>(job.scale)];
    const int64_t rows = t.shape[0], cols = t.shape[1];
    const bool int8 = job.type == QuantType::Int8;
    const int64_t q_row = int8 ? cols : kernels::q4_row_bytes(cols);
    const int64_t s_row = int8 ? 4 : kernels::q4_blocks(cols) * 2;
    const int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>(buffer_bytes / (static_cast<uint64_t>(cols) * 4 + 1)));
    qbuf.resize(static_cast<size_t>(std::min(chunk, rows) * q_row));
    sbuf.resize(static_cast<size_t>(std::min(chunk, rows) * s_row));
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
      const int64_t nr = std::min(chunk, rows - r0);
      bad.assign(static_cast<size_t>(nr), 0);
#pragma omp parallel num_threads(threads)
      {
        std::vector<float> row(static_cast<size_t>(cols));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < nr; ++r) {
          convert_to_f32(t.dtype, t.data, static_cast<size_t>((r0 + r) * cols), static_cast<size_t>(cols), row.data());
          bool ok = true;
          for (int64_t k = 0; k < cols; ++k) ok = ok && std::isfinite(row[k]);
          bad[r] = !ok;
          if (int8)
            kernels::quantize_row_int8(row.data(), cols, reinterpret_cast<int8_t*>(qbuf.data() + r * q_row),
                                       reinterpret_cast<float*>(sbuf.data() + r * s_row));
          else
            kernels::quantize_row_q4(row.data(), cols, qbuf.data() + r * q_row,
                                     reinterpret_cast<uint16_t*>(sbuf.data() + r * s_row));
        }
      }
      // A non-finite scale would make whole rows / blocks NaN: an inf or NaN weight (int8), or
      // for q4 also |w| > 8 * 65504, where the f16 block scale overflows.
      for (int64_t r = 0; r < nr; ++r) {
        bool finite = !bad[r];
        if (!finite) {
        } else if (int8) {
          finite = std::isfinite(*reinterpret_cast<const float*>(sbuf.data() + r * s_row));
        } else {
          const uint16_t* sc = reinterpret_cast<const uint16_t*>(sbuf.data() + r * s_row);
          for (int64_t b = 0; b < s_row / 2; ++b) finite = finite && (sc[b] & 0x7C00) != 0x7C00;
        }
        if (!finite)
          throw Error("cannot quantise tensor " + job.stored + " of " + ckpt.file_of(t.name) + " to " +
                      quant_type_name(job.type) + ": row " + std::to_string(r0 + r) +
                      (int8 ? " has an inf or NaN weight" : " has an inf or NaN weight, or one beyond q4's range (|w| > 524032)"));
      }
      write_all(fd, qbuf.data(), static_cast<uint64_t>(nr * q_row), d.offset + static_cast<uint64_t>(r0 * q_row), path,
                "tensor " + d.name);
      write_all(fds[s.shard].fd, sbuf.data(), static_cast<uint64_t>(nr * s_row),
                s.offset + static_cast<uint64_t>(r0 * s_row), tmp_paths[s.shard], "tensor " + s.name);
      const size_t esize = dtype_size(t.dtype);
      release_source(static_cast<const uint8_t*>(t.data) + r0 * cols * esize, static_cast<uint64_t>(nr * cols * esize));
      done += static_cast<uint64_t>(nr * (q_row + s_row));
      if (r0 + nr < rows) report(ji + 1, job.stored, false);
    }
  }
  for (int si = 0; si < n_shards; ++si) {
    if (::fsync(fds[si].fd) != 0 && errno != EINVAL)
      throw Error("cannot write " + tmp_paths[si] + " (sync): " + std::strerror(errno));
    const int fd = fds[si].fd;
    fds[si].fd = -1;
    if (::close(fd) != 0) throw Error("cannot write " + tmp_paths[si] + " (close): " + std::strerror(errno));
  }

  // ---- small files ------------------------------------------------------------------------
  auto write_text = [&](const std::string& file, const std::string& text) {
    const std::string tmp = (out / (file + ".tmp")).string();
    temps.paths.push_back(tmp);
    Fd f;
    f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f.fd < 0) throw Error("cannot create " + tmp + ": " + std::strerror(errno));
    write_all(f.fd, text.data(), text.size(), 0, tmp, file);
    const int fd = f.fd;
    f.fd = -1;
    if (::close(fd) != 0) throw Error("cannot write " + tmp + " (close): " + std::strerror(errno));
  };
  std::vector<std::string> finals;  // file names, renamed from NAME.tmp in this order
  for (const Shard& sh : shards) finals.push_back(sh.file);
  if (n_shards > 1) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", total_bytes},
                         {"paligemma.quantized.format", kQuantizedFormatName},
                         {"paligemma.quantized.version", std::to_string(kQuantizedFormatVersion)}};
    nlohmann::ordered_json map = nlohmann::ordered_json::object();
    std::vector<size_t> order(outs.size());
    for (size_t i = 0; i < outs.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return outs[a].name < outs[b].name; });
    for (size_t i : order) map[outs[i].name] = shards[outs[i].shard].file;
    index["weight_map"] = std::move(map);
    write_text("model.safetensors.index.json", index.dump(2) + "\n");
    finals.push_back("model.safetensors.index.json");
  }
  // config.json and tokenizer files, unchanged (symbolic links are followed).
  for (const char* file : {"config.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                           "special_tokens_map.json", "preprocessor_config.json", "generation_config.json"}) {
    const fs::path from = fs::path(src_dir) / file;
    if (!fs::exists(from, ec)) continue;
    const std::string tmp = (out / (std::string(file) + ".tmp")).string();
    temps.paths.push_back(tmp);
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
    if (ec) throw Error("cannot copy " + from.string() + " to " + tmp + ": " + ec.message());
    finals.push_back(file);
  }

  nlohmann::ordered_json manifest;
  manifest["format"] = kQuantizedFormatName;
  manifest["version"] = kQuantizedFormatVersion;
  manifest["text"] = text_choice;
  manifest["vision"] = vision_choice;
  manifest["embedding"] = embedding_choice;
  manifest["source"] = fs::absolute(src_dir, ec).lexically_normal().string();
  manifest["q4_block_size"] = kernels::kQ4Block;
  manifest["shards"] = n_shards;
  manifest["total_bytes"] = total_bytes;
  manifest["source_bytes"] = summary.source_bytes;
  nlohmann::ordered_json types = nlohmann::ordered_json::object();
  for (const auto& [key, count] : summary.tensors) types[key] = {{"tensors", count}, {"bytes", summary.bytes[key]}};
  manifest["tensors"] = std::move(types);
  write_text("quantization.json", manifest.dump(2) + "\n");
  finals.push_back("quantization.json");  // last: marks the output complete

  // Stale outputs of an earlier run in the same directory (--force) would confuse the loader.
  const std::set<std::string> keep(finals.begin(), finals.end());
  for (const auto& e : fs::directory_iterator(out_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (is_output_file(n) && !keep.count(n)) fs::remove(e.path(), ec);
  }
  for (const std::string& f : finals) {
    const fs::path from = out / (f + ".tmp"), to = out / f;
    fs::rename(from, to, ec);
    if (ec) throw Error("cannot rename " + from.string() + " to " + to.string() + ": " + ec.message());
  }
  temps.committed = true;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report(jobs.size(), "", true);
  return summary;
}

}  // namespace pg
