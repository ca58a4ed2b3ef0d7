// The classifiers' builder: the kind of cfg.model.name (config/model_kinds.h) picks the class by
// what it reads (images: ViT, points: the point transformer).
#pragma once
#include <memory>

#include "config/config.h"
#include "models/classifier.h"
#include "nn/layers.h"

namespace ewa::models {

// Builds the classifier cfg.model.name names; throws ewa::Error for a kind that is no classifier
// or missing resolved sizes (img_size, in_chans, num_classes).
std::shared_ptr<ClassifierImpl> build_model(const Config& cfg);

// A random input batch of the shape cfg's model takes: points [batch, data.num_points, in_chans]
// for point models, images [batch, in_chans, img_size, img_size] for image models.
torch::Tensor random_input(const Config& cfg, int64_t batch);

// The FFN of block `block_index` for a block of width `dim`: dense Mlp, or the MoE kind of
// cfg.moe when the block is listed in cfg.moe.blocks; built and later re-initialised on its own
// random stream (Stream::kFfnInit of the block: common/random.h).
std::shared_ptr<nn::FeedForwardImpl> make_feed_forward(const Config& cfg, int64_t block_index, int64_t dim,
                                                       int64_t hidden, double drop);

}  // namespace ewa::models
