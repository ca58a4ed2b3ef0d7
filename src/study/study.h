// `ewa study`: two or more configurations ("arms") trained on the same seeds and compared as
// paired samples (docs/guide.md, "Studies"). A study file is JSON:
//   {"name": "synth_small",                       runs go to <runs_dir>/<name>/<arm>/s<seed>/
//    "description": "...",                        what the study asks (the report's first line)
//    "config": "configs/synth_points_ewa.json",   the base config (relative to the study file)
//    "set": ["data.train_per_class=30"],          overrides of every arm (as --set)
//    "arms": [{"name": "dense", "set": ["moe.kind=dense"], "baseline": true},
//             {"name": "ewa", "set": []}],
//    "seeds": 10 (0..9) or [0, 1, 5],
//    "metric": "final" | "best_on_test" | "vote",  the figure compared (default final)
//    "key": "oa",                                  its field (default oa; instance_miou for point_seg)
//    "budget": {"epochs": 60},                     training epochs of every run (default the config's)
//    "runs_dir": "runs"}
// Every (arm, seed) is an ordinary run directory made by an ordinary `ewa train`; a finished run
// (metrics.json) is read back, an interrupted one (last.pt) resumed, so a study survives being
// stopped and started again. Arms of one seed are paired: the data order, augmentation, initial
// shared weights and dropout depend on the seed alone (common/random.h).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "study/stats.h"

namespace ewa::study {

struct Arm {
  std::string name;
  std::vector<std::string> set;
  bool baseline = false;
};

struct Study {
  std::string file;    // the study file
  std::string name, description;
  std::string config;  // the base config's path as given (relative to the study file's folder)
  std::string config_path;  // ... resolved
  std::vector<std::string> set;
  std::vector<Arm> arms;  // arms[baseline] is the baseline
  size_t baseline = 0;
  std::vector<int64_t> seeds;
  std::string metric = "final", key;
  int64_t epochs = 0;  // 0 = the config's train.epochs
  std::string runs_dir = "runs";
  std::string dir() const;  // <runs_dir>/<name>
};

// Reads and checks a study file; one-line errors name the file and the field.
Study read_study(const std::string& path);

enum class RunState { New, Interrupted, Finished };

struct PlannedRun {
  std::string arm;
  int64_t seed = 0;
  std::string dir;                 // the run directory
  std::string cfg_file;            // the base config it is called with
  std::vector<std::string> set;    // every override of its `ewa train` call, in order
  Config cfg;                      // its resolved config (before the dataset fills sizes)
  RunState state = RunState::New;
  std::string command_line(const std::string& exe, int64_t threads) const;  // shell-quoted
  std::vector<std::string> argv(const std::string& exe, int64_t threads) const;
};

// The runs of `study` in seed-major order (every arm of seed 0, then seed 1, ...), each config
// resolved (errors name the arm) and checked against what an existing run directory holds: a run
// started with other settings is refused naming the directory and the first key that differs.
std::vector<PlannedRun> plan(const Study& study);

using Reporter = std::function<void(const std::string&)>;

struct ExecuteOptions {
  std::string exe;     // the ewa program the runs call (`ewa train`)
  int64_t jobs = 1;    // runs at once
  int64_t cores = 0;   // cores to split between them (0: all)
};

// Runs every run that has not finished, `jobs` at once (each with cores / jobs threads unless the
// study sets train.threads), its output appended to <study>/logs/<arm>-s<seed>.log; stops
// launching on SIGINT/SIGTERM (the runs checkpoint and stop on the same signal) and waits for
// them. Returns the number of runs that failed; throws Interrupted after a stop.
int64_t execute(const Study& study, std::vector<PlannedRun>& runs, const ExecuteOptions& options, const Reporter& report);

// The figure of each finished run, the per-arm summaries and the paired comparisons with the
// baseline, the learning curves: study.json and study.md in the study's folder, plots/study.png
// and plots/curves.png (with cairo). Returns the Markdown report.
std::string write_report(const Study& study, const std::vector<PlannedRun>& runs, const std::string& command);

// A Slurm job array of the runs that have not finished: <study>/slurm/runs.txt (one `ewa train`
// call per line) and <study>/slurm/array.sbatch (task i runs line i + 1); submitted with sbatch
// when `submit`. Returns the sbatch script's path and sbatch's answer.
struct SlurmJob {
  std::string script, answer;
  int64_t tasks = 0;
};
SlurmJob write_slurm_array(const Study& study, const std::vector<PlannedRun>& runs, const std::string& exe,
                           int64_t cpus_per_task, const std::vector<std::string>& sbatch_args, bool submit);

}  // namespace ewa::study
