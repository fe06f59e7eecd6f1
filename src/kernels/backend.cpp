// CPU feature detection (cpuid + xgetbv, and the Linux permission request AMX needs) and the
// process-wide choice of kernel path, precision and thread count.
#include "paligemma/backend.h"

#include <cblas.h>
#include <cpuid.h>
#include <omp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>

#include "paligemma/error.h"

namespace pg {
namespace {

constexpr long kArchReqXcompPerm = 0x1023;  // arch_prctl: ask for an XSAVE feature
constexpr long kXfeatureXtileData = 18;     // AMX tile data

uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  const bool fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xE6) == 0xE6;
  const bool tile_os = (xcr0 & (3ull << 17)) == (3ull << 17);
  if (!ymm_os) return f;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = b & (1u << 5);
  f.fma = fma;
  f.f16c = f16c;
  if (zmm_os) {
    f.avx512f = b & (1u << 16);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    f.avx512_vnni = c & (1u << 11);
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f.avx512_bf16 = a1 & (1u << 5);
  }
  if (tile_os) {
    const bool tile = d & (1u << 24), bf16 = d & (1u << 22), int8 = d & (1u << 25);
    // Linux keeps AMX state off until the process asks for it (kernel >= 5.16).
    if (tile && syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtileData) == 0) {
      f.amx_tile = true;
      f.amx_bf16 = bf16;
      f.amx_int8 = int8;
    }
  }
  return f;
}

KernelPath env_or_best_path() {
  const char* env = std::getenv("PG_KERNELS");
  if (env && *env) {
    KernelPath p = parse_kernel_path(env);
    if (!kernel_path_supported(p))
      throw Error(std::string("PG_KERNELS=") + env + ": this CPU cannot run that path (it has: " +
                  cpu_features_string() + ")");
    return p;
  }
  return best_kernel_path();
}

struct State {
  KernelPath path;
  Precision precision;
  int threads = 0;
};

State& state() {
  static State s = [] {
    State st;
    st.path = env_or_best_path();
    st.precision = bf16_supported(st.path) ? Precision::BF16 : Precision::F32;
    if (const char* env = std::getenv("PG_PRECISION"); env && *env) {
      st.precision = parse_precision(env);
      if (st.precision == Precision::BF16 && !bf16_supported(st.path))
        throw Error(std::string("PG_PRECISION=bf16: the ") + kernel_path_name(st.path) +
                    " kernel path has no bf16 products on this CPU");
    }
    return st;
  }();
  return s;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

std::string cpu_features_string() {
  const CpuFeatures& f = cpu_features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl");
  add(f.avx512_bf16, "avx512-bf16");
  add(f.avx512_vnni, "avx512-vnni");
  add(f.amx_tile, "amx-tile");
  add(f.amx_bf16, "amx-bf16");
  add(f.amx_int8, "amx-int8");
  return s.empty() ? "none" : s;
}

const char* kernel_path_name(KernelPath path) {
  switch (path) {
    case KernelPath::Reference: return "reference";
    case KernelPath::Avx2: return "avx2";
    case KernelPath::Avx512: return "avx512";
    case KernelPath::Amx: return "amx";
  }
  return "invalid";
}

KernelPath parse_kernel_path(const std::string& name) {
  for (KernelPath p : {KernelPath::Reference, KernelPath::Avx2, KernelPath::Avx512, KernelPath::Amx})
    if (name == kernel_path_name(p)) return p;
  throw Error("unknown kernel path \"" + name + "\" (choices: reference, avx2, avx512, amx)");
}

const char* precision_name(Precision precision) { return precision == Precision::BF16 ? "bf16" : "f32"; }

Precision parse_precision(const std::string& name) {
  if (name == "f32") return Precision::F32;
  if (name == "bf16") return Precision::BF16;
  throw Error("unknown precision \"" + name + "\" (choices: f32, bf16)");
}

bool kernel_path_supported(KernelPath path) {
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512vl;
  switch (path) {
    case KernelPath::Reference: return true;
    case KernelPath::Avx2: return avx2;
    case KernelPath::Avx512: return avx512;
    case KernelPath::Amx: return avx512 && f.amx_tile && f.amx_bf16;
  }
  return false;
}

bool bf16_supported(KernelPath path) {
  if (!kernel_path_supported(path)) return false;
  if (path == KernelPath::Amx) return true;
  if (path == KernelPath::Avx512) return cpu_features().avx512_bf16;
  return false;
}

KernelPath best_kernel_path() {
  for (KernelPath p : {KernelPath::Amx, KernelPath::Avx512, KernelPath::Avx2})
    if (kernel_path_supported(p)) return p;
  return KernelPath::Reference;
}

KernelPath kernel_path() { return state().path; }
Precision precision() { return state().precision; }

void set_kernel_path(KernelPath path) {
  if (!kernel_path_supported(path))
    throw Error(std::string("kernel path ") + kernel_path_name(path) + " is not supported by this CPU (it has: " +
                cpu_features_string() + ")");
  State& s = state();
  s.path = path;
  if (s.precision == Precision::BF16 && !bf16_supported(path)) s.precision = Precision::F32;
}

void set_precision(Precision p) {
  State& s = state();
  if (p == Precision::BF16 && !bf16_supported(s.path))
    throw Error(std::string("precision bf16 needs bf16 hardware products; the ") + kernel_path_name(s.path) +
                " path on this CPU has none (use --precision f32)");
  s.precision = p;
}

void set_threads(int n) {
  if (n < 0) throw Error("threads must be >= 0, got " + std::to_string(n));
  State& s = state();
  s.threads = n;
  const int count = n > 0 ? n : omp_get_num_procs();
  omp_set_num_threads(count);
  openblas_set_num_threads(count);
}

int threads() {
  const int n = state().threads;
  return n > 0 ? n : omp_get_num_procs();
}

}  // namespace pg
