#include "datasets/point_datasets.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/device_copy.h"
#include "common/error.h"
#include "common/fs.h"
#include "config/datasets.h"
#include "datasets/cache.h"
#include "data/point_sampling.h"
#include "datasets/hdf5.h"
#include "io/point_io.h"
#include "io/torch_pickle.h"
#include "kernels/fps/fps.h"

namespace ewa::datasets {
using data::IndexedBatchSource;
using data::TaskData;
using data::Use;
using data::View;
using data::classes_present_note;
using data::eval_cloud;
using data::eval_points;
using data::fps_prefix;
using data::mesh_sample_points;
using data::per_class_subset;
using data::require_fps_points;
using data::require_points;
using data::train_cloud;
using data::validation_split;
using data::view_of_clouds;

namespace fs = std::filesystem;

const std::vector<std::string> kScanObjectNNClasses = {"bag",   "bin",   "box",  "cabinet", "chair",
                                                       "desk",  "display", "door", "shelf", "table",
                                                       "bed",   "pillow", "sink", "sofa",   "toilet"};

const std::vector<std::string> kModelNet40Classes = {
    "airplane", "bathtub",  "bed",    "bench",      "bookshelf", "bottle", "bowl",  "car",   "chair",   "cone",
    "cup",      "curtain",  "desk",   "door",       "dresser",   "flower_pot", "glass_box", "guitar", "keyboard", "lamp",
    "laptop",   "mantel",   "monitor", "night_stand", "person",  "piano",  "plant", "radio", "range_hood", "sink",
    "sofa",     "stairs",   "stool",  "table",      "tent",      "toilet", "tv_stand", "vase", "wardrobe", "xbox"};

namespace {

// Bumped whenever what a cache file holds changes meaning, so older cache files are not read.
constexpr int kCacheVersion = 5;
// Seeds of the random FPS starts of a data.source_points reduction (cloud i of a split: + i).
constexpr uint64_t kReductionSeed = 8192;


// A split before preprocessing: raw clouds of possibly different sizes.
struct RawSplit {
  std::vector<torch::Tensor> clouds;  // [P_i, C]
  std::vector<int64_t> labels;
  std::vector<std::string> names;     // for error messages
};

// Everything a dataset consists of, found without parsing any cloud: the cache key is computed
// from it and the folder structure is validated even when the cache answers.
struct Listing {
  std::vector<std::string> class_names;
  std::vector<std::string> files[2];   // per split (0 train, 1 test): .h5 files or point files
  std::vector<int64_t> labels[2];      // point-file datasets: the label of each file
  std::vector<std::string> extra;      // list files, also fingerprinted
  bool h5 = false;
  bool pickle = false;                 // modelnet_fewshot: files[0] = files[1] = the fold's .pkl
  bool dat = false;                    // modelnet40_resampled from Point-MAE's *_<N>pts_fps.dat files
  std::string dat_files[2];
  bool meshes = false;                 // some files are meshes, sampled with the seed
};

std::vector<std::string> h5_list(const DataConfig& cfg, const std::string& split) {
  const std::string list = (fs::path(cfg.root) / (split + "_files.txt")).string();
  std::vector<std::string> paths;
  for (const auto& entry : read_text_lines(list)) {
    // Official lists carry a prefix such as data/modelnet40_ply_hdf5_2048/: files sit beside the list.
    const auto p = (fs::path(cfg.root) / fs::path(entry).filename()).string();
    if (!fs::exists(p)) fail(list + ": lists " + entry + ", but " + p + " does not exist");
    paths.push_back(p);
  }
  if (paths.empty()) fail(list + ": lists no .h5 files");
  return paths;
}

const char* const kSplits[2] = {"train", "test"};

// The train and test limits of cfg, by split index.
int64_t limit_of(const DataConfig& cfg, int sp) { return sp == 0 ? cfg.train_limit : cfg.test_limit; }

// ModelNet40 in the PointNet HDF5 layout: {train,test}_files.txt list the .h5 files.
Listing list_modelnet_h5(const DataConfig& cfg) {
  Listing l;
  l.h5 = true;
  for (int sp = 0; sp < 2; ++sp) {
    l.files[sp] = h5_list(cfg, kSplits[sp]);
    l.extra.push_back((fs::path(cfg.root) / (std::string(kSplits[sp]) + "_files.txt")).string());
  }
  const auto names = fs::path(cfg.root) / "shape_names.txt";
  if (fs::exists(names)) l.class_names = read_text_lines(names.string());
  return l;
}

// ScanObjectNN's h5_files: <root>/main_split{,_nobg}/{training,test}_objectdataset{,_augmentedrot_scale75}.h5.
Listing list_scanobjectnn(const DataConfig& cfg) {
  Listing l;
  l.h5 = true;
  const std::string dir = cfg.variant == "obj_only" ? "main_split_nobg" : "main_split";
  const std::string suffix = cfg.variant == "pb_t50_rs" ? "_augmentedrot_scale75" : "";
  l.files[0] = {(fs::path(cfg.root) / dir / ("training_objectdataset" + suffix + ".h5")).string()};
  l.files[1] = {(fs::path(cfg.root) / dir / ("test_objectdataset" + suffix + ".h5")).string()};
  l.class_names = kScanObjectNNClasses;
  return l;
}

// modelnet40_normal_resampled (or its ModelNet10 lists): <prefix>_{train,test}.txt name
// <class>_<index> files in <root>/<class>/<name>.txt.
Listing list_modelnet_resampled(const DataConfig& cfg) {
  Listing l;
  std::string prefix = "modelnet40";
  if (!fs::exists(fs::path(cfg.root) / "modelnet40_shape_names.txt") &&
      fs::exists(fs::path(cfg.root) / "modelnet10_shape_names.txt"))
    prefix = "modelnet10";
  const std::string names = (fs::path(cfg.root) / (prefix + "_shape_names.txt")).string();
  l.class_names = read_text_lines(names);
  l.extra.push_back(names);
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < l.class_names.size(); ++i) index[l.class_names[i]] = static_cast<int64_t>(i);
  // Point-MAE's preprocessed splits (modelnet40_{train,test}_8192pts_fps.dat: every file's
  // data.source_points points by FPS from a random start), read instead of the text files when
  // both are there: the very clouds the official runs train and test on.
  if (cfg.source_points > 0) {
    std::string dats[2];
    for (int sp = 0; sp < 2; ++sp)
      dats[sp] = (fs::path(cfg.root) / (prefix + "_" + kSplits[sp] + "_" + std::to_string(cfg.source_points) + "pts_fps.dat")).string();
    l.dat = fs::exists(dats[0]) && fs::exists(dats[1]);
    if (l.dat)
      for (int sp = 0; sp < 2; ++sp) {
        l.extra.push_back(dats[sp]);
        l.dat_files[sp] = dats[sp];
      }
  }
  for (int sp = 0; sp < 2; ++sp) {
    const std::string list = (fs::path(cfg.root) / (prefix + "_" + kSplits[sp] + ".txt")).string();
    l.extra.push_back(list);
    for (const auto& name : read_text_lines(list)) {
      if (limit_of(cfg, sp) > 0 && static_cast<int64_t>(l.files[sp].size()) >= limit_of(cfg, sp)) break;
      const auto cut = name.rfind('_');
      const std::string cls = cut == std::string::npos ? name : name.substr(0, cut);
      auto it = index.find(cls);
      if (it == index.end())
        fail(list + ": entry '" + name + "' names class '" + cls + "', which is not in " + prefix + "_shape_names.txt");
      l.files[sp].push_back((fs::path(cfg.root) / cls / (name + ".txt")).string());
      l.labels[sp].push_back(it->second);
    }
  }
  return l;
}

// ModelNet10/40 class folders: <root>/<class>/{train,test}/<files>, classes sorted by name.
Listing list_modelnet_folder(const DataConfig& cfg) {
  Listing l;
  for (const auto& e : fs::directory_iterator(cfg.root))
    if (e.is_directory() && e.path().filename().string()[0] != '.') l.class_names.push_back(e.path().filename().string());
  std::sort(l.class_names.begin(), l.class_names.end());
  if (l.class_names.empty()) fail("data.root: " + cfg.root + " has no class folders (expected <root>/<class>/{train,test}/)");
  for (int sp = 0; sp < 2; ++sp) {
    for (size_t c = 0; c < l.class_names.size(); ++c) {
      const fs::path dir = fs::path(cfg.root) / l.class_names[c] / kSplits[sp];
      if (!fs::is_directory(dir))
        fail(dir.string() + ": missing: class folder '" + l.class_names[c] + "' has no " + kSplits[sp] + "/ folder");
      std::vector<std::string> paths;
      for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file()) paths.push_back(e.path().string());
      std::sort(paths.begin(), paths.end());
      for (const auto& p : paths) {
        l.files[sp].push_back(p);
        l.labels[sp].push_back(static_cast<int64_t>(c));
      }
    }
    const int64_t limit = limit_of(cfg, sp);
    if (limit > 0 && static_cast<int64_t>(l.files[sp].size()) > limit) {
      l.files[sp].resize(limit);
      l.labels[sp].resize(limit);
    }
  }
  return l;
}

