#include "infer/visualize.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "data/image_ops.h"
#include "config/datasets.h"
#include "common/random.h"
#include "eval/mae_views.h"

namespace ewa::infer {
using eval::mae_views;

namespace fs = std::filesystem;

namespace {
const viz::Color kGrey{0.72, 0.72, 0.72}, kRed{0.85, 0.16, 0.16}, kGreen{0.13, 0.6, 0.25}, kOrange{0.95, 0.55, 0.1};

torch::Tensor uniform_colors(int64_t n, const viz::Color& c) {
  return torch::tensor({float(c.r), float(c.g), float(c.b)}).expand({n, 3}).contiguous();
}

std::string name_of(int64_t c, const std::vector<std::string>& names) {
  return c >= 0 && c < static_cast<int64_t>(names.size()) ? names[c] : "class_" + std::to_string(c);
}

std::string percent(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f%%", 100 * p);
  return buf;
}
}  // namespace

const std::vector<std::string>& color_modes() {
  static const std::vector<std::string> modes = {"class", "patches", "attention", "experts", "mae", "parts", "plain"};
  return modes;
}

int64_t class_from_path(const std::string& path, const std::vector<std::string>& class_names) {
  for (fs::path p = fs::path(path).parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path()) {
    const auto it = std::find(class_names.begin(), class_names.end(), p.filename().string());
    if (it != class_names.end()) return it - class_names.begin();
    if (p == p.parent_path()) break;
  }
  return -1;
}

torch::Tensor patch_owner(const torch::Tensor& points, const torch::Tensor& centers, const torch::Tensor& index) {
  const int64_t P = points.size(0), G = index.size(0), K = index.size(1);
  auto d = (points.index_select(0, index.reshape({-1})).view({G, K, 3}) - centers.unsqueeze(1)).pow(2).sum(2);  // [G, K]
  auto best = torch::full({P}, INFINITY, torch::kFloat);
  auto owner = torch::full({P}, -1, torch::kLong);
  auto da = d.accessor<float, 2>();
  auto ia = index.accessor<int64_t, 2>();
  auto ba = best.accessor<float, 1>();
  auto oa = owner.accessor<int64_t, 1>();
  for (int64_t g = 0; g < G; ++g)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t p = ia[g][k];
      if (da[g][k] < ba[p]) ba[p] = da[g][k], oa[p] = g;
    }
  return owner;
}

