// A folder of users' images trained, evaluated and read from the data cache by the ewa program:
// image_folder with data.image_size, end to end.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace {
namespace fs = std::filesystem;
using ewa::testing::run_command;
using ewa::testing::TempDir;

const std::string kEwa = EWA_BINARY;

// A w x h BMP of one colour plus noise (the class is its colour).
void write_bmp(const std::string& path, int32_t w, int32_t h, const uint8_t rgb[3], uint32_t seed) {
  torch::manual_seed(seed);
  const auto colour = torch::tensor({int(rgb[0]), int(rgb[1]), int(rgb[2])}, torch::kInt).view({1, 1, 3});
  const auto noise = torch::randint(-8, 8, {h, w, 3}, torch::kInt);
  ewa::testing::write_bmp(path, (colour + noise).clamp(0, 255).to(torch::kUInt8));
}

TEST(ImageFolderCli, TrainsEvaluatesAndReadsTheDecodedImagesFromTheCache) {
  TempDir d;
  const std::string root = d.path() + "/pets", runs = d.path() + "/runs";
  const uint8_t colours[3][3] = {{200, 40, 40}, {40, 200, 40}, {40, 40, 200}};
  const char* classes[3] = {"cat", "dog", "fish"};
  uint32_t seed = 1;
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 12; ++i)
      write_bmp(root + "/train/" + classes[c] + "/" + std::to_string(i) + ".bmp", 20 + i, 24 + (i * 7) % 13, colours[c], seed++);
    for (int i = 0; i < 4; ++i)
      write_bmp(root + "/val/" + classes[c] + "/v" + std::to_string(i) + ".bmp", 30 - i, 22 + i, colours[c], seed++);
  }
  ewa::testing::write_file(d.path() + "/c.json", R"({"name": "pets", "model": {"name": "vit", "patch_size": 4, "embed_dim": 16,
    "depth": 1, "num_heads": 2}, "data": {"dataset": "image_folder", "root": ")" + root + R"(", "image_size": 16,
    "batch_size": 12, "random_crop_padding": 0, "hflip": true, "cache_dir": ")" + d.path() + R"(/cache"},
    "optim": {"lr": 0.003, "warmup_epochs": 0}, "train": {"epochs": 6, "runs_dir": ")" + runs + R"(", "log_every": 100}})");
  auto r = run_command(kEwa + " train --config " + d.path() + "/c.json 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("data       image_folder (" + root + "): train 36, val 0, test 12, 3 classes"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("data cache: written " + d.path() + "/cache/image_folder_images_"), std::string::npos) << r.output;
  std::ifstream metrics(runs + "/pets/metrics.json");
  const auto m = nlohmann::json::parse(metrics);
  EXPECT_GE(m["protocols"]["final"]["test"]["oa"].get<double>(), 0.9) << m.dump();  // three colours: learnt

  // The same folder again: the pixels come from the cache; `ewa eval` reads the folder through the
  // checkpoint's config.
  r = run_command(kEwa + " train --config " + d.path() + "/c.json --name again --set train.epochs=1 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("data cache: read " + d.path() + "/cache/image_folder_images_"), std::string::npos) << r.output;
  r = run_command(kEwa + " eval " + runs + "/pets/last.pt 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(12 samples"), std::string::npos) << r.output;

  // Without data.image_size, and with a file that does not decode: one line each.
  ewa::testing::write_file(d.path() + "/bad.json", R"({"model": {"name": "vit"}, "data": {"dataset": "image_folder", "root": ")" +
                                                       root + R"("}})");
  r = run_command(kEwa + " train --config " + d.path() + "/bad.json 2>&1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("key 'data.image_size': required for image_folder"), std::string::npos) << r.output;
  ewa::testing::write_file(root + "/train/cat/broken.bmp", "BM");
  r = run_command(kEwa + " train --config " + d.path() + "/c.json --name broken 2>&1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(ewa::testing::count_lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find(root + "/train/cat/broken.bmp: not a readable BMP"), std::string::npos) << r.output;
}

}  // namespace
