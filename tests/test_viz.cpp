// Plots (cairo), off-screen rendering (Open3D through a private Xvfb), the model inspection that
// `ewa show` colours by, and the show / gallery / plot commands end to end. PNGs are read back
// and checked for size, background and the colours that must be in them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "io/point_io.h"
#include "models/point_mae.h"
#include "models/point_transformer.h"
#include "models/registry.h"
#include "moe/routed_moe.h"
#include "test_util.h"
#include "eval/mae_views.h"
#include "infer/visualize.h"
#include "viz/plot.h"
#include "viz/render.h"

namespace {
using nlohmann::json;
using ewa::testing::TempDir;
using ewa::testing::run_command;
namespace fs = std::filesystem;
namespace viz = ewa::viz;
const std::string kEwa = EWA_BINARY;

// Pixels within `tol` (per channel, 0-255) of colour c.
int64_t count_color(const viz::Image& img, const viz::Color& c, int tol = 3) {
  int64_t n = 0;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const uint8_t* p = img.at(x, y);
      if (std::abs(p[0] - int(std::lround(c.r * 255))) <= tol && std::abs(p[1] - int(std::lround(c.g * 255))) <= tol &&
          std::abs(p[2] - int(std::lround(c.b * 255))) <= tol)
        ++n;
    }
  return n;
}

bool can_render() {
  if (!viz::built_with_rendering() || !viz::built_with_cairo()) return false;
  const char* d = std::getenv("DISPLAY");
  return (d && *d) || std::system("command -v Xvfb >/dev/null 2>&1") == 0;
}

TEST(Plot, PngRoundTripIsExact) {
  if (!viz::built_with_cairo()) GTEST_SKIP() << "built without cairo";
  TempDir dir;
  viz::Image img;
  img.width = 37, img.height = 23;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  auto bytes = torch::randint(256, {37 * 23 * 3}, gen, torch::kLong);
  for (int64_t i = 0; i < bytes.size(0); ++i) img.rgb.push_back(static_cast<uint8_t>(bytes[i].item<int64_t>()));
  viz::write_png(dir / "a.png", img);
  auto back = viz::read_png(dir / "a.png");
  EXPECT_EQ(back.width, 37);
  EXPECT_EQ(back.height, 23);
  EXPECT_EQ(back.rgb, img.rgb);
  ewa::testing::write_file(dir / "bad.png", "\x89PNG but not really");
  EXPECT_THROW(viz::read_png(dir / "bad.png"), ewa::Error);
}

