#include "io/zip_archive.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"

namespace ewa::io {
namespace {

// Record layouts of the zip format (PKWARE APPNOTE 4.3), little-endian.
constexpr uint32_t kEndSig = 0x06054b50, kEnd64LocatorSig = 0x07064b50, kEnd64Sig = 0x06064b50;
constexpr uint32_t kCentralSig = 0x02014b50, kLocalSig = 0x04034b50;
constexpr uint64_t kEndSize = 22, kEnd64LocatorSize = 20, kEnd64Size = 56, kCentralSize = 46, kLocalSize = 30;

uint64_t le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

void ZipArchive::corrupt(const std::string& what) const { fail(path_ + ": corrupt zip archive: " + what); }

void ZipArchive::read_at(uint64_t offset, void* out, uint64_t n, const char* what) {
  if (offset > file_bytes_ || n > file_bytes_ - offset)
    corrupt(std::string(what) + " at byte " + std::to_string(offset) + " runs past the end of the " +
            std::to_string(file_bytes_) + "-byte file");
  if (n == 0) return;
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(offset));
  in_.read(static_cast<char*>(out), static_cast<std::streamsize>(n));
  if (static_cast<uint64_t>(in_.gcount()) != n) fail(path_ + ": read error at byte " + std::to_string(offset));
}

ZipArchive::Directory ZipArchive::find_directory() {
  // The end-of-central-directory record: the last one within the final 64 KiB + 22 bytes (its
  // comment is at most 65535 bytes), whose comment ends inside the file.
  const uint64_t tail_bytes = std::min<uint64_t>(file_bytes_, 65535 + kEndSize);
  std::vector<unsigned char> tail(tail_bytes);
  read_at(file_bytes_ - tail_bytes, tail.data(), tail_bytes, "the end of the file");
  int64_t at = -1;
  for (int64_t i = static_cast<int64_t>(tail_bytes) - static_cast<int64_t>(kEndSize); i >= 0; --i)
    if (le(&tail[i], 4) == kEndSig && i + kEndSize + le(&tail[i + 20], 2) <= tail_bytes) {
      at = i;
      break;
    }
  if (at < 0) throw NotAZip{};
  const unsigned char* end = &tail[at];
  const uint64_t end_offset = file_bytes_ - tail_bytes + at;
  uint64_t disk = le(end + 4, 2), directory_disk = le(end + 6, 2), entries_here = le(end + 8, 2);
  Directory d{le(end + 10, 2), le(end + 12, 4), le(end + 16, 4)};
  uint64_t directory_end = end_offset;  // the directory ends before the (zip64) end records

  // zip64: a locator right before the end record points at the zip64 end record, whose counts
  // and offsets replace the 16- and 32-bit ones.
  unsigned char locator[kEnd64LocatorSize];
  if (end_offset >= kEnd64LocatorSize) {
    read_at(end_offset - kEnd64LocatorSize, locator, kEnd64LocatorSize, "the zip64 locator");
    if (le(locator, 4) == kEnd64LocatorSig) {
      if (le(locator + 16, 4) != 1) fail(path_ + ": a zip archive split over several disks is not supported");
      const uint64_t end64_offset = le(locator + 8, 8);
      if (end64_offset > end_offset - kEnd64LocatorSize || end_offset - kEnd64LocatorSize - end64_offset < kEnd64Size)
        corrupt("the zip64 end record's offset " + std::to_string(end64_offset) + " is outside the file");
      unsigned char end64[kEnd64Size];
      read_at(end64_offset, end64, kEnd64Size, "the zip64 end record");
      if (le(end64, 4) != kEnd64Sig) corrupt("no zip64 end record at byte " + std::to_string(end64_offset));
      disk = le(end64 + 16, 4);
      directory_disk = le(end64 + 20, 4);
      entries_here = le(end64 + 24, 8);
      d = {le(end64 + 32, 8), le(end64 + 40, 8), le(end64 + 48, 8)};
      directory_end = end64_offset;
    }
  }
  if (disk != 0 || directory_disk != 0 || entries_here != d.entries)
    fail(path_ + ": a zip archive split over several disks is not supported");
  if (d.offset > directory_end || d.bytes > directory_end - d.offset)
    corrupt("the central directory (" + std::to_string(d.bytes) + " bytes at byte " + std::to_string(d.offset) +
            ") does not lie before its end record at byte " + std::to_string(directory_end));
  if (d.entries > d.bytes / kCentralSize)
    corrupt(std::to_string(d.entries) + " entries cannot fit in a " + std::to_string(d.bytes) + "-byte central directory");
  if (d.entries == 0) corrupt("the archive holds no records");
  return d;
}

uint64_t ZipArchive::read_central_entry(const std::vector<unsigned char>& dir, uint64_t pos, uint64_t n, Entry& e,
                                        std::string& full) const {
  const uint64_t directory_bytes = dir.size();
  if (directory_bytes - pos < kCentralSize || le(&dir[pos], 4) != kCentralSig)
    corrupt("central directory entry " + std::to_string(n) + " is missing or cut off");
  const unsigned char* h = &dir[pos];
  const uint64_t flags = le(h + 8, 2), name_len = le(h + 28, 2), extra_len = le(h + 30, 2), comment_len = le(h + 32, 2);
  if (directory_bytes - pos - kCentralSize < name_len + extra_len + comment_len)
    corrupt("central directory entry " + std::to_string(n) + " runs past the directory");
  full.assign(reinterpret_cast<const char*>(h + kCentralSize), name_len);
  e.method = static_cast<uint16_t>(le(h + 10, 2));
  e.crc = static_cast<uint32_t>(le(h + 16, 4));
  e.compressed = le(h + 20, 4);
  e.uncompressed = le(h + 24, 4);
  e.local_offset = le(h + 42, 4);
  // zip64 extended information: 8-byte values for the fields saturated above, in this order.
  for (const unsigned char *x = h + kCentralSize + name_len, *x_end = x + extra_len; x_end - x >= 4;) {
    const uint64_t id = le(x, 2), len = le(x + 2, 2);
    if (len > static_cast<uint64_t>(x_end - x - 4)) corrupt("record '" + full + "' has a cut-off extra field");
    if (id == 1) {
      const unsigned char *v = x + 4, *v_end = v + len;
      for (uint64_t* field : {&e.uncompressed, &e.compressed, &e.local_offset}) {
        if (*field != 0xFFFFFFFFu) continue;
        if (v_end - v < 8) corrupt("record '" + full + "' has a cut-off zip64 field");
        *field = le(v, 8);
        v += 8;
      }
    }
    x += 4 + len;
  }
  if (flags & 1) fail(path_ + ": record '" + full + "' is encrypted: encrypted zip archives are not supported");
  if (e.method != 0 && e.method != 8)
    fail(path_ + ": record '" + full + "' uses compression method " + std::to_string(e.method) +
         "; only stored (0) and deflate (8) are supported");
  if (e.local_offset > directory_offset_ || e.compressed > directory_offset_ - e.local_offset)
    corrupt("record '" + full + "' (" + std::to_string(e.compressed) + " bytes at byte " + std::to_string(e.local_offset) +
            ") does not lie before the central directory");
  const bool fits = e.method == 0 ? e.uncompressed == e.compressed : e.uncompressed / kMaxInflation <= e.compressed;
  if (!fits)
    corrupt("record '" + full + "' claims " + std::to_string(e.uncompressed) + " bytes from " +
            std::to_string(e.compressed) + (e.method == 0 ? " stored" : " compressed") + " bytes");
  return pos + kCentralSize + name_len + extra_len + comment_len;
}

ZipArchive::ZipArchive(const std::string& path) : path_(path), in_(path, std::ios::binary) {
  file_bytes_ = bytes_on_disk(path);
  if (!in_) fail(path + ": cannot open file");
  const Directory d = find_directory();
  directory_offset_ = d.offset;
  std::vector<unsigned char> dir(d.bytes);
  read_at(d.offset, dir.data(), d.bytes, "the central directory");
  std::string folder;  // the first entry's top folder; torch.save puts every record in it
  for (uint64_t pos = 0, n = 0; n < d.entries; ++n) {
    Entry e;
    std::string full;
    pos = read_central_entry(dir, pos, n, e, full);
    if (n == 0) {
      const auto slash = full.find('/');
      if (slash == std::string::npos) fail(path + ": record '" + full + "' is not in a folder: not a torch.save file");
      folder = full.substr(0, slash + 1);
    }
    if (full.compare(0, folder.size(), folder) != 0) continue;
    if (!entries_.emplace(full.substr(folder.size()), e).second) corrupt("record '" + full + "' appears twice");
  }
}

const ZipArchive::Entry& ZipArchive::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(path_ + ": the archive has no record '" + name + "'");
  return it->second;
}

