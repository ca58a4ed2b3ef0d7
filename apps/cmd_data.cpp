// ewa data: dataset utilities.
#include "apps/commands.h"
#include "common/fs.h"
#include "datasets/shapenet_part.h"
#include "datasets/synthetic.h"

namespace ewa::app {

void add_data_command(CLI::App& app) {
  auto* data = app.add_subcommand("data", "Dataset utilities");
  data->require_subcommand(1);
  struct Args {
    std::string out = "data/synthetic_shapes";
    datasets::SynthOptions options;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  auto* synth = data->add_subcommand(
      "synth", "Write the synthetic shapes dataset (8 classes): the ModelNet40 ply_hdf5_2048 layout (--format h5), "
               "or .npy files in class folders (--format npy, needs no optional library)");
  synth->add_option("-o,--output", args->out, "Output directory")->capture_default_str();
  synth->add_option("--train-per-class", args->options.train_per_class, "Training clouds per class")->capture_default_str();
  synth->add_option("--test-per-class", args->options.test_per_class, "Test clouds per class")->capture_default_str();
  synth->add_option("--points", args->options.points, "Points per cloud")->capture_default_str();
  synth->add_option("--noise", args->options.noise, "Gaussian jitter, as a fraction of the shape's radius")->capture_default_str();
  synth->add_option("--occlusion", args->options.max_occlusion, "Largest share of the surface cut away by a random plane")
      ->capture_default_str();
  synth->add_option("--seed", args->options.seed, "Random seed")->capture_default_str();
  synth->add_option("--format", args->options.format, "h5 (read with data.dataset = modelnet_h5) or npy (modelnet_folder); "
                    "default: h5 when ewa is built with HDF5 (this build: " + datasets::default_synth_format() + ")");
  synth->add_flag("--force", args->force, "Write into --output even when it holds files (same names are replaced)");
  synth->callback([args] {
    check_output_dir(args->out, args->force, "--output");
    const int64_t n = datasets::write_synthetic_dataset(args->out, args->options);
    std::string classes;
    for (const auto& c : datasets::kSynthClasses) classes += (classes.empty() ? "" : ", ") + c;
    const std::string format = args->options.format.empty() ? datasets::default_synth_format() : args->options.format;
    print_line("wrote " + std::to_string(n) + " clouds of " + std::to_string(args->options.points) + " points (" + classes +
               ") to " + args->out + " (" + (format == "h5" ? "ModelNet40 hdf5 layout" : ".npy files in class folders") +
               "; train with data.dataset = \"" + datasets::synth_dataset_for(format) + "\", data.root = " + args->out + ")");
  });

  struct FileArgs {
    std::string out = "data/synthetic_files", format = "ply";
    int64_t per_class = 2;
    datasets::SynthOptions options;
    bool force = false;
  };
  auto fargs = std::make_shared<FileArgs>();
  fargs->options.seed = 1;  // other shapes than the dataset's (seed 0)
  auto* files = data->add_subcommand("synth-files", "Write synthetic shapes as single point files in class folders "
                                                    "(<out>/<class>/<class>_<i>.ply), like a folder of users' scans");
  files->add_option("-o,--output", fargs->out, "Output directory")->capture_default_str();
  files->add_option("--per-class", fargs->per_class, "Files per class")->capture_default_str();
  files->add_option("--format", fargs->format, "ply, npy or xyz")->capture_default_str();
  files->add_option("--points", fargs->options.points, "Points per cloud")->capture_default_str();
  files->add_option("--seed", fargs->options.seed, "Random seed")->capture_default_str();
  files->add_flag("--force", fargs->force, "Write into --output even when it holds files (same names are replaced)");
  files->callback([fargs] {
    check_output_dir(fargs->out, fargs->force, "--output");
    const int64_t n = datasets::write_synthetic_files(fargs->out, fargs->per_class, fargs->format, fargs->options);
    print_line("wrote " + std::to_string(n) + " ." + fargs->format + " files to " + fargs->out + "/<class>/");
  });

  struct PartArgs {
    std::string out = "data/synthetic_parts";
    datasets::SynthPartOptions options;
    bool force = false;
  };
  auto pargs = std::make_shared<PartArgs>();
  auto* parts = data->add_subcommand(
      "synth-parts", "Write synthetic part-labelled shapes (6 ShapeNetPart categories built from named parts) in "
                     "ShapeNetPart's released layout (read with data.dataset = shapenetpart)");
  parts->add_option("-o,--output", pargs->out, "Output directory")->capture_default_str();
  parts->add_option("--train-per-category", pargs->options.train_per_category, "Training shapes per category")
      ->capture_default_str();
  parts->add_option("--val-per-category", pargs->options.val_per_category, "Validation-list shapes per category")
      ->capture_default_str();
  parts->add_option("--test-per-category", pargs->options.test_per_category, "Test shapes per category")
      ->capture_default_str();
  parts->add_option("--noise", pargs->options.noise, "Gaussian jitter of the points")->capture_default_str();
  parts->add_option("--seed", pargs->options.seed, "Random seed")->capture_default_str();
  parts->add_flag("--force", pargs->force, "Write into --output even when it holds files (same names are replaced)");
  parts->callback([pargs] {
    check_output_dir(pargs->out, pargs->force, "--output");
    const int64_t n = datasets::write_synthetic_parts(pargs->out, pargs->options);
    print_line("wrote " + std::to_string(n) + " part-labelled shapes (Airplane, Lamp, Laptop, Mug, Rocket, Table) to " +
               pargs->out + " (ShapeNetPart layout; train with data.dataset = \"shapenetpart\", data.root = " +
               pargs->out + ")");
  });
}

}  // namespace ewa::app
