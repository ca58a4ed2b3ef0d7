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

#include "common/error.h"
#include "io/torch_pickle.h"
#include "common/fs.h"
#include "datasets/point_io.h"
#include "kernels/fps/fps.h"

namespace ewa::data {
namespace fs = std::filesystem;

const std::vector<std::string> kScanObjectNNClasses = {"bag",   "bin",   "box",  "cabinet", "chair",
                                                       "desk",  "display", "door", "shelf", "table",
                                                       "bed",   "pillow", "sink", "sofa",   "toilet"};

namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path + ": cannot open file");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// A split before preprocessing: raw clouds of possibly different sizes.
struct RawSplit {
  std::vector<torch::Tensor> clouds;  // [P_i, C]
  std::vector<int64_t> labels;
  std::vector<std::string> names;     // for error messages
};

std::string fingerprint(const std::vector<std::string>& files) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ULL; };
  for (const auto& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) == 0) {
      mix(static_cast<uint64_t>(st.st_size));
      mix(static_cast<uint64_t>(st.st_mtim.tv_sec));
      mix(static_cast<uint64_t>(st.st_mtim.tv_nsec));
    }
    for (char c : f) mix(static_cast<unsigned char>(c));
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string cache_dir_for(const DataConfig& cfg) {
  if (!cfg.cache_dir.empty()) return cfg.cache_dir;
  const std::string local = (fs::path(cfg.root) / ".ewa_cache").string();
  std::error_code ec;
  fs::create_directories(local, ec);
  if (!ec && ::access(local.c_str(), W_OK) == 0) return local;
  const char* home = std::getenv("HOME");
  return (fs::path(home ? home : "/tmp") / ".cache" / "ewa").string();
}

// Everything a dataset consists of, found without parsing any cloud: the cache key is computed
// from it and the folder structure is validated even when the cache answers.
struct Listing {
  std::vector<std::string> class_names;
  std::vector<std::string> files[2];   // per split (0 train, 1 test): .h5 files or point files
  std::vector<int64_t> labels[2];      // point-file datasets: the label of each file
  std::vector<std::string> extra;      // list files, also fingerprinted
  bool h5 = false;
};

std::vector<std::string> h5_list(const DataConfig& cfg, const std::string& split) {
  const std::string list = (fs::path(cfg.root) / (split + "_files.txt")).string();
  std::vector<std::string> paths;
  for (const auto& entry : read_lines(list)) {
    // Official lists carry a prefix such as data/modelnet40_ply_hdf5_2048/: files sit beside the list.
    const auto p = (fs::path(cfg.root) / fs::path(entry).filename()).string();
    if (!fs::exists(p)) fail(list + ": lists " + entry + ", but " + p + " does not exist");
    paths.push_back(p);
  }
  if (paths.empty()) fail(list + ": lists no .h5 files");
  return paths;
}

