// COCO RLE: round trips, hand-made cases and byte-exact strings against pycocotools.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "paligemma/error.h"
#include "paligemma/rle.h"
#include "test_util.h"

namespace pg {
namespace {

BinaryMask make_mask(int height, int width, const std::vector<std::string>& rows = {}) {
  BinaryMask m;
  m.height = height;
  m.width = width;
  m.data.assign(size_t(height) * size_t(width), 0);
  for (size_t y = 0; y < rows.size(); ++y)
    for (size_t x = 0; x < rows[y].size(); ++x) m.data[y * size_t(width) + x] = rows[y][x] == '1';
  return m;
}

void fill(BinaryMask& m, int x0, int y0, int x1, int y1) {  // [x0, x1) x [y0, y1)
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) m.data[size_t(y) * size_t(m.width) + size_t(x)] = 1;
}

// The reference strings below were produced by pycocotools 2.0.11 (pip), as
//   pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()

TEST(Rle, EmptyMask) {
  BinaryMask m = make_mask(5, 4);
  CocoRle r = rle_encode(m);
  EXPECT_EQ(r.height, 5);
  EXPECT_EQ(r.width, 4);
  EXPECT_EQ(r.counts, (std::vector<uint32_t>{20}));
  EXPECT_EQ(rle_to_string(r), "d0");  // pycocotools 2.0.11, np.zeros((5, 4))
}

TEST(Rle, FullMask) {
  BinaryMask m = make_mask(5, 4);
  std::fill(m.data.begin(), m.data.end(), 1);
  CocoRle r = rle_encode(m);
  EXPECT_EQ(r.counts, (std::vector<uint32_t>{0, 20}));
  EXPECT_EQ(rle_to_string(r), "0d0");  // pycocotools 2.0.11, np.ones((5, 4))
}

TEST(Rle, SmallRectangle) {
  // np.zeros((6, 8)); m[1:4, 2:7] = 1: columns 0-1 empty (12 zeros), then per column 2..6:
  // 1 zero above, 3 ones, 2 zeros below (the zero runs of adjacent columns merge).
  BinaryMask m = make_mask(6, 8);
  fill(m, 2, 1, 7, 4);
  CocoRle r = rle_encode(m);
  EXPECT_EQ(r.counts, (std::vector<uint32_t>{13, 3, 3, 3, 3, 3, 3, 3, 3, 3, 8}));
  EXPECT_EQ(rle_to_string(r), "=3300000005");  // pycocotools 2.0.11
  EXPECT_EQ(rle_decode(r).data, m.data);
}

TEST(Rle, Random13x7) {
  // np.random.RandomState(7).rand(13, 7) > 0.5, rows top to bottom.
  BinaryMask m = make_mask(13, 7,
                           {"0101111", "0001100", "0100101", "1011011", "1000000", "1101000", "1001010",
                            "1001100", "0111110", "0101110", "1000100", "0000001", "1101111"});
  CocoRle r = rle_encode(m);
  EXPECT_EQ(rle_to_string(r), "352LO10O10010O101001MO041O20MN1O00O110O060");  // pycocotools 2.0.11
  CocoRle back = rle_from_string("352LO10O10010O101001MO041O20MN1O00O110O060", 13, 7);
  EXPECT_EQ(back.counts, r.counts);
  EXPECT_EQ(rle_decode(back).data, m.data);
}

TEST(Rle, LargeCountsAndNegativeDeltas) {
  // np.zeros((300, 200)); m[10:290, 50:51] = 1; m[0:300, 120:200] = 1
  BinaryMask m = make_mask(300, 200);
  fill(m, 50, 10, 51, 290);
  fill(m, 120, 0, 200, 300);
  CocoRle r = rle_encode(m);
  EXPECT_EQ(r.counts, (std::vector<uint32_t>{50 * 300 + 10, 280, 10 + 69 * 300, 80 * 300}));
  EXPECT_EQ(rle_to_string(r), "Re>h8VWd0XUg0");  // pycocotools 2.0.11
  EXPECT_EQ(rle_from_string("Re>h8VWd0XUg0", 300, 200).counts, r.counts);
}

TEST(Rle, ColumnMajorOrder) {
  // A single pixel at (x=1, y=0) of a 2x3 (h=2, w=3) mask: column-major index 1 * 2 + 0 = 2.
  BinaryMask m = make_mask(2, 3, {"010", "000"});
  EXPECT_EQ(rle_encode(m).counts, (std::vector<uint32_t>{2, 1, 3}));
  // Nonzero values other than 1 count as inside.
  m.data[1] = 200;
  EXPECT_EQ(rle_encode(m).counts, (std::vector<uint32_t>{2, 1, 3}));
  EXPECT_EQ(rle_decode(rle_encode(m)).data[1], 1);
}

TEST(Rle, ZeroSizedMask) {
  BinaryMask m = make_mask(0, 0);
  CocoRle r = rle_encode(m);
  EXPECT_EQ(r.counts, (std::vector<uint32_t>{0}));
  EXPECT_EQ(rle_to_string(r), "0");  // pycocotools 2.0.11, np.zeros((0, 0))
  EXPECT_TRUE(rle_decode(r).data.empty());
  EXPECT_TRUE(rle_from_string("", 0, 0).counts.empty());
}

TEST(Rle, RandomRoundTrips) {
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 200; ++iter) {
    const int h = int(rng() % 40) + 1, w = int(rng() % 40) + 1;
    BinaryMask m = make_mask(h, w);
    const int mode = iter % 3;
    for (auto& v : m.data) v = mode == 0 ? (rng() & 1) : mode == 1 ? (rng() % 20 == 0) : (rng() % 20 != 0);
    CocoRle r = rle_encode(m);
    uint64_t sum = 0;
    for (uint32_t c : r.counts) sum += c;
    ASSERT_EQ(sum, uint64_t(h) * uint64_t(w));
    for (size_t i = 1; i + 1 < r.counts.size(); ++i) ASSERT_GT(r.counts[i], 0u);
    EXPECT_EQ(rle_decode(r).data, m.data);
    const std::string s = rle_to_string(r);
    for (char c : s) ASSERT_TRUE(c >= '0' && c <= 'o');
    EXPECT_EQ(rle_from_string(s, h, w).counts, r.counts);
  }
}

