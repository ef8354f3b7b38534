#ifndef SUBSPACE_CLAPACKE_SHIM_H
#define SUBSPACE_CLAPACKE_SHIM_H
// Reference LAPACKE over OpenBLAS's LAPACK. Only the real single-precision drivers are used; routines
// with complex arguments do not import into Swift, which is fine.
#include <lapacke.h>
static const int subspace_lapack_col_major = LAPACK_COL_MAJOR;
static const int subspace_lapack_row_major = LAPACK_ROW_MAJOR;
#endif
