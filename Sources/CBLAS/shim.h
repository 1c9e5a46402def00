#ifndef BEAND_CBLAS_SHIM_H
#define BEAND_CBLAS_SHIM_H
// OpenBLAS's CBLAS interface plus its thread-count control (openblas_set_num_threads).
#include <cblas.h>
#include "store_kernels.h"
#include "net_gemm.h"
#endif
