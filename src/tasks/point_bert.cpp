#include "tasks/point_bert.h"

#include <cstdio>

#include "common/error.h"
#include "common/random.h"
#include "common/text.h"
#include "eval/svm_probe.h"
#include "io/state_dict.h"
#include "tasks/run_task.h"
#include "train/eval_mode.h"

namespace ewa::tasks {
using eval::LinearSvm;
using eval::built_with_liblinear;
using eval::source_features;
using eval::svm_data_config;
using models::dvae_options;
using train::EvalMode;

namespace {

constexpr uint64_t kEvalMaskSeed = 20211129;  // the block masks of every token evaluation

class BertTask : public Task {
 public:
  BertTask(const Config& cfg, models::PointBert model, torch::Device device)
      : cfg_(cfg), model_(std::move(model)), device_(device) {}
  torch::nn::Module& model() override { return *model_; }
  torch::nn::Module& ewa_model() override { return *model_->transformer_q; }
  void set_training() override { model_->set_training(); }
  std::string describe_model() override {
    const auto& m = cfg_.model;
    const auto& o = model_->options();
    char b[512];
    std::snprintf(b, sizeof b,
                  "point_bert D=%lld depth=%lld heads=%lld groups=%lldx%lld, %lld tokens; block masks %.2f-%.2f, momentum %g, "
                  "queue %lld, T %g; losses:%s%s%s",
                  (long long)m.embed_dim, (long long)m.depth, (long long)m.num_heads, (long long)m.num_groups,
                  (long long)m.group_size, (long long)cfg_.pretrain.num_tokens, o.mask_min, o.mask_max, o.momentum,
                  (long long)o.queue_size, o.temperature, o.token_loss ? " token" : "", o.mix_loss ? " mix" : "",
                  o.moco_loss ? " moco" : "");
    return b;
  }
  StepOutput training_step(const torch::Tensor& x, const torch::Tensor&) override {
    auto out = model_->forward(x);
    // Every rank's keys, in rank order, enter the queue (upstream's concat_all_gather).
    auto keys = out.keys.to(torch::kFloat);
    model_->enqueue(group() ? group()->all_gather_rows(keys) : keys);
    // The epoch's means of the loss terms and the masked-token accuracy (read at the evaluation).
    auto terms = torch::stack({out.token_loss.detach().to(torch::kDouble) * double(x.size(0)),
                               out.mix_loss.detach().to(torch::kDouble) * double(x.size(0)),
                               out.moco_loss.detach().to(torch::kDouble) * double(x.size(0)),
                               out.token_correct.to(torch::kDouble), torch::full({}, double(out.token_count), torch::kDouble).to(x.device()),
                               torch::full({}, double(x.size(0)), torch::kDouble).to(x.device())});
    sums_ = sums_.defined() ? sums_ + terms : terms;
    return {out.loss, torch::Tensor(), x.size(0)};
  }
  EvalResult evaluate(data::BatchSource& source) override {
    if (&source == svm_test_) return evaluate_svm();
    const auto acc = token_accuracy(*model_, source, device_);
    nlohmann::json j = {{"token_acc", acc.accuracy}, {"loss", acc.loss}, {"masked", acc.masked}, {"count", source.size()}};
    std::string text = "masked-token acc " + fmt("%.4f", acc.accuracy) + " CE " + fmt("%.4f", acc.loss);
    if (sums_.defined()) {  // the training terms of the epoch just ended, over every rank
      std::vector<torch::Tensor> t = {sums_.cpu()};
      if (group()) group()->allreduce_sum(t);
      const double* s = t[0].data_ptr<double>();
      const double n = std::max(1.0, s[5]);
      j["train_token_loss"] = s[0] / n;
      j["train_mix_loss"] = s[1] / n;
      j["train_moco_loss"] = s[2] / n;
      j["train_token_acc"] = s[3] / std::max(1.0, s[4]);
      text += " (train: token CE " + fmt("%.4f", s[0] / n) + " acc " + fmt("%.4f", s[3] / std::max(1.0, s[4])) + ", mix " +
              fmt("%.4f", s[1] / n) + ")";
      sums_ = torch::Tensor();
    }
    return {j, j, text, acc.accuracy};
  }
  std::string eval_label() const override {
    std::string label = "masked-token accuracy of the online transformer, block masks of seed " + std::to_string(kEvalMaskSeed);
    if (svm_test_)
      label += "; val = Point-BERT's linear SVM probe on " + cfg_.pretrain.svm_dataset +
               " (LinearSVC on cls_head features, fitted on its train split, accuracy on its test split; best.pt by it, "
               "selected on that test split as upstream's ckpt-best)";
    return label;
  }
  void set_monitor(std::unique_ptr<data::BatchSource> train, data::BatchSource* test) {
    svm_train_owned_ = std::move(train);
    svm_train_ = svm_train_owned_.get();
    svm_test_ = test;
  }

 private:
  EvalResult evaluate_svm() {
    const double acc = svm_monitor_accuracy(*model_, *svm_train_, *svm_test_, device_);
    nlohmann::json j = {{"svm_acc", acc}, {"train", svm_train_->size()}, {"count", svm_test_->size()}};
    return {j, j, fmt("SVM acc %.4f", acc), acc};
  }