// Point-MAE's layout: <root>/ShapeNet-55/{train,test}.txt list <taxonomy>-<model>.npy files
// in <root>/shapenet_pc/. The label is the taxonomy (synset) id, classes sorted.
Listing list_shapenet55(const DataConfig& cfg) {
  Listing l;
  std::vector<std::string> entries[2];
  std::set<std::string> taxonomies;
  for (int sp = 0; sp < 2; ++sp) {
    const std::string list = (fs::path(cfg.root) / "ShapeNet-55" / (std::string(kSplits[sp]) + ".txt")).string();
    l.extra.push_back(list);
    for (const auto& entry : read_text_lines(list)) {
      if (limit_of(cfg, sp) > 0 && static_cast<int64_t>(entries[sp].size()) >= limit_of(cfg, sp)) break;
      const auto dash = entry.find('-');
      if (dash == std::string::npos || dash == 0 || lower_extension(entry) != ".npy")
        fail(list + ": entry '" + entry + "' is not of the form <taxonomy>-<model>.npy");
      entries[sp].push_back(entry);
      taxonomies.insert(entry.substr(0, dash));
    }
    if (entries[sp].empty()) fail(list + ": lists no point files");
  }
  l.class_names.assign(taxonomies.begin(), taxonomies.end());
  for (int sp = 0; sp < 2; ++sp) {
    for (const auto& entry : entries[sp]) {
      const std::string file = (fs::path(cfg.root) / "shapenet_pc" / entry).string();
      if (!fs::exists(file)) fail(l.extra[sp] + ": lists " + entry + ", but " + file + " does not exist");
      l.files[sp].push_back(file);
      l.labels[sp].push_back(std::distance(taxonomies.begin(), taxonomies.find(entry.substr(0, entry.find('-')))));
    }
  }
  return l;
}