Listing list_inputs(const DataConfig& cfg) {
  Listing l;
  const char* splits[2] = {"train", "test"};
  const int64_t limits[2] = {cfg.train_limit, cfg.test_limit};
  if (cfg.dataset == "modelnet_h5") {
    l.h5 = true;
    for (int sp = 0; sp < 2; ++sp) {
      l.files[sp] = h5_list(cfg, splits[sp]);
      l.extra.push_back((fs::path(cfg.root) / (std::string(splits[sp]) + "_files.txt")).string());
    }
    const auto names = fs::path(cfg.root) / "shape_names.txt";
    if (fs::exists(names)) l.class_names = read_lines(names.string());
  } else if (cfg.dataset == "scanobjectnn") {
    l.h5 = true;
    const std::string dir = cfg.variant == "obj_only" ? "main_split_nobg" : "main_split";
    const std::string suffix = cfg.variant == "pb_t50_rs" ? "_augmentedrot_scale75" : "";
    l.files[0] = {(fs::path(cfg.root) / dir / ("training_objectdataset" + suffix + ".h5")).string()};
    l.files[1] = {(fs::path(cfg.root) / dir / ("test_objectdataset" + suffix + ".h5")).string()};
    l.class_names = kScanObjectNNClasses;
  } else if (cfg.dataset == "modelnet40_resampled") {
    std::string prefix = "modelnet40";
    if (!fs::exists(fs::path(cfg.root) / "modelnet40_shape_names.txt") &&
        fs::exists(fs::path(cfg.root) / "modelnet10_shape_names.txt"))
      prefix = "modelnet10";
    const std::string names = (fs::path(cfg.root) / (prefix + "_shape_names.txt")).string();
    l.class_names = read_lines(names);
    l.extra.push_back(names);
    std::map<std::string, int64_t> index;
    for (size_t i = 0; i < l.class_names.size(); ++i) index[l.class_names[i]] = static_cast<int64_t>(i);
    for (int sp = 0; sp < 2; ++sp) {
      const std::string list = (fs::path(cfg.root) / (prefix + "_" + splits[sp] + ".txt")).string();
      l.extra.push_back(list);
      for (const auto& name : read_lines(list)) {
        if (limits[sp] > 0 && static_cast<int64_t>(l.files[sp].size()) >= limits[sp]) break;
        const auto cut = name.rfind('_');
        const std::string cls = cut == std::string::npos ? name : name.substr(0, cut);
        auto it = index.find(cls);
        if (it == index.end())
          fail(list + ": entry '" + name + "' names class '" + cls + "', which is not in " + prefix + "_shape_names.txt");
        l.files[sp].push_back((fs::path(cfg.root) / cls / (name + ".txt")).string());
        l.labels[sp].push_back(it->second);
      }
    }
  } else if (cfg.dataset == "modelnet_folder") {
    for (const auto& e : fs::directory_iterator(cfg.root))
      if (e.is_directory() && e.path().filename().string()[0] != '.') l.class_names.push_back(e.path().filename().string());
    std::sort(l.class_names.begin(), l.class_names.end());
    if (l.class_names.empty()) fail("data.root: " + cfg.root + " has no class folders (expected <root>/<class>/{train,test}/)");
    for (int sp = 0; sp < 2; ++sp) {
      for (size_t c = 0; c < l.class_names.size(); ++c) {
        const fs::path dir = fs::path(cfg.root) / l.class_names[c] / splits[sp];
        if (!fs::is_directory(dir))
          fail(dir.string() + ": missing: class folder '" + l.class_names[c] + "' has no " + splits[sp] + "/ folder");
        std::vector<std::string> paths;
        for (const auto& e : fs::directory_iterator(dir))
          if (e.is_regular_file()) paths.push_back(e.path().string());
        std::sort(paths.begin(), paths.end());
        for (const auto& p : paths) {
          l.files[sp].push_back(p);
          l.labels[sp].push_back(static_cast<int64_t>(c));
        }
      }
      if (limits[sp] > 0 && static_cast<int64_t>(l.files[sp].size()) > limits[sp]) {
        l.files[sp].resize(limits[sp]);
        l.labels[sp].resize(limits[sp]);
      }
    }
  } else if (cfg.dataset == "shapenet55") {
    // Point-MAE's layout: <root>/ShapeNet-55/{train,test}.txt list <taxonomy>-<model>.npy files
    // in <root>/shapenet_pc/. The label is the taxonomy (synset) id, classes sorted.
    std::vector<std::string> entries[2];
    std::set<std::string> taxonomies;
    for (int sp = 0; sp < 2; ++sp) {
      const std::string list = (fs::path(cfg.root) / "ShapeNet-55" / (std::string(splits[sp]) + ".txt")).string();
      l.extra.push_back(list);
      for (const auto& entry : read_lines(list)) {
        if (limits[sp] > 0 && static_cast<int64_t>(entries[sp].size()) >= limits[sp]) break;
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
        if (!fs::exists(file))
          fail(l.extra[sp] + ": lists " + entry + ", but " + file + " does not exist");
        l.files[sp].push_back(file);
        l.labels[sp].push_back(std::distance(taxonomies.begin(), taxonomies.find(entry.substr(0, entry.find('-')))));
      }
    }
  } else {
    fail("data.dataset: '" + cfg.dataset + "' is not a point-cloud dataset");
  }
  return l;
}

// Parses one split of the listing into raw clouds.
RawSplit parse_split(const DataConfig& cfg, const Listing& l, int sp, int64_t limit, uint64_t seed) {
  RawSplit raw;
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
      auto cloud = read_point_file(raw.names[i], mesh_points, seed + static_cast<uint64_t>(i));
      if (cloud.size(1) < channels)
        fail(raw.names[i] + ": data.use_normals needs 6 columns (x,y,z,nx,ny,nz), found " + std::to_string(cloud.size(1)));
      raw.clouds[i] = cloud.narrow(1, 0, channels);
    }
  });
  return raw;
}

PointCloudSet finish(const RawSplit& raw, int64_t keep, const std::string& what) {
  if (raw.clouds.empty()) fail(what + ": the split is empty");
  std::vector<torch::Tensor> prepared(raw.clouds.size());
  at::parallel_for(0, static_cast<int64_t>(raw.clouds.size()), 8, [&](int64_t a, int64_t b) {
    at::NoGradGuard guard;
    for (int64_t i = a; i < b; ++i) prepared[i] = prepare_cloud(raw.clouds[i], keep, raw.names[i]);
  });
  return {torch::stack(prepared), torch::tensor(raw.labels, torch::kLong)};
}

}  // namespace