std::vector<Scene> classifier_scenes(models::PointTransformerImpl& model, const torch::Tensor& clouds,
                                     const std::vector<std::string>& paths, const std::vector<std::string>& class_names,
                                     const std::string& color_by, torch::Device device) {
  if (std::find(color_modes().begin(), color_modes().end(), color_by) == color_modes().end() || color_by == "mae" ||
      color_by == "parts")
    fail("--color: a classifier is coloured by class, patches, attention, experts or plain, got '" + color_by + "'" +
         (color_by == "mae" ? " (mae needs a pretraining checkpoint)" : "") +
         (color_by == "parts" ? " (parts needs a part-segmentation checkpoint)" : ""));
  torch::NoGradGuard guard;
  model.eval();
  auto ins = model.inspect(clouds.to(device));
  if (color_by == "experts" && !ins.experts.defined())
    fail("--color experts: the model has no routed MoE layer (moe.kind = routed); RUP experts take tokens at random in "
         "training and are averaged into one FFN at inference, so no patch has an expert");
  auto prob = torch::softmax(ins.logits, 1).cpu();
  auto centers = ins.centers.cpu(), index = ins.index.cpu();
  auto attention = ins.attention.cpu();
  auto experts = ins.experts.defined() ? ins.experts.cpu() : torch::Tensor();
  std::vector<Scene> out;
  for (int64_t b = 0; b < clouds.size(0); ++b) {
    Scene s;
    s.path = paths[b];
    auto pts = clouds[b].narrow(1, 0, 3).cpu().contiguous();
    const int64_t P = pts.size(0);
    auto [p, c] = prob[b].max(0);
    s.predicted = c.item<int64_t>();
    s.probability = p.item<double>();
    s.truth = class_from_path(s.path, class_names);
    s.wrong = s.truth >= 0 && s.truth != s.predicted;
    s.caption.push_back(fs::path(s.path).filename().string());
    s.caption.push_back("predicted " + name_of(s.predicted, class_names) + " " + percent(s.probability) +
                        (s.truth >= 0 ? " (true " + name_of(s.truth, class_names) + ")" : ""));
    auto owner = patch_owner(pts, centers[b], index[b]);
    auto colors = uniform_colors(P, kGrey).clone();
    auto oa = owner.accessor<int64_t, 1>();
    auto color_points = [&](auto&& color_of_patch) {
      auto ca = colors.accessor<float, 2>();
      for (int64_t i = 0; i < P; ++i) {
        if (oa[i] < 0) continue;
        const viz::Color col = color_of_patch(oa[i]);
        ca[i][0] = float(col.r), ca[i][1] = float(col.g), ca[i][2] = float(col.b);
      }
    };
    if (color_by == "class") {
      colors = uniform_colors(P, viz::palette_color(s.predicted));
    } else if (color_by == "patches") {
      color_points([](int64_t g) { return viz::palette_color(g); });
    } else if (color_by == "attention") {
      auto a = attention[b] / attention[b].max().clamp_min(1e-12);
      auto aa = a.accessor<float, 1>();
      color_points([&](int64_t g) { return viz::heat_color(aa[g]); });
      s.caption.push_back("class-token attention, last block (max " + percent(attention[b].max().item<double>()) + ")");
    } else if (color_by == "experts") {
      auto eb = experts[b].contiguous();
      auto ea = eb.accessor<int64_t, 1>();
      color_points([&](int64_t g) { return viz::palette_color(ea[g]); });
      s.caption.push_back("expert per patch, block " + std::to_string(ins.experts_block));
    } else {
      colors = uniform_colors(P, {0.25, 0.35, 0.55});
    }
    s.clouds.push_back({pts, colors, 0});
    if (color_by == "patches")
      s.clouds.push_back({centers[b], uniform_colors(centers.size(1), {0.1, 0.1, 0.1}), 0.018});
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<Scene> mae_scenes(models::PointMaeImpl& model, const torch::Tensor& clouds, const std::vector<std::string>& paths,
                              torch::Device device) {
  std::vector<Scene> out;
  auto views = mae_views(model, clouds, device);
  for (size_t b = 0; b < views.size(); ++b) {
    const auto& v = views[b];
    Scene s;
    s.path = paths[b];
    s.panels = {{{v.visible, uniform_colors(v.visible.size(0), kGrey), 0}},
                {{v.masked, uniform_colors(v.masked.size(0), kRed), 0}},
                {{v.visible, uniform_colors(v.visible.size(0), kGrey), 0}, {v.predicted, uniform_colors(v.predicted.size(0), kGreen), 0}}};
    s.caption = {fs::path(s.path).filename().string(), "visible (grey) | masked (red) | reconstruction (green)"};
    out.push_back(std::move(s));
  }
  return out;
}

namespace {
constexpr uint64_t kShowSeed = 20211129;  // Gumbel noise and block masks of `ewa show`

// Points [N, 3] of the patches `sel` (bool [G]) of one cloud: patches [G, K, 3] + centres [G, 3].
torch::Tensor patch_points(const torch::Tensor& patches, const torch::Tensor& centers, const torch::Tensor& sel) {
  return (patches.index({sel}).narrow(2, 0, 3) + centers.index({sel}).unsqueeze(1)).reshape({-1, 3});
}
}  // namespace

std::vector<Scene> dvae_scenes(models::DiscreteVaeImpl& model, const torch::Tensor& clouds, const std::vector<std::string>& paths,
                               torch::Device device) {
  torch::NoGradGuard guard;
  model.eval();
  std::vector<Scene> out;
  with_cpu_seed(kShowSeed, [&] {
    for (int64_t b = 0; b < clouds.size(0); ++b) {  // one cloud at a time: its own CD-L1
      auto o = model.forward(clouds.narrow(0, b, 1).to(device), 1.0, /*hard=*/true);
      auto centers = o.centers[0].cpu(), patches = o.neighborhoods[0].cpu(), fine = o.fine[0].cpu();
      auto all = torch::ones({centers.size(0)}, torch::kBool);
      auto input = patch_points(patches, centers, all), recon = patch_points(fine, centers, all);
      const int64_t distinct = std::get<0>(at::_unique(o.logits[0].argmax(1))).size(0);
      Scene s;
      s.path = paths[b];
      s.panels = {{{input, uniform_colors(input.size(0), kGrey), 0}}, {{recon, uniform_colors(recon.size(0), kGreen), 0}}};
      char line[160];
      std::snprintf(line, sizeof line, "input patches (grey) | reconstruction (green): CD-L1 x1000 %.1f, %lld distinct tokens of %lld",
                    1000 * o.recon.item<double>(), (long long)distinct, (long long)centers.size(0));
      s.caption = {fs::path(s.path).filename().string(), line};
      out.push_back(std::move(s));
    }
    return 0;
  });
  return out;
}

std::vector<Scene> bert_scenes(models::PointBertImpl& model, const torch::Tensor& clouds, const std::vector<std::string>& paths,
                               torch::Device device) {
  model.eval();
  const auto r = with_cpu_seed(kShowSeed, [&] { return model.inspect(clouds.to(device)); });
  std::vector<Scene> out;
  for (int64_t b = 0; b < clouds.size(0); ++b) {
    auto centers = r.centers[b].cpu(), patches = r.patches[b].cpu(), mask = r.mask[b].cpu();
    auto right = r.predicted[b].cpu().eq(r.tokens[b].cpu());
    auto visible = patch_points(patches, centers, ~mask), masked = patch_points(patches, centers, mask);
    auto hit = patch_points(patches, centers, mask & right), miss = patch_points(patches, centers, mask & ~right);
    Scene s;
    s.path = paths[b];
    s.panels = {{{visible, uniform_colors(visible.size(0), kGrey), 0}, {masked, uniform_colors(masked.size(0), kRed), 0}},
                {{hit, uniform_colors(hit.size(0), kGreen), 0}, {miss, uniform_colors(miss.size(0), kOrange), 0}}};
    char line[200];
    std::snprintf(line, sizeof line, "visible (grey), masked (red) | masked patches: token predicted (green) or not (orange): %lld of %lld",
                  (long long)(mask & right).sum().item<int64_t>(), (long long)mask.sum().item<int64_t>());
    s.caption = {fs::path(s.path).filename().string(), line};
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<viz::ColoredCloud> scene_clouds(const Scene& scene, const viz::Camera& camera) {
  return scene.panels.empty() ? scene.clouds : viz::side_by_side(scene.panels, camera);
}

void write_scenes_png(const std::string& path, const std::vector<Scene>& scenes, const viz::Camera& camera, int columns,
                      const std::string& title) {
  viz::Renderer renderer(camera);
  std::vector<viz::Tile> tiles;
  for (const auto& s : scenes) tiles.push_back({renderer.render(scene_clouds(s, camera)), s.caption, s.wrong});
  viz::write_grid_png(path, tiles, columns, title);
}

GalleryResult write_gallery(models::PointTransformerImpl& model, const Config& cfg, const data::TaskLoader& load_data,
                            const std::string& split, int64_t count,
                            int columns, const viz::Camera& camera, const std::string& out, torch::Device device) {
  auto data = load_data(cfg, data::use_for_split(split));
  data::BatchSource* source = &data::split_source(data, split);
  std::vector<torch::Tensor> xs, ys;
  for (int64_t b = 0; b < source->num_batches(); ++b) {
    auto [x, y] = source->batch(b, data::View::Plain);
    xs.push_back(x), ys.push_back(y);
  }
  auto x = torch::cat(xs), y = torch::cat(ys);
  const int64_t n = std::min<int64_t>(count, x.size(0));
  if (n <= 0) fail("gallery: the " + split + " split is empty");
  auto pick = torch::linspace(0, double(x.size(0) - 1), n).round().to(torch::kLong);
  std::vector<std::string> names;
  for (int64_t i = 0; i < n; ++i) names.push_back(split + " #" + std::to_string(pick[i].item<int64_t>()));
  auto scenes = classifier_scenes(model, x.index_select(0, pick), names, data.class_names, "class", device);
  GalleryResult r;
  auto ya = y.index_select(0, pick);
  for (int64_t i = 0; i < n; ++i) {
    auto& s = scenes[i];
    s.truth = ya[i].item<int64_t>();
    s.wrong = s.truth != s.predicted;
    r.wrong += s.wrong;
    s.caption = {s.path + ": true " + name_of(s.truth, data.class_names),
                 (s.wrong ? "WRONG: " : "predicted ") + name_of(s.predicted, data.class_names) + " " + percent(s.probability)};
  }
  r.shown = n;
  char title[256];
  std::snprintf(title, sizeof title, "%s, %s split: %lld samples, %lld wrong (colour = predicted class)", cfg.name.c_str(),
                split.c_str(), static_cast<long long>(n), static_cast<long long>(r.wrong));
  write_scenes_png(out, scenes, camera, columns, title);
  return r;
}

GalleryResult write_image_gallery(models::ClassifierImpl& model, const Config& cfg, const data::TaskLoader& load_data,
                                  const std::string& split, int64_t count, int columns, const std::string& out,
                                  torch::Device device) {
  auto data = load_data(cfg, data::use_for_split(split));
  data::BatchSource& source = data::split_source(data, split);
  const int64_t total = source.size(), n = std::min<int64_t>(count, total);
  if (n <= 0) fail("gallery: the " + split + " split is empty");
  const auto pick = torch::linspace(0, double(total - 1), n).round().to(torch::kLong);
  const int64_t* picked = pick.data_ptr<int64_t>();
  torch::NoGradGuard no_grad;
  model.eval();
  const bool folder = dataset_info(cfg.data.dataset).folder;
  std::vector<viz::Tile> tiles;
  GalleryResult r;
  int64_t start = 0, next = 0;  // the first row of batch b; the next picked sample
  for (int64_t b = 0; b < source.num_batches() && next < n; ++b) {
    const int64_t size = source.global_batch_size(b);
    if (picked[next] >= start + size) {
      start += size;
      continue;
    }
    const auto [x, y] = source.batch(b, data::View::Plain);
    const auto prob = torch::softmax(model.forward(x.to(device)), 1).cpu();
    for (; next < n && picked[next] < start + size; ++next) {
      const int64_t row = picked[next] - start;
      auto img = x[row].detach().cpu();  // [C, H, W], normalised
      if (folder) {
        img = img * torch::tensor(data::imagenet_std()).view({-1, 1, 1}) + torch::tensor(data::imagenet_mean()).view({-1, 1, 1});
      } else {
        const double lo = img.min().item<double>(), hi = img.max().item<double>();
        img = (img - lo) / std::max(hi - lo, 1e-12);
      }
      if (img.size(0) == 1) img = img.expand({3, -1, -1});
      const int64_t scale = std::max<int64_t>(1, (192 + img.size(1) - 1) / img.size(1));
      img = img.repeat_interleave(scale, 1).repeat_interleave(scale, 2);
      const auto bytes = (img.clamp(0, 1) * 255).round().to(torch::kUInt8).permute({1, 2, 0}).contiguous();
      viz::Tile t;
      t.image.height = static_cast<int>(bytes.size(0));
      t.image.width = static_cast<int>(bytes.size(1));
      t.image.rgb.assign(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
      const int64_t truth = y[row].item<int64_t>(), predicted = prob[row].argmax().item<int64_t>();
      t.marked = truth != predicted;
      r.wrong += t.marked;
      t.caption = {split + " #" + std::to_string(picked[next]) + ": true " + name_of(truth, data.class_names),
                   (t.marked ? "WRONG: " : "predicted ") + name_of(predicted, data.class_names) + " " +
                       percent(prob[row][predicted].item<double>())};
      tiles.push_back(std::move(t));
    }
    start += size;
  }
  r.shown = static_cast<int64_t>(tiles.size());
  char title[256];
  std::snprintf(title, sizeof title, "%s, %s split: %lld images, %lld wrong", cfg.name.c_str(), split.c_str(),
                static_cast<long long>(r.shown), static_cast<long long>(r.wrong));
  viz::write_grid_png(out, tiles, columns, title);
  return r;
}

}  // namespace ewa::infer
