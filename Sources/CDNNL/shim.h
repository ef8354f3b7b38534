#ifndef SUBSPACE_CDNNL_SHIM_H
#define SUBSPACE_CDNNL_SHIM_H
// oneDNN (Debian `libdnnl-dev` 2.6, no pkg-config file: the module map links `dnnl`), for bf16 matrix
// products with fp32 accumulation. OpenBLAS stays the fp32 BLAS; only SubspaceCore/BF16GEMM.swift
// imports this module.
#include <stdint.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

// oneDNN 2.x exports dnnl_gemm_bf16bf16f32 (it is what its bf16 inner-product and matmul fall back to)
// but declares it only in an internal header; the prototype below is the one in its src/common/gemm.cpp.
// Same contract as dnnl_sgemm: row-major, C = alpha·op(A)·op(B) + beta·C, transa/transb 'N' or 'T'.
// bf16 values are passed as their 16-bit patterns (oneDNN's bfloat16_t is a struct around a uint16_t).
dnnl_status_t dnnl_gemm_bf16bf16f32(char transa, char transb, dnnl_dim_t M, dnnl_dim_t N, dnnl_dim_t K,
                                    float alpha, const uint16_t *A, dnnl_dim_t lda, const uint16_t *B,
                                    dnnl_dim_t ldb, float beta, float *C, dnnl_dim_t ldc);

// oneDNN threads with OpenMP (this build's cpu_runtime is DNNL_RUNTIME_OMP). omp.h is GCC's and not on
// Swift's include path, so the one call used is declared here (libgomp is linked by the module map).
// The count is a per-thread setting in OpenMP, so BF16GEMM sets it on the calling thread before each call.
void omp_set_num_threads(int count);
int omp_get_max_threads(void);
#endif