int64_t mesh_sample_points(const DataConfig& cfg) { return std::max<int64_t>(cfg.num_points * 2, 2048); }

torch::Tensor normalize_unit_sphere(const torch::Tensor& cloud, const std::string& what) {
  if (cloud.dim() != 2 || cloud.size(0) == 0 || cloud.size(1) < 3) fail(what + ": empty point cloud (no points)");
  if (!torch::isfinite(cloud).all().item<bool>()) fail(what + ": contains NaN or infinite coordinates");
  auto out = cloud.to(torch::kFloat).clone();
  auto xyz = out.narrow(1, 0, 3);
  xyz.sub_(xyz.mean(0, true));
  const double radius = xyz.norm(2, 1).max().item<double>();
  if (!(radius > 0)) fail(what + ": degenerate point cloud (all points coincide)");
  xyz.div_(radius);
  return out;
}

torch::Tensor prepare_cloud(const torch::Tensor& cloud, int64_t keep, const std::string& what) {
  auto c = normalize_unit_sphere(cloud, what);
  if (c.size(0) < keep)
    fail(what + ": has " + std::to_string(c.size(0)) + " points, fewer than data.num_points = " + std::to_string(keep));
  auto order = kernels::farthest_point_sample(c.narrow(1, 0, 3).unsqueeze(0).contiguous(), keep)[0];
  return c.index_select(0, order);
}

PointSplits load_point_splits(const DataConfig& cfg, uint64_t seed) {
  if (!fs::is_directory(cfg.root)) fail("data.root: dataset directory " + cfg.root + " does not exist");
  const int64_t channels = cfg.use_normals ? 6 : 3;
  if (cfg.use_normals && cfg.dataset != "modelnet40_resampled")
    fail("data.use_normals: only modelnet40_resampled files carry normals, dataset is " + cfg.dataset);
  PointSplits out;
  const Listing listing = list_inputs(cfg);
  const std::string key = cfg.dataset + (cfg.variant.empty() ? "" : "_" + cfg.variant) + "_" +
                          std::to_string(cfg.num_points) + "pts_c" + std::to_string(channels) + "_tr" +
                          std::to_string(cfg.train_limit) + "_te" + std::to_string(cfg.test_limit);
  std::vector<std::string> inputs = listing.extra;
  for (int sp = 0; sp < 2; ++sp) {
    inputs.insert(inputs.end(), listing.files[sp].begin(), listing.files[sp].end());
    for (auto label : listing.labels[sp]) inputs.push_back(std::to_string(label));
  }
  const std::string cache = (fs::path(cache_dir_for(cfg)) / (key + "_" + fingerprint(inputs) + ".pt")).string();

  bool cached = false;
  if (fs::exists(cache)) {
    try {
      // Our own bounded unpickler, as for checkpoints (a cache file may be cut off or corrupt).
      const io::PyRef root = io::read_torch_archive(cache);
      auto tensor = [&](const char* key) {
        const io::PyRef v = root->get(key);
        if (!v || v->kind != io::PyValue::Kind::Tensor) throw std::runtime_error(std::string("no tensor ") + key);
        return v->tensor;
      };
      out.train = {tensor("train_points"), tensor("train_labels")};
      out.test = {tensor("test_points"), tensor("test_labels")};
      const io::PyRef names = root->get("class_names");
      if (!names || names->kind != io::PyValue::Kind::List) throw std::runtime_error("no class_names");
      for (const auto& n : names->items) {
        if (n->kind != io::PyValue::Kind::Str) throw std::runtime_error("class_names holds a non-string");
        out.class_names.push_back(n->s);
      }
      cached = true;
    } catch (const std::exception&) {
      out = PointSplits{};  // unreadable cache: parse again and overwrite it
    }
  }
  if (!cached) {
    RawSplit train = parse_split(cfg, listing, 0, cfg.train_limit, seed);
    RawSplit test = parse_split(cfg, listing, 1, cfg.test_limit, seed + 7919);
    out.class_names = listing.class_names;
    if (out.class_names.empty()) {  // h5 without shape_names.txt
      int64_t n = 0;
      for (auto l : train.labels) n = std::max(n, l + 1);
      for (auto l : test.labels) n = std::max(n, l + 1);
      for (int64_t i = 0; i < n; ++i) out.class_names.push_back("class_" + std::to_string(i));
    }
    for (const auto* split : {&train, &test})
      for (size_t i = 0; i < split->labels.size(); ++i)
        if (split->labels[i] >= static_cast<int64_t>(out.class_names.size()))
          fail(split->names[i] + ": label " + std::to_string(split->labels[i]) + " out of range: the dataset names " +
               std::to_string(out.class_names.size()) + " classes");
    out.train = finish(train, cfg.num_points, "train split of " + cfg.root);
    out.test = finish(test, cfg.num_points, "test split of " + cfg.root);
    // Cache for the next run; a cache that cannot be written only costs time.
    try {
      c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
      dict.insert(std::string("train_points"), out.train.points);
      dict.insert(std::string("train_labels"), out.train.labels);
      dict.insert(std::string("test_points"), out.test.points);
      dict.insert(std::string("test_labels"), out.test.labels);
      c10::List<std::string> names;
      for (const auto& n : out.class_names) names.push_back(n);
      dict.insert(std::string("class_names"), names);
      const auto bytes = torch::pickle_save(at::IValue(dict));
      fs::create_directories(fs::path(cache).parent_path());
      write_bytes_atomically(cache, bytes.data(), bytes.size());
    } catch (const std::exception&) {
    }
  }
  if (cfg.val_fraction > 0) {
    const int64_t n = out.train.size();
    const int64_t n_val = std::max<int64_t>(1, static_cast<int64_t>(n * cfg.val_fraction));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x5eedULL);
    auto perm = torch::randperm(n, gen, torch::kLong);
    auto vi = std::get<0>(perm.narrow(0, 0, n_val).sort()), ti = std::get<0>(perm.narrow(0, n_val, n - n_val).sort());
    out.val = {out.train.points.index_select(0, vi), out.train.labels.index_select(0, vi)};
    out.train = {out.train.points.index_select(0, ti), out.train.labels.index_select(0, ti)};
  }
  return out;
}

