// The zip container of torch.save files (and of torch::pickle_save's, which ewa's checkpoints and
// dataset cache use), read without trusting anything it claims. LibTorch's PyTorchStreamReader
// (miniz) allocates whatever size a record's directory entry gives, 4 GB for a 7 KB file
// (fuzz/fuzz_checkpoint); this reader checks every offset and size against the file before it
// reads or allocates, and every record's CRC-32 after.
//
// Supported: the layout torch.save writes (one top folder, records stored uncompressed, data
// aligned by padding in the local headers' extra fields), zip64 (files over 4 GB), records
// compressed with deflate (archives re-zipped by other tools). Not supported: encryption, other
// compression methods, archives split over several disks.
#pragma once
#include <cstdint>
#include <fstream>
#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace ewa::io {

class ZipArchive {
 public:
  // Reads the end-of-central-directory record and the central directory. Throws ewa::Error naming
  // `path`: "cannot open" when it cannot be read, NotAZip when it has no end-of-central-directory
  // record, "corrupt zip archive: ..." when a record or the directory is inconsistent.
  explicit ZipArchive(const std::string& path);

  struct NotAZip {};  // thrown (not an ewa::Error) when the file has no zip directory at all

  // Records are named relative to the archive's top folder ("data.pkl", "data/0"), as torch.save
  // lays them out ("<name>/data.pkl"); entries outside the first entry's folder are not listed.
  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  uint64_t size(const std::string& name) const;  // uncompressed bytes
  // Reads record `name` into `out`, which holds size(name) bytes; checks its CRC-32.
  void read(const std::string& name, void* out);
  std::vector<char> read(const std::string& name);

 private:
  struct Entry {
    uint16_t method = 0;
    uint32_t crc = 0;
    uint64_t compressed = 0, uncompressed = 0, local_offset = 0;
  };
  // Where the central directory lies and how many entries it holds (the zip64 end record's
  // values when there is one).
  struct Directory {
    uint64_t entries = 0, bytes = 0, offset = 0;
  };
  Directory find_directory();
  // Entry `n` of the central directory from byte `pos` of `dir`: fills `e` and its full name,
  // returns the byte after it.
  uint64_t read_central_entry(const std::vector<unsigned char>& dir, uint64_t pos, uint64_t n, Entry& e,
                              std::string& name) const;
  const Entry& entry(const std::string& name) const;
  void read_at(uint64_t offset, void* out, uint64_t n, const char* what);
  [[noreturn]] void corrupt(const std::string& what) const;

  std::string path_;
  std::ifstream in_;
  uint64_t file_bytes_ = 0;
  uint64_t directory_offset_ = 0;  // local records lie before it
  std::map<std::string, Entry> entries_;
};

// The writer of the same layout, as torch.save writes it: records stored uncompressed under one
// top folder, each record's data aligned to 64 bytes (padding in the local header's extra field),
// zip64 records when an offset or size passes 4 GiB (or always, with force_zip64, for tests).
class ZipWriter {
 public:
  ZipWriter(std::ostream& out, std::string top_folder, bool force_zip64 = false);
  void add(const std::string& name, const void* data, uint64_t size);
  void finish();  // the central directory and end records; call once, after the last add()

 private:
  struct Written {
    std::string name;
    uint32_t crc = 0;
    uint64_t size = 0, offset = 0;
  };
  std::ostream& out_;
  std::string top_;
  bool force_zip64_;
  uint64_t at_ = 0;
  std::vector<Written> written_;
};

}  // namespace ewa::io
