// .npy reading (numpy-made fixtures from tools/golden/make_npy_fixtures.py, and hand-built
// bad files) and writing (round trips; the written bytes are what numpy itself writes).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "paligemma/error.h"
#include "paligemma/npy.h"
#include "test_util.h"

using pg::test::error_of;

namespace {

std::string npy_fixture(const std::string& name) { return pg::test::fixture("npy/" + name); }

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A version-1.0 .npy image with the given header dict text and data bytes.
std::string npy_v1(const std::string& dict, const std::string& data) {
  std::string h = dict;
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(h.size() & 0xFF);
  out += static_cast<char>(h.size() >> 8);
  return out + h + data;
}


}  // namespace

TEST(Npy, ReadsEveryNumpyDtype) {
  for (const char* code : {"f4", "f8", "f2"}) {
    pg::NpyArray a = pg::read_npy(npy_fixture(std::string(code) + ".npy"));
    EXPECT_EQ(a.dtype, code);
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(a.numel(), 6);
    EXPECT_EQ(a.as_f32(), (std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f})) << code;
    EXPECT_THROW(a.as_i64(), pg::Error) << code;
  }
  for (const char* code : {"i8", "i4", "i2", "i1"}) {
    pg::NpyArray a = pg::read_npy(npy_fixture(std::string(code) + ".npy"));
    EXPECT_EQ(a.dtype, code);
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(a.as_i64(), (std::vector<int64_t>{-3, -2, -1, 0, 1, 2})) << code;
    EXPECT_EQ(a.as_f32(), (std::vector<float>{-3, -2, -1, 0, 1, 2})) << code;
  }
  for (const char* code : {"u1", "u2", "u4", "u8"}) {
    pg::NpyArray a = pg::read_npy(npy_fixture(std::string(code) + ".npy"));
    EXPECT_EQ(a.dtype, code);
    EXPECT_EQ(a.as_i64(), (std::vector<int64_t>{0, 1, 2, 3, 4, 5})) << code;
    EXPECT_EQ(a.as_f32(), (std::vector<float>{0, 1, 2, 3, 4, 5})) << code;
  }
  pg::NpyArray b = pg::read_npy(npy_fixture("b1.npy"));
  EXPECT_EQ(b.dtype, "b1");
  EXPECT_EQ(b.as_i64(), (std::vector<int64_t>{1, 0, 1, 0, 0, 1}));
  EXPECT_EQ(b.as_f32(), (std::vector<float>{1, 0, 1, 0, 0, 1}));
}

TEST(Npy, ReadsExtremesExactly) {
  pg::NpyArray a = pg::read_npy(npy_fixture("i8_extremes.npy"));
  EXPECT_EQ(a.as_i64(), (std::vector<int64_t>{std::numeric_limits<int64_t>::min(), -1, 0, 1,
                                              std::numeric_limits<int64_t>::max()}));
  pg::NpyArray h = pg::read_npy(npy_fixture("f2_special.npy"));
  std::vector<float> v = h.as_f32();
  ASSERT_EQ(v.size(), 7u);
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_TRUE(std::signbit(v[1]));
  EXPECT_EQ(v[2], std::ldexp(1.0f, -14));
  EXPECT_EQ(v[3], std::ldexp(1.0f, -24));
  EXPECT_EQ(v[4], 65504.0f);
  EXPECT_EQ(v[5], INFINITY);
  EXPECT_EQ(v[6], -INFINITY);
}

TEST(Npy, ReadsHeaderVersions2And3) {
  for (const char* name : {"f4_v2.npy", "f4_v3.npy"}) {
    std::string raw = read_bytes(npy_fixture(name));
    ASSERT_GE(raw.size(), 8u);
    EXPECT_EQ(raw[6], name[4] == '2' ? 2 : 3) << "fixture is not the version it claims";
    pg::NpyArray a = pg::read_npy(npy_fixture(name));
    EXPECT_EQ(a.shape, (std::vector<int64_t>{4}));
    EXPECT_EQ(a.as_f32(), (std::vector<float>{0, 1, 2, 3}));
  }
}

