// .npz reading through libzip: numpy-made stored (np.savez) and deflated (np.savez_compressed)
// archives from tools/golden/make_vae_golden.py, and malformed ones.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "paligemma/error.h"
#include "paligemma/npy.h"
#include "paligemma/npz.h"
#include "test_util.h"

using pg::test::error_of;

namespace {

std::string vae(const std::string& name) { return pg::test::fixture("vae/" + name); }

TEST(Npz, StoredAndDeflatedHoldTheSameArrays) {
  const pg::Npz a = pg::Npz::read(vae("vae_stored.npz"));
  const pg::Npz b = pg::Npz::read(vae("vae_deflated.npz"));
  ASSERT_EQ(a.keys(), b.keys());
  EXPECT_TRUE(a.contains("_vq_vae._embedding"));
  EXPECT_TRUE(a.contains("decoder.2.net.0.weight"));
  EXPECT_FALSE(a.contains("_vq_vae._embedding.npy"));
  for (const std::string& k : a.keys()) {
    EXPECT_EQ(a.get(k).shape, b.get(k).shape) << k;
    EXPECT_EQ(a.get(k).dtype, "f4") << k;
    EXPECT_EQ(a.get(k).bytes, b.get(k).bytes) << k;
  }
  EXPECT_EQ(a.get("_vq_vae._embedding").shape, (std::vector<int64_t>{128, 16}));
}

TEST(Npz, MixedDtypesAndNonNpyMembers) {
  const pg::Npz z = pg::Npz::read(vae("mixed.npz"));
  EXPECT_EQ(z.keys(), (std::vector<std::string>{"a", "b", "c.d", "s"}));  // notes.txt ignored
  EXPECT_EQ(z.get("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(z.get("a").as_i64(), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(z.get("b").as_f32(), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(z.get("c.d").shape, (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(z.get("c.d").numel(), 0);
  EXPECT_TRUE(z.get("s").shape.empty());
  EXPECT_EQ(z.get("s").as_i64(), (std::vector<int64_t>{3}));
}

TEST(Npz, BadInputsNameTheFile) {
  const std::string missing = vae("no_such_file.npz");
  EXPECT_EQ(error_of([&] { pg::Npz::read(missing); }), "cannot open " + missing + ": No such file or directory");
  const std::string notzip = vae("not_a_zip.npz");
  std::string e = error_of([&] { pg::Npz::read(notzip); });
  EXPECT_EQ(e.rfind(notzip + " is not a .npz file (not a valid zip archive", 0), 0u) << e;
  e = error_of([&] { pg::Npz::read(pg::test::fixtures_dir()); });
  EXPECT_NE(e.find("is a directory"), std::string::npos) << e;
  const std::string member = vae("bad_member.npz");
  e = error_of([&] { pg::Npz::read(member); });
  EXPECT_EQ(e.rfind(member + ":x.npy is not a .npy file", 0), 0u) << e;
  const pg::Npz z = pg::Npz::read(vae("mixed.npz"));
  EXPECT_EQ(error_of([&] { z.get("zz"); }), vae("mixed.npz") + " has no array 'zz'");
}

TEST(Npz, TruncatedArchive) {
  pg::test::TempDir t;
  std::ifstream in(vae("vae_deflated.npz"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const std::string p = t.file("cut.npz");
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  const std::string e = error_of([&] { pg::Npz::read(p); });
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(e, "<no error>");
}

TEST(Npz, ParseNpyFromMemoryMatchesReadNpy) {
  pg::test::TempDir t;
  const float v[3] = {1.0f, 2.5f, -3.0f};
  pg::write_npy(t.file("a.npy"), v, {3});
  std::ifstream in(t.file("a.npy"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const pg::NpyArray a = pg::parse_npy(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem");
  const pg::NpyArray b = pg::read_npy(t.file("a.npy"));
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(error_of([] { pg::parse_npy(reinterpret_cast<const uint8_t*>("abc"), 3, "mem"); }),
            "mem is not a .npy file (it does not start with the \\x93NUMPY magic)");
}

}  // namespace

TEST(Npz, WriteRoundTripsThroughRead) {
  pg::test::TempDir dir;
  const std::vector<float> f = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1e-3f};
  const std::vector<int64_t> i = {-3, 1LL << 40};
  pg::NpyArray u8;
  u8.shape = {3};
  u8.dtype = "u1";
  u8.bytes = {0, 128, 255};
  const std::string path = dir.file("w.npz");
  pg::write_npz(path, {{"decoder.0.weight", pg::npy_array_f32({2, 3}, f.data())},
                       {"meta", pg::npy_array_i64({2}, i.data())},
                       {"bytes", u8},
                       {"empty", pg::npy_array_f32({0, 4}, nullptr)}});
  const pg::Npz z = pg::Npz::read(path);
  EXPECT_EQ(z.keys(), (std::vector<std::string>{"bytes", "decoder.0.weight", "empty", "meta"}));
  EXPECT_EQ(z.get("decoder.0.weight").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(z.get("decoder.0.weight").as_f32(), f);
  EXPECT_EQ(z.get("meta").as_i64(), i);
  EXPECT_EQ(z.get("bytes").bytes, u8.bytes);
  EXPECT_EQ(z.get("empty").shape, (std::vector<int64_t>{0, 4}));
  EXPECT_FALSE(std::ifstream(path + ".tmp").good());  // renamed into place

  EXPECT_NE(error_of([&] { pg::write_npz(dir.file("no/such/dir.npz"), {{"a", u8}}); }).find("cannot"),
            std::string::npos);
  pg::NpyArray short_bytes = u8;
  short_bytes.shape = {4};
  EXPECT_NE(error_of([&] { pg::write_npz(dir.file("bad.npz"), {{"a", short_bytes}}); }).find("3 bytes for shape"),
            std::string::npos);
}