uint64_t ZipArchive::size(const std::string& name) const { return entry(name).uncompressed; }

void ZipArchive::read(const std::string& name, void* out) {
  const Entry& e = entry(name);
  unsigned char local[kLocalSize];
  read_at(e.local_offset, local, kLocalSize, "a local record header");
  if (le(local, 4) != kLocalSig) corrupt("no local header for record '" + name + "' at byte " + std::to_string(e.local_offset));
  // The data follows the local header's own name and extra field (torch.save pads the latter so
  // that tensor data is 64-byte aligned), and must end before the central directory.
  const uint64_t data = e.local_offset + kLocalSize + le(local + 26, 2) + le(local + 28, 2);
  if (data > directory_offset_ || e.compressed > directory_offset_ - data)
    corrupt("record '" + name + "' (" + std::to_string(e.compressed) + " bytes at byte " + std::to_string(data) +
            ") runs into the central directory");
  if (e.method == 0) {
    read_at(data, out, e.compressed, "a record");
  } else {
    std::vector<unsigned char> packed(e.compressed);
    read_at(data, packed.data(), e.compressed, "a record");
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) fail(path_ + ": zlib could not start inflating record '" + name + "'");
    int rc = Z_OK;
    uint64_t in_done = 0, out_done = 0;
    unsigned char none = 0;  // zlib refuses a null output pointer, even for an empty record
    Bytef* dst = e.uncompressed ? static_cast<Bytef*>(out) : &none;
    while (rc == Z_OK) {  // zlib counts in 32-bit chunks; Z_BUF_ERROR: input or room used up
      const uint64_t in_step = std::min<uint64_t>(e.compressed - in_done, 1u << 30);
      const uint64_t out_step = std::min<uint64_t>(e.uncompressed - out_done, 1u << 30);
      z.next_in = packed.data() + in_done;
      z.avail_in = static_cast<uInt>(in_step);
      z.next_out = dst + out_done;
      z.avail_out = static_cast<uInt>(out_step);
      rc = inflate(&z, Z_NO_FLUSH);
      in_done += in_step - z.avail_in;
      out_done += out_step - z.avail_out;
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END || out_done != e.uncompressed)
      corrupt("record '" + name + "' does not inflate to the " + std::to_string(e.uncompressed) + " bytes it claims");
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  for (uint64_t done = 0; done < e.uncompressed;) {
    const uint64_t step = std::min<uint64_t>(e.uncompressed - done, 1u << 30);
    crc = crc32(crc, static_cast<const Bytef*>(out) + done, static_cast<uInt>(step));
    done += step;
  }
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION  // make fuzz: mutated records must reach the unpickler
  if (crc != e.crc) corrupt("record '" + name + "' fails its CRC-32 check (the file is damaged)");
#endif
}

