#include "datasets/image_folder.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include <ATen/CPUGeneratorImpl.h>

#include "common/error.h"
#include "common/fs.h"
#include "datasets/cache.h"
#include "datasets/image_loader.h"
#include "io/image_file.h"
#include "io/torch_pickle.h"

namespace ewa::datasets {
namespace fs = std::filesystem;

namespace {

// Bumped whenever the decoded pixels or the cache's layout change meaning.
constexpr int kImageCacheVersion = 1;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool ends_with_any(const std::string& name, const std::vector<std::string>& endings) {
  const std::string l = lower(name);
  for (const auto& e : endings)
    if (l.size() >= e.size() && l.compare(l.size() - e.size(), e.size(), e) == 0) return true;
  return false;
}

// What torchvision's ImageFolder reads besides (IMG_EXTENSIONS): refused, not skipped.
const std::vector<std::string> kOtherImages = {".ppm", ".pgm", ".tif", ".tiff", ".webp"};

// The sub-folders of `dir` (links followed), sorted.
std::vector<std::string> sorted_folders(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The images below `dir` at any depth, as ImageFolder walks them: folders in sorted order of
// their paths, the names within a folder sorted.
std::vector<std::string> images_below(const std::string& dir) {
  std::map<std::string, std::vector<std::string>> by_folder;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink);
       it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_directory()) continue;
    const std::string name = it->path().filename().string();
    if (ends_with_any(name, kOtherImages))
      fail(it->path().string() + ": an image ewa does not read (it reads .png, .jpg, .jpeg and .bmp): convert it or move it "
           "out of the dataset");
    if (io::has_image_extension(name)) by_folder[it->path().parent_path().string()].push_back(name);
  }
  std::vector<std::string> out;
  for (auto& [folder, names] : by_folder) {
    std::sort(names.begin(), names.end());
    for (const auto& n : names) out.push_back(folder + "/" + n);
  }
  return out;
}

void require_dir(const std::string& dir, const std::string& what) {
  if (!fs::is_directory(dir)) fail(dir + ": no such folder (" + what + ")");
}

}  // namespace

ImageFileListing list_image_folder(const std::string& root) {
  const std::string train = (fs::path(root) / "train").string(), val = (fs::path(root) / "val").string();
  const std::string layout = "an image folder holds train/<class>/<images> and val/<class>/<images>";
  require_dir(train, layout);
  require_dir(val, layout);
  ImageFileListing l;
  l.class_names = sorted_folders(train);
  if (l.class_names.empty()) fail(train + ": holds no class folders (" + layout + ")");
  std::map<std::string, int64_t> index;
  for (size_t c = 0; c < l.class_names.size(); ++c) index[l.class_names[c]] = static_cast<int64_t>(c);
  for (size_t c = 0; c < l.class_names.size(); ++c) {
    const std::string dir = train + "/" + l.class_names[c];
    const auto files = images_below(dir);
    if (files.empty()) fail(dir + ": holds no .png, .jpg, .jpeg or .bmp image (every class of train/ needs one)");
    l.train.files.insert(l.train.files.end(), files.begin(), files.end());
    l.train.labels.insert(l.train.labels.end(), files.size(), static_cast<int64_t>(c));
  }
  for (const auto& name : sorted_folders(val)) {
    const auto it = index.find(name);
    if (it == index.end())
      fail(val + "/" + name + ": a class train/ does not have (val/'s folders must be classes of train/)");
    const auto files = images_below(val + "/" + name);
    l.val.files.insert(l.val.files.end(), files.begin(), files.end());
    l.val.labels.insert(l.val.labels.end(), files.size(), it->second);
  }
  if (l.val.files.empty()) fail(val + ": holds no .png, .jpg, .jpeg or .bmp image in a class folder");
  return l;
}