TEST(Plot, RunDirectoryPlotsFromTheLogAndMetrics) {
  if (!viz::built_with_cairo()) GTEST_SKIP() << "built without cairo";
  TempDir dir;
  {
    std::ofstream log(dir / "log.jsonl");
    for (int e = 1; e <= 4; ++e) {
      for (int s = 1; s <= 5; ++s) {
        const int step = (e - 1) * 5 + s;
        log << json{{"type", "step"}, {"epoch", e}, {"step", step}, {"loss", 2.0 / step}, {"lr", 1e-3 * step / 20},
                    {"share_rate", 0.3}}
                   .dump()
            << "\n";
      }
      log << json{{"type", "epoch"}, {"epoch", e}, {"step", e * 5}, {"train_loss", 1.0 / e}, {"train_acc", 0.2 * e},
                  {"test", {{"loss", 1.2 / e}, {"oa", 0.22 * e}}}}
                 .dump()
          << "\n";
    }
  }
  ewa::testing::write_file(dir / "metrics.json", json{{"class_names", {"chair", "table", "lamp"}},
                                                      {"evaluation", "final epoch"},
                                                      {"test", {{"confusion", {{9, 1, 0}, {0, 10, 0}, {2, 0, 8}}}}}}
                                                     .dump());
  auto files = viz::plot_run(dir.path());
  ASSERT_EQ(files.size(), 4u);
  for (const char* name : {"loss.png", "accuracy.png", "schedule.png", "confusion.png"}) {
    const std::string file = dir / (std::string("plots/") + name);
    ASSERT_TRUE(fs::exists(file)) << name;
    auto img = viz::read_png(file);
    EXPECT_GT(img.width, 300) << name;
    EXPECT_EQ(img.at(0, 0)[0], 255) << name;  // white background
    EXPECT_GT(count_color(img, {1, 1, 1}, 0), img.width * img.height / 2) << name;
  }
  auto loss = viz::read_png(dir / "plots/loss.png");
  EXPECT_EQ(loss.width, 900);
  EXPECT_EQ(loss.height, 320);
  EXPECT_GT(count_color(loss, viz::palette_color(0)), 100);  // the step-loss line
  EXPECT_GT(count_color(loss, viz::palette_color(2)), 30);   // the test-loss line and markers
  EXPECT_EQ(viz::read_png(dir / "plots/schedule.png").height, 520);  // two panels
  // Confusion: the table row (10 of 10) is the top colour of the map; the empty cell is light grey.
  auto conf = viz::read_png(dir / "plots/confusion.png");
  EXPECT_GT(count_color(conf, viz::heat_color(1.0)), 400);
  EXPECT_GT(count_color(conf, viz::heat_color(0.9)), 400);  // chair: 9 of 10
  EXPECT_GT(count_color(conf, viz::heat_color(0.2)), 400);  // lamp predicted chair: 2 of 10

  // A pretraining log (test Chamfer, no accuracy, no confusion): loss and schedule only.
  TempDir pre;
  ewa::testing::write_file(pre / "log.jsonl",
                           json{{"type", "step"}, {"epoch", 1}, {"step", 3}, {"loss", 0.02}, {"lr", 1e-3}, {"share_rate", 0}}.dump() +
                               "\n" + json{{"type", "epoch"}, {"epoch", 1}, {"step", 3}, {"train_loss", 0.02}, {"test", {{"chamfer", 0.018}}}}.dump() +
                               "\n");
  EXPECT_EQ(viz::plot_run(pre.path()).size(), 2u);

  // Broken logs name the file and line.
  TempDir bad;
  ewa::testing::write_file(bad / "log.jsonl", json{{"type", "step"}, {"step", 1}, {"loss", 1}}.dump() + "\n{oops\n");
  try {
    viz::plot_run(bad.path());
    ADD_FAILURE() << "no error";
  } catch (const ewa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("log.jsonl:2: not a JSON object"), std::string::npos) << e.what();
  }
  EXPECT_THROW(viz::plot_run(bad / "nothing"), ewa::Error);
}

TEST(Render, OffScreenImageHasTheBackgroundAndTheCloudColoursWhereTheyBelong) {
  if (!can_render()) GTEST_SKIP() << "no Open3D rendering (or no display and no Xvfb)";
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  // Two blobs: class 3's colour on the left (x < 0), class 0's on the right, seen from the front.
  auto left = torch::randn({500, 3}, gen) * 0.1 + torch::tensor({-0.5f, 0.f, 0.f});
  auto right = torch::randn({500, 3}, gen) * 0.1 + torch::tensor({0.5f, 0.f, 0.f});
  auto col = [](int64_t c, int64_t n) {
    auto p = viz::palette_color(c);
    return torch::tensor({float(p.r), float(p.g), float(p.b)}).expand({n, 3}).contiguous();
  };
  viz::Camera cam;
  cam.view = "front";
  cam.width = 200, cam.height = 160;
  viz::Renderer r(cam);
  auto img = r.render({{left, col(3, 500), 0}, {right, col(0, 500), 0}});
  ASSERT_EQ(img.width, 200);
  ASSERT_EQ(img.height, 160);
  for (auto [x, y] : {std::pair{0, 0}, {199, 0}, {0, 159}, {199, 159}})
    EXPECT_EQ(img.at(x, y)[0] + img.at(x, y)[1] + img.at(x, y)[2], 3 * 255) << x << "," << y;
  auto mean_x = [&](const viz::Color& c, int64_t& n) {
    double sum = 0;
    n = 0;
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x) {
        const uint8_t* p = img.at(x, y);
        if (std::abs(p[0] - int(std::lround(c.r * 255))) <= 2 && std::abs(p[1] - int(std::lround(c.g * 255))) <= 2 &&
            std::abs(p[2] - int(std::lround(c.b * 255))) <= 2)
          sum += x, ++n;
      }
    return n ? sum / double(n) : -1.0;
  };
  int64_t n_red = 0, n_blue = 0;
  const double red_x = mean_x(viz::palette_color(3), n_red), blue_x = mean_x(viz::palette_color(0), n_blue);
  EXPECT_GT(n_red, 300);
  EXPECT_GT(n_blue, 300);
  EXPECT_LT(red_x, 90);
  EXPECT_GT(blue_x, 110);
  // The same scene renders to the same pixels (fixed camera), and a second scene reuses the window.
  EXPECT_EQ(r.render({{left, col(3, 500), 0}, {right, col(0, 500), 0}}).rgb, img.rgb);
  auto only_left = r.render({{left, col(3, 500), 0}});
  EXPECT_EQ(count_color(only_left, viz::palette_color(0), 2), 0);
  // Bad camera options are refused with the option's name.
  cam.view = "below";
  try {
    viz::Renderer bad(cam);
    ADD_FAILURE() << "no error";
  } catch (const ewa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--view: expected front, side, top or iso"), std::string::npos);
  }
}

