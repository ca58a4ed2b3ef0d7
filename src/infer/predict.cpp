#include "infer/predict.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <set>

#include "common/error.h"
#include "common/fs.h"
#include "config/datasets.h"
#include "data/image_ops.h"
#include "data/point_sampling.h"
#include "io/image_file.h"
#include "io/point_io.h"

namespace ewa::infer {
using eval::EvalProtocol;
using eval::averaged_logits;

namespace fs = std::filesystem;

namespace {
const std::set<std::string> kPointExtensions = {".txt", ".xyz", ".pts", ".csv", ".npy", ".off", ".obj", ".pcd", ".ply"};

// The files given, and the `wanted` files inside given folders (recursively, sorted); a path that
// does not exist is kept, so it reports its error.
std::vector<std::string> expand_inputs(const std::vector<std::string>& files_or_folders,
                                       const std::function<bool(const fs::path&)>& wanted) {
  std::vector<std::string> out;
  for (const auto& f : files_or_folders) {
    if (!fs::is_directory(f)) {
      out.push_back(f);
      continue;
    }
    std::vector<std::string> found;
    for (const auto& e : fs::recursive_directory_iterator(f))
      if (e.is_regular_file() && wanted(e.path())) found.push_back(e.path().string());
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}
}  // namespace

torch::Tensor load_point_input(const std::string& path, const Config& cfg, bool upsample, FilePrediction& p, int64_t keep) {
  if (keep <= 0) keep = cfg.data.num_points;
  const int64_t channels = cfg.model.in_chans;
  auto cloud = io::read_point_file(path, data::mesh_sample_points(cfg.data), 0);
  p.points_read = cloud.size(0);
  if (cloud.size(1) < channels)
    fail(path + ": the model takes " + std::to_string(channels) + " channels per point (xyz" +
         (channels == 6 ? " + normals" : "") + "), the file has " + std::to_string(cloud.size(1)));
  cloud = cloud.narrow(1, 0, channels);
  auto finite = torch::isfinite(cloud).all(1);
  p.dropped_nonfinite = cloud.size(0) - finite.sum().item<int64_t>();
  cloud = cloud.index_select(0, finite.nonzero().squeeze(1));
  if (cloud.size(0) == 0) fail(path + ": no finite points (" + std::to_string(p.points_read) + " read)");
  const int64_t usable = cloud.size(0);
  if (usable < keep) {
    if (!upsample || usable < cfg.model.num_groups)
      fail(path + ": " + std::to_string(usable) + " usable points, the model needs " + std::to_string(keep) +
           (keep == cfg.data.num_points ? " (data.num_points)" : " (data.fps_points, for the vote)") +
           (upsample ? ", and upsampling needs at least model.num_groups = " + std::to_string(cfg.model.num_groups)
                     : "; --upsample fills it up by repeating points"));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(usable));
    auto extra = torch::randint(usable, {keep - usable}, gen, torch::kLong);
    cloud = torch::cat({cloud, cloud.index_select(0, extra)}, 0);
    p.upsampled_from = usable;
  }
  return data::eval_cloud(cloud, cfg.data, keep, 0, path);
}

std::vector<std::string> expand_point_inputs(const std::vector<std::string>& files_or_folders) {
  return expand_inputs(files_or_folders, [](const fs::path& p) { return kPointExtensions.count(lower_extension(p.string())) > 0; });
}

std::vector<FilePrediction> for_each_point_batch(
    const std::vector<std::string>& files, const Config& cfg, bool upsample, int64_t batch_size,
    const std::function<void(const torch::Tensor& clouds, const std::vector<size_t>& indices)>& on_batch, int64_t keep) {
  std::vector<FilePrediction> out(files.size());
  std::vector<size_t> ready;
  std::vector<torch::Tensor> clouds;
  auto flush = [&] {
    if (clouds.empty()) return;
    on_batch(torch::stack(clouds), ready);
    ready.clear();
    clouds.clear();
  };
  for (size_t i = 0; i < files.size(); ++i) {
    out[i].path = files[i];
    try {
      clouds.push_back(load_point_input(files[i], cfg, upsample, out[i], keep));
      ready.push_back(i);
    } catch (const Error& e) {
      out[i].error = e.what();
    } catch (const std::exception& e) {  // a reader library's own exception
      out[i].error = files[i] + ": " + e.what();
    }
    if (static_cast<int64_t>(clouds.size()) >= batch_size) flush();
  }
  flush();
  return out;
}

std::vector<FilePrediction> predict_point_files(models::ClassifierImpl& model, const Config& cfg,
                                                const std::vector<std::string>& files, const PredictOptions& o,
                                                torch::Device device) {
  torch::NoGradGuard guard;
  model.eval();
  std::vector<std::vector<std::pair<int64_t, double>>> tops(files.size());
  const bool vote = o.protocol.kind == EvalProtocol::Kind::Vote;
  const int64_t keep = vote ? data::eval_points(cfg.data) : cfg.data.num_points;
  if (vote) data::require_fps_points(cfg.data, "predict --protocol vote");
  auto out = for_each_point_batch(files, cfg, o.upsample, o.batch_size, [&](const torch::Tensor& x, const std::vector<size_t>& idx) {
    auto logits = averaged_logits(model, o.protocol.passes_per_batch(), [&](int64_t pass) {
      return data::view_of_clouds(x, o.protocol.view(pass), cfg.data, device);
    });
    auto prob = torch::softmax(logits, 1).cpu();
    const int64_t k = std::min<int64_t>(o.top_k, prob.size(1));
    auto [values, indices] = prob.topk(k, 1);
    for (size_t i = 0; i < idx.size(); ++i)
      for (int64_t j = 0; j < k; ++j) tops[idx[i]].emplace_back(indices[i][j].item<int64_t>(), values[i][j].item<double>());
  }, keep);
  for (size_t i = 0; i < out.size(); ++i) out[i].top = std::move(tops[i]);
  return out;
}

std::vector<std::string> expand_image_inputs(const std::vector<std::string>& files_or_folders) {
  return expand_inputs(files_or_folders, [](const fs::path& p) { return io::has_image_extension(p.filename().string()); });
}

torch::Tensor load_image_input(const std::string& path, const Config& cfg) {
  const auto decoded = io::read_image(path);
  const auto image = torch::from_blob(const_cast<uint8_t*>(decoded.pixels.data()), {decoded.height, decoded.width, 3}, torch::kUInt8);
  const auto filter = cfg.data.interpolation == "bilinear" ? data::Resample::Bilinear : data::Resample::Bicubic;
  const auto crop = data::evaluation_crop(image, cfg.data.image_size, cfg.data.crop_pct, filter);
  return data::to_normalized_chw(crop, data::imagenet_mean(), data::imagenet_std());
}

std::vector<FilePrediction> predict_image_files(models::ClassifierImpl& model, const Config& cfg,
                                                const std::vector<std::string>& files, const PredictOptions& o,
                                                torch::Device device) {
  if (!dataset_info(cfg.data.dataset).folder)
    fail("predict: this model was trained on " + cfg.data.dataset + ", whose images are stored at one size and normalised "
         "by that dataset; image files are predicted by models trained on an image folder (data.dataset image_folder or "
         "tiny_imagenet), whose evaluation transform they go through");
  if (o.protocol.kind != EvalProtocol::Kind::Single)
    fail("--protocol: image files are predicted in one pass (single), as timm and DeiT evaluate; got " + o.protocol.label());
  torch::NoGradGuard guard;
  model.eval();
  std::vector<FilePrediction> out(files.size());
  std::vector<size_t> ready;
  std::vector<torch::Tensor> images;
  auto flush = [&] {
    if (images.empty()) return;
    const auto prob = torch::softmax(model.forward(torch::stack(images).to(device)), 1).cpu();
    const int64_t k = std::min<int64_t>(o.top_k, prob.size(1));
    auto [values, indices] = prob.topk(k, 1);
    for (size_t i = 0; i < ready.size(); ++i)
      for (int64_t j = 0; j < k; ++j) out[ready[i]].top.emplace_back(indices[i][j].item<int64_t>(), values[i][j].item<double>());
    images.clear();
    ready.clear();
  };
  for (size_t i = 0; i < files.size(); ++i) {
    out[i].path = files[i];
    try {
      images.push_back(load_image_input(files[i], cfg));
      ready.push_back(i);
    } catch (const Error& e) {
      out[i].error = e.what();
    }
    if (static_cast<int64_t>(images.size()) >= o.batch_size) flush();
  }
  flush();
  return out;
}

}  // namespace ewa::infer
