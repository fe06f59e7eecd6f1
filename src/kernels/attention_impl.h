#pragma once
// Internal interface between the attention dispatcher (attention.cpp: blocking, threads,
// split-key merge, scratch) and the ISA-specific tile kernels (attention_avx512.cpp,
// attention_avx2.cpp, both built from attention_tile.h). Plain structs and raw pointers only:
// the ISA files must not instantiate library templates (see attention_tile.h).
#include <cstddef>
#include <cstdint>

namespace pg::kernels::attn {

constexpr int kBlockKeys = 64;  // keys per key block (the S tile is kBlockKeys x rows)
constexpr int kRowAlign = 16;   // rows and head_dim are padded to this in the scratch buffers

inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

// One tile: the rows of one query block for the r q heads that share one kv head, against
// one key range. Row i of the tile is query position t = i / r, head h = i % r of the group.
struct Tile {
  const float* q = nullptr;  // row (t, h) at q + t * q_stride + h * head_dim
  int64_t q_stride = 0;
  int rows = 0;       // = positions * r
  int r = 1;          // q heads per kv head
  int head_dim = 0;
  const int* first = nullptr;  // [rows] per-row visible keys [first, last), within [key_lo, key_hi)
  const int* last = nullptr;
  int key_lo = 0, key_hi = 0;  // the keys this tile visits (the union of the rows' ranges)
  const void* k = nullptr;     // this kv head: key j at k + j * head_dim elements
  const void* v = nullptr;
  bool bf16 = false;  // k/v element type: bf16 (true) or f32
  float scale = 1.0f;
  float softcap = 0.0f;
  // Result: the normalised rows into out (row (t, h) at out + t * out_stride + h * head_dim), or,
  // when part_o is set, the unnormalised accumulator [rows][head_dim] with the running max and
  // sum per row (part_m, part_l) for the split-key merge.
  float* out = nullptr;
  int64_t out_stride = 0;
  float* part_o = nullptr;
  float* part_m = nullptr;
  float* part_l = nullptr;
};

// Per-thread scratch, 64-byte aligned, sizes from scratch_layout().
struct Scratch {
  float* qt;     // [head_dim][rows_p]  scaled queries, transposed (outer-product QK)
  float* qs;     // [rows_p][dim_p]     scaled queries, rows (dot-product QK for few rows)
  float* s;      // [kBlockKeys][rows_p] scores, then probabilities, transposed
  float* kf;     // [kBlockKeys][head_dim] widened keys (bf16 K)
  float* vf;     // [kBlockKeys][dim_p]  widened / padded values
  float* o;      // [rows_p][dim_p]      accumulator
  float* m;      // [rows_p] running max
  float* l;      // [rows_p] running sum
  float* alpha;  // [rows_p] per-block rescale
  int* first;    // [rows_p] (padding rows: empty)
  int* last;
};

// Floats of scratch for `rows` rows of head_dim, each buffer rounded up to 64 bytes.
size_t scratch_floats(int rows, int head_dim);
Scratch scratch_layout(float* base, int rows, int head_dim);  // base 64-byte aligned

void tile_avx512(const Tile& tile, const Scratch& scratch);
void tile_avx2(const Tile& tile, const Scratch& scratch);

// AMX path (attention_amx.cpp; Amx kernel path with Precision::BF16, many rows): tiles of up
// to kAmxRows rows (larger tiles are processed kAmxRows rows at a time), key blocks of
// kAmxBlockKeys keys. K and V of each kv head are first packed once per call into AMX "B"
// tile layouts (bf16, zero past kv_len and head_dim):
//   K: 16-key groups x 32-dim k-steps, tile (key / 16, kc) at ((key / 16) * Dk/32 + kc) * 512
//   V: 32-key chunks x 16-dim groups, tile (key / 32, dg) at ((key / 32) * Dv/16 + dg) * 512
// with Dk = head_dim rounded up to 32, Dv to 16. amx_pack_elems: uint16 per head for either.
// amx_pack_kv packs the 32-key chunks [c0, c1) of one head (k, v: that head's rows).
constexpr int kAmxRows = 64;
constexpr int kAmxBlockKeys = 128;
int64_t amx_pack_elems(int kv_len, int head_dim);
void amx_pack_kv(const void* k, const void* v, bool bf16, int kv_len, int head_dim, int c0, int c1, uint16_t* kpack,
                 uint16_t* vpack);
// The tile on AMX: t.k / t.v are unused, the head's packs are given instead. Uses its own
// per-thread scratch and configures the calling thread's tiles.
void tile_amx(const Tile& tile, const uint16_t* kpack, const uint16_t* vpack);
// Test hook: the AMX tile serves calls with at least this many query positions (default 16).
void set_amx_min_rows_for_testing(int rows);

// Test hooks for the vector exp / tanh of vector_math.h: y[i] = exp(x[i]), z[i] = tanh(x[i]).
void vector_math_avx512(const float* x, float* exp_out, float* tanh_out, int n);
void vector_math_avx2(const float* x, float* exp_out, float* tanh_out, int n);

}  // namespace pg::kernels::attn
