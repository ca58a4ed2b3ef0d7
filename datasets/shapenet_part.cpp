#include "datasets/shapenet_part.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fs.h"
#include "datasets/hdf5.h"
#include "io/point_io.h"

namespace ewa::datasets {
using data::IndexedBatchSource;
using data::TaskData;
using data::Use;
using data::View;

namespace fs = std::filesystem;
using ewa::shapenet_part_categories;
using ewa::part_category_index;

namespace {

constexpr int64_t kNumParts = 50;

// synsetoffset2category.txt: synset folder -> category index of the table.
std::map<std::string, int64_t> read_categories(const std::string& root) {
  const std::string path = (fs::path(root) / "synsetoffset2category.txt").string();
  std::map<std::string, int64_t> out;
  int line_no = 0;
  for (const auto& line : read_text_lines(path)) {
    ++line_no;
    std::istringstream in(line);
    std::string name, synset;
    if (!(in >> name >> synset))
      fail(path + ":" + std::to_string(line_no) + ": expected \"<Category> <synset>\", got '" + line + "'");
    const int64_t c = part_category_index(name);
    if (c < 0) fail(path + ":" + std::to_string(line_no) + ": '" + name + "' is not one of the 16 ShapeNetPart categories");
    out[synset] = c;
  }
  if (out.empty()) fail(path + ": no categories");
  return out;
}

// shuffled_<split>_file_list.json: ["shape_data/<synset>/<id>", ...] -> "<synset>/<id>".
std::vector<std::string> read_split_list(const std::string& root, const std::string& split) {
  const std::string path = (fs::path(root) / "train_test_split" / ("shuffled_" + split + "_file_list.json")).string();
  std::ifstream in(path);
  if (!in) fail(path + ": cannot open file (the split lists of the ShapeNetPart release)");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    fail(path + ": not valid JSON: " + e.what());
  }
  if (!j.is_array()) fail(path + ": expected a JSON list of \"shape_data/<synset>/<id>\" entries");
  std::vector<std::string> out;
  for (const auto& e : j) {
    const std::string s = e.is_string() ? e.get<std::string>() : "";
    const auto first = s.find('/'), second = first == std::string::npos ? first : s.find('/', first + 1);
    if (second == std::string::npos || second + 1 >= s.size())
      fail(path + ": entry " + e.dump() + " is not \"shape_data/<synset>/<id>\"");
    out.push_back(s.substr(first + 1));
  }
  return out;
}

// One shape before normalisation.
struct RawShape {
  torch::Tensor points;  // float [P, C]
  torch::Tensor labels;  // int64 [P] global part ids
};

void check_parts(const torch::Tensor& labels, int64_t category, const std::string& what) {
  check_part_labels(labels.min().item<int64_t>(), labels.max().item<int64_t>(), category, what);
}

torch::Tensor integral_labels(const torch::Tensor& column, const std::string& path) {
  auto rounded = column.round();
  if (!torch::equal(rounded, column)) fail(path + ": the last column (the part label) must hold whole numbers");
  return rounded.to(torch::kLong);
}

// shapenetpart: <root>/<synset>/<id>.txt, "x y z nx ny nz part".
RawShape read_normal_shape(const std::string& root, const std::string& id, int64_t category, bool normals) {
  const std::string path = (fs::path(root) / (id + ".txt")).string();
  if (!fs::exists(path)) fail(path + ": named by the split list but missing");
  auto table = io::read_text_points(path);
  if (table.size(1) != 7)
    fail(path + ": expected 7 columns (x y z nx ny nz part), got " + std::to_string(table.size(1)));
  RawShape s{table.narrow(1, 0, normals ? 6 : 3).contiguous(), integral_labels(table.select(1, 6), path)};
  check_parts(s.labels, category, path);
  return s;
}

// shapenetpart_v0: <root>/<synset>/points/<id>.pts and points_label/<id>.seg (1..k).
RawShape read_v0_shape(const std::string& root, const std::string& id, int64_t category) {
  const auto slash = id.find('/');
  const auto dir = fs::path(root) / id.substr(0, slash);
  const std::string pts = (dir / "points" / (id.substr(slash + 1) + ".pts")).string();
  const std::string seg = (dir / "points_label" / (id.substr(slash + 1) + ".seg")).string();
  if (!fs::exists(pts)) fail(pts + ": named by the split list but missing");
  if (!fs::exists(seg)) fail(seg + ": missing (the part labels of " + pts + ")");
  auto points = io::read_text_points(pts);
  if (points.size(1) != 3) fail(pts + ": expected 3 columns (x y z), got " + std::to_string(points.size(1)));
  const auto& c = shapenet_part_categories()[category];
  return {points, io::read_seg_labels(seg, pts, points.size(0), c.num_parts, c.name) + (c.first_part - 1)};
}

PartSet assemble(const std::vector<RawShape>& shapes, std::vector<std::string> ids) {
  PartSet set;
  std::vector<torch::Tensor> points, labels;
  std::vector<int64_t> offsets = {0};
  for (const auto& s : shapes) {
    auto p = s.points.clone();
    auto xyz = p.narrow(1, 0, 3);
    xyz.sub_(xyz.mean(0, true));  // pc_normalize: centroid at the origin, farthest point at radius 1
    xyz.div_(xyz.norm(2, 1).max().clamp_min(1e-12));
    points.push_back(p);
    labels.push_back(s.labels);
    offsets.push_back(offsets.back() + p.size(0));
  }
  set.points = points.empty() ? torch::zeros({0, 3}) : torch::cat(points);
  set.labels = labels.empty() ? torch::zeros({0}, torch::kLong) : torch::cat(labels);
  set.offsets = torch::tensor(offsets, torch::kLong);
  set.ids = std::move(ids);
  return set;
}

PartSet read_listed(const DataConfig& cfg, const std::vector<std::string>& splits, int64_t limit) {
  const auto categories = read_categories(cfg.root);
  std::vector<RawShape> shapes;
  std::vector<std::string> ids;
  for (const auto& split : splits) {
    for (const auto& id : read_split_list(cfg.root, split)) {
      if (limit > 0 && static_cast<int64_t>(ids.size()) >= limit) break;
      const auto it = categories.find(id.substr(0, id.find('/')));
      if (it == categories.end())
        fail((fs::path(cfg.root) / "train_test_split" / ("shuffled_" + split + "_file_list.json")).string() + ": '" + id +
             "' is in no category of synsetoffset2category.txt");
      shapes.push_back(cfg.dataset == "shapenetpart_v0" ? read_v0_shape(cfg.root, id, it->second)
                                                        : read_normal_shape(cfg.root, id, it->second, cfg.use_normals));
      ids.push_back(id);
    }
  }
  if (shapes.empty()) {  // name the list files that were read
    std::string lists;
    for (size_t i = 0; i < splits.size(); ++i)
      lists += std::string(i == 0 ? "" : i + 1 == splits.size() ? " and " : ", ") +
               (fs::path(cfg.root) / "train_test_split" / ("shuffled_" + splits[i] + "_file_list.json")).string();
    fail(lists + (splits.size() > 1 ? ": name" : ": names") + " no shapes (expected \"shape_data/<synset>/<id>\" entries)");
  }
  return assemble(shapes, ids);
}

PartSet read_h5(const DataConfig& cfg, const std::vector<std::string>& splits, int64_t limit) {
  std::vector<RawShape> shapes;
  std::vector<std::string> ids;
  for (const auto& split : splits) {
    const std::string list = (fs::path(cfg.root) / (split + "_hdf5_file_list.txt")).string();
    for (const auto& name : read_text_lines(list)) {
      const std::string path = (fs::path(cfg.root) / fs::path(name).filename()).string();
      auto h5 = read_h5_clouds(path);
      if (!h5.parts.defined()) fail(path + ": missing dataset 'pid' (the part label of every point)");
      for (int64_t i = 0; i < h5.points.size(0); ++i) {
        if (limit > 0 && static_cast<int64_t>(ids.size()) >= limit) break;
        const int64_t c = h5.labels[i].item<int64_t>();
        if (c >= static_cast<int64_t>(shapenet_part_categories().size()))
          fail(path + ": cloud " + std::to_string(i) + " has category label " + std::to_string(c) + ", expected 0..15");
        const std::string what = path + ": cloud " + std::to_string(i);
        check_parts(h5.parts[i], c, what);
        shapes.push_back({h5.points[i].narrow(1, 0, 3).contiguous(), h5.parts[i].clone()});
        ids.push_back(fs::path(name).filename().string() + "#" + std::to_string(i));
      }
    }
  }
  if (shapes.empty()) {  // name the list files that were read (a sibling of the split lists' message)
    std::string lists;
    for (size_t i = 0; i < splits.size(); ++i)
      lists += std::string(i == 0 ? "" : " and ") + (fs::path(cfg.root) / (splits[i] + "_hdf5_file_list.txt")).string();
    fail(lists + (splits.size() > 1 ? ": name" : ": names") + " no clouds");
  }
  return assemble(shapes, ids);
}

}  // namespace

