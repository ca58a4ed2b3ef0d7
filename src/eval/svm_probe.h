// The linear SVM probe of a pretrained point encoder (docs/protocols.md; Point-BERT's protocol,
// PROTOCOLS.md 6): frozen features of every training and test cloud (single pass: the first
// data.num_points of each cloud's FPS order, no augmentation), a linear SVM fitted on the
// training features by liblinear, accuracy on the test features. The SVM is what
// scikit-learn's LinearSVC() trains: liblinear's L2-regularised L2-loss SVC solved in the dual,
// one-vs-rest, C = 1, tolerance 1e-4, and a bias feature of value 1 (regularised like the weights).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "config/config.h"
#include "data/batch_source.h"
#include "models/point_transformer.h"
#include "train/loop.h"

namespace ewa::eval {

bool built_with_liblinear();

// Feature kinds (--feature): "cls_max" = [class token, max over group tokens] of the final norm
// (2D, what the classification head reads); "max_mean" = [max, mean] over the group tokens (2D;
// for encoders pretrained without a class token, as Point-MAE's); "pb_cls_head" = Point-BERT's
// feature, its MoCo projection cls_head (Linear-GELU-Linear, 512-d) of the class token, from the
// transformer_q.cls_head weights of a Point-BERT pretraining checkpoint.
struct SvmOptions {
  double c = 1.0;
  double tolerance = 1e-4;
  std::string feature;  // empty: the config's protocol feature (pb_cls_head for model.variant point_bert, else cls_max)
  int64_t batch_size = 64;
  std::string write_features;  // non-empty: also write <prefix>_{train,test}.txt in liblinear's text format
};

// A fitted linear SVM (liblinear's model).
class LinearSvm {
 public:
  LinearSvm();
  ~LinearSvm();
  LinearSvm(LinearSvm&&) noexcept;
  LinearSvm& operator=(LinearSvm&&) noexcept;
  // features float [N, D], labels int64 [N] (at least 2 classes).
  static LinearSvm fit(const torch::Tensor& features, const torch::Tensor& labels, double c, double tolerance);
  // int64 [N]: the predicted label of every row of features [N, D].
  torch::Tensor predict(const torch::Tensor& features) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The config with which the probe reads a labelled point set: `cfg` with its data section replaced
// by the schema's defaults and Point-BERT's SVM protocol (PB:tools/runner_BERT_pretrain.py
// validate(): misc.fps(points, npoints) of the 8192-point ModelNet40 clouds): `dataset` at `root`,
// the official pipeline ("resample": every cloud reduced to 8192 points by FPS where it has more,
// the .dat preprocessing, then the first `num_points` of its FPS order). The data sections of
// configs/svm_modelnet40_*.json, which `ewa svm` reads, are exactly this; the stage-2 SVM monitor
// (pretrain.svm_dataset) reads its clouds through it with num_points = the stage's data.num_points
// (upstream's npoints).
Config svm_data_config(const Config& cfg, const std::string& dataset, const std::string& root, int64_t num_points);

// Writes features [N, D] and labels [N] as liblinear / libsvm text ("label 1:v1 2:v2 ...").
void write_liblinear_text(const std::string& path, const torch::Tensor& features, const torch::Tensor& labels);

// `features(points)` [B, D] and the labels [N] of every batch of `source` (View::Plain), no
// gradients, on the CPU: the batch loop of every frozen-feature probe.
std::pair<torch::Tensor, torch::Tensor> source_features(data::BatchSource& source, torch::Device device,
                                                        const std::function<torch::Tensor(const torch::Tensor&)>& features);

// Features [N, D] and labels [N] of every batch of `source` (View::Plain), no gradients, eval
// mode. `projection` (pb_cls_head) holds the 4 cls_head tensors (w0, b0, w2, b2).
std::pair<torch::Tensor, torch::Tensor> encoder_features(models::PointTransformerImpl& model, data::BatchSource& source,
                                                         const std::string& feature, const std::vector<torch::Tensor>& projection,
                                                         torch::Device device);

struct SvmResult {
  double accuracy = 0;
  int64_t train_count = 0, test_count = 0, dims = 0;
  std::string label;  // how the figure was made, for every report
};

// The whole probe: the encoder from `weights_path` (an ewa checkpoint, ewa pretraining, or an
// official Point-MAE / Point-BERT file), the dataset of cfg.data, the SVM. Progress through `report`.
SvmResult svm_probe(Config cfg, const std::string& weights_path, const SvmOptions& options, const data::TaskLoader& load_data,
                    const train::Reporter& report);

}  // namespace ewa::eval