std::vector<char> ZipArchive::read(const std::string& name) {
  std::vector<char> out(size(name));
  read(name, out.data());
  return out;
}

namespace {
void put(std::string& b, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b += static_cast<char>((v >> (8 * i)) & 0xff);
}
constexpr uint64_t kZip64Limit = 0xffffffffull;
constexpr uint64_t kAlign = 64;
}  // namespace

ZipWriter::ZipWriter(std::ostream& out, std::string top_folder, bool force_zip64)
    : out_(out), top_(std::move(top_folder)), force_zip64_(force_zip64) {}

void ZipWriter::add(const std::string& name, const void* data, uint64_t size) {
  const std::string full = top_ + "/" + name;
  const bool zip64 = force_zip64_ || size >= kZip64Limit;
  std::string h;
  put(h, kLocalSig, 4);
  put(h, zip64 ? 45 : 20, 2);  // version needed
  put(h, 0, 2);                // flags
  put(h, 0, 2);                // stored
  put(h, 0, 4);                // time, date
  const uint32_t crc = static_cast<uint32_t>(
      crc32_z(crc32_z(0, nullptr, 0), static_cast<const Bytef*>(data), static_cast<z_size_t>(size)));
  put(h, crc, 4);
  put(h, zip64 ? kZip64Limit : size, 4);
  put(h, zip64 ? kZip64Limit : size, 4);
  put(h, full.size(), 2);
  std::string extra;
  if (zip64) {
    put(extra, 0x0001, 2);
    put(extra, 16, 2);
    put(extra, size, 8);
    put(extra, size, 8);
  }
  // Padding ("FB" field, as torch.save) so that the data starts at a multiple of 64 bytes.
  const uint64_t before = at_ + h.size() + 2 + full.size() + extra.size() + 4;
  put(extra, 0x4246, 2);
  put(extra, (kAlign - before % kAlign) % kAlign, 2);
  extra.append((kAlign - before % kAlign) % kAlign, 'Z');
  put(h, extra.size(), 2);
  h += full;
  h += extra;
  written_.push_back({full, crc, size, at_});
  out_.write(h.data(), static_cast<std::streamsize>(h.size()));
  out_.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  at_ += h.size() + size;
}

