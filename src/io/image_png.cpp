// PNG through libpng (Debian libpng-dev), read from memory, every colour type and bit depth
// turned into 8-bit RGB (io/image_file.h says how).
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "io/image_codecs.h"

namespace ewa::io {

bool built_with_png() { return true; }

namespace codec {
namespace {

struct Reader {
  const std::string* bytes;
  size_t pos = 0;
  char message[256] = {0};  // libpng's words for the error that stopped it
};

void on_error(png_structp png, png_const_charp msg) {
  auto* r = static_cast<Reader*>(png_get_error_ptr(png));
  std::snprintf(r->message, sizeof r->message, "%s", msg);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}  // as PIL, warnings do not stop a read

void read_bytes(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<Reader*>(png_get_io_ptr(png));
  if (n > r->bytes->size() - r->pos) png_error(png, "the file is truncated");
  std::memcpy(out, r->bytes->data() + r->pos, n);
  r->pos += n;
}

}  // namespace

RgbImage decode_png(const std::string& bytes, const std::string& name) {
  Reader reader{&bytes};
  RgbImage image;
  std::vector<png_bytep> rows;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, on_error, on_warning);
  if (!png) fail(name + ": libpng could not start");
  png_infop info = png_create_info_struct(png);
  png_uint_32 width = 0, height = 0;
  // Between setjmp and the last libpng call only C calls and objects made before it: a longjmp
  // must not skip a destructor.
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    fail(name + ": not a readable PNG: " + reader.message);
  }
  png_set_read_fn(png, &reader, read_bytes);
  png_read_info(png, info);
  int depth = 0, color = 0;
  png_get_IHDR(png, info, &width, &height, &depth, &color, nullptr, nullptr, nullptr);
  if (width == 0 || height == 0 || int64_t(width) > kMaxPixels / int64_t(height)) {
    std::snprintf(reader.message, sizeof reader.message, "it claims %u x %u pixels (at most %lld)", unsigned(width),
                  unsigned(height), static_cast<long long>(kMaxPixels));
    png_longjmp(png, 1);
  }
  if (depth == 16) png_set_strip_16(png);                      // the high byte
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  // An alpha channel, or the one the palette expansion makes of a tRNS chunk, is dropped.
  if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != size_t(width) * 3) png_error(png, "unexpected row layout after conversion to RGB");
  image.height = height;
  image.width = width;
  image.pixels.resize(size_t(width) * height * 3);
  rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = image.pixels.data() + size_t(y) * width * 3;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return image;
}

}  // namespace codec
}  // namespace ewa::io
