// Subcommands of the `ewa` program; each lives in its own apps/cmd_*.cpp and registers itself
// on the CLI11 app. Handlers throw ewa::Error for user mistakes; main() reports them.
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "config/config.h"
#include "infer/load.h"
#include "io/pretrained.h"
#include "dist/dist.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "models/point_transformer.h"
#include "eval/protocols.h"

namespace ewa::app {

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_config_command(CLI::App& app);
void add_data_command(CLI::App& app);
void add_pretrain_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_plot_command(CLI::App& app);
void add_show_command(CLI::App& app);
void add_gallery_command(CLI::App& app);
void add_svm_command(CLI::App& app);
void add_fewshot_command(CLI::App& app);
void add_study_command(CLI::App& app);

// Draws the plots of a run that has just finished into <dir>/plots/ and prints their names (a
// build without cairo draws none; a plot that fails is reported, not fatal).
void plot_finished_run(const std::string& dir);

// Flag checks with plain messages ("expected an integer >= 1, got '0'"), for CLI11's check().
CLI::Validator at_least(int64_t minimum);

// Models for inference from weights files (infer/load.h).
using infer::config_for_weights;
using infer::load_point_classifier;
using infer::load_point_segmenter;
using infer::PointClassifier;
using infer::PointSegmenter;

// The category index of --category (a ShapeNetPart category name, any case), -1 when empty;
// a one-line error naming the choices otherwise.
int64_t category_option(const std::string& name);

// Multi-process flags of train, finetune and pretrain.
struct DistArgs {
  int64_t nproc = 0;       // > 1: spawn that many local workers
  double timeout_s = 300;  // collectives give up after this long
};
void add_dist_options(CLI::App* cmd, DistArgs& args);
// The job this process belongs to: torchrun's or Slurm's variables, else a single process. With
// --nproc N > 1 (and no RANK yet), runs this command as N local workers instead and exits with
// their status.
std::shared_ptr<dist::Group> join_job(const DistArgs& args);
// argv of this process, kept for --nproc.
void set_program_args(int argc, char** argv);

// --split of eval and gallery: one of data::split_names() (train, val, test), default test.
void add_split_option(CLI::App* cmd, std::string& split);

// The evaluation protocol flags of eval and predict (docs/protocols.md): --protocol, --votes
// (data.votes: the tta passes), --views (eval.vote_views) and, with `repeats`, --repeats
// (eval.vote_repeats). 0 = the config's value.
struct ProtocolArgs {
  std::string protocol;
  int64_t votes = 0, views = 0, repeats = 0;
};
void add_protocol_options(CLI::App* cmd, ProtocolArgs& args, bool repeats);
// Applies --votes, --views and --repeats to cfg and returns the protocol: --protocol, or by
// default tta when data.votes > 1, else single (as training evaluates every epoch).
eval::EvalProtocol protocol_from(const ProtocolArgs& args, Config& cfg);

// Part segmentation is evaluated and predicted in one pass with the prediction restricted to the
// shape's category: eval and predict refuse the protocol flags for a point_seg checkpoint alike.
void refuse_protocol_for_parts(const ProtocolArgs& args, const std::string& checkpoint);

// Prints a progress line to stdout (the reporter the library calls back).
void print_line(const std::string& line);

}  // namespace ewa::app
