#ifndef SUBSPACE_CBLAS_SHIM_H
#define SUBSPACE_CBLAS_SHIM_H
// OpenBLAS's cblas.h (found through pkg-config `openblas`); it also declares openblas_set_num_threads,
// which the executable uses to size each rank's BLAS pool.
#include <cblas.h>
#endif
