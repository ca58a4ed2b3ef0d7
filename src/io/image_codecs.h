// The image codecs behind io/image_file.h, one file each (and a file that refuses for a codec the
// build was made without). Each decodes `bytes` to 8-bit RGB or throws ewa::Error naming `name`.
#pragma once
#include <string>

#include "io/image_file.h"

namespace ewa::io::codec {

RgbImage decode_png(const std::string& bytes, const std::string& name);   // image_png.cpp / image_no_png.cpp
RgbImage decode_jpeg(const std::string& bytes, const std::string& name);  // image_jpeg.cpp / image_no_jpeg.cpp
RgbImage decode_bmp(const std::string& bytes, const std::string& name);   // image_bmp.cpp

// Images larger than this many pixels are refused before any allocation (a corrupt header can
// claim 2^31 x 2^31): 2^28, a 16384 x 16384 image.
constexpr int64_t kMaxPixels = int64_t(1) << 28;
// Fails naming `name` unless 0 < width, height and width * height <= kMaxPixels.
void check_size(int64_t width, int64_t height, const std::string& name);

}  // namespace ewa::io::codec