TEST(Render, CameraAxesAreOrthonormalAndSideBySideGoesLeftToRightOnScreen) {
  for (const char* view : {"front", "side", "top", "iso"})
    for (const char* up : {"y", "z"}) {
      viz::Camera cam;
      cam.view = view, cam.up = up;
      const auto a = viz::camera_axes(cam);
      auto dot = [](const std::array<double, 3>& u, const std::array<double, 3>& v) { return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]; };
      EXPECT_NEAR(dot(a.front, a.front), 1, 1e-12) << view << up;
      EXPECT_NEAR(dot(a.up, a.up), 1, 1e-12);
      EXPECT_NEAR(dot(a.right, a.right), 1, 1e-12);
      EXPECT_NEAR(dot(a.front, a.up), 0, 1e-12);
      EXPECT_NEAR(dot(a.front, a.right), 0, 1e-12);
      EXPECT_NEAR(dot(a.up, a.right), 0, 1e-12);
      // Three unit blobs side by side: their extents along the screen's right direction are
      // ordered and 0.4 apart, and nothing moves along the viewing direction or up.
      auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
      std::vector<std::vector<viz::ColoredCloud>> panels;
      for (int k = 0; k < 3; ++k) panels.push_back({{torch::rand({50, 3}, gen) * 2 - 1, torch::zeros({50, 3}), 0}});
      auto placed = viz::side_by_side(panels, cam);
      ASSERT_EQ(placed.size(), 3u);
      auto r = torch::tensor({float(a.right[0]), float(a.right[1]), float(a.right[2])});
      auto f = torch::tensor({float(a.front[0]), float(a.front[1]), float(a.front[2])});
      for (int k = 0; k < 3; ++k) {
        EXPECT_TRUE(torch::allclose(torch::matmul(placed[k].points, f), torch::matmul(panels[k][0].points, f), 1e-5, 1e-5));
        if (k > 0) {
          const double gap = torch::matmul(placed[k].points, r).min().item<double>() - torch::matmul(placed[k - 1].points, r).max().item<double>();
          EXPECT_NEAR(gap, 0.4, 1e-5) << view << up;
        }
      }
    }
  viz::Camera cam;
  EXPECT_GT(viz::camera_axes(cam).up[1], 0.85);  // y-up iso keeps y roughly up
  cam.view = "front";
  EXPECT_NEAR(viz::camera_axes(cam).right[0], 1.0, 1e-12);  // front view: screen right is +x
}

ewa::Config point_cfg(const std::string& kind) {
  json j = {{"model", {{"name", "point_transformer"}, {"in_chans", 3}, {"num_classes", 5}, {"embed_dim", 32}, {"depth", 2},
                       {"num_heads", 4}, {"num_groups", 8}, {"group_size", 16}, {"qkv_bias", true}}},
            {"moe", {{"kind", kind}, {"num_experts", 3}, {"blocks", {0, 1}}}},
            {"data", {{"dataset", "modelnet_h5"}, {"root", "/nonexistent"}, {"num_points", 128}}}};
  return ewa::parse_config(ewa::resolve_config(j, "test"), "test");
}

