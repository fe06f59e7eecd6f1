#pragma once
// The compute backend: which instruction-set path the kernels take and in what precision the
// compute-bound matrix products run. Chosen once per process (the best the CPU offers, or
// what PG_KERNELS / PG_PRECISION or the CLI's --kernels / --precision ask for), so that every
// path can be forced and compared on one machine.
#include <string>

namespace pg {

enum class KernelPath {
  Reference,  // plain C++ loops, f32: the yardstick the others are tested against
  Avx2,       // AVX2 + FMA (+ OpenBLAS sgemm for many rows): any x86-64-v3 machine
  Avx512,     // AVX-512 F/BW/VL; AVX-512 BF16 dot products for many rows when present
  Amx         // AMX tiles (bf16) for many rows, AVX-512 for few rows
};

// How activations enter the matrix products:
//   F32:  f32 activations x widened weights everywhere; matches transformers in f32 to ~1e-5.
//   BF16: the fast mode, for CPUs with bf16 hardware (AVX-512 BF16 or AMX). Compute-bound
//         products (prefill, image encoding) round the activations to bf16 at each matmul
//         input and accumulate in f32 (as transformers' bf16 matmuls, with f32 between
//         them), about 10x faster. Decoding (few rows, bandwidth-bound) keeps f32
//         activations for float weights; for int8 / q4 weights on AVX-512 VNNI it rounds
//         them to int8 in blocks of 32 (ggml's Q8_0 grid), so the integer products keep up
//         with memory bandwidth.
enum class Precision { F32, BF16 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512_bf16 = false, avx512_vnni = false;
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;  // amx_* also need the OS to grant tile state
};

const CpuFeatures& cpu_features();
std::string cpu_features_string();  // "avx2 fma f16c avx512f ... amx-bf16"

const char* kernel_path_name(KernelPath path);  // "reference", "avx2", "avx512", "amx"
KernelPath parse_kernel_path(const std::string& name);  // throws pg::Error listing the choices
const char* precision_name(Precision precision);         // "f32", "bf16"
Precision parse_precision(const std::string& name);

bool kernel_path_supported(KernelPath path);
bool bf16_supported(KernelPath path);  // does this path have bf16 hardware products
KernelPath best_kernel_path();

// The active choice. Defaults: PG_KERNELS / PG_PRECISION from the environment if set, else
// the best path and BF16 where the path supports it (F32 otherwise).
KernelPath kernel_path();
Precision precision();
// Throws pg::Error if the CPU cannot run `path`, or BF16 is asked of a path without it.
void set_kernel_path(KernelPath path);
void set_precision(Precision precision);

// Threads for every parallel phase (OpenMP and OpenBLAS alike). 0: all cores.
void set_threads(int threads);
int threads();

}  // namespace pg
