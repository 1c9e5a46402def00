#ifndef BEAND_CPNG_SHIM_H
#define BEAND_CPNG_SHIM_H
#include <png.h>
#endif
