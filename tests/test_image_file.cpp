// Image files (io/image_file.h) and the folder datasets' transforms (data/image_ops.h,
// datasets/image_folder.h) against Pillow, the reader timm and torchvision train from:
// every case of tests/fixtures/image_files.py decodes to the pixels Pillow's convert("RGB")
// gives (16-bit grayscale: the high byte, computed by the fixture), or fails with a one-line
// error naming the file. JPEG may differ from Pillow's libjpeg-turbo by one level (another
// build of the same IDCT); everything else is exact.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "data/image_ops.h"
#include "datasets/image_folder.h"
#include "io/image_file.h"
#include "io/point_io.h"
#include "test_util.h"

namespace {
using nlohmann::json;

class ImageFiles : public ewa::testing::PythonFixtureSuite<ImageFiles> {
 public:
  static std::string script() { return std::string(EWA_SOURCE_DIR) + "/tests/fixtures/image_files.py"; }
  static std::string prefix() { return "image_files"; }
  static json manifest() {
    std::ifstream in(file("manifest.json"));
    return json::parse(in);
  }
};

// Whether this build has the codec the file's extension names (the minimal build has neither
// libpng nor libjpeg: such files must be refused naming the library).
bool decodable_here(const std::string& name) {
  if (name.size() >= 4 && name.compare(name.size() - 4, 4, ".png") == 0) return ewa::io::built_with_png();
  if (name.size() >= 4 && name.compare(name.size() - 4, 4, ".jpg") == 0) return ewa::io::built_with_jpeg();
  return true;
}

TEST_F(ImageFiles, DecodeToThePixelsPillowReads) {
  int compared = 0;
  for (const auto& c : manifest()) {
    if (!c.contains("expect")) continue;
    const std::string name = c["file"];
    const std::string path = file(name);
    if (!decodable_here(name)) {
      const std::string e = ewa::testing::error_of([&] { ewa::io::read_image(path); });
      EXPECT_NE(e.find(path + ": a "), std::string::npos) << e;
      EXPECT_NE(e.find("ewa was built without lib"), std::string::npos) << e;
      continue;
    }
    const auto image = ewa::io::read_image(path);
    const auto expected = npy(c["expect"].get<std::string>());  // float [H, W, 3]
    ASSERT_EQ(image.height, expected.size(0)) << name;
    ASSERT_EQ(image.width, expected.size(1)) << name;
    ASSERT_EQ(int64_t(image.pixels.size()), expected.numel()) << name;
    const auto ours = torch::from_blob(const_cast<uint8_t*>(image.pixels.data()), {image.height, image.width, 3}, torch::kUInt8)
                          .to(torch::kFloat);
    const bool jpeg = name.find(".jpg") != std::string::npos;
    const double worst = ewa::testing::max_abs_diff(ours, expected);
    EXPECT_LE(worst, jpeg ? 1.0 : 0.0) << name << " (" << c["note"].get<std::string>() << ")";
    if (jpeg) {
      EXPECT_LT((ours - expected).abs().mean().item<double>(), 0.05) << name;
    }
    ++compared;
  }
  EXPECT_GE(compared, 8);  // the BMP cases at least, in every build
}

TEST_F(ImageFiles, BadFilesAreOneLineErrorsNamingTheFile) {
  int checked = 0;
  for (const auto& c : manifest()) {
    if (!c.contains("error")) continue;
    const std::string name = c["file"];
    const std::string path = file(name);
    const std::string e = ewa::testing::error_of([&] { ewa::io::read_image(path); });
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_EQ(e.rfind(path, 0), 0u) << e;
    // A file of no image format is refused by its first bytes in every build; one of a format this
    // build has no codec for, by the missing library.
    const std::string expected = c["error"];
    if (decodable_here(name) || expected.find("not a PNG, JPEG or BMP image") != std::string::npos) {
      EXPECT_NE(e.find(expected), std::string::npos) << e;
    } else {
      EXPECT_NE(e.find("ewa was built without lib"), std::string::npos) << e;
    }
    ++checked;
  }
  EXPECT_GE(checked, 8);
  const std::string missing = dir() + "/none.png";
  EXPECT_NE(ewa::testing::error_of([&] { ewa::io::read_image(missing); }).find(missing + ": cannot open the image"),
            std::string::npos);
}

// Resize (both filters, up and down, one side only) and the evaluation transform (shorter side,
// then a centre crop; a small image padded) against torchvision's transforms on PIL images.
TEST_F(ImageFiles, ResizeAndCenterCropGiveTorchvisionsBytes) {
  std::ifstream in(file("ops.json"));
  const json ops = json::parse(in);
  ASSERT_GE(ops.size(), 10u);
  for (const auto& op : ops) {
    const std::string name = op["name"];
    const auto image = npy(name + "_in").to(torch::kUInt8);
    const auto expected = npy(name + "_out");
    torch::Tensor out;
    if (op["kind"] == "resize") {
      out = ewa::data::resize_like_pil(image, op["height"], op["width"],
                                       op["filter"] == "bicubic" ? ewa::data::Resample::Bicubic : ewa::data::Resample::Bilinear);
    } else {
      out = ewa::data::center_crop(ewa::data::resize_shorter_side(image, op["size"], ewa::data::Resample::Bicubic), op["crop"]);
    }
    ASSERT_EQ(out.sizes(), expected.sizes()) << name;
    EXPECT_EQ(ewa::testing::max_abs_diff(out, expected), 0.0) << name;
  }
}

// RandomResizedCrop's boxes, drawn after the same manual_seed, are torchvision's (the fallback
// centre crop of images too narrow for every draw included).
TEST_F(ImageFiles, RandomResizedCropDrawsTorchvisionsBoxes) {
  std::ifstream in(file("rrc_boxes.json"));
  const json boxes = json::parse(in);
  ASSERT_EQ(boxes.size(), 240u);
  for (const auto& b : boxes) {
    torch::manual_seed(b[4].get<uint64_t>());
    const auto box = ewa::data::random_resized_crop_box(b[0], b[1], b[2], b[3], 3.0 / 4.0, 4.0 / 3.0);
    EXPECT_EQ(std::vector<int64_t>({box.top, box.left, box.height, box.width}),
              std::vector<int64_t>({b[5], b[6], b[7], b[8]}))
        << b.dump();
  }
}

// The folder datasets' transforms, image after image from one seed: training gives the tensors of
// torchvision's RandomResizedCrop + RandomHorizontalFlip + ToTensor + Normalize, evaluation those of
// timm 0.4.5's create_transform (Resize to floor(24 / 0.875), CenterCrop 24), bit for bit.
TEST_F(ImageFiles, FolderTransformsGiveTorchvisionsAndTimmsTensors) {
  std::ifstream in(file("pipeline.json"));
  const json p = json::parse(in);
  ewa::datasets::FolderTransform t;
  t.image_size = p["size"];
  const auto& mean = ewa::data::imagenet_mean();
  const auto& std = ewa::data::imagenet_std();
  torch::manual_seed(p["seed"].get<uint64_t>());
  for (int k = 0; k < p["count"].get<int>(); ++k) {
    const auto image = npy("pipeline" + std::to_string(k) + "_in").to(torch::kUInt8);
    const auto draw = ewa::datasets::draw_training(image.size(0), image.size(1), t);
    const auto train = ewa::data::to_normalized_chw(ewa::datasets::apply_training(image, draw, t), mean, std);
    EXPECT_EQ(ewa::testing::max_abs_diff(train, npy("pipeline" + std::to_string(k) + "_train")), 0.0) << k;
    const auto eval = ewa::data::to_normalized_chw(ewa::datasets::apply_evaluation(image, t), mean, std);
    EXPECT_EQ(ewa::testing::max_abs_diff(eval, npy("pipeline" + std::to_string(k) + "_eval")), 0.0) << k;
  }
}

// A header that claims more pixels than any image ewa takes is refused before anything is
// allocated (no fixture needed: the bytes are written here).
TEST(ImageFile, AHugeClaimedSizeIsRefusedBeforeAllocating) {
  std::string bmp(54, '\0');
  bmp[0] = 'B', bmp[1] = 'M';
  auto put32 = [&](size_t at, uint32_t v) { std::memcpy(&bmp[at], &v, 4); };
  put32(10, 54);
  put32(14, 40);
  put32(18, 1u << 20);  // 2^20 x 2^20
  put32(22, 1u << 20);
  bmp[26] = 1, bmp[28] = 24;
  const std::string e = ewa::testing::error_of([&] { ewa::io::decode_image(bmp, "huge.bmp"); });
  EXPECT_NE(e.find("huge.bmp: the image claims 1048576 x 1048576 pixels"), std::string::npos) << e;
  EXPECT_EQ(ewa::io::image_format(bmp), "bmp");
  EXPECT_EQ(ewa::io::image_format("GIF89a"), "");
}

}  // namespace
