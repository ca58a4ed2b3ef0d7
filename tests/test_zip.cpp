// The zip container of torch.save files (io::ZipArchive, read by io::read_torch_archive for
// checkpoints, official weights and the dataset cache): the layouts PyTorch and Python's zipfile
// write read back to the same tensors, and every damaged offset, size, method or checksum is a
// one-line error naming the file, before anything is allocated for it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "io/torch_pickle.h"
#include "io/zip_archive.h"
#include "test_util.h"

namespace {
using ewa::testing::error_of;
using ewa::testing::TempDir;
using ewa::io::PyRef;

const std::string kPython = EWA_PYTHON;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Byte surgery on a zip archive, located the way the format defines it (APPNOTE 4.3): the end
// record is the last "PK\5\6", its entry count at +10 and directory offset at +16; PyTorch also
// writes zip64 end records (whose values then count), located by the 20-byte locator before the
// end record; a directory entry's name length is at +28, its local header's offset at +42.
struct ZipBytes {
  std::string b;
  uint32_t u(size_t at, int n) const {
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b.at(at + i));
    return v;
  }
  void set(size_t at, int n, uint32_t v) {
    for (int i = 0; i < n; ++i, v >>= 8) b.at(at + i) = static_cast<char>(v & 0xff);
  }
  size_t end_record() const { return b.rfind(std::string("PK\x05\x06", 4)); }
  size_t locator() const { return end_record() - 20; }
  size_t end64() const { return u(locator() + 8, 4); }
  size_t central(const std::string& suffix) const {
    size_t at = u(end_record() + 16, 4);
    for (uint32_t n = 0; n < u(end_record() + 10, 2); ++n) {
      const std::string name = b.substr(at + 46, u(at + 28, 2));
      if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) return at;
      at += 46 + u(at + 28, 2) + u(at + 30, 2) + u(at + 32, 2);
    }
    throw std::runtime_error("no record " + suffix);
  }
  size_t local(const std::string& suffix) const { return u(central(suffix) + 42, 4); }
  size_t data(const std::string& suffix) const { return local(suffix) + 30 + u(local(suffix) + 26, 2) + u(local(suffix) + 28, 2); }
};

const torch::Tensor& tensor_at(const PyRef& dict, const std::string& key) {
  const PyRef v = dict->get(key);
  if (!v || v->kind != ewa::io::PyValue::Kind::Tensor) throw std::runtime_error("no tensor " + key);
  return v->tensor;
}

// torch::pickle_save's archive of {"w": 5x3 floats, "i": int64, "e": empty}.
std::string small_archive(const torch::Tensor& w, const torch::Tensor& i) {
  c10::Dict<std::string, at::Tensor> d;
  d.insert("w", w);
  d.insert("i", i);
  d.insert("e", torch::empty({0}));
  const auto bytes = torch::pickle_save(at::IValue(d));
  return std::string(bytes.begin(), bytes.end());
}

TEST(ZipArchive, PickleSaveArchivesReadBackExactlyIncludingAnEmptyStorage) {
  TempDir dir;
  const auto w = torch::randn({5, 3});
  const auto i = torch::randint(-(int64_t{1} << 40), int64_t{1} << 40, {7}, torch::kLong);
  ewa::testing::write_file(dir / "a.pt", small_archive(w, i));
  const PyRef root = ewa::io::read_torch_archive(dir / "a.pt");
  EXPECT_TRUE(torch::equal(tensor_at(root, "w"), w));
  EXPECT_TRUE(torch::equal(tensor_at(root, "i"), i));
  EXPECT_EQ(tensor_at(root, "e").numel(), 0);
  ewa::io::ZipArchive zip(dir / "a.pt");
  EXPECT_TRUE(zip.has("data.pkl"));
  EXPECT_EQ(zip.size("data/0") + zip.size("data/1") + zip.size("data/2"), 5 * 3 * 4 + 7 * 8u);
}

