#include "datasets/image_datasets.h"

#include <zlib.h>

#include <filesystem>
#include <map>
#include <memory>

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"
#include "data/batch_source.h"

namespace ewa::datasets {
using data::classes_present_note;
using data::per_class_subset;
using data::validation_split;

namespace fs = std::filesystem;

namespace {

// Reads files through zlib, which reads gzip and raw files alike.
class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path), f_(gzopen(path.c_str(), "rb")) {
    if (!f_) fail(path + ": cannot open file");
  }
  ~GzFile() { if (f_) gzclose(f_); }
  // Reads exactly n bytes or throws naming `what`.
  void read(void* dst, size_t n, const std::string& what) {
    size_t got = 0;
    auto* p = static_cast<unsigned char*>(dst);
    while (got < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
      const int r = gzread(f_, p + got, chunk);
      if (r < 0) {
        int err = 0;
        fail(path_ + ": corrupt data while reading " + what + " (" + gzerror(f_, &err) + ")");
      }
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    if (got < n)
      fail(path_ + ": truncated: expected " + std::to_string(n) + " bytes of " + what + ", found " + std::to_string(got));
  }
  uint32_t read_be32(const std::string& what) {
    unsigned char b[4];
    read(b, 4, what);
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
  }

 private:
  std::string path_;
  gzFile f_;
};

void check_labels(const torch::Tensor& labels, int64_t num_classes, const std::string& path) {
  if (labels.numel() == 0) return;
  const int64_t mx = labels.max().item<int64_t>();
  if (mx >= num_classes)
    fail(path + ": label " + std::to_string(mx) + " out of range: expected labels in [0, " + std::to_string(num_classes) + ")");
}

std::string find_idx(const std::string& root, const std::string& stem) {
  for (const auto& name : {stem + ".gz", stem}) {
    const auto p = (fs::path(root) / name).string();
    if (fs::exists(p)) return p;
  }
  fail("dataset " + root + ": missing file " + stem + "(.gz)");
}

const std::vector<std::string> kFashionNames = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
const std::vector<std::string> kCifar10Names = {"airplane", "automobile", "bird", "cat", "deer",
                                                "dog", "frog", "horse", "ship", "truck"};

}  // namespace

ImageDataset read_idx(const std::string& images_path, const std::string& labels_path, int64_t num_classes) {
  ImageDataset ds;
  GzFile img(images_path);
  const uint32_t img_magic = img.read_be32("header");
  if (img_magic != 0x00000803)
    fail(images_path + ": not an IDX image file: expected magic 0x00000803 (ubyte, 3 dims), found 0x" +
         [&] { char b[16]; std::snprintf(b, sizeof b, "%08x", img_magic); return std::string(b); }());
  const int64_t n = img.read_be32("header"), rows = img.read_be32("header"), cols = img.read_be32("header");
  if (rows == 0 || cols == 0 || rows != cols || rows > 65536)
    fail(images_path + ": expected square images of at most 65536x65536, header says " + std::to_string(rows) + "x" +
         std::to_string(cols));
  const uint64_t claimed = uint64_t(n) * uint64_t(rows) * uint64_t(cols);  // < 2^64: n < 2^32, rows * cols <= 2^32
  if (const uint64_t on_disk = bytes_on_disk(images_path); claimed / kMaxInflation > on_disk)
    fail(images_path + ": header claims " + std::to_string(n) + " images of " + std::to_string(rows) + "x" +
         std::to_string(cols) + " (" + std::to_string(claimed) + " bytes) but the file has only " +
         std::to_string(on_disk) + " bytes: truncated or corrupt");
  ds.images = torch::empty({n, 1, rows, cols}, torch::kUInt8);
  img.read(ds.images.data_ptr<uint8_t>(), static_cast<size_t>(n * rows * cols), "pixel data");

  GzFile lab(labels_path);
  const uint32_t lab_magic = lab.read_be32("header");
  if (lab_magic != 0x00000801) fail(labels_path + ": not an IDX label file: expected magic 0x00000801 (ubyte, 1 dim)");
  const int64_t nl = lab.read_be32("header");
  if (nl != n)
    fail(labels_path + ": has " + std::to_string(nl) + " labels but " + images_path + " has " + std::to_string(n) + " images");
  auto raw = torch::empty({n}, torch::kUInt8);
  lab.read(raw.data_ptr<uint8_t>(), static_cast<size_t>(n), "labels");
  ds.labels = raw.to(torch::kLong);
  check_labels(ds.labels, num_classes, labels_path);
  ds.num_classes = num_classes;
  return ds;
}

