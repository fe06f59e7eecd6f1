#pragma once
// Singular value decomposition of a small dense square matrix, through LAPACK's dgesvd
// (OpenBLAS ships LAPACK): used where an initialisation needs a best low-rank factor
// (model_init's mimetic attention). Not a hot path: double precision, one call per matrix.
#include <vector>

namespace pg {

struct Svd {
  int n = 0;
  std::vector<double> u;   // [n, n] row-major: column r is the r-th left singular vector
  std::vector<double> s;   // [n], descending, >= 0
  std::vector<double> vt;  // [n, n] row-major: row r is the r-th right singular vector
};

// m: [n, n] row-major, m = u diag(s) vt. Throws pg::Error if LAPACK reports a failure.
Svd svd_square(const std::vector<double>& m, int n);

}  // namespace pg