TEST(ZipArchive, TorchSaveDeflatedAndZip64LayoutsReadTheSame) {
  if (kPython.empty()) GTEST_SKIP() << "no Python torch to write the fixtures";
  TempDir dir;
  auto r = ewa::testing::run_command(kPython + " " + EWA_SOURCE_DIR + "/tests/fixtures/zip_layouts.py " + dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The fixtures are what their names say: records compressed with deflate (method 8 at +10 of
  // each directory entry), zip64 end records.
  ZipBytes deflated{read_bytes(dir / "deflated.pt")};
  EXPECT_EQ(deflated.u(deflated.central("data/0") + 10, 2), 8u);
  EXPECT_NE(read_bytes(dir / "zip64.pt").find(std::string("PK\x06\x06", 4)), std::string::npos);
  const auto a = torch::arange(12, torch::kFloat32).reshape({3, 4}) / 7;
  const auto b = torch::tensor({int64_t{1}, int64_t{-2}, int64_t{4052555153018976267}}, torch::kLong);  // 3^39
  for (const char* name : {"plain.pt", "deflated.pt", "zip64.pt"}) {
    SCOPED_TRACE(name);
    const PyRef root = ewa::io::read_torch_archive(dir / name);
    EXPECT_TRUE(torch::equal(tensor_at(root, "a"), a));
    EXPECT_TRUE(torch::equal(tensor_at(root, "b"), b));
    EXPECT_EQ(tensor_at(root, "e").numel(), 0);
  }
}

TEST(ZipArchive, DamagedArchivesAreOneLineErrorsNamingTheFileAndRecord) {
  TempDir dir;
  const ZipBytes good{small_archive(torch::randn({5, 3}), torch::arange(7))};
  ASSERT_EQ(good.u(good.locator(), 4), 0x07064b50u);  // torch::pickle_save writes zip64 end records
  const size_t end64 = good.end64();
  struct Case {
    const char* what;
    std::function<void(ZipBytes&)> damage;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"a flipped data byte", [](ZipBytes& z) { z.b[z.data("data/0") + 3] ^= 0x10; },
       "record 'data/0' fails its CRC-32 check (the file is damaged)"},
      {"a 4 GB record size", [](ZipBytes& z) { z.set(z.central("data/0") + 24, 4, 0xFFFFFFFFu); },
       "corrupt zip archive: record 'archive/data/0' claims 4294967295 bytes from 60 stored bytes"},
      {"a compressed size past the directory", [](ZipBytes& z) {
         z.set(z.central("data/0") + 20, 4, 1u << 20);
         z.set(z.central("data/0") + 24, 4, 1u << 20); },
       "record 'archive/data/0' (1048576 bytes at byte"},
      {"an unknown compression method", [](ZipBytes& z) { z.set(z.central("data/0") + 10, 2, 99); },
       "record 'archive/data/0' uses compression method 99; only stored (0) and deflate (8) are supported"},
      {"an encrypted record", [](ZipBytes& z) { z.set(z.central("data.pkl") + 8, 2, 1); },
       "record 'archive/data.pkl' is encrypted"},
      {"60000 entries", [end64](ZipBytes& z) { z.set(end64 + 24, 4, 60000); z.set(end64 + 32, 4, 60000); },
       "60000 entries cannot fit in a"},
      {"the directory past the end", [end64](ZipBytes& z) { z.set(end64 + 48, 4, 0x7FFFFFFF); },
       "the central directory ("},
      {"a local header offset past the directory", [](ZipBytes& z) { z.set(z.central("data/1") + 42, 4, 0x40000000); },
       "record 'archive/data/1' (56 bytes at byte 1073741824) does not lie before the central directory"},
      {"a local extra field running into the directory", [](ZipBytes& z) { z.set(z.local("data/1") + 28, 2, 0xFFFF); },
       "record 'data/1' (56 bytes at byte"},
      {"a missing local header", [](ZipBytes& z) { z.set(z.local("data/1"), 4, 0); },
       "corrupt zip archive: no local header for record 'data/1'"},
      {"a directory entry without its signature", [](ZipBytes& z) { z.set(z.central("data/1"), 4, 0); },
       "is missing or cut off"},
      {"split over disks", [end64](ZipBytes& z) { z.set(end64 + 16, 4, 1); },
       "a zip archive split over several disks is not supported"},
      {"a wrong zip64 end record offset", [](ZipBytes& z) { z.set(z.locator() + 8, 4, 0); },
       "corrupt zip archive: no zip64 end record at byte 0"},
      {"the zip64 end record past the file", [](ZipBytes& z) { z.set(z.locator() + 12, 4, 0x100); },
       "the zip64 end record's offset 1099511"},
      {"split over disks (locator)", [](ZipBytes& z) { z.set(z.locator() + 16, 4, 2); },
       "a zip archive split over several disks is not supported"},
      {"cut in half", [](ZipBytes& z) { z.b.resize(z.b.size() / 2); },
       "not a readable torch.save file (truncated, or not a zip archive written by torch.save)"},
      {"empty", [](ZipBytes& z) { z.b.clear(); }, "not a readable torch.save file"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    ZipBytes z = good;
    c.damage(z);
    ewa::testing::write_file(dir / "bad.pt", z.b);
    const std::string msg = error_of([&] { ewa::io::read_torch_archive(dir / "bad.pt"); });
    EXPECT_EQ(msg.rfind(dir / "bad.pt: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

}  // namespace