ImageFileListing list_tiny_imagenet(const std::string& root) {
  const std::string wnids_path = (fs::path(root) / "wnids.txt").string();
  const std::string layout = "Tiny-ImageNet's release: wnids.txt, train/<wnid>/images/, val/images/, val/val_annotations.txt";
  if (!fs::exists(wnids_path)) fail(wnids_path + ": missing (" + layout + ")");
  ImageFileListing l;
  l.class_names = read_text_lines(wnids_path);
  if (l.class_names.empty()) fail(wnids_path + ": lists no classes");
  std::sort(l.class_names.begin(), l.class_names.end());
  std::map<std::string, int64_t> index;
  for (size_t c = 0; c < l.class_names.size(); ++c)
    if (!index.emplace(l.class_names[c], static_cast<int64_t>(c)).second) fail(wnids_path + ": lists " + l.class_names[c] + " twice");
  const std::string words_path = (fs::path(root) / "words.txt").string();
  if (fs::exists(words_path)) {
    std::map<std::string, std::string> words;
    for (const auto& line : read_text_lines(words_path)) {
      const auto tab = line.find('\t');
      if (tab != std::string::npos) words[line.substr(0, tab)] = line.substr(tab + 1);
    }
    for (const auto& w : l.class_names) l.class_words.push_back(words.count(w) ? words[w] : w);
  }
  for (size_t c = 0; c < l.class_names.size(); ++c) {
    const std::string dir = (fs::path(root) / "train" / l.class_names[c] / "images").string();
    require_dir(dir, layout);
    const auto files = images_below(dir);
    if (files.empty()) fail(dir + ": holds no images");
    l.train.files.insert(l.train.files.end(), files.begin(), files.end());
    l.train.labels.insert(l.train.labels.end(), files.size(), static_cast<int64_t>(c));
  }
  const std::string annotations = (fs::path(root) / "val" / "val_annotations.txt").string();
  if (!fs::exists(annotations)) fail(annotations + ": missing (" + layout + ")");
  const auto lines = read_text_lines(annotations);
  std::vector<std::pair<std::string, int64_t>> val;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& line = lines[i];
    const auto t1 = line.find('\t');
    const auto t2 = t1 == std::string::npos ? std::string::npos : line.find('\t', t1 + 1);
    const std::string where = annotations + ": line " + std::to_string(i + 1);
    if (t1 == std::string::npos) fail(where + ": expected '<file> TAB <wnid> TAB <box>', got '" + line + "'");
    const std::string file = line.substr(0, t1), wnid = line.substr(t1 + 1, t2 == std::string::npos ? std::string::npos : t2 - t1 - 1);
    const auto it = index.find(wnid);
    if (it == index.end()) fail(where + ": class " + wnid + " is not in wnids.txt");
    const std::string path = (fs::path(root) / "val" / "images" / file).string();
    if (!fs::exists(path)) fail(where + ": names " + file + ", but " + path + " does not exist");
    val.emplace_back(path, it->second);
  }
  if (val.empty()) fail(annotations + ": lists no images");
  std::sort(val.begin(), val.end());
  for (const auto& [path, label] : val) {
    l.val.files.push_back(path);
    l.val.labels.push_back(label);
  }
  return l;
}

torch::Tensor DecodedImages::image(int64_t i) const {
  const int64_t h = height(i), w = width(i);
  return pixels.narrow(0, offsets.data_ptr<int64_t>()[i], h * w * 3).view({h, w, 3});
}

DecodedImages decode_images(const ImageFileSplit& split) {
  const auto n = static_cast<int64_t>(split.files.size());
  std::vector<io::RgbImage> images(static_cast<size_t>(n));
  at::parallel_for(0, n, 1, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) images[size_t(i)] = io::read_image(split.files[size_t(i)]);
  });
  DecodedImages d;
  d.offsets = torch::empty({n}, torch::kLong);
  d.shapes = torch::empty({n, 2}, torch::kLong);
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) {
    d.offsets[i] = total;
    d.shapes[i][0] = images[size_t(i)].height;
    d.shapes[i][1] = images[size_t(i)].width;
    total += static_cast<int64_t>(images[size_t(i)].pixels.size());
  }
  d.pixels = torch::empty({total}, torch::kUInt8);
  uint8_t* out = d.pixels.data_ptr<uint8_t>();
  const int64_t* offsets = d.offsets.data_ptr<int64_t>();
  at::parallel_for(0, n, 1, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) {
      auto& px = images[size_t(i)].pixels;
      std::copy(px.begin(), px.end(), out + offsets[i]);
      std::vector<uint8_t>().swap(px);
    }
  });
  d.labels = torch::tensor(split.labels, torch::kLong);
  return d;
}