// The released few-shot folds: <root>/<way>way_<shot>shot/<fold>.pkl (what the official loader
// opens and generate_few_shot_data.py writes); the upstream DATASET.md draws it as 5way10shot/.
Listing list_fewshot(const DataConfig& cfg) {
  Listing l;
  l.pickle = true;
  const std::string stem = std::to_string(cfg.way) + "way", shot = std::to_string(cfg.shot) + "shot";
  const std::string file = std::to_string(cfg.fold) + ".pkl";
  for (const auto& dir : {stem + "_" + shot, stem + shot})
    if (const auto p = fs::path(cfg.root) / dir / file; fs::exists(p)) {
      l.files[0] = l.files[1] = {p.string()};
      return l;
    }
  std::string folds;
  for (const auto& dir : {stem + "_" + shot, stem + shot})
    if (fs::is_directory(fs::path(cfg.root) / dir))
      for (const auto& e : fs::directory_iterator(fs::path(cfg.root) / dir))
        if (e.path().extension() == ".pkl") folds += (folds.empty() ? "" : ", ") + e.path().filename().string();
  fail("data.fold: " + (fs::path(cfg.root) / (stem + "_" + shot) / file).string() + " does not exist (" +
       (folds.empty() ? "no " + stem + "_" + shot + "/ folder of .pkl folds in " + cfg.root : "the folds there: " + folds) +
       ")");
}

}  // namespace

std::string fewshot_fold_file(const DataConfig& cfg) { return list_fewshot(cfg).files[0].front(); }

