// A build without libpng: PNG files are refused with the way to read them.
#include "common/error.h"
#include "io/image_codecs.h"

namespace ewa::io {

bool built_with_png() { return false; }

namespace codec {
RgbImage decode_png(const std::string&, const std::string& name) {
  fail(name + ": a PNG image, and ewa was built without libpng: install Debian's libpng-dev and rebuild");
}
}  // namespace codec

}  // namespace ewa::io