namespace {

const char* const kParts[4] = {"pixels", "offsets", "shapes", "labels"};
torch::Tensor& part(DecodedImages& d, int k) { return k == 0 ? d.pixels : k == 1 ? d.offsets : k == 2 ? d.shapes : d.labels; }

// Reads a cache file; false, with a note, when it cannot be read or does not hold what it should.
bool read_cache(const std::string& path, const ImageFileListing& listing, DecodedSplits& out) {
  DecodedSplits read;
  const bool ok = read_cache_file(path, [&](const io::PyRef& root) {
    const char* const splits[2] = {"train", "val"};
    DecodedImages* targets[2] = {&read.train, &read.val};
    const ImageFileSplit* listed[2] = {&listing.train, &listing.val};
    for (int s = 0; s < 2; ++s) {
      for (int k = 0; k < 4; ++k) {
        const io::PyRef v = root->get(std::string(splits[s]) + "_" + kParts[k]);
        if (!v || v->kind != io::PyValue::Kind::Tensor) throw std::runtime_error(std::string("no tensor ") + splits[s] + "_" + kParts[k]);
        part(*targets[s], k) = v->tensor.contiguous();  // read by pointer (DecodedImages::height, image)
      }
      const auto& d = *targets[s];
      if (d.pixels.scalar_type() != torch::kUInt8 || d.offsets.scalar_type() != torch::kLong ||
          d.shapes.scalar_type() != torch::kLong || d.labels.scalar_type() != torch::kLong)
        throw std::runtime_error(std::string(splits[s]) + " holds tensors of other types than it writes");
      const int64_t n = static_cast<int64_t>(listed[s]->files.size());
      if (d.labels.numel() != n || d.offsets.numel() != n || d.shapes.numel() != 2 * n)
        throw std::runtime_error(std::string(splits[s]) + " does not hold the listed number of images");
      const auto end = (d.offsets + d.shapes.select(1, 0) * d.shapes.select(1, 1) * 3).max();
      if (n > 0 && end.item<int64_t>() > d.pixels.numel()) throw std::runtime_error("its offsets point past its pixels");
    }
  }, "the images are decoded again", out.notes);
  if (ok) {
    out.train = std::move(read.train);
    out.val = std::move(read.val);
  }
  return ok;
}

void write_cache(const std::string& path, DecodedSplits& out) {
  io::PyRef dict = io::py_dict();
  const char* const splits[2] = {"train", "val"};
  DecodedImages* sources[2] = {&out.train, &out.val};
  for (int s = 0; s < 2; ++s)
    for (int k = 0; k < 4; ++k) dict->set(std::string(splits[s]) + "_" + kParts[k], io::py_tensor(part(*sources[s], k)));
  write_cache_file(path, dict, "the next run decodes the images again", out.notes);
}

}  // namespace

DecodedSplits load_decoded(const ImageFileListing& listing, const std::string& dataset, const std::string& root,
                           const std::string& cache_dir) {
  std::vector<std::string> inputs = {"version " + std::to_string(kImageCacheVersion)};
  for (const auto* split : {&listing.train, &listing.val}) {
    inputs.insert(inputs.end(), split->files.begin(), split->files.end());
    for (const auto label : split->labels) inputs.push_back(std::to_string(label));
  }
  const std::string path = (fs::path(cache_dir_for(cache_dir, root)) / (dataset + "_images_" + fingerprint(inputs) + ".pt")).string();
  DecodedSplits out;
  if (fs::exists(path) && read_cache(path, listing, out)) return out;
  out.train = decode_images(listing.train);  // after read_cache's note of why the cache was not read, if any
  out.val = decode_images(listing.val);
  write_cache(path, out);
  return out;
}