namespace {

// Every point-cloud dataset's lister (its row in config/datasets.cpp says what else is known of it).
const std::map<std::string, Listing (*)(const DataConfig&)>& listers() {
  static const std::map<std::string, Listing (*)(const DataConfig&)> table = {
      {"modelnet_h5", list_modelnet_h5},         {"scanobjectnn", list_scanobjectnn},
      {"modelnet40_resampled", list_modelnet_resampled}, {"modelnet_folder", list_modelnet_folder},
      {"shapenet55", list_shapenet55},           {"modelnet_fewshot", list_fewshot},
  };
  return table;
}

Listing list_inputs(const DataConfig& cfg) {
  const DatasetInfo& info = dataset_info(cfg.dataset);
  const auto lister = listers().find(cfg.dataset);
  if (!info.point_cloud || lister == listers().end())
    fail("data.dataset: '" + cfg.dataset + "' is not a point-cloud dataset");
  if (info.hdf5 && !built_with_hdf5())
    fail("data.dataset: '" + cfg.dataset + "' is stored as HDF5 and ewa was built without HDF5 (reconfigure with "
         "EWA_WITH_HDF5=ON and libhdf5-dev); class folders of point files train with data.dataset=modelnet_folder "
         "(`ewa data synth` writes the synthetic shapes so in this build)");
  Listing l = lister->second(cfg);
  for (int sp = 0; sp < 2; ++sp)
    for (const auto& f : l.files[sp]) {
      const auto ext = lower_extension(f);
      l.meshes = l.meshes || ext == ".off" || ext == ".obj" || ext == ".ply";
    }
  return l;
}

// One split of a released few-shot pickle: {'train': [...], 'test': [...]}, each item
// (points float32 [8192, 6], label in [0, way), original ModelNet40 class).
RawSplit parse_fewshot(const DataConfig& cfg, const std::string& path, const std::string& split, int64_t limit,
                       std::map<int64_t, int64_t>& class_of_label) {
  const io::PyRef root = io::read_pickle_file(path);
  auto bad = [&](const std::string& where, const std::string& expected, const io::PyRef& got) {
    fail(path + ": " + where + ": expected " + expected + ", got " + io::describe_value(got) +
         " (the released few-shot layout: {'train': [...], 'test': [...]} of (points, label, class))");
  };
  if (root->kind != io::PyValue::Kind::Dict) bad("top level", "a dict with keys 'train' and 'test'", root);
  const io::PyRef items = root->get(split);
  if (!items) fail(path + ": has no key '" + split + "' (the released few-shot layout: {'train': [...], 'test': [...]})");
  if (items->kind != io::PyValue::Kind::List) bad("field '" + split + "'", "a list", items);
  RawSplit raw;
  for (size_t k = 0; k < items->items.size(); ++k) {
    if (limit > 0 && static_cast<int64_t>(raw.labels.size()) >= limit) break;
    const auto& item = items->items[k];
    const std::string where = "field '" + split + "' item " + std::to_string(k);
    if ((item->kind != io::PyValue::Kind::Tuple && item->kind != io::PyValue::Kind::List) || item->items.size() != 3)
      bad(where, "a tuple (points, label, class)", item);
    const auto& points = item->items[0];
    if (points->kind != io::PyValue::Kind::Tensor || points->tensor.dim() != 2 || points->tensor.size(1) < 3 ||
        !points->tensor.is_floating_point())
      bad(where + " points", "a float array [P, 3 or 6]", points);
    for (int e = 1; e < 3; ++e)
      if (item->items[e]->kind != io::PyValue::Kind::Int) bad(where + (e == 1 ? " label" : " class"), "an int", item->items[e]);
    const int64_t label = item->items[1]->i, cls = item->items[2]->i;
    if (label < 0 || label >= cfg.way)
      fail(path + ": " + where + " label: " + std::to_string(label) + " is outside [0, data.way = " + std::to_string(cfg.way) +
           ") (a fold of another way?)");
    const auto [it, fresh] = class_of_label.emplace(label, cls);
    if (!fresh && it->second != cls)
      fail(path + ": " + where + ": label " + std::to_string(label) + " stands for class " + std::to_string(cls) +
           " here and for class " + std::to_string(it->second) + " before");
    const int64_t channels = cfg.use_normals ? 6 : 3;
    if (points->tensor.size(1) < channels)
      fail(path + ": " + where + " points: data.use_normals needs 6 columns, found " + std::to_string(points->tensor.size(1)));
    raw.clouds.push_back(points->tensor.to(torch::kFloat).narrow(1, 0, channels));
    raw.labels.push_back(label);
    raw.names.push_back(path + " " + where);
  }
  if (raw.clouds.empty()) fail(path + ": field '" + split + "' holds no samples");
  return raw;
}

// One split from Point-MAE's .dat pickle: [list of points float32 [N, 6], list of labels
// int32 [1]], in the order of modelnet40_<split>.txt.
RawSplit parse_dat(const DataConfig& cfg, const Listing& l, int sp, int64_t limit) {
  const std::string path = l.dat_files[sp];
  const io::PyRef root = io::read_pickle_file(path);
  auto bad = [&](const std::string& where, const std::string& expected, const io::PyRef& got) {
    fail(path + ": " + where + ": expected " + expected + ", got " + io::describe_value(got) +
         " (Point-MAE's layout: [list of points, list of labels])");
  };
  if ((root->kind != io::PyValue::Kind::List && root->kind != io::PyValue::Kind::Tuple) || root->items.size() != 2)
    bad("top level", "a list of 2", root);
  const auto& points = root->items[0];
  const auto& labels = root->items[1];
  if (points->kind != io::PyValue::Kind::List) bad("item 0", "a list of point arrays", points);
  if (labels->kind != io::PyValue::Kind::List || labels->items.size() != points->items.size())
    bad("item 1", "a list of " + std::to_string(points->items.size()) + " labels", labels);
  const size_t listed = l.labels[sp].size();
  const size_t expected = limit > 0 ? std::min<size_t>(size_t(limit), points->items.size()) : points->items.size();
  if (listed != expected)
    fail(path + ": holds " + std::to_string(points->items.size()) + " clouds, the split's list names " + std::to_string(listed));
  const int64_t channels = cfg.use_normals ? 6 : 3;
  RawSplit raw;
  for (size_t k = 0; k < expected; ++k) {
    const auto& p = points->items[k];
    const std::string where = "cloud " + std::to_string(k);
    if (p->kind != io::PyValue::Kind::Tensor || p->tensor.dim() != 2 || p->tensor.size(1) < channels || !p->tensor.is_floating_point())
      bad(where, "a float array [P, " + std::to_string(channels) + " or more]", p);
    const auto& y = labels->items[k];
    int64_t label = -1;
    if (y->kind == io::PyValue::Kind::Int) label = y->i;
    else if (y->kind == io::PyValue::Kind::Tensor && y->tensor.numel() == 1 && !y->tensor.is_floating_point())
      label = y->tensor.reshape({-1})[0].item<int64_t>();
    else bad(where + " label", "an int array of shape (1,)", y);
    if (label != l.labels[sp][k])
      fail(path + ": " + where + " has label " + std::to_string(label) + ", the split's list says " +
           std::to_string(l.labels[sp][k]) + " (" + l.files[sp][k] + ")");
    raw.clouds.push_back(p->tensor.to(torch::kFloat).narrow(1, 0, channels));
    raw.labels.push_back(label);
    raw.names.push_back(path + " " + where);
  }
  return raw;
}

// Parses one split of the listing into raw clouds.
RawSplit parse_split(const DataConfig& cfg, const Listing& l, int sp, int64_t limit, uint64_t seed,
                     std::map<int64_t, int64_t>& class_of_label) {
  RawSplit raw;
  if (l.pickle) return parse_fewshot(cfg, l.files[sp][0], sp == 0 ? "train" : "test", limit, class_of_label);
  if (l.dat) return parse_dat(cfg, l, sp, limit);
  if (l.h5) {
    const int64_t num_classes = static_cast<int64_t>(l.class_names.size());
    for (const auto& path : l.files[sp]) {
      auto h5 = read_h5_clouds(path);
      if (num_classes > 0 && h5.labels.numel() > 0 && h5.labels.max().item<int64_t>() >= num_classes)
        fail(path + ": label " + std::to_string(h5.labels.max().item<int64_t>()) + " out of range: expected labels in [0, " +
             std::to_string(num_classes) + ")");
      for (int64_t i = 0; i < h5.labels.size(0); ++i) {
        if (limit > 0 && static_cast<int64_t>(raw.labels.size()) >= limit) return raw;
        raw.clouds.push_back(h5.points[i].narrow(1, 0, 3));
        raw.labels.push_back(h5.labels[i].item<int64_t>());
        raw.names.push_back(path + " cloud " + std::to_string(i));
      }
    }
    return raw;
  }
  const int64_t n = static_cast<int64_t>(l.files[sp].size());
  raw.clouds.resize(n);
  raw.labels = l.labels[sp];
  raw.names = l.files[sp];
  const int64_t channels = cfg.use_normals ? 6 : 3;
  const int64_t mesh_points = mesh_sample_points(cfg);
  at::parallel_for(0, n, 16, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) {
      auto cloud = io::read_point_file(raw.names[i], mesh_points, seed + static_cast<uint64_t>(i));
      if (cloud.size(1) < channels)
        fail(raw.names[i] + ": data.use_normals needs 6 columns (x,y,z,nx,ny,nz), found " + std::to_string(cloud.size(1)));
      raw.clouds[i] = cloud.narrow(1, 0, channels);
    }
  });
  return raw;
}

