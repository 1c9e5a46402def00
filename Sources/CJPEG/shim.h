#ifndef BEAND_CJPEG_SHIM_H
#define BEAND_CJPEG_SHIM_H
// libjpeg-turbo; jpeglib.h needs stdio.h (FILE) included first.
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>

// libjpeg reports fatal errors through error_exit, which by default calls exit(). Swift cannot
// setjmp, so decode and encode run here: error_exit longjmps back with libjpeg's own message.
struct beand_jpeg_error {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static void beand_jpeg_error_exit(j_common_ptr cinfo) {
    struct beand_jpeg_error *err = (struct beand_jpeg_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

// Warnings (e.g. "premature end of data segment") are kept as the last message but not fatal;
// the caller decides whether a truncated file is an error.
static void beand_jpeg_output_message(j_common_ptr cinfo) {
    struct beand_jpeg_error *err = (struct beand_jpeg_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
}

/// Decodes a JPEG held in memory to packed RGB24. On success returns 0 and a malloc'ed buffer in
/// *out (width*height*3 bytes) that the caller frees; on failure returns -1 and the reason in
/// message. *warnings counts libjpeg warnings (a truncated file decodes with warnings).
static inline int beand_jpeg_decode_rgb(const unsigned char *data, unsigned long size,
                                        unsigned char **out, int *width, int *height,
                                        int *warnings, char *message, size_t message_size) {
    struct jpeg_decompress_struct cinfo;
    struct beand_jpeg_error err;
    unsigned char *volatile pixels = NULL;
    memset(&err, 0, sizeof err);
    *out = NULL;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = beand_jpeg_error_exit;
    err.mgr.output_message = beand_jpeg_output_message;
    if (setjmp(err.jump)) {
        snprintf(message, message_size, "%s", err.message);
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_components != 3) {
        snprintf(message, message_size, "unsupported JPEG colour space (%d components)",
                 cinfo.output_components);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    size_t stride = (size_t)cinfo.output_width * 3;
    pixels = (unsigned char *)malloc(stride * cinfo.output_height);
    if (!pixels) {
        snprintf(message, message_size, "out of memory for %ux%u image",
                 cinfo.output_width, cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    *width = (int)cinfo.output_width;
    *height = (int)cinfo.output_height;
    *warnings = (int)err.mgr.num_warnings;
    if (err.mgr.num_warnings > 0) snprintf(message, message_size, "%s", err.message);
    jpeg_destroy_decompress(&cinfo);
    *out = pixels;
    return 0;
}

/// Encodes packed RGB24 (rows `stride` bytes apart) to JPEG in memory. On success returns 0 and a
/// malloc'ed buffer in *out of *out_size bytes that the caller frees.
static inline int beand_jpeg_encode_rgb(const unsigned char *pixels, int width, int height,
                                        int stride, int quality, unsigned char **out,
                                        unsigned long *out_size, char *message,
                                        size_t message_size) {
    struct jpeg_compress_struct cinfo;
    struct beand_jpeg_error err;
    memset(&err, 0, sizeof err);
    *out = NULL;
    *out_size = 0;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = beand_jpeg_error_exit;
    err.mgr.output_message = beand_jpeg_output_message;
    if (setjmp(err.jump)) {
        snprintf(message, message_size, "%s", err.message);
        jpeg_destroy_compress(&cinfo);
        free(*out);
        *out = NULL;
        return -1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, out, out_size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)stride * cinfo.next_scanline);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return 0;
}
#endif