  Config cfg_;
  models::PointBert model_;
  torch::Device device_;
  torch::Tensor sums_;  // token CE, mix, moco (x batch), token correct, masked, clouds
  std::unique_ptr<data::BatchSource> svm_train_owned_;
  data::BatchSource *svm_train_ = nullptr, *svm_test_ = nullptr;
};

}  // namespace

io::LoadReport load_tokenizer(models::PointBertImpl& model, const std::string& path) {
  const auto sd = io::read_state_dict(path);
  const auto keys = io::normalize_keys(sd.tensors);
  if (!keys.find("dgcnn_1.layer5.0.weight") || !keys.find("codebook"))
    fail("pretrain.tokenizer: " + path + " holds no dVAE tokenizer (no dgcnn_1.*, codebook): expected an ewa point_bert_dvae "
         "checkpoint or Point-BERT's dvae.pth");
  io::LoadReport report;
  try {
    report = io::load_pretrained(*model.dvae, sd, io::LoadOptions{}, path);
  } catch (const Error& e) {
    fail("pretrain.tokenizer: " + std::string(e.what()) +
         " (the dVAE sizes: pretrain.num_tokens, tokens_dims, decoder_dims, model.encoder_dims, group_size)");
  }
  if (!report.unexpected.empty() || !report.fresh.empty() || !report.expanded.empty() || !report.averaged.empty())
    fail("pretrain.tokenizer: " + path + " is not a dVAE of these sizes: " + std::to_string(report.unexpected.size()) +
         " of its tensors are not the dVAE's (e.g. " + (report.unexpected.empty() ? std::string("-") : report.unexpected[0]) +
         "); expected an ewa point_bert_dvae checkpoint or Point-BERT's dvae.pth");
  model.start_from_tokenizer();
  return report;
}

TokenAccuracy token_accuracy(models::PointBertImpl& model, data::BatchSource& source, torch::Device device) {
  torch::NoGradGuard guard;
  EvalMode eval_mode(model);
  return with_cpu_seed(kEvalMaskSeed, [&] {
    int64_t correct = 0, masked = 0;
    double ce = 0;
    for (int64_t i = 0; i < source.num_batches(); ++i) {
      const auto [c, m, l] = model.token_accuracy(source.batch(i, data::View::Plain).first.to(device));
      correct += c, masked += m, ce += l;
    }
    TokenAccuracy t;
    t.masked = masked;
    t.accuracy = masked ? double(correct) / double(masked) : 0.0;
    t.loss = masked ? ce / double(masked) : 0.0;
    return t;
  });
}

double svm_monitor_accuracy(models::PointBertImpl& model, data::BatchSource& train, data::BatchSource& test,
                            torch::Device device) {
  EvalMode eval_mode(model);  // the SVM below does not touch the model
  auto features = [&](const torch::Tensor& points) { return model.features(points); };
  const auto [train_x, train_y] = source_features(train, device, features);
  const auto [test_x, test_y] = source_features(test, device, features);
  const auto svm = LinearSvm::fit(train_x, train_y, 1.0, 1e-4);
  return svm.predict(test_x).eq(test_y).to(torch::kDouble).mean().item<double>();
}

namespace {

class PointBertMaker : public TaskMaker {
 public:
  void prepare(Config& cfg, data::TaskData& data, const data::TaskLoader& load_data, const Reporter& report) override {
    const auto& p = cfg.pretrain;
    if (!p.svm_dataset.empty() && !built_with_liblinear())
      fail("pretrain.svm_dataset: the SVM monitor needs liblinear, and ewa was built without it (install Debian's "
           "liblinear-dev and rebuild, or leave pretrain.svm_dataset empty)");
    // Every global batch's keys enter the queue at once: its size must divide the queue (upstream asserts it).
    for (int64_t b = 0; b < data.train->num_batches(); ++b)
      if (const int64_t n = data.train->global_batch_size(b); p.queue_size % n != 0)
        fail("pretrain.queue_size: " + std::to_string(p.queue_size) + " is not a multiple of the global batch of " +
             std::to_string(n) + " clouds (batch " + std::to_string(b + 1) + " of " + std::to_string(data.train->num_batches()) +
             ", data.batch_size " + std::to_string(cfg.data.batch_size) + ", data.drop_last " +
             (cfg.data.drop_last ? "true" : "false") + "): make data.batch_size divide it" +
             (cfg.data.drop_last ? "" : " and set data.drop_last=true"));
    // The SVM monitor's labelled clouds: its train split fits the SVM, its test split is the run's
    // validation split (best.pt), every cloud once, in file order.
    if (!p.svm_dataset.empty()) {
      // The clouds as `ewa svm` reads them (upstream: misc.fps(points, npoints) of the 8192-point clouds).
      const Config svm_cfg = svm_data_config(cfg, p.svm_dataset, p.svm_root, cfg.data.num_points);
      auto monitor = load_data(svm_cfg, data::Use::Features);
      for (const auto& note : monitor.notes) report("svm monitor: " + note);
      svm_train_ = std::move(monitor.train);
      data.val = std::move(monitor.test);
    }
  }
  std::unique_ptr<Task> make(const Config& cfg, data::TaskData& data, torch::Device device, const TrainOptions& options,
                             const Reporter& report) override {
    models::PointBert model(cfg, dvae_options(cfg));
    if (options.resume.empty()) report(load_tokenizer(*model, cfg.pretrain.tokenizer).table());
    auto task = std::make_unique<BertTask>(cfg, model, device);
    if (svm_train_) {
      svm_train_->place(device);
      task->set_monitor(std::move(svm_train_), data.val.get());
    }
    return task;
  }

 private:
  std::unique_ptr<data::BatchSource> svm_train_;
};

}  // namespace

std::unique_ptr<TaskMaker> point_bert_maker() { return std::make_unique<PointBertMaker>(); }

}  // namespace ewa::tasks
