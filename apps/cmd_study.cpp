// ewa study: arms of a study file trained on paired seeds, then the report (src/study/study.h).
#include <unistd.h>

#include <filesystem>

#include "apps/commands.h"
#include "common/error.h"
#include "common/runtime.h"
#include "study/study.h"
#include "viz/plot.h"

namespace ewa::app {
namespace {

struct StudyArgs {
  std::string file, launcher = "local";
  int64_t jobs = 1, cpus_per_task = 0;
  bool dry_run = false, report_only = false, no_submit = false;
  std::vector<std::string> sbatch;
};

const char* viz_note() { return viz::built_with_cairo() ? ", plots/study.png, plots/curves.png" : " (plots need cairo)"; }

std::string self_exe() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) fail("cannot find the ewa program itself (/proc/self/exe): " + ec.message());
  return p.string();
}

const char* state_name(study::RunState s) {
  switch (s) {
    case study::RunState::Finished: return "finished";
    case study::RunState::Interrupted: return "interrupted (resumes)";
    default: return "to run";
  }
}

void run(const StudyArgs& a, const std::string& command) {
  const auto s = study::read_study(a.file);
  auto runs = study::plan(s);
  const std::string exe = self_exe();
  if (a.dry_run) {
    const int64_t threads = std::max<int64_t>(1, core_count() / std::max<int64_t>(1, a.jobs));
    print_line("study " + s.name + ": " + std::to_string(runs.size()) + " runs into " + s.dir() + "/<arm>/s<seed>");
    for (const auto& r : runs) print_line("  " + r.arm + " seed " + std::to_string(r.seed) + ": " + state_name(r.state) +
                                          (r.state == study::RunState::Finished ? "" : "\n    " + r.command_line(exe, threads)));
    return;
  }
  if (a.report_only) {
    print_line(study::write_report(s, runs, command));
    print_line("report: " + s.dir() + "/study.md, study.json" + std::string(viz_note()));
    return;
  }
  if (a.launcher == "slurm") {
    const int64_t cpus = a.cpus_per_task > 0 ? a.cpus_per_task : 1;
    const auto job = study::write_slurm_array(s, runs, exe, cpus, a.sbatch, !a.no_submit);
    if (job.tasks == 0) {
      print_line("study " + s.name + ": every run has finished; `ewa study " + a.file + " --report` writes the report");
      return;
    }
    print_line("wrote " + job.script + " (" + std::to_string(job.tasks) + " array tasks, each an `ewa train` call)");
    if (!a.no_submit) print_line("submitted: job " + job.answer);
    print_line("when they have run: ewa study " + a.file + " --report");
    return;
  }
  const int64_t failed = study::execute(s, runs, {exe, a.jobs, 0}, print_line);
  print_line(study::write_report(s, runs, command));
  print_line("report: " + s.dir() + "/study.md, study.json" + std::string(viz_note()));
  if (failed > 0) fail(std::to_string(failed) + " runs of study " + s.name + " failed (their logs are in " + s.dir() + "/logs/)");
}

}  // namespace

void add_study_command(CLI::App& app) {
  auto args = std::make_shared<StudyArgs>();
  auto* cmd = app.add_subcommand(
      "study", "Train the arms of a study file on paired seeds (runs/<study>/<arm>/s<seed>/), resume what was stopped, and "
               "report each arm's mean with its 95% interval and the paired differences with the baseline");
  cmd->add_option("study", args->file, "Study file (JSON: config, arms, seeds, metric; docs/guide.md \"Studies\")")->required();
  cmd->add_option("-j,--jobs", args->jobs, "Runs at once, the cores split between them (default 1)")->check(at_least(1));
  cmd->add_flag("--dry-run", args->dry_run, "List the runs, their state and their `ewa train` calls; run nothing");
  cmd->add_flag("--report", args->report_only, "Only gather the finished runs and write the report");
  cmd->add_option("--launcher", args->launcher, "local (default): run here; slurm: write and submit one job array of the runs")
      ->check(CLI::IsMember({"local", "slurm"}));
  cmd->add_option("--cpus-per-task", args->cpus_per_task, "Slurm: cores (and threads) of each run (default 1)")->check(at_least(1));
  cmd->add_option("--sbatch", args->sbatch, "Slurm: an extra #SBATCH line, e.g. --sbatch=--partition=gpu (repeatable)");
  cmd->add_flag("--no-submit", args->no_submit, "Slurm: write the job array without submitting it");
  cmd->callback([args] {
    std::string command = "ewa study " + args->file;
    if (args->jobs > 1) command += " --jobs " + std::to_string(args->jobs);
    if (args->report_only) command += " --report";
    run(*args, command);
  });
}

}  // namespace ewa::app