ImageDataset read_cifar(const std::vector<std::string>& files, int64_t label_bytes, int64_t num_classes) {
  const int64_t pixels = 3 * 32 * 32, record = label_bytes + pixels;
  std::vector<torch::Tensor> images, labels;
  for (const auto& path : files) {
    const uint64_t bytes = bytes_on_disk(path);
    if (bytes == 0 || bytes % record != 0)
      fail(path + ": truncated or not a CIFAR binary file: size " + std::to_string(bytes) +
           " is not a positive multiple of the record size " + std::to_string(record));
    const int64_t n = static_cast<int64_t>(bytes) / record;
    auto raw = torch::empty({n, record}, torch::kUInt8);
    GzFile f(path);
    f.read(raw.data_ptr<uint8_t>(), bytes, "records");
    images.push_back(raw.narrow(1, label_bytes, pixels).reshape({n, 3, 32, 32}).clone());
    auto lab = raw.select(1, label_bytes - 1).to(torch::kLong);
    check_labels(lab, num_classes, path);
    labels.push_back(lab);
  }
  ImageDataset ds;
  ds.images = torch::cat(images, 0);
  ds.labels = torch::cat(labels, 0);
  ds.num_classes = num_classes;
  return ds;
}

ImageDataset subset(const ImageDataset& ds, const torch::Tensor& index) {
  ImageDataset out = ds;
  out.images = ds.images.index_select(0, index);
  out.labels = ds.labels.index_select(0, index);
  return out;
}

namespace {

ImageSplits read_mnist_layout(const std::string& root) {
  // Paths first, in a fixed order, so a missing file is reported deterministically.
  const std::string train_images = find_idx(root, "train-images-idx3-ubyte");
  const std::string train_labels = find_idx(root, "train-labels-idx1-ubyte");
  const std::string test_images = find_idx(root, "t10k-images-idx3-ubyte");
  const std::string test_labels = find_idx(root, "t10k-labels-idx1-ubyte");
  return {read_idx(train_images, train_labels, 10), {}, read_idx(test_images, test_labels, 10)};
}

ImageSplits read_cifar10(const std::string& root) {
  std::vector<std::string> train_files;
  for (int i = 1; i <= 5; ++i) train_files.push_back((fs::path(root) / ("data_batch_" + std::to_string(i) + ".bin")).string());
  return {read_cifar(train_files, 1, 10), {}, read_cifar({(fs::path(root) / "test_batch.bin").string()}, 1, 10)};
}

ImageSplits read_cifar100(const std::string& root) {
  return {read_cifar({(fs::path(root) / "train.bin").string()}, 2, 100), {},
          read_cifar({(fs::path(root) / "test.bin").string()}, 2, 100)};
}

std::vector<std::string> numbered(const char* prefix, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

// Every image dataset: its reader, class names and per-channel normalisation.
struct ImageFormat {
  ImageSplits (*read)(const std::string& root);
  std::vector<std::string> names;
  std::vector<float> mean, std;
};

const std::map<std::string, ImageFormat>& image_formats() {
  static const std::map<std::string, ImageFormat> table = {
      {"fashion_mnist", {read_mnist_layout, kFashionNames, {0.2860f}, {0.3530f}}},
      {"mnist", {read_mnist_layout, numbered("", 10), {0.1307f}, {0.3081f}}},
      {"cifar10", {read_cifar10, kCifar10Names, {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}}},
      {"cifar100", {read_cifar100, numbered("class_", 100), {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}}},
  };
  return table;
}

}  // namespace

std::vector<std::string> image_dataset_names() {
  std::vector<std::string> out;
  for (const auto& [name, format] : image_formats()) out.push_back(name);
  return out;
}

ImageSplits load_image_splits(const DataConfig& cfg, uint64_t seed) {
  const std::string& root = cfg.root;
  const auto format = image_formats().find(cfg.dataset);
  if (format == image_formats().end()) fail("data.dataset: '" + cfg.dataset + "' is not an image dataset");
  if (!fs::is_directory(root)) fail("data.root: dataset directory " + root + " does not exist");
  ImageSplits s = format->second.read(root);
  for (auto* d : {&s.train, &s.test}) {
    d->class_names = format->second.names;
    d->mean = format->second.mean;
    d->std = format->second.std;
  }
  if (cfg.train_limit > 0 && cfg.train_limit < s.train.size()) s.train = subset(s.train, torch::arange(cfg.train_limit));
  if (cfg.test_limit > 0 && cfg.test_limit < s.test.size()) s.test = subset(s.test, torch::arange(cfg.test_limit));
  if (cfg.train_limit > 0)
    if (auto note = classes_present_note(s.train.labels, s.train.num_classes, cfg.train_limit); !note.empty())
      s.notes.push_back(note);
  if (cfg.train_per_class > 0) {
    const int64_t before = s.train.size();
    s.train = subset(s.train, per_class_subset(s.train.labels, cfg.train_per_class, seed));
    s.notes.push_back("train subset: " + std::to_string(cfg.train_per_class) + " per class (data.train_per_class, seed " +
                      std::to_string(seed) + "): " + std::to_string(s.train.size()) + " of " + std::to_string(before) +
                      " training images");
  }
  if (cfg.val_fraction > 0) {
    const auto [vi, ti] = validation_split(s.train.size(), cfg.val_fraction, seed);
    s.val = subset(s.train, vi);
    s.train = subset(s.train, ti);
  }
  if (s.train.size() == 0) fail("data.root: " + root + ": the training split is empty");
  if (s.test.size() == 0) fail("data.root: " + root + ": the test split is empty");
  return s;
}

}  // namespace ewa::datasets
