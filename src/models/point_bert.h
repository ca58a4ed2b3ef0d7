// Point-BERT's masked point modelling (stage 2 of its pretraining; PB:models/Point_BERT.py, the
// protocol in docs/protocols.md via ../shared/PROTOCOLS.md section 5.2), with the official
// parameter names so its checkpoints map both ways:
//   transformer_q.*   the online MaskTransformer: encoder (mini-PointNet, started from the
//                     tokenizer's), reduce_dim, cls_token, mask_token, cls_pos, pos_embed.{0,2},
//                     blocks.blocks.N.* (FFNs may be EWA-MoE layers, cfg.moe), norm,
//                     lm_head Linear(D, num_tokens), cls_head.{0,2} Linear(D, c)-GELU-Linear(c, c)
//   transformer_k.*   its momentum copy (no gradients; k = m k + (1 - m) q before every key pass)
//   dvae.*            the frozen stage-1 tokenizer (models/dvae.h)
//   queue [c, K], queue_ptr [1]   the contrastive queue of L2-normalised keys
// One training forward on points [B, P, 3]: FPS + kNN patches; the tokenizer's tokens
// argmax dgcnn_1(encoder(patches)) as targets; the online pass with block masking (masked patches
// replaced by mask_token); the patch-mixed batch (each patch kept with probability r ~ U(0, 1) per
// cloud, else taken from the batch-flipped cloud, tokens mixed alike) through the online pass with
// its own masks; the momentum update, then the key pass (masked, as upstream) of the clouds.
// Losses (each optional as upstream's flags): token = CE(lm_head at the masked patches, tokens)
// for the clouds + the same for the mixed clouds; mix = r CE(i) + (1 - r) CE(flip(i)) over
// [mixed_q . keys^T || mixed_q . queue] / T; moco = CE(0) over [q . k || q . queue] / T.
#pragma once
#include "config/config.h"
#include "models/dvae.h"
#include "models/point_transformer.h"

namespace ewa::models {

// Block masking with a ratio per cloud: bool [B, G], row b masks the int(ratio[b] * G) centres
// nearest (Euclidean; ties by index) to centre `seed[b]` (Point-BERT's _mask_center).
torch::Tensor block_mask(const torch::Tensor& centers, const torch::Tensor& ratio, const torch::Tensor& seed);

// The random choices of one block mask: every cloud's ratio (double [B]) and centre index
// (int64 [B]); block_mask applies them to whichever centres the pass sees.
struct MaskDraw {
  torch::Tensor ratio, seed;
  bool defined() const { return ratio.defined(); }
};
// Ratios uniform in [lo, hi], seeds uniform over the G centres, from torch's default generator.
MaskDraw draw_mask(int64_t batch, int64_t num_centres, double lo, double hi);
// block_mask of a fresh draw_mask (the token accuracy's evaluation masks).
torch::Tensor draw_block_mask(const torch::Tensor& centers, double lo, double hi);

// Point-BERT's MaskTransformer (transformer_q / transformer_k).
class BertTransformerImpl : public torch::nn::Module {
 public:
  BertTransformerImpl(const Config& cfg, int64_t encoder_dims, int64_t num_tokens, int64_t cls_dim);
  // patches [B, G, K, 3], centres [B, G, 3], mask bool [B, G] (undefined = none masked) -> the
  // final norm's output [B, 1 + G, D]: the class token, then the patches.
  torch::Tensor forward(const torch::Tensor& patches, const torch::Tensor& centers, const torch::Tensor& mask = {});
  // cls_head of the class token of forward's output: [B, cls_dim] (not normalised).
  torch::Tensor project(const torch::Tensor& x) { return cls_head->forward(x.select(1, 0)); }

