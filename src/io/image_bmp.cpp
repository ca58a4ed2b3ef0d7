// BMP, our own reader (no library needed): the Windows and OS/2 headers (12, 40, 52, 56, 108 or
// 124 bytes), 1, 4 and 8-bit palettes, 16-bit (5-5-5, or the masks of BI_BITFIELDS), 24-bit and
// 32-bit pixels (alpha dropped), bottom-up or top-down rows. RLE-compressed files are refused.
// Channels narrower than 8 bits scale as PIL's unpackers do: v * 255 / max, rounded down.
#include <cstring>

#include "common/error.h"
#include "io/image_codecs.h"

namespace ewa::io::codec {
namespace {

uint32_t u32(const std::string& b, size_t at) {
  uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;  // little-endian hosts only (x86-64, aarch64)
}
uint16_t u16(const std::string& b, size_t at) {
  uint16_t v;
  std::memcpy(&v, b.data() + at, 2);
  return v;
}

// A channel mask of BI_BITFIELDS: where it starts and how many bits it has.
struct Channel {
  uint32_t shift = 0, max = 0;
  explicit Channel(uint32_t mask) {
    if (!mask) return;
    while (!(mask & 1)) mask >>= 1, ++shift;
    max = mask;
  }
  uint8_t operator()(uint32_t pixel) const {
    return max ? static_cast<uint8_t>(uint64_t((pixel >> shift) & max) * 255 / max) : 0;
  }
};

}  // namespace

RgbImage decode_bmp(const std::string& b, const std::string& name) {
  auto bad = [&](const std::string& why) { fail(name + ": not a readable BMP: " + why); };
  if (b.size() < 26) bad("the file is truncated (" + std::to_string(b.size()) + " bytes, shorter than a BMP header)");
  const uint32_t offset = u32(b, 10), header = u32(b, 14);
  int64_t width = 0, height = 0;
  uint32_t bits = 0, compression = 0, colors_used = 0;
  const bool os2 = header == 12;
  if (os2) {
    width = u16(b, 18);
    height = int16_t(u16(b, 20));
    bits = u16(b, 24);
  } else if (header == 40 || header == 52 || header == 56 || header == 64 || header == 108 || header == 124) {
    if (b.size() < 14 + size_t(header)) bad("the file is truncated inside its header");
    width = int32_t(u32(b, 18));
    height = int32_t(u32(b, 22));
    bits = u16(b, 28);
    compression = u32(b, 30);
    colors_used = u32(b, 46);
  } else {
    bad("unknown header size " + std::to_string(header) + " (expected 12, 40, 52, 56, 64, 108 or 124)");
  }
  const bool top_down = height < 0;
  if (top_down) height = -height;
  check_size(width, height, name);
  if (compression == 1 || compression == 2)
    fail(name + ": an RLE-compressed BMP, which ewa does not decode: save it uncompressed or as PNG");
  if (compression != 0 && compression != 3)
    bad("compression " + std::to_string(compression) + " (ewa reads uncompressed BMP: BI_RGB or BI_BITFIELDS)");
  if (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32)
    bad(std::to_string(bits) + " bits per pixel (expected 1, 4, 8, 16, 24 or 32)");
  if (compression == 3 && bits != 16 && bits != 32) bad("BI_BITFIELDS with " + std::to_string(bits) + " bits per pixel");

  // Masks: BI_BITFIELDS gives them after a 40-byte header (or inside a longer one); else the defaults.
  uint32_t masks[3] = {0x7C00, 0x03E0, 0x001F};  // 16-bit BI_RGB: 5-5-5
  if (bits == 32) masks[0] = 0xFF0000, masks[1] = 0xFF00, masks[2] = 0xFF;
  if (compression == 3) {
    if (b.size() < 14 + size_t(header) + 12) bad("the file is truncated inside its colour masks");
    for (int i = 0; i < 3; ++i) masks[i] = u32(b, 14 + 40 + 4 * size_t(i));
  }
  const Channel red(masks[0]), green(masks[1]), blue(masks[2]);

  // The palette, right after the header (and BI_BITFIELDS' masks after a 40-byte header).
  std::vector<uint8_t> palette;  // RGB triples
  int64_t palette_size = 0;
  if (bits <= 8) {
    palette_size = colors_used ? colors_used : (int64_t(1) << bits);
    if (palette_size > 256) bad("a palette of " + std::to_string(palette_size) + " colours (at most 256)");
    const size_t entry = os2 ? 3 : 4, start = 14 + size_t(header);
    if (b.size() < start + entry * size_t(palette_size)) bad("the file is truncated inside its palette");
    for (int64_t i = 0; i < palette_size; ++i) {
      const size_t at = start + entry * size_t(i);
      palette.insert(palette.end(), {uint8_t(b[at + 2]), uint8_t(b[at + 1]), uint8_t(b[at])});
    }
  }

  const size_t stride = ((size_t(bits) * size_t(width) + 31) / 32) * 4;
  if (offset > b.size() || b.size() - offset < stride * size_t(height))
    bad("the file is truncated: " + std::to_string(height) + " rows of " + std::to_string(stride) + " bytes from byte " +
        std::to_string(offset) + " need " + std::to_string(size_t(offset) + stride * size_t(height)) + " bytes, it has " +
        std::to_string(b.size()));
  RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.resize(size_t(width) * size_t(height) * 3);
  for (int64_t y = 0; y < height; ++y) {
    const auto* row = reinterpret_cast<const uint8_t*>(b.data()) + offset + stride * size_t(top_down ? y : height - 1 - y);
    uint8_t* out = image.pixels.data() + size_t(y) * size_t(width) * 3;
    for (int64_t x = 0; x < width; ++x, out += 3) {
      if (bits <= 8) {
        const size_t bit = size_t(x) * bits;
        const unsigned index = (row[bit / 8] >> (8 - bits - bit % 8)) & ((1u << bits) - 1);
        if (int64_t(index) >= palette_size)
          bad("pixel (" + std::to_string(x) + ", " + std::to_string(y) + ") names colour " + std::to_string(index) +
              " of a palette of " + std::to_string(palette_size));
        std::memcpy(out, palette.data() + 3 * index, 3);
      } else if (bits == 24) {
        out[0] = row[3 * x + 2], out[1] = row[3 * x + 1], out[2] = row[3 * x];
      } else {
        const uint32_t p = bits == 16 ? uint32_t(row[2 * x]) | uint32_t(row[2 * x + 1]) << 8
                                      : uint32_t(row[4 * x]) | uint32_t(row[4 * x + 1]) << 8 |
                                            uint32_t(row[4 * x + 2]) << 16 | uint32_t(row[4 * x + 3]) << 24;
        out[0] = red(p), out[1] = green(p), out[2] = blue(p);
      }
    }
  }
  return image;
}

}  // namespace ewa::io::codec
