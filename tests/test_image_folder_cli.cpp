// A folder of users' images trained, evaluated and read from the data cache by the ewa program:
// image_folder with data.image_size, end to end.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "viz/plot.h"

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

  // `ewa predict` on users' image files and a folder of them: each image's classes, as the test
  // split is fed (the model tells the three colours apart: a red image is a cat); a file that
  // does not decode gets its own error, the others are still predicted.
  std::filesystem::create_directories(d.path() + "/mine/sub");
  write_bmp(d.path() + "/mine/red.bmp", 27, 19, colours[0], 9001);
  write_bmp(d.path() + "/mine/sub/blue.BMP", 31, 31, colours[2], 9002);
  ewa::testing::write_file(d.path() + "/mine/notes.txt", "not an image");
  r = run_command(kEwa + " predict " + runs + "/pets/last.pt " + d.path() + "/mine -k 2 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(d.path() + "/mine/red.bmp: cat "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(d.path() + "/mine/sub/blue.BMP: fish "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2 of 2 files predicted (single pass"), std::string::npos) << r.output;
  ewa::testing::write_file(d.path() + "/mine/cut.bmp", "BM");
  r = run_command(kEwa + " predict " + runs + "/pets/last.pt " + d.path() + "/mine/red.bmp " + d.path() + "/mine/cut.bmp --json 2>&1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  std::vector<nlohmann::json> objects;  // one per file on stdout, among stderr's error lines
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] == '{') objects.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(objects.size(), 2u) << r.output;
  EXPECT_EQ(objects[0]["top"][0]["class"], "cat") << r.output;
  EXPECT_NE(objects[1]["error"].get<std::string>().find("cut.bmp: not a readable BMP"), std::string::npos) << r.output;
  r = run_command(kEwa + " predict " + runs + "/pets/last.pt " + d.path() + "/mine --protocol tta --votes 3 2>&1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--protocol: image files are predicted in one pass (single)"), std::string::npos) << r.output;

  // `ewa gallery` of an image classifier: tiles of the test images, no rendering (cairo builds).
  r = run_command(kEwa + " gallery " + runs + "/pets/last.pt -n 6 -o " + d.path() + "/g.png 2>&1");
  if (ewa::viz::built_with_cairo()) {
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("wrote " + d.path() + "/g.png: 6 test images, "), std::string::npos) << r.output;
    const auto png = ewa::viz::read_png(d.path() + "/g.png");
    EXPECT_GT(png.width, 3 * 192);  // 192-pixel tiles at least (16-pixel images scaled by 12)
  } else {
    EXPECT_EQ(r.exit_code, 1) << r.output;
  }

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