std::vector<std::string> part_names(const std::string& root) {
  const auto file = fs::path(root) / "part_names.txt";
  if (!root.empty() && fs::exists(file)) {
    auto names = read_text_lines(file.string());
    if (static_cast<int64_t>(names.size()) != kNumParts)
      fail(file.string() + ": expected " + std::to_string(kNumParts) + " lines (one name per part), got " +
           std::to_string(names.size()));
    return names;
  }
  std::vector<std::string> out;
  for (const auto& c : shapenet_part_categories())
    for (int64_t k = 1; k <= c.num_parts; ++k) out.push_back(c.name + " " + std::to_string(k));
  return out;
}

std::vector<std::string> part_dataset_names() { return {"shapenetpart", "shapenetpart_v0", "shapenetpart_h5"}; }

PartSplits load_part_splits(const DataConfig& cfg) {
  if (!fs::is_directory(cfg.root)) fail(cfg.root + ": not a directory (data.root of " + cfg.dataset + ")");
  if (cfg.train_per_class > 0)
    fail("data.train_per_class: a class-stratified subset is for classification; " + cfg.dataset +
         " is part segmentation (data.train_limit keeps its first N training shapes)");
  PartSplits out;
  const bool h5 = cfg.dataset == "shapenetpart_h5";
  out.train = h5 ? read_h5(cfg, {"train", "val"}, cfg.train_limit) : read_listed(cfg, {"train", "val"}, cfg.train_limit);
  out.test = h5 ? read_h5(cfg, {"test"}, cfg.test_limit) : read_listed(cfg, {"test"}, cfg.test_limit);
  return out;
}

