// JPEG through libjpeg (Debian's libjpeg62-turbo), read from memory: baseline and progressive,
// grayscale, YCbCr and CMYK/YCCK, all to 8-bit RGB (io/image_file.h says how).
#include <csetjmp>
#include <cstdio>  // jpeglib.h uses FILE and size_t without including their headers
#include <vector>

#include <jpeglib.h>
#include <jerror.h>

#include "common/error.h"
#include "io/image_codecs.h"

namespace ewa::io {

bool built_with_jpeg() { return true; }

namespace codec {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_error(j_common_ptr c) {
  auto* e = reinterpret_cast<ErrorManager*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings do not stop a read (PIL ignores them too) but the end of the data before the image's
// end does: libjpeg would fill the rest grey, PIL refuses a truncated image.
void on_message(j_common_ptr c, int level) {
  if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) on_error(c);
}

// PIL's MULDIV255: a * b / 255, rounded as Pillow's Convert.c rounds it.
inline uint8_t muldiv255(unsigned a, unsigned b) {
  const unsigned t = a * b + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

}  // namespace

RgbImage decode_jpeg(const std::string& bytes, const std::string& name) {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  RgbImage image;
  std::vector<JSAMPLE> row;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.emit_message = on_message;
  err.message[0] = 0;
  // Between setjmp and the last libjpeg call only C calls and objects made before it: a longjmp
  // must not skip a destructor.
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    fail(name + ": not a readable JPEG: " + err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.image_width == 0 || cinfo.image_height == 0 ||
      int64_t(cinfo.image_width) > kMaxPixels / int64_t(cinfo.image_height)) {
    std::snprintf(err.message, sizeof err.message, "it claims %u x %u pixels (at most %lld)", unsigned(cinfo.image_width),
                  unsigned(cinfo.image_height), static_cast<long long>(kMaxPixels));
    std::longjmp(err.jump, 1);
  }
  // CMYK and YCCK come out as CMYK, inverted as Adobe writes it (PIL assumes so for every CMYK
  // JPEG: its raw mode "CMYK;I"); everything else as RGB.
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  const size_t w = cinfo.output_width, channels = static_cast<size_t>(cinfo.output_components);
  image.width = cinfo.output_width;
  image.height = cinfo.output_height;
  image.pixels.resize(w * cinfo.output_height * 3);
  row.resize(w * channels);
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* out = image.pixels.data() + size_t(cinfo.output_scanline) * w * 3;
    JSAMPROW rows[1] = {cmyk ? row.data() : out};
    jpeg_read_scanlines(&cinfo, rows, 1);
    if (cmyk)  // stored inverted: 255 - c; r = (255 - c)(255 - k) / 255
      for (size_t x = 0; x < w; ++x) {
        const JSAMPLE* p = row.data() + 4 * x;
        out[3 * x] = muldiv255(p[0], p[3]);
        out[3 * x + 1] = muldiv255(p[1], p[3]);
        out[3 * x + 2] = muldiv255(p[2], p[3]);
      }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return image;
}

}  // namespace codec
}  // namespace ewa::io
