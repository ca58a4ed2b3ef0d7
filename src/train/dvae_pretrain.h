// Point-BERT pretraining, stage 1: the dVAE tokenizer (models/dvae.h) as a Task of the one
// training loop (train/loop.h). Labels are ignored; every point dataset works (ShapeNet-55 upstream).
#pragma once
#include <string>

#include "config/config.h"
#include "data/batch_source.h"
#include "models/dvae.h"
#include "train/loop.h"

namespace ewa::train {

// The dVAE sizes of cfg (model.num_groups, group_size, encoder_dims (0 = 256), pretrain.num_tokens,
// tokens_dims, decoder_dims).
models::DvaeOptions dvae_options(const Config& cfg);

// Mean reconstruction loss (CD-L1 of the coarse and of the fine points, as the training loss) and
// KL term of `model` over `source`, with hard codes (evaluation, as upstream's validation) and the
// Gumbel noise drawn from a fixed seed; torch's default generator is restored afterwards.
std::pair<double, double> dvae_evaluation(models::DiscreteVaeImpl& model, data::BatchSource& source, torch::Device device);

struct DvaePretrainResult {
  std::string run_dir;
  double test_recon = 0;  // final epoch
  int64_t steps = 0;
  double seconds = 0;
};

// Trains cfg's point_bert_dvae into <train.runs_dir>/<name>: loss = recon + w_kl(step) * KL with
// the Gumbel-softmax temperature tau(step) (models::dvae_kl_weight / dvae_temperature with the
// pretrain.* settings); last.pt each epoch, log.jsonl, metrics.json.
DvaePretrainResult pretrain_dvae(Config cfg, const data::TaskLoader& load_data, const TrainOptions& options,
                                 const Reporter& report);

}  // namespace ewa::train
