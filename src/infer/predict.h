// Predictions on users' own point files (`ewa predict`): every file goes through the one point
// reader (io/point_io.h: read_point_file), non-finite points are dropped and counted, the
// cloud is prepared as the evaluation splits are (data::eval_cloud: normalised and FPS-ordered
// under the model's data.pipeline), the classifier runs an evaluation protocol
// (eval/protocols.h: single, tta or the official vote) and its top-k classes come back with
// their probabilities (softmax of the protocol's averaged logits). A file that cannot be used
// gets its own error; the others are still predicted.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "models/classifier.h"
#include "eval/protocols.h"

namespace ewa::infer {

struct PredictOptions {
  int64_t top_k = 5;
  eval::EvalProtocol protocol;    // single, tta (protocol.passes) or vote (protocol.views; repeats do not apply)
  int64_t batch_size = 32;  // clouds per forward pass
  // Clouds with fewer usable points than data.num_points (but at least model.num_groups): true =
  // filled up by repeating randomly chosen points (seeded by the file's point count), false = refused.
  bool upsample = false;
};

struct FilePrediction {
  std::string path;
  std::string error;                            // non-empty: the file could not be predicted
  int64_t points_read = 0, dropped_nonfinite = 0;
  int64_t upsampled_from = 0;                   // > 0: the usable point count before upsampling
  std::vector<std::pair<int64_t, double>> top;  // (class, probability), most probable first
};

// The stored form [keep, model.in_chans] of one point file, as predict uses it (non-finite points
// dropped, upsampled or refused, then data::eval_cloud: the first `keep` points of its FPS order;
// keep = data.num_points by default); fills the counts of `info`.
torch::Tensor load_point_input(const std::string& path, const Config& cfg, bool upsample, FilePrediction& info,
                               int64_t keep = 0);

// Reads `files` with load_point_input and hands the readable ones to `on_batch` in batches of
// up to `batch_size`: clouds [B, keep, C] and the files' indices. Returns one record per file with
// its counts, or its error (naming the file, also for a reader library's own exceptions).
std::vector<FilePrediction> for_each_point_batch(
    const std::vector<std::string>& files, const Config& cfg, bool upsample, int64_t batch_size,
    const std::function<void(const torch::Tensor& clouds, const std::vector<size_t>& indices)>& on_batch,
    int64_t keep = 0);

// Files given and point files inside given folders (recursively, sorted; by extension
// .txt .xyz .pts .csv .npy .off .obj .pcd .ply). A path that does not exist is kept, so it reports its error.
std::vector<std::string> expand_point_inputs(const std::vector<std::string>& files_or_folders);

// Predicts every file with `model` (a point classifier built from `cfg`; eval mode is set here).
std::vector<FilePrediction> predict_point_files(models::ClassifierImpl& model, const Config& cfg,
                                                const std::vector<std::string>& files, const PredictOptions& options,
                                                torch::Device device);

// ---- images ----

// Image files given and images inside given folders (recursively, sorted; .png .jpg .jpeg .bmp in
// any case: io::has_image_extension). A path that does not exist is kept, so it reports its error.
std::vector<std::string> expand_image_inputs(const std::vector<std::string>& files_or_folders);

// The model's input for one image file, float [3, S, S]: decoded as the folder datasets decode it
// (io::read_image), then the evaluation transform of the model's image folder (data.image_size,
// data.crop_pct, data.interpolation: data::evaluation_crop) and ImageNet's mean and std: what the
// test split of that folder feeds the model.
torch::Tensor load_image_input(const std::string& path, const Config& cfg);

// Predicts every image file with `model` (an image classifier trained on an image folder or
// Tiny-ImageNet: `cfg.data.dataset` says; others are refused, their images being stored at a fixed
// size and normalised by their dataset), one pass per image (the single protocol).
std::vector<FilePrediction> predict_image_files(models::ClassifierImpl& model, const Config& cfg,
                                                const std::vector<std::string>& files, const PredictOptions& options,
                                                torch::Device device);

}  // namespace ewa::infer
