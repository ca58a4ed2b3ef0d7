#include "io/image_file.h"

#include <algorithm>
#include <cctype>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "io/image_codecs.h"

namespace ewa::io {

std::string image_format(const std::string& b) {
  if (b.size() >= 8 && b.compare(0, 8, "\x89PNG\r\n\x1a\n", 8) == 0) return "png";
  if (b.size() >= 3 && static_cast<uint8_t>(b[0]) == 0xFF && static_cast<uint8_t>(b[1]) == 0xD8 &&
      static_cast<uint8_t>(b[2]) == 0xFF)
    return "jpeg";
  if (b.size() >= 2 && b[0] == 'B' && b[1] == 'M') return "bmp";
  return "";
}

RgbImage decode_image(const std::string& bytes, const std::string& name) {
  const std::string format = image_format(bytes);
  if (format == "png") return codec::decode_png(bytes, name);
  if (format == "jpeg") return codec::decode_jpeg(bytes, name);
  if (format == "bmp") return codec::decode_bmp(bytes, name);
  fail(name + ": not a PNG, JPEG or BMP image (" + (bytes.empty() ? std::string("the file is empty") : "its first bytes are none of theirs") +
       "); ewa reads those three: convert the file or move it out of the dataset");
}

RgbImage read_image(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open the image (" + std::strerror(errno) + ")");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) fail(path + ": read error");
  return decode_image(bytes.str(), path);
}

namespace codec {
void check_size(int64_t width, int64_t height, const std::string& name) {
  if (width <= 0 || height <= 0 || width > kMaxPixels / height)
    fail(name + ": the image claims " + std::to_string(width) + " x " + std::to_string(height) +
         " pixels (expected 1 to " + std::to_string(kMaxPixels) + " pixels): the file is corrupt");
}
}  // namespace codec

bool has_image_extension(const std::string& name) {
  std::string l = name;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const std::string e : {".png", ".jpg", ".jpeg", ".bmp"})
    if (l.size() >= e.size() && l.compare(l.size() - e.size(), e.size(), e) == 0) return true;
  return false;
}

}  // namespace ewa::io
