#include "eval/svm_probe.h"

#include <fstream>

#include "common/error.h"
#include "common/fs.h"
#include "config/model_kinds.h"
#include "data/batch_source.h"
#include "io/pretrained.h"
#include "io/state_dict.h"
#include "train/setup.h"

#ifdef EWA_HAS_LIBLINEAR
#include <linear.h>
#endif

namespace ewa::eval {
using train::Reporter;
using train::select_device;

bool built_with_liblinear() {
#ifdef EWA_HAS_LIBLINEAR
  return true;
#else
  return false;
#endif
}

#ifdef EWA_HAS_LIBLINEAR
namespace {
void quiet(const char*) {}

// liblinear's rows: 1-based dense feature nodes, then the bias node (index D + 1, value 1) and
// the -1 terminator, as its train / predict tools build them with -B 1.
struct Rows {
  std::vector<feature_node> nodes;
  std::vector<feature_node*> rows;
  Rows(const torch::Tensor& features, bool bias) {
    auto f = features.to(torch::kDouble).contiguous();
    const int64_t n = f.size(0), d = f.size(1), width = d + (bias ? 2 : 1);
    nodes.resize(static_cast<size_t>(n * width));
    const double* v = f.data_ptr<double>();
    for (int64_t i = 0; i < n; ++i) {
      feature_node* row = &nodes[static_cast<size_t>(i * width)];
      for (int64_t j = 0; j < d; ++j) row[j] = {static_cast<int>(j + 1), v[i * d + j]};
      if (bias) row[d] = {static_cast<int>(d + 1), 1.0};
      row[width - 1] = {-1, 0.0};
      rows.push_back(row);
    }
  }
};
}  // namespace

struct LinearSvm::Impl {
  model* m = nullptr;
  ~Impl() {
    if (m) free_and_destroy_model(&m);
  }
};
#else
struct LinearSvm::Impl {};
#endif

LinearSvm::LinearSvm() = default;
LinearSvm::~LinearSvm() = default;
LinearSvm::LinearSvm(LinearSvm&&) noexcept = default;
LinearSvm& LinearSvm::operator=(LinearSvm&&) noexcept = default;

LinearSvm LinearSvm::fit(const torch::Tensor& features, const torch::Tensor& labels, double c, double tolerance) {
#ifdef EWA_HAS_LIBLINEAR
  TORCH_CHECK(features.dim() == 2 && labels.dim() == 1 && features.size(0) == labels.size(0), "LinearSvm::fit: shapes");
  Rows rows(features, true);
  auto y = labels.to(torch::kDouble).contiguous();
  std::vector<double> targets(y.data_ptr<double>(), y.data_ptr<double>() + y.numel());
  problem prob{};
  prob.l = static_cast<int>(features.size(0));
  prob.n = static_cast<int>(features.size(1) + 1);
  prob.y = targets.data();
  prob.x = rows.rows.data();
  prob.bias = 1.0;
  parameter param{};
  param.solver_type = L2R_L2LOSS_SVC_DUAL;
  param.C = c;
  param.eps = tolerance;
  param.p = 0.1;
  if (const char* why = check_parameter(&prob, &param)) fail(std::string("SVM: liblinear refuses the problem: ") + why);
  set_print_string_function(&quiet);
  LinearSvm svm;
  svm.impl_ = std::make_unique<Impl>();
  svm.impl_->m = ::train(&prob, &param);
  return svm;
#else
  fail("the SVM probe needs liblinear: ewa was built without it (install Debian's liblinear-dev and rebuild)");
#endif
}

torch::Tensor LinearSvm::predict(const torch::Tensor& features) const {
#ifdef EWA_HAS_LIBLINEAR
  Rows rows(features, true);
  auto out = torch::empty({features.size(0)}, torch::kLong);
  for (int64_t i = 0; i < features.size(0); ++i) out[i] = static_cast<int64_t>(::predict(impl_->m, rows.rows[i]));
  return out;
#else
  fail("the SVM probe needs liblinear: ewa was built without it (install Debian's liblinear-dev and rebuild)");
#endif
}

Config svm_data_config(const Config& cfg, const std::string& dataset, const std::string& root, int64_t num_points) {
  nlohmann::json j = cfg.json;
  j["data"] = {{"dataset", dataset}, {"root", root}, {"pipeline", "resample"}, {"num_points", num_points}, {"source_points", 8192}};
  return parse_config(resolve_config(j, "the SVM probe's data"), "the SVM probe's data");
}

void write_liblinear_text(const std::string& path, const torch::Tensor& features, const torch::Tensor& labels) {
  auto f = features.to(torch::kDouble).contiguous();
  auto y = labels.to(torch::kLong).contiguous();
  std::string text;
  char cell[64];
  for (int64_t i = 0; i < f.size(0); ++i) {
    text += std::to_string(y[i].item<int64_t>());
    const double* row = f.data_ptr<double>() + i * f.size(1);
    for (int64_t j = 0; j < f.size(1); ++j) {
      std::snprintf(cell, sizeof cell, " %lld:%.17g", (long long)(j + 1), row[j]);
      text += cell;
    }
    text += "\n";
  }
  write_text_atomically(path, text);
}

std::pair<torch::Tensor, torch::Tensor> source_features(data::BatchSource& source, torch::Device device,
                                                        const std::function<torch::Tensor(const torch::Tensor&)>& features) {
  torch::NoGradGuard guard;
  std::vector<torch::Tensor> xs, ys;
  for (int64_t i = 0; i < source.num_batches(); ++i) {
    auto [x, y] = source.batch(i, data::View::Plain);
    xs.push_back(features(x.to(device)).to(torch::kFloat).cpu());
    ys.push_back(y.cpu());
  }
  return {torch::cat(xs), torch::cat(ys)};
}

std::pair<torch::Tensor, torch::Tensor> encoder_features(models::PointTransformerImpl& model, data::BatchSource& source,
                                                         const std::string& feature, const std::vector<torch::Tensor>& projection,
                                                         torch::Device device) {
  model.eval();
  return source_features(source, device, [&](const torch::Tensor& x) {
    auto tokens = model.forward_tokens(x);
    auto groups = tokens.narrow(1, 1, tokens.size(1) - 1);
    if (feature == "cls_max") return torch::cat({tokens.select(1, 0), std::get<0>(groups.max(1))}, 1);
    if (feature == "max_mean") return torch::cat({std::get<0>(groups.max(1)), groups.mean(1)}, 1);
    // pb_cls_head
    auto h = torch::gelu(torch::linear(tokens.select(1, 0), projection[0], projection[1]));
    return torch::linear(h, projection[2], projection[3]);
  });
}

namespace {
// Point-BERT's transformer_q.cls_head.{0,2}.{weight,bias} from the file, on `device`.
std::vector<torch::Tensor> pb_projection(const io::StateDict& sd, const std::string& path, int64_t width, torch::Device device) {
  std::vector<torch::Tensor> out;
  for (const char* name : {"cls_head.0.weight", "cls_head.0.bias", "cls_head.2.weight", "cls_head.2.bias"}) {
    const torch::Tensor* found = nullptr;
    for (const auto& item : sd.tensors) {
      const auto& key = item.key();
      const auto at = key.find("transformer_q." + std::string(name));
      if (at != std::string::npos && at + std::string("transformer_q.").size() + std::string(name).size() == key.size())
        found = &item.value();
    }
    if (!found)
      fail(path + ": --feature pb_cls_head needs transformer_q." + name +
           " (a Point-BERT pretraining checkpoint, Point-BERT.pth); this file has none");
    out.push_back(found->to(torch::kFloat).to(device));
  }
  if (out[0].dim() != 2 || out[0].size(1) != width || out[2].dim() != 2 || out[2].size(1) != out[0].size(0))
    fail(path + ": transformer_q.cls_head has shapes that do not fit a " + std::to_string(width) + "-wide encoder");
  return out;
}
}  // namespace

SvmResult svm_probe(Config cfg, const std::string& weights_path, const SvmOptions& options, const data::TaskLoader& load_data,
                    const Reporter& report) {
  if (!built_with_liblinear())
    fail("the SVM probe needs liblinear: ewa was built without it (install Debian's liblinear-dev and rebuild)");
  if (!model_kind(cfg).is_point_classifier())
    fail("model.name: the SVM probe reads a point-cloud classifier's encoder (point_transformer), the config names '" +
         cfg.model.name + "'");
  SvmOptions o = options;
  // Point-BERT's protocol feature for a Point-BERT encoder (its validate() reads cls_head(CLS)).
  if (o.feature.empty()) o.feature = cfg.model.variant == "point_bert" ? "pb_cls_head" : "cls_max";
  if (o.feature != "cls_max" && o.feature != "max_mean" && o.feature != "pb_cls_head")
    fail("--feature: '" + o.feature + "' is not a feature kind: expected cls_max, max_mean or pb_cls_head");
  // Every training cloud (no shuffle, no dropped batch; read as the test clouds are: the first
  // num_points of pointnet2_ops' FPS from point 0, the official misc.fps) and every test cloud,
  // single pass.
  const Config data_cfg = cfg.with({{"data.batch_size", o.batch_size}, {"data.eval_batch_size", o.batch_size}});
  auto splits = load_data(data_cfg, data::Use::Features);
  for (const auto& note : splits.notes) report(note);
  if (cfg.model.in_chans == 0) cfg = cfg.with({{"model.in_chans", splits.in_chans}});
  if (cfg.model.num_classes == 0) cfg = cfg.with({{"model.num_classes", splits.num_classes}});
  const auto device = select_device(cfg.train.device);
  data::BatchSource& train_source = *splits.train;
  data::BatchSource& test_source = *splits.test;
  train_source.place(device);
  test_source.place(device);

  const auto sd = io::read_state_dict(weights_path);
  if (o.feature == "cls_max" && !io::normalize_keys(sd.tensors).contains("cls_token"))
    fail(weights_path + ": has no class token (cls_token; Point-MAE's pretraining has none), which --feature cls_max "
         "reads: use --feature max_mean ([max, mean] over the group tokens)");
  auto model = std::make_shared<models::PointTransformerImpl>(cfg);
  io::LoadOptions load;
  load.may_be_fresh = [&](const std::string& n) {
    // The head is not used; a class token a pretraining file lacks only matters to cls_max.
    return model->is_head(n) || (o.feature == "max_mean" && model->may_start_fresh(n));
  };
  const auto loaded = io::load_pretrained(*model, sd, load, weights_path);
  report(loaded.table());
  model->to(device);
  std::vector<torch::Tensor> projection;
  if (o.feature == "pb_cls_head") projection = pb_projection(sd, weights_path, cfg.model.embed_dim, device);

  report("features: " + o.feature + " of " + std::to_string(splits.train->size()) + " training and " +
         std::to_string(splits.test->size()) + " test clouds (single pass, no augmentation) ...");
  auto [train_x, train_y] = encoder_features(*model, train_source, o.feature, projection, device);
  auto [test_x, test_y] = encoder_features(*model, test_source, o.feature, projection, device);
  if (!o.write_features.empty()) {
    write_liblinear_text(o.write_features + "_train.txt", train_x, train_y);
    write_liblinear_text(o.write_features + "_test.txt", test_x, test_y);
    report("features written to " + o.write_features + "_{train,test}.txt (liblinear / libsvm text)");
  }
  report("fitting the linear SVM (liblinear, " + std::to_string(train_x.size(1)) + "-d) ...");
  const auto svm = LinearSvm::fit(train_x, train_y, o.c, o.tolerance);
  const auto predicted = svm.predict(test_x);
  SvmResult r;
  r.accuracy = predicted.eq(test_y).to(torch::kDouble).mean().item<double>();
  r.train_count = train_x.size(0);
  r.test_count = test_x.size(0);
  r.dims = train_x.size(1);
  char label[256];
  std::snprintf(label, sizeof label,
                "linear SVM (liblinear L2-loss dual, C %g, tol %g, bias 1: LinearSVC()) on frozen %s features, single pass",
                o.c, o.tolerance, o.feature.c_str());
  r.label = label;
  return r;
}

}  // namespace ewa::eval