std::vector<std::string> folder_dataset_names() { return {"image_folder", "tiny_imagenet"}; }

TrainingDraw draw_training(int64_t height, int64_t width, const FolderTransform& t, std::optional<at::Generator> gen) {
  TrainingDraw d;
  d.box = data::random_resized_crop_box(height, width, t.rrc_scale_min, 1.0, 3.0 / 4.0, 4.0 / 3.0, gen);
  if (t.hflip) d.flip = torch::rand({1}, gen).item<float>() < 0.5f;  // RandomHorizontalFlip: torch.rand(1) < p
  return d;
}

torch::Tensor apply_training(const torch::Tensor& image, const TrainingDraw& d, const FolderTransform& t) {
  const auto crop = image.narrow(0, d.box.top, d.box.height).narrow(1, d.box.left, d.box.width);
  auto out = data::resize_like_pil(crop, t.image_size, t.image_size, t.filter);
  return d.flip ? out.flip({1}).contiguous() : out;
}

torch::Tensor apply_evaluation(const torch::Tensor& image, const FolderTransform& t) {
  return data::evaluation_crop(image, t.image_size, t.crop_pct, t.filter);
}

namespace {

// Batches of a folder split: rows of the decoded images (shared by the splits carved from one set).
class FolderBatcher : public data::IndexedBatchSource {
 public:
  FolderBatcher(std::shared_ptr<const DecodedImages> images, std::vector<int64_t> rows, FolderTransform t, int64_t batch_size,
                bool shuffle, uint64_t seed, bool drop_last)
      : IndexedBatchSource(static_cast<int64_t>(rows.size()), batch_size, shuffle, seed, drop_last),
        images_(std::move(images)), rows_(std::move(rows)), t_(t) {}

  std::pair<torch::Tensor, torch::Tensor> batch(int64_t i, data::View view) const override { return build(i, view, std::nullopt); }
  // Drawn from a generator of the batch's own: nothing here touches torch's default generator or
  // state another thread writes (the order changes only in start_epoch, between epochs).
  std::pair<torch::Tensor, torch::Tensor> training_batch(int64_t i, uint64_t seed) const override {
    return build(i, data::View::Training, at::make_generator<at::CPUGeneratorImpl>(seed));
  }
  bool builds_ahead() const override { return true; }

 private:
  std::pair<torch::Tensor, torch::Tensor> build(int64_t i, data::View view, std::optional<at::Generator> gen) const {
    if (view == data::View::VoteView)
      fail("the official vote (eval protocol 'vote') resamples point clouds; images have the protocols single and tta");
    const auto idx = indices(i).to(torch::kLong).contiguous();
    const int64_t n = idx.size(0);
    const int64_t* positions = idx.data_ptr<int64_t>();
    const bool training = view != data::View::Plain;
    std::vector<int64_t> rows(static_cast<size_t>(n));
    std::vector<TrainingDraw> draws(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) {  // the draws in order, image by image, as torchvision's Compose makes them
      const int64_t row = rows_[size_t(positions[k])];
      rows[size_t(k)] = row;
      if (training) draws[size_t(k)] = draw_training(images_->height(row), images_->width(row), t_, gen);
    }
    auto x = torch::empty({n, 3, t_.image_size, t_.image_size}, torch::kFloat);
    at::parallel_for(0, n, 1, [&](int64_t a, int64_t b) {
      for (int64_t k = a; k < b; ++k) {
        const auto image = images_->image(rows[size_t(k)]);
        const auto out = training ? apply_training(image, draws[size_t(k)], t_) : apply_evaluation(image, t_);
        x[k].copy_(data::to_normalized_chw(out, data::imagenet_mean(), data::imagenet_std()));
      }
    });
    if (training && t_.crop_padding > 0) x = random_crop(x, t_.crop_padding, gen);
    if (view == data::View::Training) erase_images(x, t_.erasing, gen);
    const auto labels = images_->labels.index_select(0, torch::tensor(rows, torch::kLong));
    return {x, labels};
  }