PointCloudSet finish(const RawSplit& raw, const DataConfig& cfg, bool training, uint64_t seed, const std::string& what) {
  if (raw.clouds.empty()) fail(what + ": the split is empty");
  size_t smallest = 0;
  for (size_t i = 1; i < raw.clouds.size(); ++i)
    if (raw.clouds[i].size(0) < raw.clouds[smallest].size(0)) smallest = i;
  const int64_t fewest = raw.clouds[smallest].size(0);
  int64_t keep;
  if (training) {  // every training cloud keeps the same number of points (see train_cloud)
    keep = cfg.pipeline == "fixed" ? cfg.num_points : cfg.source_points > 0 ? std::min(cfg.source_points, fewest) : fewest;
    if (cfg.pipeline == "resample") require_points(fewest, cfg.num_points, raw.names[smallest]);
  } else {  // at most eval_points, no more than the smallest cloud has (one below num_points fails in eval_cloud)
    keep = std::min(eval_points(cfg), std::max(fewest, cfg.num_points));
  }
  std::vector<torch::Tensor> prepared(raw.clouds.size());
  at::parallel_for(0, static_cast<int64_t>(raw.clouds.size()), 8, [&](int64_t a, int64_t b) {
    at::NoGradGuard guard;
    for (int64_t i = a; i < b; ++i) {
      const uint64_t s = seed + static_cast<uint64_t>(i);
      prepared[i] = training ? train_cloud(raw.clouds[i], cfg, keep, s, raw.names[i])
                             : eval_cloud(raw.clouds[i], cfg, keep, s, raw.names[i]);
    }
  });
  return {torch::stack(prepared), torch::tensor(raw.labels, torch::kLong)};
}

}  // namespace

