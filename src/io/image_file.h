// Image files, one reader for training data, evaluation and prediction alike: PNG (libpng),
// JPEG (libjpeg-turbo) and BMP (our own reader), each decoded to 8-bit RGB the way timm's and
// torchvision's loaders read an image (PIL's Image.open(path).convert("RGB")):
//   - grayscale is replicated into the three channels; 1, 2 and 4-bit gray are scaled to 0..255;
//   - palette images are looked up in their palette; transparency and alpha are dropped (not
//     composited), as PIL's convert("RGB") drops them;
//   - 16-bit samples keep their high byte (PIL reads 16-bit RGB so; its convert("RGB") of a
//     16-bit grayscale image clips the 16-bit value at 255 instead, which we do not copy);
//   - CMYK JPEGs (Adobe's inverted CMYK, as Photoshop and PIL write them) convert as PIL does,
//     r = (255 - c)(255 - k) / 255 with PIL's rounding; progressive JPEGs decode as any other;
//   - no colour management: gAMA, ICC profiles and EXIF orientation are ignored, as PIL does.
// The format comes from the file's signature, not its name. Each codec is one file
// (image_png.cpp, image_jpeg.cpp, image_bmp.cpp); a build without libpng or libjpeg has a file
// that says so instead (image_no_png.cpp, image_no_jpeg.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ewa::io {

// An image as 8-bit RGB, rows top to bottom, pixels interleaved: [height, width, 3].
struct RgbImage {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> pixels;
};

// Reads the image file at `path`. Throws ewa::Error naming the file and the problem: missing or
// unreadable, not a PNG, JPEG or BMP file (by its first bytes), corrupt or truncated (the codec's
// own words), a kind of file ewa does not decode (RLE-compressed BMP), or a codec this build was
// made without.
RgbImage read_image(const std::string& path);

// The same from the file's bytes; `name` names it in errors.
RgbImage decode_image(const std::string& bytes, const std::string& name);

// The image formats by their signature: "png", "jpeg", "bmp", or "" for anything else.
std::string image_format(const std::string& bytes);

// Whether a file name ends in one of the extensions ewa reads as images: .png, .jpg, .jpeg, .bmp
// (any case; torchvision's rule, so a file named just ".png" counts).
bool has_image_extension(const std::string& name);

// Whether this build decodes PNG (libpng) and JPEG (libjpeg); BMP is always decoded.
bool built_with_png();
bool built_with_jpeg();

}  // namespace ewa::io