void ZipWriter::finish() {
  const uint64_t dir_offset = at_;
  std::string d;
  bool any64 = force_zip64_;
  for (const auto& w : written_) {
    const bool zip64 = force_zip64_ || w.size >= kZip64Limit || w.offset >= kZip64Limit;
    any64 = any64 || zip64;
    put(d, kCentralSig, 4);
    put(d, zip64 ? 45 : 20, 2);  // made by
    put(d, zip64 ? 45 : 20, 2);  // needed
    put(d, 0, 2);
    put(d, 0, 2);
    put(d, 0, 4);
    put(d, w.crc, 4);
    put(d, zip64 ? kZip64Limit : w.size, 4);
    put(d, zip64 ? kZip64Limit : w.size, 4);
    put(d, w.name.size(), 2);
    put(d, zip64 ? 28 : 0, 2);  // extra
    put(d, 0, 2);               // comment
    put(d, 0, 2);               // disk
    put(d, 0, 2);
    put(d, 0, 4);
    put(d, zip64 ? kZip64Limit : w.offset, 4);
    d += w.name;
    if (zip64) {
      put(d, 0x0001, 2);
      put(d, 24, 2);
      put(d, w.size, 8);
      put(d, w.size, 8);
      put(d, w.offset, 8);
    }
  }
  const uint64_t dir_size = d.size(), count = written_.size();
  any64 = any64 || dir_offset >= kZip64Limit || count >= 0xffff;
  if (any64) {
    const uint64_t end64_offset = dir_offset + dir_size;
    put(d, kEnd64Sig, 4);
    put(d, kEnd64Size - 12, 8);
    put(d, 45, 2);
    put(d, 45, 2);
    put(d, 0, 4);
    put(d, 0, 4);
    put(d, count, 8);
    put(d, count, 8);
    put(d, dir_size, 8);
    put(d, dir_offset, 8);
    put(d, kEnd64LocatorSig, 4);
    put(d, 0, 4);
    put(d, end64_offset, 8);
    put(d, 1, 4);
  }
  put(d, kEndSig, 4);
  put(d, 0, 2);
  put(d, 0, 2);
  put(d, any64 ? 0xffff : count, 2);
  put(d, any64 ? 0xffff : count, 2);
  put(d, any64 ? kZip64Limit : dir_size, 4);
  put(d, any64 ? kZip64Limit : dir_offset, 4);
  put(d, 0, 2);
  out_.write(d.data(), static_cast<std::streamsize>(d.size()));
  at_ += d.size();
}

}  // namespace ewa::io