namespace {

// The cache file of a listing: every setting that shapes the stored clouds, the seed where it
// draws them (mesh surface samples), the format version, and the input files. The random FPS
// starts of a data.source_points reduction come from fixed seeds (kReductionSeed), so every
// training seed reads the same clouds, as every official run reads the same .dat files.
std::string cache_path(const DataConfig& cfg, const Listing& listing, uint64_t seed) {
  const int64_t channels = cfg.use_normals ? 6 : 3;
  const std::string key = cfg.dataset + (cfg.variant.empty() ? "" : "_" + cfg.variant) + "_" + cfg.pipeline + "_" +
                          std::to_string(cfg.num_points) + "pts";
  std::vector<std::string> inputs = listing.extra;
  inputs.push_back(nlohmann::json{{"version", kCacheVersion}, {"channels", channels}, {"eval_points", eval_points(cfg)},
                                  {"source_points", cfg.source_points}, {"normalize", cfg.normalize},
                                  {"train_limit", cfg.train_limit}, {"test_limit", cfg.test_limit}, {"way", cfg.way},
                                  {"shot", cfg.shot}, {"fold", cfg.fold},
                                  {"seed", listing.meshes ? int64_t(seed) : int64_t(-1)}}
                       .dump());
  for (int sp = 0; sp < 2; ++sp) {
    inputs.insert(inputs.end(), listing.files[sp].begin(), listing.files[sp].end());
    for (auto label : listing.labels[sp]) inputs.push_back(std::to_string(label));
  }
  return (fs::path(cache_dir_for(cfg.cache_dir, cfg.root)) / (key + "_" + fingerprint(inputs) + ".pt")).string();
}

// Reads a cache file into `out` (train, test, class names); false, with a note saying why, when
// it cannot be read (a cache file may be cut off or corrupt: read by our own bounded unpickler).
bool read_cache(const std::string& cache, PointSplits& out) {
  PointSplits read;
  const bool ok = read_cache_file(cache, [&](const io::PyRef& root) {
    auto tensor = [&](const char* key) {
      const io::PyRef v = root->get(key);
      if (!v || v->kind != io::PyValue::Kind::Tensor) throw std::runtime_error(std::string("no tensor ") + key);
      return v->tensor;
    };
    read.train = {tensor("train_points"), tensor("train_labels")};
    read.test = {tensor("test_points"), tensor("test_labels")};
    const io::PyRef names = root->get("class_names");
    if (!names || names->kind != io::PyValue::Kind::List) throw std::runtime_error("no class_names");
    for (const auto& n : names->items) {
      if (n->kind != io::PyValue::Kind::Str) throw std::runtime_error("class_names holds a non-string");
      read.class_names.push_back(n->s);
    }
  }, "the dataset is parsed again", out.notes);
  if (ok) {
    read.notes = std::move(out.notes);
    out = std::move(read);
  }
  return ok;
}

// Writes the cache for the next run; a cache that cannot be written only costs time, and says so.
void write_cache(const std::string& cache, PointSplits& out) {
  io::PyRef dict = io::py_dict();
  dict->set("train_points", io::py_tensor(out.train.points));
  dict->set("train_labels", io::py_tensor(out.train.labels));
  dict->set("test_points", io::py_tensor(out.test.points));
  dict->set("test_labels", io::py_tensor(out.test.labels));
  io::PyRef names = io::py_list();
  for (const auto& n : out.class_names) names->items.push_back(io::py_str(n));
  dict->set("class_names", names);
  write_cache_file(cache, dict, "the next run parses the dataset again", out.notes);
}

// Class names when the listing has none: the few-shot fold's original ModelNet40 classes, or
// class_<i> for every label seen (h5 without shape_names.txt).
std::vector<std::string> class_names_of(const DataConfig& cfg, const Listing& listing, const RawSplit& train,
                                        const RawSplit& test, const std::map<int64_t, int64_t>& class_of_label) {
  std::vector<std::string> names = listing.class_names;
  if (listing.pickle) {
    for (int64_t i = 0; i < cfg.way; ++i) {
      const auto it = class_of_label.find(i);
      const int64_t cls = it == class_of_label.end() ? -1 : it->second;
      names.push_back(cls >= 0 && cls < int64_t(kModelNet40Classes.size()) ? kModelNet40Classes[cls]
                                                                            : "class_" + std::to_string(i));
    }
  }
  if (names.empty()) {
    int64_t n = 0;
    for (const auto* split : {&train, &test})
      for (auto l : split->labels) n = std::max(n, l + 1);
    for (int64_t i = 0; i < n; ++i) names.push_back("class_" + std::to_string(i));
  }
  for (const auto* split : {&train, &test})
    for (size_t i = 0; i < split->labels.size(); ++i)
      if (split->labels[i] >= static_cast<int64_t>(names.size()))
        fail(split->names[i] + ": label " + std::to_string(split->labels[i]) + " out of range: the dataset names " +
             std::to_string(names.size()) + " classes");
  return names;
}

// Parses the listed files and prepares both splits (data.pipeline decides how, see the header).
PointSplits parse_splits(const DataConfig& cfg, const Listing& listing, uint64_t seed) {
  std::map<int64_t, int64_t> class_of_label;  // few-shot: label -> original ModelNet40 class
  const RawSplit train = parse_split(cfg, listing, 0, cfg.train_limit, seed, class_of_label);
  const RawSplit test = parse_split(cfg, listing, 1, cfg.test_limit, seed + 7919, class_of_label);
  PointSplits out;
  out.class_names = class_names_of(cfg, listing, train, test, class_of_label);
  out.train = finish(train, cfg, /*training=*/true, kReductionSeed, "train split of " + cfg.root);
  out.test = finish(test, cfg, /*training=*/false, kReductionSeed + 7919, "test split of " + cfg.root);
  return out;
}

}  // namespace