torch::Tensor augment_points(const torch::Tensor& points, const DataConfig& cfg) {
  const int64_t B = points.size(0);
  auto out = points.clone();
  auto xyz = out.narrow(2, 0, 3);
  if (cfg.rotate_up) {
    auto theta = torch::rand({B}) * (2 * M_PI);
    auto c = torch::cos(theta), s = torch::sin(theta);
    auto z = torch::zeros({B}), o = torch::ones({B});
    // rotation about y: x' = c x + s z, z' = -s x + c z
    auto rot = torch::stack({c, z, -s, z, o, z, s, z, c}, 1).view({B, 3, 3});
    for (int64_t ch = 0; ch + 3 <= out.size(2); ch += 3) {
      auto part = out.narrow(2, ch, 3);
      part.copy_(torch::bmm(part, rot));
    }
  }
  auto scale = torch::rand({B, 1, 3}) * (cfg.scale_high - cfg.scale_low) + cfg.scale_low;
  auto shift = (torch::rand({B, 1, 3}) * 2 - 1) * cfg.translate;
  xyz.mul_(scale).add_(shift);
  if (cfg.jitter > 0) xyz.add_((torch::randn(xyz.sizes()) * cfg.jitter).clamp(-5 * cfg.jitter, 5 * cfg.jitter));
  return out;
}

PointBatcher::PointBatcher(PointCloudSet set, DataConfig cfg, int64_t batch_size, bool shuffle, uint64_t seed)
    : IndexedBatchSource(set.size(), batch_size, shuffle, seed), set_(std::move(set)), cfg_(std::move(cfg)) {}

std::pair<torch::Tensor, torch::Tensor> PointBatcher::batch(int64_t i, bool augment) const {
  auto idx = indices(i);
  auto x = set_.points.index_select(0, idx);
  if (augment) x = augment_points(x, cfg_);
  return {x, set_.labels.index_select(0, idx)};
}

TaskData load_point_task(const DataConfig& cfg, uint64_t seed) {
  auto splits = load_point_splits(cfg, seed);
  TaskData t;
  t.description = cfg.dataset + (cfg.variant.empty() ? "" : " " + cfg.variant) + " (" + cfg.root + ")";
  t.num_classes = static_cast<int64_t>(splits.class_names.size());
  t.class_names = splits.class_names;
  t.in_chans = splits.train.points.size(2);
  t.num_points = splits.train.points.size(1);
  t.train = std::make_unique<PointBatcher>(splits.train, cfg, cfg.batch_size, true, seed);
  if (splits.val.size() > 0) t.val = std::make_unique<PointBatcher>(splits.val, cfg, cfg.eval_batch_size, false, seed);
  t.test = std::make_unique<PointBatcher>(splits.test, cfg, cfg.eval_batch_size, false, seed);
  return t;
}

}  // namespace ewa::data