PartBatcher::PartBatcher(PartSet set, DataConfig cfg, int64_t batch_size, bool shuffle, uint64_t seed, bool drop_last)
    : IndexedBatchSource(set.size(), batch_size, shuffle, seed, drop_last), set_(std::move(set)), cfg_(std::move(cfg)) {}

std::pair<torch::Tensor, torch::Tensor> PartBatcher::batch(int64_t i, View view) const {
  auto shapes = indices(i).cpu();
  const int64_t B = shapes.size(0), N = cfg_.num_points;
  auto start = set_.offsets.index_select(0, shapes), count = set_.offsets.index_select(0, shapes + 1) - start;
  // np.random.choice(len, N, replace=True) per shape.
  auto rows = (torch::rand({B, N}, torch::kDouble) * count.unsqueeze(1).to(torch::kDouble)).floor().to(torch::kLong)
                  .clamp_max_(count.unsqueeze(1) - 1) + start.unsqueeze(1);
  auto points = set_.points.index_select(0, rows.view(-1)).view({B, N, -1});
  auto labels = set_.labels.index_select(0, rows.view(-1)).view({B, N});
  if (view == View::Training || view == View::Augmented) {
    // provider.random_scale_point_cloud (one factor per shape) and shift_point_cloud (per axis).
    auto scale = torch::rand({B, 1, 1}) * (cfg_.scale_high - cfg_.scale_low) + cfg_.scale_low;
    auto shift = (torch::rand({B, 1, 3}) * 2 - 1) * cfg_.translate;
    auto xyz = points.narrow(2, 0, 3);
    xyz.mul_(scale).add_(shift);
  }
  return {points.to(device()), labels.to(device())};
}

TaskData load_part_task(const DataConfig& cfg, uint64_t seed, Use use) {
  auto splits = load_part_splits(cfg);
  TaskData t;
  t.description = cfg.dataset + " (" + cfg.root + ")";
  t.class_names = part_names(cfg.root);
  t.num_classes = static_cast<int64_t>(t.class_names.size());
  t.part_category = shapenet_part_to_category();
  for (const auto& c : shapenet_part_categories()) t.category_names.push_back(c.name);
  t.in_chans = splits.train.points.size(1);
  t.num_points = cfg.num_points;
  t.notes = splits.notes;
  const bool training = use == Use::Training;
  t.train = std::make_unique<PartBatcher>(splits.train, cfg, cfg.batch_size, training, seed, training && cfg.drop_last);
  t.test = std::make_unique<PartBatcher>(splits.test, cfg, cfg.eval_batch_size, false, seed);
  return t;
}

}  // namespace ewa::datasets
