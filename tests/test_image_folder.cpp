// Image folders and Tiny-ImageNet's layout (datasets/image_folder.h): which files, in which order,
// with which labels (against torchvision's ImageFolder on the same folder where Python is
// there), the refusals, and the decoded-image cache.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "datasets/image_folder.h"
#include "infer/predict.h"
#include "models/registry.h"
#include "test_util.h"

namespace {
namespace fs = std::filesystem;
using ewa::testing::error_of;
using ewa::testing::TempDir;

using ewa::testing::write_bmp;

torch::Tensor random_image(int64_t h, int64_t w, int64_t seed) {
  torch::manual_seed(static_cast<uint64_t>(seed));
  return torch::randint(0, 256, {h, w, 3}, torch::kUInt8);
}

std::vector<std::string> relative(const std::vector<std::string>& files, const std::string& root) {
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back(fs::relative(f, root).string());
  return out;
}

TEST(ImageFolder, ListsClassesAndFilesAsImageFolderWalksThem) {
  TempDir d;
  const std::string root = d.path();
  int seed = 0;
  for (const char* f : {"train/dog/x.BMP", "train/cat/b.bmp", "train/cat/a.bmp", "train/cat/sub/c.bmp", "train/cat/sub b/d.bmp",
                        "train/cat/sub/a.bmp", "val/dog/w.bmp", "val/cat/v.bmp", "train/ant/z.bmp"})
    write_bmp(root + "/" + f, random_image(3, 4, seed++));
  ewa::testing::write_file(root + "/train/cat/notes.txt", "not an image");
  const auto l = ewa::datasets::list_image_folder(root);
  EXPECT_EQ(l.class_names, (std::vector<std::string>{"ant", "cat", "dog"}));
  const std::vector<std::string> train = {"train/ant/z.bmp",     "train/cat/a.bmp",       "train/cat/b.bmp",
                                          "train/cat/sub/a.bmp", "train/cat/sub/c.bmp",   "train/cat/sub b/d.bmp",
                                          "train/dog/x.BMP"};
  EXPECT_EQ(relative(l.train.files, root), train);
  EXPECT_EQ(l.train.labels, (std::vector<int64_t>{0, 1, 1, 1, 1, 1, 2}));
  EXPECT_EQ(relative(l.val.files, root), (std::vector<std::string>{"val/cat/v.bmp", "val/dog/w.bmp"}));
  EXPECT_EQ(l.val.labels, (std::vector<int64_t>{1, 2}));  // train's numbering, though val/ has no ant

  // torchvision's ImageFolder on train/ (the oracle of the order and the labels).
  const std::string python = EWA_PYTHON;
  if (!python.empty()) {
    const auto r = ewa::testing::run_command(
        python + " -c \"import json,sys; from torchvision.datasets import ImageFolder; f=ImageFolder(sys.argv[1]); "
                 "print(json.dumps([f.classes, [[p, t] for p, t in f.samples]]))\" " + root + "/train 2>&1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto j = nlohmann::json::parse(r.output);
    EXPECT_EQ(j[0].get<std::vector<std::string>>(), l.class_names);
    ASSERT_EQ(j[1].size(), l.train.files.size());
    for (size_t i = 0; i < l.train.files.size(); ++i) {
      EXPECT_EQ(fs::path(j[1][i][0].get<std::string>()), fs::path(l.train.files[i])) << i;
      EXPECT_EQ(j[1][i][1].get<int64_t>(), l.train.labels[i]) << i;
    }
  }
}

TEST(ImageFolder, RefusesWhatImageFolderWouldReadDifferently) {
  TempDir d;
  const std::string root = d.path();
  write_bmp(root + "/train/cat/a.bmp", random_image(2, 2, 1));
  write_bmp(root + "/val/cat/a.bmp", random_image(2, 2, 2));
  EXPECT_NO_THROW(ewa::datasets::list_image_folder(root));
  ewa::testing::write_file(root + "/train/cat/b.webp", "RIFF");
  EXPECT_NE(error_of([&] { ewa::datasets::list_image_folder(root); })
                .find(root + "/train/cat/b.webp: an image ewa does not read (it reads .png, .jpg, .jpeg and .bmp)"),
            std::string::npos);
  fs::remove(root + "/train/cat/b.webp");
  write_bmp(root + "/val/bird/a.bmp", random_image(2, 2, 3));
  EXPECT_NE(error_of([&] { ewa::datasets::list_image_folder(root); }).find(root + "/val/bird: a class train/ does not have"),
            std::string::npos);
  fs::remove_all(root + "/val/bird");
  fs::create_directories(root + "/train/empty");
  EXPECT_NE(error_of([&] { ewa::datasets::list_image_folder(root); }).find(root + "/train/empty: holds no .png, .jpg, .jpeg or .bmp image"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ewa::datasets::list_image_folder(root + "/none"); }).find(root + "/none/train: no such folder"),
            std::string::npos);
}

TEST(ImageFolder, TinyImageNetLayout) {
  TempDir d;
  const std::string root = d.path();
  ewa::testing::write_file(root + "/wnids.txt", "n02\nn01\n");
  ewa::testing::write_file(root + "/words.txt", "n01\tgoldfish, Carassius auratus\nn02\tEuropean fire salamander\nn03\tother\n");
  write_bmp(root + "/train/n01/images/n01_0.bmp", random_image(4, 4, 1));
  write_bmp(root + "/train/n01/images/n01_1.bmp", random_image(4, 4, 2));
  write_bmp(root + "/train/n02/images/n02_0.bmp", random_image(4, 4, 3));
  ewa::testing::write_file(root + "/train/n01/n01_boxes.txt", "n01_0.bmp\t0\t0\t3\t3\n");
  write_bmp(root + "/val/images/val_0.bmp", random_image(4, 4, 4));
  write_bmp(root + "/val/images/val_1.bmp", random_image(4, 4, 5));
  ewa::testing::write_file(root + "/val/val_annotations.txt", "val_1.bmp\tn01\t0\t0\t3\t3\nval_0.bmp\tn02\t1\t1\t2\t2\n");
  const auto l = ewa::datasets::list_tiny_imagenet(root);
  EXPECT_EQ(l.class_names, (std::vector<std::string>{"n01", "n02"}));
  EXPECT_EQ(l.class_words, (std::vector<std::string>{"goldfish, Carassius auratus", "European fire salamander"}));
  EXPECT_EQ(relative(l.train.files, root),
            (std::vector<std::string>{"train/n01/images/n01_0.bmp", "train/n01/images/n01_1.bmp", "train/n02/images/n02_0.bmp"}));
  EXPECT_EQ(l.train.labels, (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(relative(l.val.files, root), (std::vector<std::string>{"val/images/val_0.bmp", "val/images/val_1.bmp"}));
  EXPECT_EQ(l.val.labels, (std::vector<int64_t>{1, 0}));
  ewa::testing::write_file(root + "/val/val_annotations.txt", "val_0.bmp\tn09\t1\t1\t2\t2\n");
  EXPECT_NE(error_of([&] { ewa::datasets::list_tiny_imagenet(root); })
                .find(root + "/val/val_annotations.txt: line 1: class n09 is not in wnids.txt"),
            std::string::npos);
}

// Decoded once, then read from the cache: the same pixels; a changed file is decoded again; a
// cache file that is cut off is decoded again, with a note saying so.
TEST(ImageFolder, DecodedImagesComeFromTheCacheAfterTheFirstRun) {
  TempDir d, cache;
  const std::string root = d.path();
  std::vector<torch::Tensor> written;
  const char* files[] = {"train/a/0.bmp", "train/a/1.bmp", "train/b/0.bmp", "val/a/0.bmp", "val/b/0.bmp"};
  for (int i = 0; i < 5; ++i) {
    written.push_back(random_image(3 + i, 5 - i % 2, 10 + i));
    write_bmp(root + "/" + files[i], written.back());
  }
  auto load = [&] {
    return ewa::datasets::load_decoded(ewa::datasets::list_image_folder(root), "image_folder", root, cache.path());
  };
  const auto first = load();
  ASSERT_EQ(first.notes.size(), 1u);
  EXPECT_EQ(first.notes[0].rfind("data cache: written " + cache.path() + "/image_folder_images_", 0), 0u) << first.notes[0];
  ASSERT_EQ(first.train.size(), 3);
  ASSERT_EQ(first.val.size(), 2);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(first.train.image(i).equal(written[size_t(i)])) << i;
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(first.val.image(i).equal(written[size_t(3 + i)])) << i;
  EXPECT_TRUE(first.val.labels.equal(torch::tensor({0, 1}, torch::kLong)));

  const auto second = load();
  ASSERT_EQ(second.notes.size(), 1u);
  EXPECT_EQ(second.notes[0].rfind("data cache: read ", 0), 0u) << second.notes[0];
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(second.train.image(i).equal(written[size_t(i)])) << i;

  // The cache file cut off: decoded again.
  const std::string cached = second.notes[0].substr(std::strlen("data cache: read "));
  fs::resize_file(cached, fs::file_size(cached) / 2);
  const auto third = load();
  ASSERT_EQ(third.notes.size(), 2u);
  EXPECT_NE(third.notes[0].find("cannot be read"), std::string::npos) << third.notes[0];
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(third.train.image(i).equal(written[size_t(i)])) << i;

  // A file changed: another key, decoded again.
  written[0] = random_image(6, 6, 99);
  write_bmp(root + "/" + files[0], written[0]);
  const auto fourth = load();
  EXPECT_EQ(fourth.notes[0].rfind("data cache: written ", 0), 0u) << fourth.notes[0];
  EXPECT_TRUE(fourth.train.image(0).equal(written[0]));

  // A file that does not decode is named.
  ewa::testing::write_file(root + "/train/b/0.bmp", "BM broken");
  EXPECT_NE(error_of(load).find(root + "/train/b/0.bmp: not a readable BMP"), std::string::npos);
}

// `ewa predict` feeds an image file to the model as the folder's test split feeds it (one reader,
// one evaluation transform): its input equals the test batch's row of the same image; a model of
// a dataset stored at a fixed size is refused.
TEST(ImageFolder, PredictInputIsTheTestSplitsRowOfTheSameImage) {
  TempDir d, cache;
  for (int i = 0; i < 4; ++i) {
    write_bmp(d.path() + "/train/c" + std::to_string(i % 2) + "/" + std::to_string(i) + ".bmp", random_image(20 + i, 30 - 2 * i, i));
    write_bmp(d.path() + "/val/c" + std::to_string(i % 2) + "/" + std::to_string(i) + ".bmp", random_image(40 - 3 * i, 25 + i, 50 + i));
  }
  const nlohmann::json j = {{"data", {{"dataset", "image_folder"}, {"root", d.path()}, {"image_size", 16}, {"crop_pct", 0.9},
                                      {"interpolation", "bilinear"}, {"cache_dir", cache.path()}}}};
  const auto cfg = ewa::parse_config(ewa::resolve_config(j, "test"), "test");
  auto task = ewa::datasets::load_folder_task(cfg.data, 0);
  const auto [x, y] = task.test->batch(0, ewa::data::View::Plain);
  const auto files = ewa::infer::expand_image_inputs({d.path() + "/val"});
  ASSERT_EQ(files.size(), 4u);  // c0/0, c0/2, c1/1, c1/3: the split's order
  ASSERT_EQ(x.size(0), 4);
  for (int64_t k = 0; k < 4; ++k) EXPECT_TRUE(torch::equal(ewa::infer::load_image_input(files[size_t(k)], cfg), x[k])) << files[size_t(k)];
  const auto fmnist = ewa::parse_config(ewa::resolve_config(nlohmann::json::object(), "test"), "test");
  auto model = ewa::models::build_model(fmnist.with({{"model.num_classes", 10}, {"model.in_chans", 1}, {"model.img_size", 28}}));
  const std::string e = error_of([&] { ewa::infer::predict_image_files(*model, fmnist, files, {}, torch::kCPU); });
  EXPECT_NE(e.find("predict: this model was trained on fashion_mnist"), std::string::npos) << e;
}

}  // namespace
