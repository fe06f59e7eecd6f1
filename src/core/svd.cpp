#include "core/svd.h"

#include <cstddef>
#include <string>

#include "paligemma/error.h"

// LAPACK's Fortran interface, as OpenBLAS exports it (column-major, arguments by pointer; the
// two trailing arguments are the hidden lengths gfortran passes for the character arguments).
extern "C" void dgesvd_(const char* jobu, const char* jobvt, const int* m, const int* n, double* a, const int* lda,
                        double* s, double* u, const int* ldu, double* vt, const int* ldvt, double* work,
                        const int* lwork, int* info, size_t jobu_len, size_t jobvt_len);

namespace pg {

Svd svd_square(const std::vector<double>& m, int n) {
  if (n <= 0 || m.size() != static_cast<size_t>(n) * n)
    throw Error("svd_square: expected a " + std::to_string(n) + "x" + std::to_string(n) + " matrix, got " +
                std::to_string(m.size()) + " values");
  // A row-major m is the column-major m^T = V S U^T: LAPACK's "u" of it is our v and its "vt"
  // our u^T, so both come out row-major without a transpose.
  std::vector<double> a = m, u_of_t(static_cast<size_t>(n) * n), vt_of_t(static_cast<size_t>(n) * n);
  Svd r;
  r.n = n;
  r.s.resize(n);
  int info = 0, lwork = -1;
  double query = 0;
  dgesvd_("A", "A", &n, &n, a.data(), &n, r.s.data(), u_of_t.data(), &n, vt_of_t.data(), &n, &query, &lwork, &info, 1,
          1);
  if (info != 0) throw Error("svd_square: LAPACK dgesvd workspace query failed (info " + std::to_string(info) + ")");
  lwork = static_cast<int>(query);
  std::vector<double> work(static_cast<size_t>(lwork > 1 ? lwork : 1));
  dgesvd_("A", "A", &n, &n, a.data(), &n, r.s.data(), u_of_t.data(), &n, vt_of_t.data(), &n, work.data(), &lwork, &info,
          1, 1);
  if (info < 0) throw Error("svd_square: LAPACK dgesvd rejected argument " + std::to_string(-info));
  if (info > 0) throw Error("svd_square: LAPACK dgesvd did not converge (" + std::to_string(info) + " superdiagonals)");
  // m^T = U' S V'^T. Read row-major, the column-major U' is U'^T = (our vt) and the
  // column-major V'^T is V' = (our u).
  r.vt = std::move(u_of_t);
  r.u = std::move(vt_of_t);
  return r;
}

}  // namespace pg
