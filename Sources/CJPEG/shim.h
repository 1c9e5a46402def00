#ifndef BEAND_CJPEG_SHIM_H
#define BEAND_CJPEG_SHIM_H
// libjpeg-turbo; jpeglib.h needs stdio.h (FILE) included first.
#include <stdio.h>
#include <stddef.h>
#include <jpeglib.h>
#endif