  std::shared_ptr<const DecodedImages> images_;
  std::vector<int64_t> rows_;
  FolderTransform t_;
};

std::vector<int64_t> to_vector(const torch::Tensor& t) {
  const auto c = t.to(torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

}  // namespace

data::TaskData load_folder_task(const DataConfig& cfg, uint64_t seed, data::Use use) {
  if (!fs::is_directory(cfg.root)) fail("data.root: dataset directory " + cfg.root + " does not exist");
  const ImageFileListing listing = cfg.dataset == "tiny_imagenet" ? list_tiny_imagenet(cfg.root) : list_image_folder(cfg.root);
  DecodedSplits decoded = load_decoded(listing, cfg.dataset, cfg.root, cfg.cache_dir);
  auto train = std::make_shared<const DecodedImages>(std::move(decoded.train));
  auto test = std::make_shared<const DecodedImages>(std::move(decoded.val));
  data::TaskData t;
  t.description = cfg.dataset + " (" + cfg.root + ")";
  t.num_classes = static_cast<int64_t>(listing.class_names.size());
  t.class_names = listing.class_words.empty() ? listing.class_names : listing.class_words;
  t.img_size = cfg.image_size;
  t.in_chans = 3;
  t.notes = decoded.notes;
  // The rows of each split: data.train_limit, train_per_class, val_fraction and test_limit, as for
  // every image set (image_datasets.cpp: load_image_splits).
  torch::Tensor train_rows = torch::arange(train->size(), torch::kLong), test_rows = torch::arange(test->size(), torch::kLong);
  if (cfg.train_limit > 0 && cfg.train_limit < train->size()) train_rows = train_rows.narrow(0, 0, cfg.train_limit);
  if (cfg.test_limit > 0 && cfg.test_limit < test->size()) test_rows = test_rows.narrow(0, 0, cfg.test_limit);
  if (cfg.train_limit > 0)
    if (auto note = data::classes_present_note(train->labels.index_select(0, train_rows), t.num_classes, cfg.train_limit); !note.empty())
      t.notes.push_back(note);
  if (cfg.train_per_class > 0) {
    const int64_t before = train_rows.size(0);
    train_rows = train_rows.index_select(0, data::per_class_subset(train->labels.index_select(0, train_rows), cfg.train_per_class, seed));
    t.notes.push_back("train subset: " + std::to_string(cfg.train_per_class) + " per class (data.train_per_class, seed " +
                      std::to_string(seed) + "): " + std::to_string(train_rows.size(0)) + " of " + std::to_string(before) +
                      " training images");
  }
  torch::Tensor val_rows;
  if (cfg.val_fraction > 0) {
    const auto [vi, ti] = data::validation_split(train_rows.size(0), cfg.val_fraction, seed);
    val_rows = train_rows.index_select(0, vi);
    train_rows = train_rows.index_select(0, ti);
  }
  if (train_rows.size(0) == 0) fail("data.root: " + cfg.root + ": the training split is empty");
  FolderTransform tf;
  tf.image_size = cfg.image_size;
  tf.crop_pct = cfg.crop_pct;
  tf.rrc_scale_min = cfg.rrc_scale_min;
  tf.filter = cfg.interpolation == "bicubic" ? data::Resample::Bicubic : data::Resample::Bilinear;
  tf.hflip = cfg.hflip;
  tf.crop_padding = cfg.random_crop_padding;
  tf.erasing = erasing_settings(cfg);
  const bool training = use == data::Use::Training;
  t.train = std::make_unique<FolderBatcher>(train, to_vector(train_rows), tf, cfg.batch_size, /*shuffle=*/training, seed,
                                            /*drop_last=*/training && cfg.drop_last);
  if (val_rows.defined() && val_rows.size(0) > 0)
    t.val = std::make_unique<FolderBatcher>(train, to_vector(val_rows), tf, cfg.eval_batch_size, false, seed, false);
  t.test = std::make_unique<FolderBatcher>(test, to_vector(test_rows), tf, cfg.eval_batch_size, false, seed, false);
  return t;
}

}  // namespace ewa::datasets