  MiniPointNet encoder{nullptr};
  torch::nn::Linear reduce_dim{nullptr};
  torch::Tensor cls_token, mask_token, cls_pos;
  torch::nn::Sequential pos_embed{nullptr};
  PointBlocks blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear lm_head{nullptr};
  torch::nn::Sequential cls_head{nullptr};
};
TORCH_MODULE(BertTransformer);

// The random draws of one training forward; undefined members are drawn (in this order, from
// torch's default generator), given ones used as they are (the tests). The masks are built by the
// forward from these choices on the centres each pass sees, as upstream's _mask_center inside
// every transformer call: the online and key passes on the clouds' centres, the mixed pass on the
// mixed centres (PB:models/Point_BERT.py:549 -> _mask_center, 310-337).
struct BertDraws {
  MaskDraw mask;              // the online pass's mask
  torch::Tensor mix_ratio;    // float [B]: r of every cloud
  torch::Tensor mix_keep;     // bool [B, G]: the patch is the cloud's own (else the flipped cloud's)
  MaskDraw mix_mask;          // the mixed pass's mask
  MaskDraw key_mask;          // the key pass's mask
};

// The masks a forward used: bool [B, G] each.
struct BertMasks {
  torch::Tensor online, mixed, key;
};

struct BertOutput {
  torch::Tensor loss;                 // token + mix + moco (those enabled)
  torch::Tensor token_loss, mix_loss, moco_loss;  // scalars (zero when disabled)
  torch::Tensor token_correct;        // int64: argmax lm_head = token at the masked patches, both passes
  int64_t token_count = 0;            // masked patches of both passes
  torch::Tensor keys;                 // [B, cls_dim] L2-normalised keys, for the queue
  torch::Tensor centers, patches;     // [B, G, 3], [B, G, K, 3]
  torch::Tensor tokens;               // int64 [B, G] the tokenizer's tokens
  BertDraws draws;                    // as drawn
  BertMasks masks;                    // as built from them
};

struct BertOptions {
  double mask_min = 0.25, mask_max = 0.45, momentum = 0.999, temperature = 0.07;
  int64_t queue_size = 16384, cls_dim = 512;
  bool token_loss = true, mix_loss = true, moco_loss = false;
  bool tokenizer_batch_stats = true;  // the tokenizer's BatchNorm in train mode (upstream)
};
BertOptions bert_options(const Config& cfg);

class PointBertImpl : public torch::nn::Module {
 public:
  // cfg.model: the transformer (embed_dim, depth, heads, drop_path_rate, moe); dvae sizes as
  // models::dvae_options gives them.
  PointBertImpl(const Config& cfg, const DvaeOptions& dvae_options);
  // The training forward (momentum update included, as upstream's forward); the queue is not
  // changed (enqueue, with the keys of every rank).
  BertOutput forward(const torch::Tensor& points, BertDraws draws = {});
  // Training mode for the online and key transformers; the tokenizer in train mode (batch
  // statistics) or eval mode as options().tokenizer_batch_stats says.
  void set_training();
  // Masked-token accuracy of one batch with its block masks drawn (no gradients, no momentum
  // update; the tokenizer's targets as in training, its BatchNorm statistics left unchanged; the
  // online transformer as the caller set it): {correct, masked count, token CE sum}.
  std::tuple<int64_t, int64_t, double> token_accuracy(const torch::Tensor& points);
  // What `ewa show` draws: the patches, a block mask drawn from torch's generator, the tokenizer's
  // tokens and lm_head's prediction at every patch (no gradients; modes as for token_accuracy).
  struct Inspection {
    torch::Tensor centers, patches, index, mask, tokens, predicted;  // [B,G,3], [B,G,K,3], [B,G,K], bool/int64 [B,G]
  };
  Inspection inspect(const torch::Tensor& points);
  // Point-BERT's forward_eval feature: cls_head of the class token, no mask: [B, cls_dim].
  torch::Tensor features(const torch::Tensor& points);
  // k = m k + (1 - m) q over every parameter.
  void momentum_update();
  // Writes keys [N, cls_dim] (every rank's, in rank order) at queue_ptr and moves it; N must
  // divide the queue size.
  void enqueue(const torch::Tensor& keys);
  // After loading the tokenizer into dvae: transformer_q.encoder = dvae.encoder, and
  // transformer_k = transformer_q (Point-BERT's _prepare_encoder and its key initialisation).
  void start_from_tokenizer();

  BertTransformer transformer_q{nullptr}, transformer_k{nullptr};
  DiscreteVae dvae{nullptr};
  torch::Tensor queue, queue_ptr;

  const BertOptions& options() const { return o_; }
  int64_t num_groups() const { return num_groups_; }
  int64_t group_size() const { return group_size_; }

 private:
  // The tokenizer's tokens as training makes them (batch or running statistics as configured),
  // its running statistics left unchanged.
  torch::Tensor targets(const torch::Tensor& patches, const torch::Tensor& centers);
  BertOptions o_;
  int64_t num_groups_, group_size_;
};
TORCH_MODULE(PointBert);

}  // namespace ewa::models
