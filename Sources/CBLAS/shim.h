#ifndef BEAND_CBLAS_SHIM_H
#define BEAND_CBLAS_SHIM_H
// OpenBLAS's CBLAS interface plus its thread-count control (openblas_set_num_threads) and the
// choice of its kernels (blas_core.h).
#include <cblas.h>
#include "store_kernels.h"
#include "net_gemm.h"
#include "blas_core.h"
#endif