std::vector<std::string> point_dataset_names() {
  std::vector<std::string> out;
  for (const auto& [name, lister] : listers()) out.push_back(name);
  return out;
}

PointSplits load_point_splits(const DataConfig& cfg, uint64_t seed) {
  if (!fs::is_directory(cfg.root)) fail("data.root: dataset directory " + cfg.root + " does not exist");
  const Listing listing = list_inputs(cfg);
  const std::string cache = cache_path(cfg, listing, seed);
  PointSplits out;
  if (!fs::exists(cache) || !read_cache(cache, out)) {
    std::vector<std::string> notes = out.notes;
    out = parse_splits(cfg, listing, seed);
    out.notes = notes;
    write_cache(cache, out);
  }
  if (cfg.train_limit > 0)
    if (auto note = classes_present_note(out.train.labels, int64_t(out.class_names.size()), cfg.train_limit); !note.empty())
      out.notes.push_back(note);
  if (cfg.train_per_class > 0) {
    const int64_t before = out.train.size();
    const auto keep = per_class_subset(out.train.labels, cfg.train_per_class, seed);
    out.train = {out.train.points.index_select(0, keep), out.train.labels.index_select(0, keep)};
    out.notes.push_back("train subset: " + std::to_string(cfg.train_per_class) + " per class (data.train_per_class, seed " +
                        std::to_string(seed) + "): " + std::to_string(out.train.size()) + " of " + std::to_string(before) +
                        " training samples");
  }
  if (cfg.val_fraction > 0) {
    const auto [vi, ti] = validation_split(out.train.size(), cfg.val_fraction, seed);
    out.val = {out.train.points.index_select(0, vi), out.train.labels.index_select(0, vi)};
    out.train = {out.train.points.index_select(0, ti), out.train.labels.index_select(0, ti)};
    // Evaluated as the test split: the first eval_points of its FPS order.
    if (cfg.pipeline == "resample") out.val.points = fps_prefix(out.val.points, eval_points(cfg));
  }
  return out;
}