TEST(Inspect, AttentionWeightsReproduceTheFusedAttentionAndInspectMatchesForward) {
  torch::manual_seed(0);
  auto model = std::dynamic_pointer_cast<ewa::models::PointTransformerImpl>(ewa::models::build_model(point_cfg("rup")));
  ASSERT_TRUE(model);
  model->eval();
  torch::NoGradGuard guard;
  // weights() against the fused kernel: proj(weights @ v) must equal forward.
  auto block = model->blocks->blocks[1]->as<ewa::nn::Block>();
  auto x = torch::randn({3, 9, 32});
  auto w = block->attn->weights(x);
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{3, 4, 9, 9}));
  EXPECT_TRUE(torch::allclose(w.sum(-1), torch::ones({3, 4, 9}), 1e-5, 1e-5));
  auto v = block->attn->qkv(x).reshape({3, 9, 3, 4, 8}).permute({2, 0, 3, 1, 4})[2];
  auto manual = block->attn->proj(torch::matmul(w, v).transpose(1, 2).reshape({3, 9, 32}));
  EXPECT_TRUE(torch::allclose(manual, block->attn->forward(x), 1e-5, 1e-5));

  auto pts = torch::randn({2, 128, 3});
  auto ins = model->inspect(pts);
  EXPECT_TRUE(torch::allclose(ins.logits, model->forward(pts), 1e-5, 1e-5));
  EXPECT_EQ(ins.attention.sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_TRUE((ins.attention >= 0).all().item<bool>());
  EXPECT_TRUE((ins.attention.sum(1) <= 1 + 1e-5).all().item<bool>());  // the rest goes to the class token
  EXPECT_FALSE(ins.experts.defined());                                  // RUP: no per-patch expert
  // The groups are the K nearest points of each centre.
  for (int64_t g = 0; g < 8; ++g) {
    auto d = (pts[0] - ins.centers[0][g]).pow(2).sum(1);
    auto kth = std::get<0>(d.sort()).index({15}).item<float>();
    EXPECT_LE(d.index_select(0, ins.index[0][g]).max().item<float>(), kth + 1e-6);
  }

  // Routed MoE: the expert of each patch is the gate's argmax on the block's FFN input.
  torch::manual_seed(1);
  auto routed = std::dynamic_pointer_cast<ewa::models::PointTransformerImpl>(ewa::models::build_model(point_cfg("routed")));
  routed->eval();
  auto r = routed->inspect(pts);
  ASSERT_TRUE(r.experts.defined());
  EXPECT_EQ(r.experts_block, 1);
  EXPECT_EQ(r.experts.sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_TRUE(((r.experts >= 0) & (r.experts < 3)).all().item<bool>());
  // Oracle: re-run the blocks by hand and take the gate's argmax of block 1.
  auto groups = ewa::models::group_point_cloud(pts, 8, 16);
  auto tokens = routed->encoder(groups.neighborhoods);
  auto h = torch::cat({routed->cls_token.expand({2, 1, -1}), tokens}, 1);
  auto pos = torch::cat({routed->cls_pos.expand({2, 1, -1}), routed->pos_embed->forward(groups.centers)}, 1);
  auto b0 = routed->blocks->blocks[0]->as<ewa::nn::Block>(), b1 = routed->blocks->blocks[1]->as<ewa::nn::Block>();
  h = b0->forward(h + pos) + pos;
  auto mid = h + b1->attn->forward(b1->norm1(h));
  auto gate = dynamic_cast<ewa::moe::RoutedMoEImpl*>(b1->mlp.get())->gate;
  auto expect = gate(b1->norm2(mid)).argmax(-1).narrow(1, 1, 8);
  EXPECT_TRUE(torch::equal(r.experts, expect));
}

TEST(Inspect, PatchOwnerAndClassFromPath) {
  // Points 0..4 on a line; groups {0,1,2} around x=0 and {2,3} around x=3; point 4 in no group.
  auto pts = torch::tensor({0.f, 0.f, 0.f, 1.f, 0.f, 0.f, 2.f, 0.f, 0.f, 3.f, 0.f, 0.f, 9.f, 0.f, 0.f}).view({5, 3});
  auto centers = torch::tensor({0.f, 0.f, 0.f, 3.f, 0.f, 0.f}).view({2, 3});
  auto index = torch::tensor({0, 1, 2, 2, 3, 3}, torch::kLong).view({2, 3});
  auto owner = ewa::infer::patch_owner(pts, centers, index);
  EXPECT_TRUE(torch::equal(owner, torch::tensor({0, 0, 1, 1, -1}, torch::kLong)));  // point 2: nearer centre 1
  const std::vector<std::string> names = {"airplane", "chair", "lamp"};
  EXPECT_EQ(ewa::infer::class_from_path("data/ModelNet40/chair/test/chair_0890.off", names), 1);
  EXPECT_EQ(ewa::infer::class_from_path("scans/lamp/x.ply", names), 2);
  EXPECT_EQ(ewa::infer::class_from_path("scans/x.ply", names), -1);
  EXPECT_EQ(ewa::infer::class_from_path("chair.ply", names), -1);  // a file name is not a folder
}

TEST(Inspect, MaeViewsSplitEachCloudIntoVisibleAndMaskedGroups) {
  json j = {{"name", "pre"},
            {"model", {{"name", "point_mae"}, {"in_chans", 3}, {"embed_dim", 32}, {"depth", 1}, {"num_heads", 2}, {"num_groups", 10},
                       {"group_size", 8}}},
            {"moe", {{"kind", "dense"}}},
            {"pretrain", {{"decoder_depth", 1}, {"decoder_num_heads", 2}, {"mask_ratio", 0.6}}},
            {"data", {{"dataset", "modelnet_h5"}, {"root", "unused"}, {"num_points", 128}}}};
  auto cfg = ewa::parse_config(ewa::resolve_config(j, "test"), "test");
  torch::manual_seed(0);
  ewa::models::PointMae model(cfg);
  auto pts = torch::randn({2, 128, 3});
  auto views = ewa::eval::mae_views(*model, pts, torch::kCPU);
  ASSERT_EQ(views.size(), 2u);
  for (const auto& v : views) {
    EXPECT_EQ(v.visible.size(0), 4 * 8);
    EXPECT_EQ(v.masked.size(0), 6 * 8);
    EXPECT_EQ(v.predicted.size(0), 6 * 8);
    // Visible and masked points are points of the input cloud.
    auto all = torch::cat({v.visible, v.masked});
    auto d = (all.unsqueeze(1) - v.input.unsqueeze(0)).pow(2).sum(2).amin(1);
    EXPECT_LT(d.max().item<float>(), 1e-10);
  }
  // Fixed masks: the same views again.
  EXPECT_TRUE(torch::equal(ewa::eval::mae_views(*model, pts, torch::kCPU)[0].visible, views[0].visible));
}

TEST(ShowCli, ShowGalleryAndPlotWritePngsWithTheExpectedContent) {
  if (!can_render()) GTEST_SKIP() << "no Open3D rendering (or no display and no Xvfb)";
  TempDir dir;
  auto r = ewa::testing::train_tiny_point_classifier(kEwa, dir.path(), "s", R"({"kind": "routed", "blocks": [1], "num_experts": 3})");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Training ends by plotting the run.
  EXPECT_NE(r.output.find("plots: "), std::string::npos) << r.output;
  for (const char* f : {"loss.png", "accuracy.png", "schedule.png", "confusion.png"})
    EXPECT_TRUE(fs::exists(dir / (std::string("runs/s/plots/") + f))) << f;
  const std::string ckpt = dir / "runs/s/last.pt";

  // Files in a folder named like a class: the caption and output carry the true class.
  fs::create_directories(dir / "in/sphere");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  auto sphere = torch::randn({300, 3}, gen);
  ewa::io::write_npy(dir / "in/sphere/a.npy", sphere / sphere.norm(2, 1, true));
  ewa::io::write_npy(dir / "in/few.npy", torch::randn({20, 3}, gen));
  const std::string env = "env -u DISPLAY ";  // off-screen through a private Xvfb
  r = run_command(env + kEwa + " show " + ckpt + " " + (dir / "in/sphere/a.npy") + " --png " + (dir / "class.png") +
                  " --size 200x150 --view front");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(true sphere)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("private Xvfb"), std::string::npos) << r.output;
  auto img = viz::read_png(dir / "class.png");
  EXPECT_GE(img.width, 200);
  EXPECT_GT(img.height, 150);  // image + caption
  EXPECT_EQ(img.at(2, 2)[0] + img.at(2, 2)[1] + img.at(2, 2)[2], 3 * 255);
  // Coloured by the predicted class: find which class it printed and look for its colour.
  const std::vector<std::string> names = {"sphere", "box", "cylinder", "cone", "torus", "pyramid", "capsule", "ellipsoid"};
  int64_t predicted = -1;
  for (size_t c = 0; c < names.size(); ++c)
    if (r.output.find("predicted " + names[c] + " ") != std::string::npos) predicted = static_cast<int64_t>(c);
  ASSERT_GE(predicted, 0) << r.output;
  EXPECT_GT(count_color(img, viz::palette_color(predicted), 2), 200);

  // Experts of the routed block, attention and patches: each image holds its colours.
  r = run_command(env + kEwa + " show " + ckpt + " " + (dir / "in/sphere") + " --color experts --png " + (dir / "e.png") +
                  " --size 200x200");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("expert per patch, block 1"), std::string::npos) << r.output;
  auto e = viz::read_png(dir / "e.png");
  int64_t expert_pixels = 0;
  for (int k = 0; k < 3; ++k) expert_pixels += count_color(e, viz::palette_color(k), 2);
  EXPECT_GT(expert_pixels, 200);
  r = run_command(env + kEwa + " show " + ckpt + " " + (dir / "in/sphere") + " --color attention --png " + (dir / "a.png"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(count_color(viz::read_png(dir / "a.png"), viz::heat_color(1.0), 2), 10);  // the most-attended patch
  r = run_command(env + kEwa + " show " + ckpt + " " + (dir / "in") + " --color patches --png " + (dir / "p.png"));
  EXPECT_EQ(r.exit_code, 1) << r.output;  // few.npy fails, the sphere is still drawn
  EXPECT_NE(r.output.find("few.npy: 20 usable points"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "p.png"));
  r = run_command(env + kEwa + " show " + ckpt + " " + (dir / "in") + " --color mae --png " + (dir / "m.png"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("is not a Point-MAE pretraining checkpoint"), std::string::npos) << r.output;

  // Gallery: 8 test samples in a 4-column grid of 120x100 tiles.
  r = run_command(env + kEwa + " gallery " + ckpt + " -n 8 --size 120x100 -o " + (dir / "g.png"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("8 test samples"), std::string::npos) << r.output;
  auto g = viz::read_png(dir / "g.png");
  EXPECT_EQ(g.width, 4 * (120 + 8) + 8);
  EXPECT_GT(g.height, 2 * 100);
  // `ewa plot` again on the run; a folder without a log is an error.
  r = run_command(kEwa + " plot " + (dir / "runs/s"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("confusion.png"), std::string::npos);
  r = run_command(kEwa + " plot " + (dir / "in"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("log.jsonl: cannot open the run's log"), std::string::npos) << r.output;
}

TEST(ShowCli, PretrainingCheckpointShowsVisibleMaskedAndReconstructedPatches) {
  if (!can_render()) GTEST_SKIP() << "no Open3D rendering (or no display and no Xvfb)";
  TempDir dir;
  auto r = run_command(kEwa + " data synth -o " + (dir / "synth") + " --train-per-class 4 --test-per-class 1 --points 256");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ewa::testing::write_file(dir / "p.json", R"({"name": "m", "model": {"name": "point_mae", "embed_dim": 32, "depth": 1,
    "num_heads": 2, "num_groups": 8, "group_size": 8}, "moe": {"kind": "dense"},
    "pretrain": {"decoder_depth": 1, "decoder_num_heads": 2, "reconstructions": 0},
    "data": {"dataset": ")" + ewa::testing::synth_dataset() + R"(", "root": ")" + (dir / "synth") + R"(", "num_points": 64, "batch_size": 16},
    "train": {"epochs": 1, "runs_dir": ")" + (dir / "runs") + R"(", "log_every": 100}})");
  r = run_command(kEwa + " pretrain --config " + (dir / "p.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "runs/m/plots/loss.png"));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(4);
  ewa::io::write_npy(dir / "a.npy", torch::randn({200, 3}, gen));
  r = run_command("env -u DISPLAY " + kEwa + " show " + (dir / "runs/m/last.pt") + " " + (dir / "a.npy") + " --color mae --png " +
                  (dir / "m.png") + " --size 360x160 --view front");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto img = viz::read_png(dir / "m.png");
  // Grey visible points, red masked points, green predicted points, left to right.
  auto mean_x = [&](int r0, int g0, int b0, int64_t& n) {
    double s = 0;
    n = 0;
    for (int y = 0; y < 160; ++y)
      for (int x = 0; x < img.width; ++x) {
        const uint8_t* p = img.at(x, y);
        if (std::abs(p[0] - r0) <= 2 && std::abs(p[1] - g0) <= 2 && std::abs(p[2] - b0) <= 2) s += x, ++n;
      }
    return n ? s / double(n) : -1;
  };
  int64_t nr = 0, ng = 0;
  const double red = mean_x(217, 41, 41, nr), green = mean_x(33, 153, 64, ng);
  EXPECT_GT(nr, 30);
  EXPECT_GT(ng, 30);
  EXPECT_LT(red, green);
  r = run_command(kEwa + " show " + (dir / "runs/m/last.pt") + " " + (dir / "a.npy") + " --png " + (dir / "x.png"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("use --color mae"), std::string::npos) << r.output;
}

}  // namespace
