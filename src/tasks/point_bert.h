// Point-BERT pretraining, stage 2: masked point modelling on a trained tokenizer
// (models/point_bert.h) as a Task of the one training loop (train/loop.h). Labels of the
// pretraining data are ignored (ShapeNet-55 upstream); a labelled set may monitor the run through
// Point-BERT's linear SVM probe.
#pragma once
#include <string>

#include "config/config.h"
#include "data/batch_source.h"
#include "io/pretrained.h"
#include "models/point_bert.h"
#include "train/loop.h"

namespace ewa::tasks {

// Loads a stage-1 tokenizer (an ewa point_bert_dvae checkpoint or Point-BERT's dvae.pth) into
// model.dvae, every tensor (strict), then starts the online encoder and the key transformer from
// it (PointBertImpl::start_from_tokenizer).
io::LoadReport load_tokenizer(models::PointBertImpl& model, const std::string& path);

// The masked-token accuracy of the online transformer over `source`: block masks drawn from a fixed
// seed (the same every epoch; torch's default generator restored), eval mode.
struct TokenAccuracy {
  double accuracy = 0, loss = 0;  // correct / masked patches; mean CE of lm_head at them
  int64_t masked = 0;
};
TokenAccuracy token_accuracy(models::PointBertImpl& model, data::BatchSource& source, torch::Device device);

// Point-BERT's monitor: linear SVM (LinearSVC(): C 1, tol 1e-4) on the frozen cls_head features of
// `train`, accuracy on `test` (single pass, no masks, eval mode).
double svm_monitor_accuracy(models::PointBertImpl& model, data::BatchSource& train, data::BatchSource& test,
                            torch::Device device);

}  // namespace ewa::tasks
