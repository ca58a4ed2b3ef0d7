// IDX and CIFAR readers on small files written in the exact official formats.
#include <gtest/gtest.h>

#include "common/error.h"
#include "datasets/image_datasets.h"
#include "datasets/image_loader.h"
#include "test_util.h"

namespace {
using ewa::testing::TempDir;
using ewa::testing::idx_bytes;
using ewa::testing::write_file;

using ewa::testing::error_of;

TEST(Idx, ReadsRawAndGzipFilesBack) {
  for (bool gz : {false, true}) {
    TempDir dir;
    auto images = torch::randint(0, 256, {7, 5, 5}, torch::kLong);
    auto labels = torch::randint(0, 10, {7}, torch::kLong);
    write_file(dir / "img", idx_bytes(images), gz);
    write_file(dir / "lab", idx_bytes(labels), gz);
    auto ds = ewa::datasets::read_idx(dir / "img", dir / "lab", 10);
    EXPECT_EQ(ds.images.sizes(), (std::vector<int64_t>{7, 1, 5, 5}));
    EXPECT_TRUE(torch::equal(ds.images.squeeze(1).to(torch::kLong), images)) << "gz=" << gz;
    EXPECT_TRUE(torch::equal(ds.labels, labels));
  }
}

TEST(Idx, CorruptFilesGiveOneLineErrorsNamingTheFile) {
  TempDir dir;
  auto images = torch::randint(0, 256, {4, 6, 6}, torch::kLong);
  auto labels = torch::tensor({1, 2, 3, 4}, torch::kLong);
  const std::string good_images = idx_bytes(images), good_labels = idx_bytes(labels);
  write_file(dir / "lab", good_labels);

  write_file(dir / "trunc", good_images.substr(0, good_images.size() - 10));
  auto e = error_of([&] { ewa::datasets::read_idx(dir / "trunc", dir / "lab", 10); });
  EXPECT_NE(e.find(dir / "trunc"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);

  write_file(dir / "trunc.gz", good_images.substr(0, 30), /*gz=*/true);
  e = error_of([&] { ewa::datasets::read_idx(dir / "trunc.gz", dir / "lab", 10); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;

  // A gzip stream cut in the middle.
  write_file(dir / "full.gz", good_images, true);
  std::ifstream in(dir / "full.gz", std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file(dir / "cut.gz", gz.substr(0, gz.size() / 2));
  e = error_of([&] { ewa::datasets::read_idx(dir / "cut.gz", dir / "lab", 10); });
  EXPECT_NE(e.find(dir / "cut.gz"), std::string::npos) << e;

  write_file(dir / "magic", good_labels);  // a label file where images are expected
  e = error_of([&] { ewa::datasets::read_idx(dir / "magic", dir / "lab", 10); });
  EXPECT_NE(e.find("expected magic 0x00000803"), std::string::npos) << e;

  write_file(dir / "img", good_images);
  write_file(dir / "lab3", idx_bytes(torch::tensor({1, 2, 3}, torch::kLong)));
  e = error_of([&] { ewa::datasets::read_idx(dir / "img", dir / "lab3", 10); });
  EXPECT_NE(e.find("has 3 labels but"), std::string::npos) << e;

  write_file(dir / "lab_big", idx_bytes(torch::tensor({1, 2, 3, 12}, torch::kLong)));
  e = error_of([&] { ewa::datasets::read_idx(dir / "img", dir / "lab_big", 10); });
  EXPECT_NE(e.find("label 12 out of range"), std::string::npos) << e;

  e = error_of([&] { ewa::datasets::read_idx(dir / "nope", dir / "lab", 10); });
  EXPECT_NE(e.find("cannot open"), std::string::npos) << e;
}

TEST(Idx, MissingDatasetFilesAreNamed) {
  TempDir dir;
  ewa::DataConfig cfg;
  cfg.root = dir.path();
  auto e = error_of([&] { ewa::datasets::load_image_splits(cfg, 0); });
  EXPECT_NE(e.find("missing file train-images-idx3-ubyte"), std::string::npos) << e;
  cfg.root = dir / "absent";
  e = error_of([&] { ewa::datasets::load_image_splits(cfg, 0); });
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
}

// CIFAR records: label byte(s), then 1024 R, 1024 G, 1024 B bytes.
std::string cifar_bytes(const torch::Tensor& images, const torch::Tensor& labels, int label_bytes) {
  std::string s;
  auto img = images.to(torch::kUInt8).contiguous();
  for (int64_t i = 0; i < images.size(0); ++i) {
    if (label_bytes == 2) s += char(labels[i].item<int64_t>() / 5);  // coarse label
    s += char(labels[i].item<int64_t>());
    s.append(reinterpret_cast<const char*>(img[i].data_ptr<uint8_t>()), 3072);
  }
  return s;
}

TEST(Cifar, ReadsCifar10And100RecordsBack) {
  TempDir dir;
  auto images = torch::randint(0, 256, {5, 3, 32, 32}, torch::kLong);
  auto labels10 = torch::tensor({0, 9, 3, 3, 7}, torch::kLong);
  auto labels100 = torch::tensor({0, 99, 42, 17, 5}, torch::kLong);
  write_file(dir / "b10.bin", cifar_bytes(images, labels10, 1));
  write_file(dir / "b100.bin", cifar_bytes(images, labels100, 2));
  auto d10 = ewa::datasets::read_cifar({dir / "b10.bin", dir / "b10.bin"}, 1, 10);
  EXPECT_EQ(d10.size(), 10);
  EXPECT_TRUE(torch::equal(d10.images.narrow(0, 5, 5).to(torch::kLong), images));
  EXPECT_TRUE(torch::equal(d10.labels.narrow(0, 0, 5), labels10));
  auto d100 = ewa::datasets::read_cifar({dir / "b100.bin"}, 2, 100);
  EXPECT_TRUE(torch::equal(d100.labels, labels100));  // the fine label
  EXPECT_TRUE(torch::equal(d100.images.to(torch::kLong), images));
}

TEST(Cifar, TruncatedOrMislabelledFilesAreErrors) {
  TempDir dir;
  auto images = torch::randint(0, 256, {2, 3, 32, 32}, torch::kLong);
  auto bytes = cifar_bytes(images, torch::tensor({1, 2}, torch::kLong), 1);
  write_file(dir / "short.bin", bytes.substr(0, bytes.size() - 1));
  auto e = error_of([&] { ewa::datasets::read_cifar({dir / "short.bin"}, 1, 10); });
  EXPECT_NE(e.find(dir / "short.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("not a positive multiple of the record size 3073"), std::string::npos) << e;
  write_file(dir / "label.bin", cifar_bytes(images, torch::tensor({1, 200}, torch::kLong), 1));
  e = error_of([&] { ewa::datasets::read_cifar({dir / "label.bin"}, 1, 10); });
  EXPECT_NE(e.find("label 200 out of range"), std::string::npos) << e;
  e = error_of([&] { ewa::datasets::read_cifar({dir / "data_batch_1.bin"}, 1, 10); });
  EXPECT_NE(e.find("cannot open"), std::string::npos) << e;
}

TEST(Splits, ValidationIsCarvedFromTrainingDisjointlyAndDeterministically) {
  TempDir dir;
  ewa::testing::write_pattern_idx(dir.path(), 200, 30, /*gz=*/true);
  ewa::DataConfig cfg;
  cfg.root = dir.path();
  cfg.val_fraction = 0.25;
  auto a = ewa::datasets::load_image_splits(cfg, 7);
  auto b = ewa::datasets::load_image_splits(cfg, 7);
  EXPECT_EQ(a.val.size(), 50);
  EXPECT_EQ(a.train.size(), 150);
  EXPECT_EQ(a.test.size(), 30);
  EXPECT_TRUE(torch::equal(a.val.images, b.val.images));
  cfg.val_fraction = 0;
  auto all = ewa::datasets::load_image_splits(cfg, 7);
  // Every training image lands in exactly one of train / val: compare multisets of image sums.
  auto sums = [](const torch::Tensor& imgs) { return imgs.to(torch::kLong).sum({1, 2, 3}); };
  auto joined = std::get<0>(torch::cat({sums(a.train.images), sums(a.val.images)}).sort());
  EXPECT_TRUE(torch::equal(joined, std::get<0>(sums(all.train.images).sort())));
}

TEST(Augment, RandomCropIsAShiftedWindowOfThePaddedImage) {
  auto x = torch::rand({6, 2, 8, 8});
  auto y = ewa::datasets::random_crop(x, 2);
  auto padded = torch::constant_pad_nd(x, {2, 2, 2, 2}, 0.0);
  for (int64_t i = 0; i < 6; ++i) {
    bool found = false;
    for (int64_t dy = 0; dy <= 4 && !found; ++dy)
      for (int64_t dx = 0; dx <= 4 && !found; ++dx)
        found = torch::equal(y[i], padded[i].narrow(1, dy, 8).narrow(2, dx, 8));
    EXPECT_TRUE(found) << "sample " << i;
  }
  auto f = ewa::datasets::random_hflip(x);
  for (int64_t i = 0; i < 6; ++i) EXPECT_TRUE(torch::equal(f[i], x[i]) || torch::equal(f[i], x[i].flip({2})));
}

TEST(Batcher, EpochOrderIsAPermutationFixedBySeedAndEpoch) {
  TempDir dir;
  ewa::testing::write_pattern_idx(dir.path(), 50, 10, false);
  ewa::DataConfig cfg;
  cfg.root = dir.path();
  auto s = ewa::datasets::load_image_splits(cfg, 0);
  s.train.mean = {0.0f};
  s.train.std = {1.0f};
  ewa::datasets::ImageBatcher a(s.train, 16, true, 3), b(s.train, 16, true, 3);
  EXPECT_EQ(a.size(), 50);
  EXPECT_EQ(a.num_batches(), 4);
  a.start_epoch(1);
  b.start_epoch(1);
  std::vector<torch::Tensor> labels;
  for (int64_t i = 0; i < a.num_batches(); ++i) {
    EXPECT_TRUE(torch::equal(a.batch(i, ewa::data::View::Plain).second, b.batch(i, ewa::data::View::Plain).second));
    labels.push_back(a.batch(i, ewa::data::View::Plain).second);
  }
  auto all = torch::cat(labels);
  EXPECT_EQ(all.size(0), 50);
  EXPECT_TRUE(torch::equal(std::get<0>(all.sort()), std::get<0>(s.train.labels.sort())));
  b.start_epoch(2);
  EXPECT_FALSE(torch::equal(a.batch(0, ewa::data::View::Plain).second, b.batch(0, ewa::data::View::Plain).second) && torch::equal(a.batch(1, ewa::data::View::Plain).second, b.batch(1, ewa::data::View::Plain).second));
}

}  // namespace
