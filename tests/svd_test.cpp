// svd_square (LAPACK dgesvd through OpenBLAS): the factors rebuild the matrix, are orthogonal,
// and the singular values come sorted; bad sizes are named.
#include "core/svd.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "test_util.h"

namespace {

TEST(Svd, FactorsRebuildTheMatrixAndAreOrthogonal) {
  const int n = 7;
  std::vector<double> m(n * n);
  for (int i = 0; i < n * n; ++i) m[i] = std::sin(1.7 * i + 0.3) + (i % (n + 1) == 0 ? 2.0 : 0.0);
  const pg::Svd d = pg::svd_square(m, n);
  ASSERT_EQ(d.s.size(), size_t(n));
  for (int r = 1; r < n; ++r) EXPECT_GE(d.s[r - 1], d.s[r]);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double rebuilt = 0, uu = 0, vv = 0;
      for (int r = 0; r < n; ++r) {
        rebuilt += d.u[i * n + r] * d.s[r] * d.vt[r * n + j];
        uu += d.u[r * n + i] * d.u[r * n + j];    // u^T u
        vv += d.vt[i * n + r] * d.vt[j * n + r];  // vt vt^T
      }
      EXPECT_NEAR(rebuilt, m[i * n + j], 1e-12) << i << "," << j;
      EXPECT_NEAR(uu, i == j ? 1.0 : 0.0, 1e-12);
      EXPECT_NEAR(vv, i == j ? 1.0 : 0.0, 1e-12);
    }
  // A non-symmetric matrix with known singular values: diag(3, 2) rotated on both sides.
  const double c = std::cos(0.4), s = std::sin(0.4);
  const std::vector<double> a = {3 * c, -2 * s, 3 * s, 2 * c};  // [[c, -s], [s, c]] diag(3, 2)
  const pg::Svd e = pg::svd_square(a, 2);
  EXPECT_NEAR(e.s[0], 3.0, 1e-12);
  EXPECT_NEAR(e.s[1], 2.0, 1e-12);
}

TEST(Svd, BadSizesAreNamed) {
  EXPECT_NE(pg::test::error_of([] { pg::svd_square(std::vector<double>(5), 2); }).find("2x2"), std::string::npos);
  EXPECT_NE(pg::test::error_of([] { pg::svd_square({}, 0); }).find("svd_square"), std::string::npos);
}

}  // namespace