PointBatcher::PointBatcher(PointCloudSet set, DataConfig cfg, int64_t batch_size, bool shuffle, uint64_t seed, bool drop_last,
                           bool fps_ordered)
    : IndexedBatchSource(set.size(), batch_size, shuffle, seed, drop_last),
      set_(std::move(set)),
      cfg_(std::move(cfg)),
      fps_ordered_(fps_ordered) {}

void PointBatcher::place(torch::Device device, int64_t rank, int64_t world) {
  IndexedBatchSource::place(device, rank, world);
  const int64_t bytes = set_.points.numel() * int64_t(set_.points.element_size());
  if (device.is_cuda() && bytes <= kResidentBytes) {
    set_.points = set_.points.to(device);
    set_.labels = set_.labels.to(device);
  }
}

std::pair<torch::Tensor, torch::Tensor> PointBatcher::batch(int64_t i, View view) const {
  auto idx = to_device(indices(i), set_.points.device());
  return {view_of_clouds(set_.points.index_select(0, idx), view, cfg_, device(), fps_ordered_),
          to_device(set_.labels.index_select(0, idx), device())};
}

TaskData load_point_task(const DataConfig& cfg, uint64_t seed, Use use) {
  // Training resamples num_points of the first fps_points FPS points every step; frozen features
  // (the SVM probe) read the first num_points of each cloud's FPS order and need no fps_points.
  if (use == Use::Training && cfg.pipeline == "resample") require_fps_points(cfg, "data.pipeline = resample");
  auto splits = load_point_splits(cfg, seed);
  TaskData t;
  t.description = cfg.dataset + (cfg.variant.empty() ? "" : " " + cfg.variant) + " (" + cfg.root + ")";
  t.num_classes = static_cast<int64_t>(splits.class_names.size());
  t.class_names = splits.class_names;
  t.in_chans = splits.train.points.size(2);
  t.num_points = cfg.num_points;
  t.notes = splits.notes;
  const bool training = use == Use::Training;
  t.train = std::make_unique<PointBatcher>(splits.train, cfg, cfg.batch_size, /*shuffle=*/training, seed,
                                           /*drop_last=*/training && cfg.drop_last, /*fps_ordered=*/cfg.pipeline != "resample");
  if (splits.val.size() > 0) t.val = std::make_unique<PointBatcher>(splits.val, cfg, cfg.eval_batch_size, false, seed);
  t.test = std::make_unique<PointBatcher>(splits.test, cfg, cfg.eval_batch_size, false, seed);
  return t;
}

}  // namespace ewa::datasets
