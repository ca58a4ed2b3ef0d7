#include "infer/segment.h"

#include <optional>

#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "common/fs.h"
#include "config/datasets.h"
#include "eval/parts.h"
#include "io/point_io.h"
#include "viz/plot.h"

namespace ewa::infer {
using eval::PartMetrics;
using eval::restricted_prediction;
using eval::shape_categories;

namespace fs = std::filesystem;
namespace {

// The names of the palette's first colours (viz::palette_color 0..9: tab10's order).
const char* const kColorNames[] = {"blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive", "cyan"};

// Every part's index within its category (its colour): 0, 1, ... in part-id order.
std::vector<int64_t> indices_in_category(const PartNaming& naming) {
  std::vector<int64_t> out, seen(naming.category_names.size() + 1, 0);
  for (const int64_t c : naming.part_category) out.push_back(seen[static_cast<size_t>(c)]++);
  return out;
}

// The restricted prediction of one shape x [1, P, C] of s.category into s.parts, and s.iou
// against s.truth when the shape has labels.
void predict_parts(models::PointSegImpl& model, const torch::Tensor& x, PartSegmentation& s, const PartNaming& naming,
                   torch::Device device) {
  auto part_category = torch::tensor(naming.part_category, torch::kLong);
  auto cat = torch::full({1}, s.category, torch::kLong);
  auto logits = model.forward(x.to(device), cat.to(device)).cpu();
  s.parts = restricted_prediction(logits, cat, part_category)[0];
  if (!s.truth.defined()) return;
  PartMetrics m(naming.part_category, naming.category_names);
  m.add(s.parts.unsqueeze(0), s.truth.unsqueeze(0));
  s.iou = m.instance_miou();
}

}  // namespace

// The category the released ShapeNetPart layouts give a file by its folders (see segment.h).
int64_t layout_category(const std::string& path) {
  const fs::path p = fs::absolute(path).lexically_normal();
  const fs::path parent = p.parent_path();
  const std::string synset = parent.filename() == "points" ? parent.parent_path().filename().string() : parent.filename().string();
  const auto& table = shapenet_part_categories();
  for (size_t c = 0; c < table.size(); ++c)
    if (table[c].synset == synset) return static_cast<int64_t>(c);
  return -1;
}

namespace {

// The v0 layout's labels of <synset>/points/<id>.pts: points_label/<id>.seg, parts 1..k of the
// synset's category, as global part ids; undefined when there is no such file.
torch::Tensor v0_labels(const std::string& path, int64_t points) {
  const fs::path p(path);
  if (lower_extension(path) != ".pts" || p.parent_path().filename() != "points") return {};
  const int64_t category = layout_category(path);
  const fs::path seg = p.parent_path().parent_path() / "points_label" / (p.stem().string() + ".seg");
  if (category < 0 || !fs::exists(seg)) return {};
  const auto& c = shapenet_part_categories()[static_cast<size_t>(category)];
  return io::read_seg_labels(seg.string(), path, points, c.num_parts, c.name) + (c.first_part - 1);
}

// One file's points and labels, checked; fills s.points / s.truth / s.dropped_nonfinite and
// returns the model's input [1, P, in_chans] (normalised into the unit sphere).
torch::Tensor read_input(const std::string& path, const Config& cfg, PartSegmentation& s) {
  auto table = io::read_point_file(path, cfg.data.num_points, 0);
  auto labels = io::read_point_labels(path);
  if (!labels.defined()) labels = v0_labels(path, table.size(0));
  if (labels.defined() && labels.size(0) != table.size(0))
    fail(path + ": has " + std::to_string(labels.size(0)) + " labels for " + std::to_string(table.size(0)) + " points");
  const int64_t C = cfg.model.in_chans;
  if (table.size(1) < C) fail(path + ": the model takes " + std::to_string(C) + " channels per point, the file has " + std::to_string(table.size(1)));
  auto keep = torch::isfinite(table.narrow(1, 0, C)).all(1);
  s.dropped_nonfinite = table.size(0) - keep.sum().item<int64_t>();
  table = table.index({keep});
  if (labels.defined()) s.truth = labels.index({keep});
  const int64_t need = std::max(cfg.model.num_groups, cfg.model.group_size);
  if (table.size(0) < need)
    fail(path + ": " + std::to_string(table.size(0)) + " usable points; the model needs at least " + std::to_string(need));
  s.points = table.narrow(1, 0, 3).contiguous();
  auto x = table.narrow(1, 0, C).clone();
  auto xyz = x.narrow(1, 0, 3);
  xyz.sub_(xyz.mean(0, true));
  xyz.div_(xyz.norm(2, 1).max().clamp_min(1e-12));
  return x.unsqueeze(0);
}

}  // namespace

std::string PartNaming::part(int64_t id) const {
  return id >= 0 && id < static_cast<int64_t>(part_names.size()) ? part_names[static_cast<size_t>(id)] : "part " + std::to_string(id);
}

PartNaming shapenet_part_naming(const std::vector<std::string>& part_names) {
  PartNaming n;
  n.part_names = part_names;
  n.part_category = shapenet_part_to_category();
  for (const auto& c : shapenet_part_categories()) n.category_names.push_back(c.name);
  return n;
}

std::string part_color_name(int64_t index) { return index >= 0 && index < 10 ? kColorNames[index] : "colour " + std::to_string(index); }

torch::Tensor part_colors(const torch::Tensor& parts, const PartNaming& naming) {
  auto p = parts.to(torch::kLong).contiguous();
  auto out = torch::empty({p.size(0), 3}, torch::kUInt8);
  auto pa = p.accessor<int64_t, 1>();
  auto oa = out.accessor<uint8_t, 2>();
  const auto index = indices_in_category(naming);
  for (int64_t i = 0; i < p.size(0); ++i) {
    const auto c = viz::palette_color(index[static_cast<size_t>(pa[i])]);
    oa[i][0] = uint8_t(c.r * 255 + 0.5), oa[i][1] = uint8_t(c.g * 255 + 0.5), oa[i][2] = uint8_t(c.b * 255 + 0.5);
  }
  return out;
}

std::vector<PartSegmentation> segment_point_files(models::PointSegImpl& model, const Config& cfg,
                                                  const std::vector<std::string>& files, int64_t category,
                                                  const PartNaming& naming, torch::Device device) {
  torch::NoGradGuard guard;
  model.eval();
  const int64_t P = static_cast<int64_t>(naming.part_category.size());
  std::vector<PartSegmentation> out;
  for (const auto& path : files) {
    PartSegmentation s;
    s.path = path;
    try {
      auto x = read_input(path, cfg, s);
      const int64_t lo = s.truth.defined() ? s.truth.min().item<int64_t>() : 0;
      const int64_t hi = s.truth.defined() ? s.truth.max().item<int64_t>() : 0;
      if (hi >= P || lo < 0)
        fail(path + ": label " + std::to_string(hi >= P ? hi : lo) + " is not a part id (0.." + std::to_string(P - 1) + ")");
      // The category: --category, else the file's labels, else its folders in the released layout;
      // any two of them that are there must agree.
      const int64_t labelled = s.truth.defined() ? naming.part_category[static_cast<size_t>(s.truth[0].item<int64_t>())] : -1;
      const int64_t folder = layout_category(path);
      auto name = [&](int64_t c) { return naming.category_names[static_cast<size_t>(c)]; };
      s.category = category >= 0 ? category : labelled >= 0 ? labelled : folder;
      if (s.category < 0)
        fail(path + ": carries no part labels and lies in no ShapeNetPart synset folder to take its category from: give "
             "--category (one of " +
             [&] {
               std::string c;
               for (const auto& n : naming.category_names) c += (c.empty() ? "" : ", ") + n;
               return c;
             }() + ")");
      if (labelled >= 0 && category >= 0 && labelled != category)
        fail(path + ": its labels are " + name(labelled) + " parts, --category says " + name(category));
      if (folder >= 0 && s.category != folder)
        fail(path + ": lies in the " + name(folder) + " folder of the ShapeNetPart layout (synset " +
             shapenet_part_categories()[static_cast<size_t>(folder)].synset + "), " +
             (labelled >= 0 && labelled != folder ? "its labels are " + name(labelled) + " parts"
                                                  : "--category says " + name(s.category)));
      // Every label a part of that one category, as the training loaders require.
      if (s.truth.defined()) check_part_labels(lo, hi, s.category, path);
      predict_parts(model, x, s, naming, device);
    } catch (const ewa::Error& e) {
      s.error = e.what();
    } catch (const std::exception& e) {
      s.error = path + ": " + e.what();
    }
    out.push_back(std::move(s));
  }
  return out;
}

nlohmann::json segmentation_summary(const PartSegmentation& s, const PartNaming& naming) {
  auto counts = torch::bincount(s.parts, {}, static_cast<int64_t>(naming.part_category.size()));
  const auto index = indices_in_category(naming);
  nlohmann::json parts = nlohmann::json::array();
  for (int64_t p = 0; p < counts.size(0); ++p) {
    if (naming.part_category[static_cast<size_t>(p)] != s.category) continue;
    parts.push_back({{"part", naming.part(p)}, {"id", p}, {"color", part_color_name(index[static_cast<size_t>(p)])},
                     {"points", counts[p].item<int64_t>()}});
  }
  nlohmann::json j = {{"file", s.path},
                      {"category", naming.category_names[static_cast<size_t>(s.category)]},
                      {"points", s.parts.size(0)},
                      {"dropped_nonfinite", s.dropped_nonfinite},
                      {"parts", parts},
                      {"evaluation", "every point of the file, prediction restricted to the category"}};
  if (s.iou >= 0) j["miou"] = s.iou;
  return j;
}

std::vector<std::string> segmentation_output_stems(const std::vector<std::string>& inputs,
                                                   const std::vector<std::string>& files, const std::string& out) {
  auto absolute = [](const std::string& p) { return fs::absolute(p).lexically_normal(); };
  std::optional<fs::path> base;
  for (const auto& in : inputs) {
    const fs::path folder = fs::is_directory(in) ? absolute(in) : absolute(in).parent_path();
    if (!base) {
      base = folder;
      continue;
    }
    fs::path common;  // the longest common leading folders
    for (auto a = base->begin(), b = folder.begin(); a != base->end() && b != folder.end() && *a == *b; ++a, ++b)
      common /= *a;
    base = common;
  }
  std::vector<std::string> stems;
  for (const auto& f : files) {
    fs::path rel = absolute(f).lexically_relative(base.value_or(absolute(f).parent_path()));
    stems.push_back((fs::path(out) / rel.replace_extension()).string());
  }
  return stems;
}

std::string write_segmentation(const std::string& stem, const PartSegmentation& s, const PartNaming& naming) {
  ensure_writable_dir(fs::path(stem).parent_path().string());
  io::write_ply_points(stem + ".ply", s.points, part_colors(s.parts, naming), s.parts);
  write_text_atomically(stem + ".json", segmentation_summary(s, naming).dump(2) + "\n");
  return stem + ".ply";
}

std::vector<Scene> segmentation_scenes(const std::vector<PartSegmentation>& segs, const PartNaming& naming) {
  std::vector<Scene> out;
  for (const auto& s : segs) {
    if (!s.error.empty()) continue;
    Scene scene;
    scene.path = s.path;
    auto colors = part_colors(s.parts, naming).to(torch::kFloat) / 255.0;
    scene.clouds.push_back({s.points, colors, 0});
    scene.caption.push_back(fs::path(s.path).filename().string());
    std::string head = naming.category_names[static_cast<size_t>(s.category)];
    if (s.iou >= 0) {
      char b[48];
      std::snprintf(b, sizeof b, ", mIoU %.3f", s.iou);
      head += b;
    }
    scene.caption.push_back(head);
    std::string legend;
    const auto summary = segmentation_summary(s, naming);
    for (const auto& p : summary["parts"]) {
      if (p["points"].get<int64_t>() == 0) continue;
      std::string part = p["part"].get<std::string>();
      const std::string prefix = naming.category_names[static_cast<size_t>(s.category)] + " ";
      if (part.rfind(prefix, 0) == 0) part = part.substr(prefix.size());  // "Airplane wing" -> "wing"
      legend += (legend.empty() ? "" : ", ") + p["color"].get<std::string>() + " " + part + " " +
                std::to_string(p["points"].get<int64_t>());
    }
    scene.caption.push_back(legend);
    out.push_back(std::move(scene));
  }
  return out;
}

GalleryResult write_segmentation_gallery(models::PointSegImpl& model, const Config& cfg, const data::TaskLoader& load_data,
                                         const std::string& split, int64_t count, int columns, const viz::Camera& camera,
                                         const std::string& out, torch::Device device) {
  auto data = load_data(cfg, data::use_for_split(split));
  if (data.part_category.empty()) fail("gallery: " + cfg.data.dataset + " has no part labels");
  data::BatchSource& source = data::split_source(data, split);
  PartNaming naming;
  naming.part_names = data.class_names;
  naming.part_category = data.part_category;
  naming.category_names = data.category_names;
  std::vector<torch::Tensor> xs, ys;
  for (int64_t b = 0; b < source.num_batches(); ++b) {
    auto [x, y] = source.batch(b, data::View::Plain);
    xs.push_back(x.cpu()), ys.push_back(y.cpu());
  }
  auto x = torch::cat(xs), y = torch::cat(ys);
  const int64_t n = std::min<int64_t>(count, x.size(0));
  if (n <= 0) fail("gallery: the " + split + " split is empty");
  auto pick = torch::linspace(0, double(x.size(0) - 1), n).round().to(torch::kLong);
  auto part_category = torch::tensor(data.part_category, torch::kLong);
  torch::NoGradGuard guard;
  model.eval();
  std::vector<PartSegmentation> segs;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = pick[i].item<int64_t>();
    PartSegmentation s;
    s.path = split + " #" + std::to_string(k);
    s.points = x[k].narrow(1, 0, 3).contiguous();
    s.truth = y[k];
    s.category = shape_categories(y[k].unsqueeze(0), part_category)[0].item<int64_t>();
    predict_parts(model, x[k].unsqueeze(0), s, naming, device);
    segs.push_back(std::move(s));
  }
  auto scenes = segmentation_scenes(segs, naming);
  GalleryResult r;
  for (size_t i = 0; i < scenes.size(); ++i) {
    scenes[i].wrong = segs[i].iou < 0.7;
    r.wrong += scenes[i].wrong;
  }
  r.shown = n;
  char title[256];
  std::snprintf(title, sizeof title, "%s, %s split: %lld shapes, %lld below mIoU 0.7 (colour = predicted part)",
                cfg.name.c_str(), split.c_str(), static_cast<long long>(n), static_cast<long long>(r.wrong));
  write_scenes_png(out, scenes, camera, columns, title);
  return r;
}

}  // namespace ewa::infer
