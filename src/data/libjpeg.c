/* agml's JPEG decoding through the system libjpeg (libjpeg-turbo; Debian:
   libjpeg62-turbo-dev), the library PIL decodes with, so that agml's pixels are PIL's bit for
   bit (tests/pipeline_parity.rs). Called from src/data/jpeg.rs. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

struct error_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo) {
    struct error_mgr *err = (struct error_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

/* Keeps warnings (corrupt data libjpeg recovers from) quiet, as PIL does. */
static void on_message(j_common_ptr cinfo) { (void)cinfo; }

/* Decodes the JPEG `data` (`size` bytes) to 8-bit RGB with libjpeg's defaults (islow IDCT,
   fancy upsampling), as PIL does. Returns 0 with `*out` (width * height * 3 bytes, malloc'd:
   free with agml_jpeg_free), `*width` and `*height` set; or 1 with libjpeg's message in
   `message` (`message_size` bytes). */
int agml_jpeg_decode(const unsigned char *data, unsigned long size, unsigned char **out,
                     unsigned int *width, unsigned int *height, char *message,
                     size_t message_size) {
    struct jpeg_decompress_struct cinfo;
    struct error_mgr err;
    unsigned char *volatile pixels = NULL;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.output_message = on_message;
    if (setjmp(err.jump)) {
        snprintf(message, message_size, "%s", err.message);
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * 3;
    pixels = malloc(stride * cinfo.output_height);
    if (pixels == NULL) {
        snprintf(message, message_size, "out of memory for %ux%u pixels", cinfo.output_width,
                 cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    *width = cinfo.output_width;
    *height = cinfo.output_height;
    *out = pixels;
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

void agml_jpeg_free(unsigned char *pixels) { free(pixels); }