TEST(Rle, HugeCountsRoundTripThroughString) {
  // 65536 x 65536 = 2^32 pixels: counts near the uint32 limit and large negative deltas (i > 2).
  // Strings are checked without decoding (that would take 4 GiB).
  // Expected strings: pycocotools 2.0.11,
  //   mask.frPyObjects({"counts": counts, "size": [65536, 65536]}, 65536, 65536)["counts"]
  const std::vector<std::pair<CocoRle, std::string>> cases = {
      {CocoRle{65536, 65536, {0xFFFFFFFFu, 1}}, "oooooo31"},
      {CocoRle{65536, 65536, {1, 0xFFFFFFFFu - 5, 2, 3}}, "1jooooo32YPPPPPL"},
      {CocoRle{65536, 65536, {0, 7, 0xFFFFFFFFu - 9, 1, 1, 1}}, "07fooooo3J[PPPPPL0"},
  };
  for (const auto& [r, expected] : cases) {
    EXPECT_EQ(rle_to_string(r), expected);
    EXPECT_EQ(rle_from_string(expected, r.height, r.width).counts, r.counts) << expected;
  }
}

TEST(RleErrors, BadInput) {
  using test::error_of;
  EXPECT_NE(error_of([] { rle_from_string("d0", 5, 5); }).find("sum to 20"), std::string::npos);
  EXPECT_NE(error_of([] { rle_from_string("d", 5, 4); }).find("ends inside a value"), std::string::npos);
  EXPECT_NE(error_of([] { rle_from_string("d0 ", 5, 4); }).find("invalid character"), std::string::npos);
  EXPECT_NE(error_of([] { rle_from_string("d0", -1, 4); }).find("negative"), std::string::npos);
  // A negative first count: 'O' = 48 + 31 -> -1.
  EXPECT_NE(error_of([] { rle_from_string("O", 5, 4); }).find("out of range"), std::string::npos);
  EXPECT_NE(error_of([] { rle_from_string("oooooooooo0", 5, 4); }).find("too long"), std::string::npos);
  EXPECT_NE(error_of([] { rle_decode(CocoRle{2, 2, {1, 2}}); }).find("sum to 3"), std::string::npos);
  BinaryMask bad;
  bad.width = 3;
  bad.height = 3;
  bad.data.assign(8, 0);
  EXPECT_NE(error_of([&] { rle_encode(bad); }).find("holds 8"), std::string::npos);
}

}  // namespace
}  // namespace pg