TEST(Npy, ReadsScalarsVectorsEmptyAndRank3) {
  pg::NpyArray s = pg::read_npy(npy_fixture("scalar.npy"));
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.as_f32(), (std::vector<float>{3.5f}));
  pg::NpyArray v = pg::read_npy(npy_fixture("vector.npy"));
  EXPECT_EQ(v.shape, (std::vector<int64_t>{5}));
  pg::NpyArray e = pg::read_npy(npy_fixture("empty.npy"));
  EXPECT_EQ(e.shape, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(e.numel(), 0);
  EXPECT_TRUE(e.as_f32().empty());
  pg::NpyArray r = pg::read_npy(npy_fixture("rank3.npy"));
  EXPECT_EQ(r.shape, (std::vector<int64_t>{2, 3, 4}));
  std::vector<float> rv = r.as_f32();
  for (int i = 0; i < 24; ++i) EXPECT_EQ(rv[i], static_cast<float>(i));
}

TEST(Npy, RefusesFortranOrderBigEndianAndComplex) {
  std::string msg = error_of([] { pg::read_npy(npy_fixture("fortran.npy")); });
  EXPECT_NE(msg.find("fortran.npy"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Fortran-order"), std::string::npos) << msg;
  msg = error_of([] { pg::read_npy(npy_fixture("big_endian.npy")); });
  EXPECT_NE(msg.find("big_endian.npy"), std::string::npos) << msg;
  EXPECT_NE(msg.find("big-endian"), std::string::npos) << msg;
  EXPECT_NE(msg.find(">f4"), std::string::npos) << msg;
  msg = error_of([] { pg::read_npy(npy_fixture("complex.npy")); });
  EXPECT_NE(msg.find("unsupported .npy dtype '<c8'"), std::string::npos) << msg;
}

TEST(Npy, BadMagicAndTruncation) {
  pg::test::TempDir dir;
  const std::string path = dir.file("bad.npy");

  write_bytes(path, "PK\x03\x04 this is a zip");
  std::string msg = error_of([&] { pg::read_npy(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("magic"), std::string::npos) << msg;

  write_bytes(path, "");
  msg = error_of([&] { pg::read_npy(path); });
  EXPECT_NE(msg.find("magic"), std::string::npos) << msg;

  write_bytes(path, std::string("\x93NUMPY\x01\x00\x05", 9));  // length field cut short
  msg = error_of([&] { pg::read_npy(path); });
  EXPECT_NE(msg.find(path + " is truncated"), std::string::npos) << msg;

  write_bytes(path, std::string("\x93NUMPY\x01\x00\x40\x00{'descr'", 18));  // header cut
  msg = error_of([&] { pg::read_npy(path); });
  EXPECT_NE(msg.find("header claims 64 bytes"), std::string::npos) << msg;

  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  write_bytes(path, npy_v1(dict, std::string(20, '\0')));  // needs 24 data bytes
  msg = error_of([&] { pg::read_npy(path); });
  EXPECT_NE(msg.find(path + " is truncated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs 24 data bytes but only 20"), std::string::npos) << msg;

  write_bytes(path, std::string("\x93NUMPY\x04\x00\x00\x00", 10));
  msg = error_of([&] { pg::read_npy(path); });
  EXPECT_NE(msg.find("unsupported .npy format version 4.0"), std::string::npos) << msg;

  msg = error_of([&] { pg::read_npy(dir.file("missing.npy")); });
  EXPECT_NE(msg.find("cannot open " + dir.file("missing.npy")), std::string::npos) << msg;
}

TEST(Npy, MalformedHeaders) {
  pg::test::TempDir dir;
  const std::string path = dir.file("h.npy");
  const std::string data(24, '\0');
  struct Case {
    const char* dict;
    const char* expect;
  } cases[] = {
      {"{'descr': '<f4', 'shape': (2, 3), }", "lacks 'fortran_order'"},
      {"{'fortran_order': False, 'shape': (2, 3), }", "lacks 'descr'"},
      {"{'descr': '<f4', 'fortran_order': False, }", "lacks 'shape'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", "negative dimension"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", "malformed .npy header"},
      {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", "structured"},
      {"{'descr': '<U4', 'fortran_order': False, 'shape': (2,), }", "unsupported .npy dtype"},
      {"not a dict", "malformed .npy header"},
  };
  for (const Case& c : cases) {
    write_bytes(path, npy_v1(c.dict, data));
    std::string msg = error_of([&] { pg::read_npy(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << c.dict << " -> " << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.dict << " -> " << msg;
  }
  // Hand-written headers that numpy also accepts: double quotes, no trailing comma, '=' order.
  write_bytes(path, npy_v1("{\"descr\": \"=f4\", \"fortran_order\": False, \"shape\": (2,3)}", data));
  pg::NpyArray a = pg::read_npy(path);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  // Bytes after the array (e.g. a second array in the same stream) are ignored.
  write_bytes(path, npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                           data + "extra"));
  EXPECT_EQ(pg::read_npy(path).bytes.size(), 24u);
}

TEST(Npy, WriteRoundTripsAndMatchesNumpyBytes) {
  pg::test::TempDir dir;
  // Same array numpy saved as f4.npy / i8.npy / u1.npy: our bytes must be identical.
  const std::vector<float> f = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
  pg::write_npy(dir.file("f4.npy"), f.data(), {2, 3});
  EXPECT_EQ(read_bytes(dir.file("f4.npy")), read_bytes(npy_fixture("f4.npy")));
  const std::vector<int64_t> i = {-3, -2, -1, 0, 1, 2};
  pg::write_npy(dir.file("i8.npy"), i.data(), {2, 3});
  EXPECT_EQ(read_bytes(dir.file("i8.npy")), read_bytes(npy_fixture("i8.npy")));
  const std::vector<uint8_t> u = {0, 1, 2, 3, 4, 5};
  pg::write_npy(dir.file("u1.npy"), u.data(), {2, 3});
  EXPECT_EQ(read_bytes(dir.file("u1.npy")), read_bytes(npy_fixture("u1.npy")));
  const std::vector<float> five = {0, 1, 2, 3, 4};
  pg::write_npy(dir.file("vector.npy"), five.data(), {5});
  EXPECT_EQ(read_bytes(dir.file("vector.npy")), read_bytes(npy_fixture("vector.npy")));
  const float scalar = 3.5f;
  pg::write_npy(dir.file("scalar.npy"), &scalar, {});
  EXPECT_EQ(read_bytes(dir.file("scalar.npy")), read_bytes(npy_fixture("scalar.npy")));
  pg::write_npy(dir.file("empty.npy"), static_cast<const float*>(nullptr), {0, 3});
  EXPECT_EQ(read_bytes(dir.file("empty.npy")), read_bytes(npy_fixture("empty.npy")));

  // Round trip of a larger array with awkward values.
  std::vector<float> big(3 * 5 * 7);
  for (size_t k = 0; k < big.size(); ++k) big[k] = std::sin(static_cast<float>(k)) * 1e-3f;
  big[3] = -0.0f;
  big[4] = INFINITY;
  pg::write_npy(dir.file("big.npy"), big.data(), {3, 5, 7});
  pg::NpyArray back = pg::read_npy(dir.file("big.npy"));
  EXPECT_EQ(back.dtype, "f4");
  EXPECT_EQ(back.shape, (std::vector<int64_t>{3, 5, 7}));
  std::vector<float> bv = back.as_f32();
  ASSERT_EQ(bv.size(), big.size());
  EXPECT_EQ(std::memcmp(bv.data(), big.data(), big.size() * 4), 0);

  std::vector<int64_t> ids = {2, 106, 256000, -1, std::numeric_limits<int64_t>::max()};
  pg::write_npy(dir.file("ids.npy"), ids.data(), {1, 5});
  EXPECT_EQ(pg::read_npy(dir.file("ids.npy")).as_i64(), ids);

  // Data starts 64-byte aligned, as numpy writes it.
  std::string raw = read_bytes(dir.file("big.npy"));
  size_t header_len = static_cast<uint8_t>(raw[8]) | (static_cast<uint8_t>(raw[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_EQ(raw[10 + header_len - 1], '\n');
}

TEST(Npy, WriteErrorsNameTheFile) {
  const float x = 1.0f;
  std::string msg = error_of([&] { pg::write_npy("/nonexistent-dir/x.npy", &x, {1}); });
  EXPECT_NE(msg.find("/nonexistent-dir/x.npy"), std::string::npos) << msg;
  msg = error_of([&] { pg::write_npy("/tmp/never.npy", &x, {-1}); });
  EXPECT_NE(msg.find("negative dimension"), std::string::npos) << msg;
}
