#include "config/schema.h"

#include <sstream>

#include "config/datasets.h"
#include "config/model_kinds.h"

namespace ewa {
namespace {
constexpr double kNoRange = 0;
constexpr double kBig = 1e12;

FieldSpec I(std::string k, int64_t d, double lo, double hi, std::string h) {
  return {std::move(k), FieldType::Int, d, lo, hi, {}, std::move(h)};
}
FieldSpec F(std::string k, double d, double lo, double hi, std::string h) {
  return {std::move(k), FieldType::Float, d, lo, hi, {}, std::move(h)};
}
FieldSpec B(std::string k, bool d, std::string h) {
  return {std::move(k), FieldType::Bool, d, 1, kNoRange, {}, std::move(h)};
}
FieldSpec S(std::string k, std::string d, std::vector<std::string> choices, std::string h) {
  return {std::move(k), FieldType::String, std::move(d), 1, kNoRange, std::move(choices), std::move(h)};
}
// "" and every dataset's variants (config/datasets.cpp).
std::vector<std::string> variant_choices() {
  std::vector<std::string> out = {""};
  for (const auto& d : dataset_table()) out.insert(out.end(), d.variants.begin(), d.variants.end());
  return out;
}
}  // namespace

const std::vector<FieldSpec>& config_schema() {
  static const std::vector<FieldSpec> schema = {
      S("name", "run", {}, "Run name: the run directory is <train.runs_dir>/<name>."),
      S("description", "", {},
        "What the config is for. Configs that reproduce a paper's recipe name the upstream file they follow and "
        "say where they differ (docs/protocols.md)."),
      S("model.name", "vit", model_kind_names(), model_kinds_help()),
      S("model.variant", "point_mae", {"point_mae", "point_bert"},
        "point_transformer only: Point-MAE (encoder width = embed_dim, BatchNorm head) or Point-BERT (encoder width 256 "
        "+ reduce_dim Linear, head without BatchNorm)."),
      S("model.init", "upstream", {"upstream", "trunc_normal"},
        "How a freshly built model starts. upstream: as the anchor's own code leaves it (docs/protocols.md, "
        "\"Initialisation\"): timm's ViT and the pretraining MaskTransformers trunc_normal(0.02) with zero biases, "
        "Point-MAE's decoder xavier_uniform, and the fine-tuning classifiers (Point-MAE's and Point-BERT's "
        "PointTransformer), the segmentation network and the dVAE PyTorch's own U(-1/sqrt(fan_in), 1/sqrt(fan_in)), "
        "which is what the official fine-tuning runners train, from scratch and from a checkpoint. trunc_normal: "
        "the point_mae point_transformer only, every Linear / Conv1d trunc_normal(0.02) with zero biases (Point-MAE's "
        "PointTransformer._init_weights, which its runner never applies)."),
      S("model.preset", "custom", {"custom", "tiny", "small", "base"},
        "ViT size preset (timm): tiny 192/12/3, small 384/12/6, base 768/12/12 (embed_dim/depth/num_heads). "
        "Keys given explicitly in the config win over the preset."),
      I("model.img_size", 0, 0, 4096, "Input height and width in pixels; 0 = from the dataset."),
      I("model.in_chans", 0, 0, 64, "Input channels (image channels; point channels: 3 = xyz, 6 = xyz + normals); 0 = from the dataset."),
      I("model.num_classes", 0, 0, 1000000, "Classifier outputs; 0 = from the dataset."),
      I("model.num_categories", 0, 0, 4096,
        "point_seg: object categories of the one-hot label input (ShapeNetPart: 16); 0 = from the dataset."),
      I("model.seg_fp_hidden", 0, 0, 65536,
        "point_seg: first layer of the feature propagation from the centres to every point; 0 = 4 * embed_dim "
        "(Point-MAE: 1536)."),
      I("model.seg_fp_dim", 1024, 1, 65536, "point_seg: output width of the feature propagation (Point-MAE: 1024)."),
      I("model.seg_head_hidden", 512, 2, 65536,
        "point_seg: first width of the per-point head; the second is half of it (Point-MAE: 512, 256)."),
      I("model.patch_size", 4, 1, 1024, "vit: patch side in pixels; must divide img_size."),
      I("model.num_groups", 64, 1, 65536, "point_transformer: number of FPS centers (tokens) G."),
      I("model.group_size", 32, 1, 4096, "point_transformer: kNN neighbours per group K; at most data.num_points."),
      I("model.encoder_dims", 0, 0, 16384,
        "point_transformer: mini-PointNet output width; 0 = embed_dim (point_mae) or 256 (point_bert)."),
      I("model.head_hidden", 256, 1, 16384, "point_transformer: hidden width of the classification head."),
      F("model.head_dropout", 0.5, 0, 1, "point_transformer: dropout in the classification head."),
      I("model.embed_dim", 192, 1, 16384, "Token width D."),
      I("model.depth", 12, 1, 256, "Number of transformer blocks."),
      I("model.num_heads", 3, 1, 256, "Attention heads; must divide embed_dim."),
      F("model.mlp_ratio", 4.0, 0.01, 64, "FFN hidden width = mlp_ratio * embed_dim."),
      B("model.qkv_bias", true, "Bias in the qkv projection."),
      F("model.drop_rate", 0.0, 0, 1, "Dropout after position embedding, in the FFN and before the head."),
      F("model.attn_drop_rate", 0.0, 0, 1, "Dropout on attention weights."),
      F("model.drop_path_rate", 0.1, 0, 1, "Stochastic depth; rises linearly from 0 at block 0 to this at the last block."),
      S("moe.kind", "rup", {"dense", "rup", "routed"},
        "FFN kind in the chosen blocks: dense Mlp, RupMoE (random uniform partition, the EWA method) or "
        "RoutedMoE (learned top-k gate, the paper's naive MoE)."),
      {"moe.blocks", FieldType::Blocks, "every_other", 1, kNoRange, {},
       "Which blocks get the MoE: \"every_other\" (1, 3, 5, ...), \"all\", \"last_k\" (the last moe.last_k "
       "blocks) or a list of block indices such as [1, 5]."},
      I("moe.last_k", 2, 1, 256, "Number of blocks for moe.blocks = \"last_k\"."),
      I("moe.num_experts", 4, 2, 256, "Experts N per MoE layer."),
      I("moe.top_k", 1, 1, 2, "RoutedMoE: experts per token (1 = Switch, 2 = GShard)."),
      F("moe.capacity_factor", 1.25, 0.01, 64, "RoutedMoE: expert capacity = ceil(factor * top_k * tokens / N) in training."),
      F("moe.eval_capacity_factor", 2.0, 0.01, 64, "RoutedMoE: capacity factor in evaluation."),
      F("moe.aux_loss_weight", 0.01, 0, 100, "RoutedMoE: weight of the load-balancing loss N * sum_i f_i P_i."),
      B("ewa.enabled", true,
        "Run Experts Weights Averaging after every optimizer step (MoE layers only). Also on for moe.kind = routed, "
        "with a warning at start-up: the paper's routed-MoE baseline sets it false."),
      F("ewa.share_rate", 0.3, 0, 1,
        "Share rate beta of Eq. (6); must lie in [0, (N-1)/N]: (N-1)/N sets every expert to the mean."),
      S("ewa.schedule", "constant", {"constant", "linear", "cosine"},
        "beta over steps: constant; linear or cosine ramp from 0 to share_rate over ewa.ramp_steps."),
      I("ewa.ramp_steps", 0, 0, kBig, "Length of the linear/cosine ramp in optimizer steps; 0 = the whole run."),
      I("ewa.until_step", -1, -1, kBig, "Early EWA: no averaging after this optimizer step; -1 = never stop."),
      S("data.dataset", "fashion_mnist", dataset_names(),
        "Dataset reader (datasets/README.md): images (the MNIST, Fashion-MNIST and CIFAR binaries; image folders in "
        "torchvision's ImageFolder layout, image_folder; Tiny-ImageNet as released, tiny_imagenet), or point clouds: ModelNet40 resampled txt, ModelNet40-style "
        "hdf5 (also the synthetic shapes), ModelNet10/40 class folders (.off meshes, .txt/.xyz/.npy/.pcd/.ply points), "
        "ScanObjectNN hdf5, ShapeNet-55 in Point-MAE's layout (shapenet_pc/*.npy; for pretraining), the released "
        "ModelNet40 few-shot pickles (<root>/<way>way_<shot>shot/<fold>.pkl)."),
      S("data.variant", "", variant_choices(), "scanobjectnn: which variant to read."),
      I("data.num_points", 1024, 1, 1 << 20, "Points per cloud fed to the model (the first ones of the FPS order)."),
      S("data.pipeline", "fixed", {"fixed", "resample"},
        "Point clouds: fixed = every cloud FPS-reduced once to data.num_points (cached), each training step only "
        "augments; resample = Point-MAE / Point-BERT's training pipeline: clouds kept at source resolution, every "
        "step shuffled, FPS to data.fps_points, then one random data.num_points of those FPS ranks for the batch "
        "(docs/protocols.md). Evaluation reads the first num_points of each test cloud's FPS order in both."),
      I("data.fps_points", 0, 0, 1 << 20,
        "Point clouds: FPS points a training step (pipeline resample) and a vote view draw num_points from "
        "(Point-MAE's point_all); 0 = the official value for data.num_points (1024 -> 1200, 2048 -> 2400, "
        "4096 -> 4800, 8192 -> 8192). Clamped to the points a cloud has."),
      I("data.source_points", 0, 0, 1 << 20,
        "Point clouds, pipeline resample: points kept per stored cloud, by FPS from a random (seeded) start, as "
        "Point-MAE's modelnet40_*_8192pts_fps.dat hold 8192 of the 10000 points of each file; 0 = every point "
        "(clouds of different sizes are reduced to the smallest)."),
      B("data.normalize", true,
        "Point clouds: centre each stored cloud and scale it into the unit sphere. The official ScanObjectNN "
        "pipeline uses the stored coordinates as they are (false)."),
      B("data.drop_last", true,
        "Leave out the last partial training batch every epoch (the official loaders do; a last batch of one "
        "sample breaks BatchNorm, and with several processes a rank could get none)."),
      I("data.way", 0, 0, 40, "modelnet_fewshot: classes of the task (the released sets: 5 or 10)."),
      I("data.shot", 0, 0, 100000, "modelnet_fewshot: training samples per class (the released sets: 10 or 20)."),
      I("data.fold", -1, -1, 100000, "modelnet_fewshot: fold (the released sets: 0 to 9); `ewa fewshot` runs them all."),
      B("data.use_normals", false, "Feed normals as channels 4-6 where the files have them (modelnet40_resampled)."),
      F("data.scale_low", 2.0 / 3.0, 0.01, 100, "Point augmentation: anisotropic scale, lower bound (Point-MAE: 2/3)."),
      F("data.scale_high", 1.5, 0.01, 100, "Point augmentation: anisotropic scale, upper bound (Point-MAE: 3/2)."),
      F("data.translate", 0.2, 0, 10, "Point augmentation: uniform translation range +-translate per axis."),
      B("data.rotate_up", false, "Point augmentation: random rotation about the up axis (y)."),
      F("data.jitter", 0.0, 0, 1, "Point augmentation: Gaussian jitter sigma, clipped at 5 sigma; 0 = off."),
      I("data.votes", 1, 1, 100,
        "Test-time augmentation (protocol tta) of every evaluation: logits averaged over 1 clean + (votes - 1) "
        "augmented passes of the same points; 1 = single pass. Not the official vote (eval.vote_views). Labelled "
        "in every report."),
      S("data.root", "", {},
        "Dataset directory; empty = /usr/share/datasets/fashion-mnist for fashion_mnist, required otherwise."),
      S("data.cache_dir", "", {},
        "Where parsed point datasets and decoded image folders are cached (.pt, keyed by file sizes and times); "
        "empty = <root>/.ewa_cache or, "
        "when root is read-only, ~/.cache/ewa."),
      I("data.batch_size", 128, 1, 1 << 20, "Training batch size."),
      I("data.eval_batch_size", 500, 1, 1 << 20, "Evaluation batch size."),
      F("data.val_fraction", 0.0, 0, 0.9,
        "Share of the training set held out (seeded) as validation; the best checkpoint is chosen on it, never on test."),
      I("data.train_limit", 0, 0, kBig,
        "Use only the first N training samples in stored order (quick runs; on class folders that is the first "
        "classes only, and the start-up table says how many classes are left); 0 = all. For a class-balanced "
        "subset use data.train_per_class."),
      I("data.train_per_class", 0, 0, kBig,
        "Small-data regimes: a seeded, class-stratified subset of the training split, N samples of every class (all "
        "of a class that has fewer), drawn from train.seed (the same subset for every arm of a study's seed); taken "
        "before data.val_fraction; classification only; 0 = all."),
      I("data.test_limit", 0, 0, kBig, "Use only the first N test samples in stored order; 0 = all."),
      I("data.random_crop_padding", 2, 0, 64, "Random crop augmentation: zero-pad by this many pixels, crop back; 0 = off."),
      B("data.hflip", false, "Random horizontal flip augmentation."),
      I("data.image_size", 0, 0, 4096,
        "Image folders (image_folder, tiny_imagenet; required there): the side of the square images the model sees "
        "(timm's and DeiT's input size: 224 for ImageNet-style sets, 64 for Tiny-ImageNet). Training takes a random "
        "resized crop of that side, evaluation resizes the shorter side to floor(image_size / data.crop_pct) and "
        "takes the centre crop (datasets/README.md)."),
      F("data.crop_pct", 0.875, 0.1, 1.0,
        "Image folders: evaluation's centre crop as a share of the resized shorter side (timm's crop_pct; DeiT: "
        "224/256 = 0.875)."),
      F("data.rrc_scale_min", 0.08, 0.01, 1.0,
        "Image folders, training: the smallest share of an image's area a random resized crop takes (torchvision, "
        "timm, DeiT: 0.08; the largest is 1, the aspect ratio 3/4 to 4/3)."),
      S("data.interpolation", "bicubic", {"bicubic", "bilinear"},
        "Image folders: the filter of every resize, computed as PIL computes it (DeiT: bicubic)."),
      F("data.mixup", 0.0, 0, 100,
        "Images, training: Mixup's alpha (timm's --mixup; DeiT: 0.8): with probability data.mixup_prob a batch is "
        "blended with itself reversed by lambda ~ Beta(alpha, alpha), the targets alike (soft targets, "
        "optim.label_smoothing folded in, soft-target cross-entropy); 0 = off. Needs even per-process batches."),
      F("data.cutmix", 0.0, 0, 100,
        "Images, training: CutMix's alpha (timm's --cutmix; DeiT: 1.0): a box of the reversed batch pasted in, the "
        "targets mixed by the area it covers; with data.mixup too, one of the two per batch (data.mixup_switch_prob); "
        "0 = off."),
      F("data.mixup_prob", 1.0, 0, 1, "Images, training: the probability that a batch is mixed (timm's --mixup-prob)."),
      F("data.mixup_switch_prob", 0.5, 0, 1,
        "Images, training: with both data.mixup and data.cutmix on, the probability of CutMix for a mixed batch "
        "(timm's --mixup-switch-prob)."),
      F("data.reprob", 0.0, 0, 1,
        "Images, training: random erasing's probability per image (timm's --reprob; DeiT: 0.25), after "
        "normalisation: boxes of 2% to 1/3 of the area, aspect 0.3 to 3.3; 0 = off."),
      S("data.remode", "pixel", {"const", "rand", "pixel"},
        "Images, training: random erasing's fill (timm's --remode): zeros, one normal draw per channel, or one per "
        "pixel (DeiT)."),
      I("data.recount", 1, 1, 100, "Images, training: random erasing's largest number of boxes per image (timm's --recount)."),
      F("optim.lr", 1e-3, 0, 10, "Peak AdamW learning rate (after warmup)."),
      F("optim.min_lr", 1e-5, 0, 10, "Learning rate at the end of the cosine schedule."),
      F("optim.weight_decay", 0.05, 0, 10, "AdamW decoupled weight decay (not applied to biases, norms, tokens, embeddings)."),
      F("optim.beta1", 0.9, 0, 0.999999, "AdamW beta1."),
      F("optim.beta2", 0.999, 0, 0.999999, "AdamW beta2."),
      F("optim.warmup_epochs", 1.0, 0, kBig, "Linear learning-rate warmup length in epochs (may be fractional)."),
      F("optim.label_smoothing", 0.1, 0, 0.99, "Label smoothing of the cross-entropy loss."),
      F("optim.grad_clip", 1.0, 0, kBig, "Clip the global gradient norm to this; 0 = off."),
      S("optim.schedule", "step_cosine", {"step_cosine", "timm_epoch"},
        "Learning-rate schedule: step_cosine = linear warmup over optim.warmup_epochs then cosine to optim.min_lr, "
        "updated every step; timm_epoch = timm's CosineLRScheduler as Point-MAE / Point-BERT step it, once per "
        "epoch: epoch 0 at warmup_lr_init, epoch e >= 1 at f(e - 1), f linear from warmup_lr_init over "
        "warmup_epochs then cosine over optim.cosine_epochs to min_lr (docs/protocols.md)."),
      F("optim.warmup_lr_init", 1e-6, 0, 10, "timm_epoch: learning rate warmup starts from (the official builders: 1e-6)."),
      I("optim.cosine_epochs", 0, 0, kBig,
        "timm_epoch: the cosine's length t_initial in epochs; 0 = train.epochs. The official configs run "
        "train.epochs = 301 (epochs 0..300) with t_initial 300."),
      F("pretrain.mask_ratio", 0.6, 0, 0.95,
        "point_mae: share of the groups masked per cloud (Point-MAE: 0.6); int(ratio * num_groups) are masked."),
      S("pretrain.mask_type", "rand", {"rand", "block"},
        "point_mae: rand = masked groups drawn uniformly per cloud; block = the groups nearest to one random center."),
      I("pretrain.decoder_depth", 4, 1, 64, "point_mae: transformer blocks of the decoder."),
      I("pretrain.decoder_num_heads", 6, 1, 256, "point_mae: attention heads of the decoder; must divide embed_dim."),
      S("pretrain.loss", "cdl2", {"cdl2", "cdl1"},
        "point_mae: reconstruction loss, Chamfer distance L2 (squared, Point-MAE's choice) or L1."),
      I("pretrain.reconstructions", 4, 0, 1000,
        "point_mae: test clouds whose reconstructions (input, visible, predicted) are saved as .ply at the end."),
      I("pretrain.num_tokens", 8192, 2, 1 << 20, "point_bert_dvae: codebook size, the logits per patch (Point-BERT: 8192)."),
      I("pretrain.tokens_dims", 256, 1, 65536, "point_bert_dvae: width of a codebook entry (Point-BERT: 256)."),
      I("pretrain.decoder_dims", 256, 1, 65536, "point_bert_dvae: width of dgcnn_2's output, the decoder's input (256)."),
      F("pretrain.kl_weight", 0.1, 0, 100,
        "point_bert_dvae: final weight of the KL term (Point-BERT's kldweight.target 0.1; it starts at 0)."),
      I("pretrain.kl_delay", 10000, 0, kBig, "point_bert_dvae: optimizer steps with KL weight 0 before its ramp (10000)."),
      I("pretrain.kl_ramp", 100000, 1, kBig, "point_bert_dvae: steps of the KL weight's cosine ramp (kldweight.ntime 100000)."),
      F("pretrain.temperature_start", 1.0, 1e-6, 100, "point_bert_dvae: Gumbel-softmax temperature at step 0 (temp.start 1)."),
      F("pretrain.temperature_end", 0.0625, 1e-6, 100,
        "point_bert_dvae: temperature after the ramp (temp.target 0.0625)."),
      I("pretrain.temperature_ramp", 100000, 1, kBig, "point_bert_dvae: steps of the temperature's cosine ramp (temp.ntime 100000)."),
      S("pretrain.tokenizer", "", {},
        "point_bert: the stage-1 dVAE whose tokens are the targets and whose encoder starts the transformer: an ewa "
        "point_bert_dvae checkpoint or Point-BERT's dvae.pth. Required for point_bert."),
      B("pretrain.tokenizer_batch_stats", true,
        "point_bert: the frozen tokenizer's BatchNorm layers normalise with the batch's statistics, as upstream (its "
        "dVAE is never put in eval mode, so its targets depend on the batch; the token evaluation then does the same "
        "without changing the statistics); false = its running statistics (eval mode)."),
      F("pretrain.mask_ratio_min", 0.25, 0, 1,
        "point_bert: block masking masks int(r * num_groups) patches nearest to a random centre, r uniform in "
        "[mask_ratio_min, mask_ratio_max] per cloud (Point-BERT: [0.25, 0.45])."),
      F("pretrain.mask_ratio_max", 0.45, 0, 1, "point_bert: upper end of the block-masking ratio (0.45)."),
      F("pretrain.momentum", 0.999, 0, 1, "point_bert: momentum m of the key transformer, k = m k + (1 - m) q per step (0.999)."),
      I("pretrain.queue_size", 16384, 1, 1 << 24,
        "point_bert: keys in the contrastive queue (K 16384); must be a multiple of the global batch, as upstream asserts."),
      F("pretrain.contrast_temperature", 0.07, 1e-6, 100, "point_bert: temperature T of the contrastive logits (0.07)."),
      I("pretrain.cls_dim", 512, 1, 65536, "point_bert: width of cls_head, the class token's projection (512)."),
      B("pretrain.token_loss", true,
        "point_bert: cross-entropy of lm_head at the masked patches against the tokenizer's tokens, for the clouds and "
        "their patch-mixed versions (dvae_loss: True)."),
      B("pretrain.mix_loss", true,
        "point_bert: contrastive loss of the patch-mixed clouds against the keys and the queue, weighted by the mix "
        "ratio (cutmix_loss: True)."),
      B("pretrain.moco_loss", false, "point_bert: plain MoCo loss of the clouds against their keys (moco_loss: False)."),
      S("pretrain.svm_dataset", "", {},
        "point_bert: labelled point dataset of the linear SVM probe run after every epoch as the pretraining monitor "
        "(Point-BERT: modelnet40); best.pt is the epoch of the best probe accuracy. Empty = no probe."),
      S("pretrain.svm_root", "", {}, "point_bert: data root of pretrain.svm_dataset."),
      S("finetune.init", "", {},
        "Checkpoint to initialise the model from before training (fine-tuning): an ewa checkpoint (pretraining or "
        "classifier), an official Point-MAE / Point-BERT .pth, or a timm-named .pth/.safetensors for vit. Empty = "
        "from scratch. The classification head is trained anew when its shape differs."),
      B("finetune.allow_missing", false,
        "Start even when finetune.init lacks keys the backbone needs (they keep their fresh initialisation)."),
      F("finetune.layer_decay", 1.0, 0.01, 1,
        "Layer-wise learning-rate decay: block i of depth L trains at lr * decay^(L - i), the patch/point embedding "
        "at decay^(L + 1), the head and final norm at lr; 1 = off."),
      B("finetune.freeze_encoder", false,
        "Linear probing: train only the classification head; the backbone keeps its initial weights (and BatchNorm "
        "statistics)."),
      I("eval.vote_views", 10, 1, 1000,
        "Official vote (protocol vote): views per cloud, each a random data.num_points of its first data.fps_points "
        "FPS points plus the training augmentation; logits averaged over the views."),
      I("eval.vote_repeats", 10, 1, 100000,
        "Official vote: how often the whole vote is repeated; the maximum is what upstream reports (Point-MAE "
        "299, Point-BERT 9); ewa reports the mean and spread beside it."),
      B("eval.final_vote", false, "Run the official vote on the final model after training (metrics.json: protocols.vote)."),
      B("eval.save_best_on_test", false,
        "Keep the checkpoint of the best test accuracy as best_on_test.pt (the official runs' ckpt-best: selected on "
        "the test set). The best-on-test figure is reported either way."),
      I("eval.every", 1, 1, kBig,
        "Evaluate the test (and validation) split every N epochs, and always after the last epoch; best.pt and the "
        "best-on-test figure are chosen among the evaluated epochs."),
      I("train.epochs", 10, 1, 100000, "Training epochs."),
      I("train.seed", 0, 0, kBig,
        "Seed for initialisation, data order, augmentation, dropout and partitions, each on its own stream "
        "(docs/protocols.md, \"Random streams\"): runs of one seed that differ only in MoE/EWA settings see the "
        "same batches and start from the same shared weights."),
      I("train.log_every", 50, 1, kBig, "Progress line and log.jsonl record every N optimizer steps."),
      I("train.checkpoint_every", 500, 0, kBig,
        "Also write last.pt every N optimizer steps within an epoch (with the data position and random state, so "
        "--resume continues exactly); 0 = at epoch ends only."),
      S("train.runs_dir", "runs", {}, "Parent directory of run directories."),
      I("train.threads", 0, 0, 1024, "Torch intra-op threads; 0 = the number of cores."),
      S("train.device", "auto", {"auto", "cpu", "cuda"}, "Device; auto = cuda when a GPU is present, else cpu."),
      S("train.precision", "fp32", {"fp32", "bf16"},
        "Arithmetic of forward passes (training and evaluation): fp32, or bf16 autocast (matrix products in bf16; "
        "weights, gradients and optimizer state stay float32). On CPUs it pays only with AVX512-BF16 or AMX."),
      B("train.overlap_allreduce", true,
        "Several processes: start each gradient bucket's all-reduce during backward, as soon as its gradients "
        "exist (as DDP), instead of after backward."),
      I("train.bucket_mb", 8, 1, 4096, "Several processes: size of a gradient all-reduce bucket in MiB."),
      B("train.tensorboard", true,
        "Write the run's scalars (loss, learning rate, share rate, step time, every evaluation) as TensorBoard event "
        "files into <run>/tensorboard/, beside log.jsonl: `tensorboard --logdir runs` compares runs."),
      F("train.ema_decay", 0.0, 0, 0.9999999,
        "Model EMA (timm's ModelEmaV2): after every optimizer step (and EWA) every parameter and float buffer of an "
        "exponential moving average moves to decay * ema + (1 - decay) * weights. Evaluations, best.pt and the "
        "checkpoints' model are the EMA's (the raw weights are kept in the checkpoint to resume); 0 = off."),
  };
  return schema;
}

static void set_path(nlohmann::json& root, const std::string& key, const nlohmann::json& value) {
  nlohmann::json* node = &root;
  size_t start = 0;
  for (size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1) {
    node = &(*node)[key.substr(start, dot - start)];
  }
  (*node)[key.substr(start)] = value;
}

std::string range_text(const FieldSpec& f) {
  auto num = [&](double v) {
    if (v >= kBig) return std::string("inf");
    std::ostringstream os;
    if (f.type == FieldType::Int) os << static_cast<int64_t>(v);
    else os << v;
    return os.str();
  };
  return "[" + num(f.min) + ", " + num(f.max) + "]";
}

nlohmann::json default_config() {
  nlohmann::json cfg = nlohmann::json::object();
  for (const auto& f : config_schema()) set_path(cfg, f.key, f.default_value);
  return cfg;
}

std::string config_reference_markdown() {
  std::ostringstream os;
  os << "| key | type | default | meaning |\n|---|---|---|---|\n";
  for (const auto& f : config_schema()) {
    std::string type;
    switch (f.type) {
      case FieldType::Int: type = "integer"; break;
      case FieldType::Float: type = "number"; break;
      case FieldType::Bool: type = "bool"; break;
      case FieldType::String: type = "string"; break;
      case FieldType::Blocks: type = "string or list"; break;
    }
    if ((f.type == FieldType::Int || f.type == FieldType::Float) && f.min <= f.max) type += " " + range_text(f);
    std::string help = f.help;
    if (!f.choices.empty()) {
      help += " One of:";
      for (size_t i = 0; i < f.choices.size(); ++i) help += (i ? ", " : " ") + f.choices[i];
      help += ".";
    }
    os << "| `" << f.key << "` | " << type << " | `" << f.default_value.dump() << "` | " << help << " |\n";
  }
  return os.str();
}

}  // namespace ewa
