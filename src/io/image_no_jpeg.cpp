// A build without libjpeg: JPEG files are refused with the way to read them.
#include "common/error.h"
#include "io/image_codecs.h"

namespace ewa::io {

bool built_with_jpeg() { return false; }

namespace codec {
RgbImage decode_jpeg(const std::string&, const std::string& name) {
  fail(name + ": a JPEG image, and ewa was built without libjpeg: install Debian's libjpeg62-turbo-dev and rebuild");
}
}  // namespace codec

}  // namespace ewa::io
