#include "study/study.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/fs.h"
#include "common/runtime.h"
#include "common/signals.h"
#include "common/text.h"
#include "viz/plot.h"

extern char** environ;

namespace ewa::study {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool safe_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; });
}

std::vector<std::string> string_list(const json& j, const std::string& file, const std::string& field) {
  if (!j.is_array()) fail(file + ": field '" + field + "': expected a list of \"key=value\" strings");
  std::vector<std::string> out;
  for (const auto& v : j) {
    if (!v.is_string() || v.get<std::string>().find('=') == std::string::npos)
      fail(file + ": field '" + field + "': expected a list of \"key=value\" strings, got " + v.dump());
    out.push_back(v.get<std::string>());
  }
  return out;
}

// A config's JSON flattened to dotted keys (for naming the first difference).
void flatten(const json& j, const std::string& prefix, std::map<std::string, json>& out) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) flatten(v, prefix.empty() ? k : prefix + "." + k, out);
  } else {
    out[prefix] = j;
  }
}

// What a run directory's study_run.json compares: the resolved config without train.threads (which
// --jobs sets and which does not change what a run computes).
json comparable(const Config& cfg) {
  json j = cfg.json;
  if (j.contains("train")) {
    j["train"].erase("threads");
  }
  return j;
}

// Marks `r`'s run directory as this study's, with the config plan() compares on the next call.
void write_stamp(const Study& study, const PlannedRun& r) {
  fs::create_directories(r.dir);
  write_text_atomically(r.dir + "/study_run.json",
                        json{{"study", study.name}, {"arm", r.arm}, {"seed", r.seed}, {"config", comparable(r.cfg)}}.dump(2) + "\n");
}

std::string first_difference(const json& a, const json& b) {
  std::map<std::string, json> fa, fb;
  flatten(a, "", fa);
  flatten(b, "", fb);
  for (const auto& [k, v] : fa) {
    const auto it = fb.find(k);
    if (it == fb.end()) return k + " (" + v.dump() + " before, absent now)";
    if (it->second != v) return k + " (" + v.dump() + " before, " + it->second.dump() + " now)";
  }
  for (const auto& [k, v] : fb)
    if (!fa.count(k)) return k + " (absent before, " + v.dump() + " now)";
  return "";
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || std::string("_-./=:,+@%").find(c) != std::string::npos;
      }))
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path + ": cannot open file");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    fail(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
}

}  // namespace

std::string Study::dir() const { return (fs::path(runs_dir) / name).string(); }

Study read_study(const std::string& path) {
  const json j = read_json_file(path);
  if (!j.is_object()) fail(path + ": expected a JSON object (a study file: docs/guide.md, \"Studies\")");
  static const std::set<std::string> known = {"name", "config", "set", "arms", "seeds", "metric", "key", "budget", "runs_dir", "description"};
  for (const auto& [k, v] : j.items())
    if (!known.count(k))
      fail(path + ": unknown field '" + k + "' (a study has name, description, config, set, arms, seeds, metric, key, budget, runs_dir)");
  Study s;
  s.file = path;
  auto text = [&](const char* field, bool required, const std::string& fallback) {
    if (!j.contains(field)) {
      if (required) fail(path + ": field '" + field + "' is missing");
      return fallback;
    }
    if (!j[field].is_string() || j[field].get<std::string>().empty()) fail(path + ": field '" + field + "': expected a non-empty string");
    return j[field].get<std::string>();
  };
  s.name = text("name", false, fs::path(path).stem().string());
  if (!safe_name(s.name)) fail(path + ": field 'name': '" + s.name + "' must be letters, digits, '_', '-' or '.' (it names a folder)");
  s.description = text("description", false, "");
  s.config = text("config", true, "");
  const fs::path base = fs::path(s.config).is_absolute() ? fs::path(s.config) : fs::path(path).parent_path() / s.config;
  s.config_path = base.lexically_normal().string();
  if (!fs::is_regular_file(s.config_path)) fail(path + ": field 'config': " + s.config_path + " is not a file");
  if (j.contains("set")) s.set = string_list(j["set"], path, "set");
  if (!j.contains("arms") || !j["arms"].is_array() || j["arms"].size() < 2)
    fail(path + ": field 'arms': expected a list of at least two arms, e.g. [{\"name\": \"dense\", \"set\": [\"moe.kind=dense\"], \"baseline\": true}, {\"name\": \"ewa\"}]");
  std::set<std::string> names;
  int baselines = 0;
  for (size_t i = 0; i < j["arms"].size(); ++i) {
    const auto& a = j["arms"][i];
    const std::string where = path + ": arms[" + std::to_string(i) + "]";
    if (!a.is_object()) fail(where + ": expected an object with name, set and optionally baseline");
    for (const auto& [k, v] : a.items())
      if (k != "name" && k != "set" && k != "baseline") fail(where + ": unknown field '" + k + "' (an arm has name, set, baseline)");
    Arm arm;
    if (!a.contains("name") || !a["name"].is_string() || !safe_name(a["name"].get<std::string>()))
      fail(where + ": field 'name': expected letters, digits, '_', '-' or '.' (it names a folder)");
    arm.name = a["name"].get<std::string>();
    if (!names.insert(arm.name).second) fail(where + ": arm name '" + arm.name + "' is used twice");
    if (a.contains("set")) arm.set = string_list(a["set"], path, "arms[" + std::to_string(i) + "].set");
    if (a.contains("baseline")) {
      if (!a["baseline"].is_boolean()) fail(where + ": field 'baseline': expected true or false");
      arm.baseline = a["baseline"].get<bool>();
    }
    if (arm.baseline) ++baselines, s.baseline = i;
    s.arms.push_back(arm);
  }
  if (baselines > 1) fail(path + ": field 'arms': " + std::to_string(baselines) + " arms say baseline: true; one may");
  if (baselines == 0) s.arms[0].baseline = true;  // the first arm by default
  if (!j.contains("seeds")) fail(path + ": field 'seeds' is missing: a count (10: seeds 0..9) or a list of seeds");
  const auto& seeds = j["seeds"];
  if (seeds.is_number_integer()) {
    const auto n = seeds.get<int64_t>();
    if (n < 2 || n > 100000) fail(path + ": field 'seeds': expected a count of at least 2, got " + seeds.dump());
    for (int64_t k = 0; k < n; ++k) s.seeds.push_back(k);
  } else if (seeds.is_array()) {
    std::set<int64_t> seen;
    for (const auto& v : seeds) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0)
        fail(path + ": field 'seeds': expected non-negative integers, got " + v.dump());
      if (!seen.insert(v.get<int64_t>()).second) fail(path + ": field 'seeds': seed " + v.dump() + " is listed twice");
      s.seeds.push_back(v.get<int64_t>());
    }
    if (s.seeds.size() < 2) fail(path + ": field 'seeds': a paired comparison needs at least 2 seeds");
  } else {
    fail(path + ": field 'seeds': expected a count (10: seeds 0..9) or a list of seeds");
  }
  s.metric = text("metric", false, "final");
  if (s.metric != "final" && s.metric != "best_on_test" && s.metric != "vote")
    fail(path + ": field 'metric': expected final, best_on_test or vote, got '" + s.metric + "'");
  s.key = text("key", false, "");
  if (j.contains("budget")) {
    const auto& b = j["budget"];
    if (!b.is_object()) fail(path + ": field 'budget': expected {\"epochs\": N}");
    for (const auto& [k, v] : b.items()) {
      if (k != "epochs") fail(path + ": field 'budget': unknown field '" + k + "' (the budget is {\"epochs\": N})");
      if (!v.is_number_integer() || v.get<int64_t>() < 1) fail(path + ": field 'budget.epochs': expected an integer >= 1, got " + v.dump());
      s.epochs = v.get<int64_t>();
    }
  }
  s.runs_dir = text("runs_dir", false, "runs");
  return s;
}

std::vector<std::string> PlannedRun::argv(const std::string& exe, int64_t threads) const {
  std::vector<std::string> a = {exe, "train", "--config", cfg_file};
  for (const auto& s : set) a.insert(a.end(), {"--set", s});
  if (threads > 0) a.insert(a.end(), {"--set", "train.threads=" + std::to_string(threads)});
  a.insert(a.end(), {"--name", "s" + std::to_string(seed)});
  if (state == RunState::Interrupted) a.insert(a.end(), {"--resume", dir + "/last.pt"});
  return a;
}

std::string PlannedRun::command_line(const std::string& exe, int64_t threads) const {
  std::string out;
  for (const auto& a : argv(exe, threads)) out += (out.empty() ? "" : " ") + shell_quote(a);
  return out;
}

std::vector<PlannedRun> plan(const Study& study) {
  std::vector<PlannedRun> runs;
  const json base = read_config_file(study.config_path);
  for (const int64_t seed : study.seeds)
    for (const auto& arm : study.arms) {
      PlannedRun r;
      r.arm = arm.name;
      r.seed = seed;
      r.cfg_file = study.config_path;
      r.dir = (fs::path(study.dir()) / arm.name / ("s" + std::to_string(seed))).string();
      r.set = study.set;
      r.set.insert(r.set.end(), arm.set.begin(), arm.set.end());
      if (study.epochs > 0) r.set.push_back("train.epochs=" + std::to_string(study.epochs));
      if (study.metric == "vote") r.set.push_back("eval.final_vote=true");
      r.set.push_back("train.seed=" + std::to_string(seed));
      r.set.push_back("train.runs_dir=" + (fs::path(study.dir()) / arm.name).string());
      const std::string source = "study " + study.file + ", arm '" + arm.name + "'";
      try {
        r.cfg = config_from_keys(base, r.set, source).with({{"name", "s" + std::to_string(seed)}});
      } catch (const Error& e) {
        const std::string msg = e.what();  // the config's own errors name the source already
        fail(msg.find(source) != std::string::npos ? msg : source + ": " + msg);
      }
      const std::string stamp = r.dir + "/study_run.json";
      if (fs::exists(r.dir)) {
        if (!fs::exists(stamp))
          fail(r.dir + " exists but was not made by this study (no study_run.json): move it away or name the study differently");
        const json before = read_json_file(stamp);
        const auto diff = first_difference(before.value("config", json::object()), comparable(r.cfg));
        if (!diff.empty())
          fail(r.dir + " was started with other settings: " + diff +
               "; give the study another name, or move that run directory away to start it again");
      }
      if (fs::exists(r.dir + "/metrics.json")) r.state = RunState::Finished;
      else if (fs::exists(r.dir + "/last.pt")) r.state = RunState::Interrupted;
      runs.push_back(std::move(r));
    }
  return runs;
}

namespace {

// The figure a finished run reports for the study's metric, in percent; NaN when it has none.
struct Figure {
  double value = NAN, seconds = NAN;
  std::string label;
};

Figure figure_of(const Study& study, const PlannedRun& r) {
  Figure f;
  const json m = read_json_file(r.dir + "/metrics.json");
  const json protocols = m.value("protocols", json::object());
  if (!protocols.contains(study.metric))
    fail(r.dir + "/metrics.json: has no '" + study.metric + "' figure (protocols." + study.metric + ")" +
         (study.metric == "vote" ? ": the run did not vote" : ""));
  const json& p = protocols[study.metric];
  const json& rec = study.metric == "vote" ? p : p.value("test", json::object());
  std::string key = study.key;
  if (key.empty()) key = rec.contains("oa") ? "oa" : "instance_miou";
  if (!rec.contains(key) || !rec[key].is_number())
    fail(r.dir + "/metrics.json: protocols." + study.metric + " has no number '" + key + "' (set the study's \"key\")");
  f.value = 100.0 * rec[key].get<double>();
  f.seconds = m.value("seconds", NAN);
  f.label = p.value("label", study.metric) + ", " + key;
  return f;
}

// test.<key> of every evaluated epoch of a run's log.jsonl, in percent (epoch -> value).
std::map<int64_t, double> curve_of(const std::string& dir, const std::string& key) {
  std::map<int64_t, double> out;
  std::ifstream in(dir + "/log.jsonl");
  for (std::string line; std::getline(in, line);) {
    json r;
    try {
      r = json::parse(line);
    } catch (const json::exception&) {
      continue;  // a line cut by a crash: the run's own resume rewrote what follows
    }
    if (r.value("type", "") != "epoch" || !r.contains("test") || !r["test"].contains(key)) continue;
    out[r.value("epoch", int64_t(0))] = 100.0 * r["test"][key].get<double>();
  }
  return out;
}

std::string pm(double v, const char* f = "%+.2f") { return std::isfinite(v) ? fmt(f, v) : "n/a"; }
std::string num(double v, const char* f = "%.2f") { return std::isfinite(v) ? fmt(f, v) : "n/a"; }
std::string pval(double p) {
  if (!std::isfinite(p)) return "n/a";
  return p < 0.001 ? fmt("%.1e", p) : fmt("%.3f", p);
}

}  // namespace

int64_t execute(const Study& study, std::vector<PlannedRun>& runs, const ExecuteOptions& options, const Reporter& report) {
  const std::string logs = study.dir() + "/logs";
  ensure_writable_dir(logs);
  const int64_t cores = options.cores > 0 ? options.cores : core_count();
  const bool threads_set = std::any_of(study.set.begin(), study.set.end(), [](const std::string& s) { return s.rfind("train.threads=", 0) == 0; });
  const int64_t threads = threads_set ? 0 : std::max<int64_t>(1, cores / std::max<int64_t>(1, options.jobs));
  std::vector<size_t> pending;
  for (size_t i = 0; i < runs.size(); ++i)
    if (runs[i].state != RunState::Finished) pending.push_back(i);
  const size_t total = pending.size();
  report("study " + study.name + ": " + std::to_string(runs.size()) + " runs (" + std::to_string(study.arms.size()) + " arms x " +
         std::to_string(study.seeds.size()) + " seeds), " + std::to_string(runs.size() - total) + " finished, " +
         std::to_string(total) + " to run, " + std::to_string(options.jobs) + " at once" +
         (threads ? " with " + std::to_string(threads) + (threads == 1 ? " thread" : " threads") + " each" : ""));
  install_stop_handlers();
  std::map<pid_t, size_t> running;
  std::map<pid_t, std::chrono::steady_clock::time_point> started;
  size_t next = 0, done = 0;
  int64_t failed = 0;
  int forwarded = 0;
  double finished_seconds = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while ((next < pending.size() && !forwarded) || !running.empty()) {
    const int sig = stop_signal();
    if (sig && !forwarded) {
      forwarded = sig;
      for (const auto& [pid, i] : running) ::kill(pid, sig);  // each run checkpoints and stops
      if (!running.empty()) report("stopping: " + std::to_string(running.size()) + " runs are saving their state ...");
    }
    while (!sig && next < pending.size() && int64_t(running.size()) < options.jobs) {
      PlannedRun& r = runs[pending[next++]];
      write_stamp(study, r);
      const std::string log = logs + "/" + r.arm + "-s" + std::to_string(r.seed) + ".log";
      append_line(log, "$ " + r.command_line(options.exe, threads));
      const auto args = r.argv(options.exe, threads);
      std::vector<char*> cargs;
      for (const auto& a : args) cargs.push_back(const_cast<char*>(a.c_str()));
      cargs.push_back(nullptr);
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
      posix_spawn_file_actions_adddup2(&actions, 1, 2);
      posix_spawnattr_t attr;
      posix_spawnattr_init(&attr);
      posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);  // Ctrl-C reaches the study, which passes it on once
      posix_spawnattr_setpgroup(&attr, 0);
      pid_t pid = 0;
      const int rc = posix_spawn(&pid, options.exe.c_str(), &actions, &attr, cargs.data(), environ);
      posix_spawn_file_actions_destroy(&actions);
      posix_spawnattr_destroy(&attr);
      if (rc != 0) fail(options.exe + ": cannot start (" + std::string(std::strerror(rc)) + ")");
      running[pid] = pending[next - 1];
      started[pid] = std::chrono::steady_clock::now();
      report("[" + std::to_string(done + running.size()) + "/" + std::to_string(total) + "] " +
             (r.state == RunState::Interrupted ? "resuming " : "started ") + r.arm + " seed " + std::to_string(r.seed) +
             " -> " + r.dir + " (log " + log + ")");
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    PlannedRun& r = runs[it->second];
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started[pid]).count();
    running.erase(it);
    ++done;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && fs::exists(r.dir + "/metrics.json");
    const std::string what = r.arm + " seed " + std::to_string(r.seed);
    if (ok) {
      r.state = RunState::Finished;
      finished_seconds += secs;
      const double avg = finished_seconds / double(done);
      const double eta = avg * double(pending.size() - next + running.size()) / double(std::max<int64_t>(1, options.jobs));
      std::string fig;
      try {
        const auto f = figure_of(study, r);
        fig = ": " + fmt("%.2f", f.value) + " (" + f.label + ")";
      } catch (const Error& e) {
        fig = ": " + std::string(e.what());
      }
      report("[" + std::to_string(done) + "/" + std::to_string(total) + "] " + what + " finished in " + duration_text(secs) + fig +
             (next < pending.size() || !running.empty() ? "; study ETA " + duration_text(eta) : ""));
    } else if (forwarded || (WIFEXITED(status) && (WEXITSTATUS(status) == 130 || WEXITSTATUS(status) == 143))) {
      r.state = fs::exists(r.dir + "/last.pt") ? RunState::Interrupted : RunState::New;
      report(what + " stopped" + (r.state == RunState::Interrupted ? " (its state is in " + r.dir + "/last.pt)" : ""));
    } else {
      ++failed;
      const auto lines = read_text_lines(logs + "/" + r.arm + "-s" + std::to_string(r.seed) + ".log");
      report(what + " failed (" +
             (WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status)) : "killed by " + signal_name(WTERMSIG(status))) +
             "): " + (lines.empty() ? std::string("no output") : lines.back()) + " (log " + logs + "/" + r.arm + "-s" +
             std::to_string(r.seed) + ".log)");
    }
  }
  if (forwarded)
    throw Interrupted(forwarded, "study " + study.name + " stopped by " + signal_name(forwarded) + " after " +
                                     duration_text(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()) +
                                     "; run the same command again to go on (finished runs are kept, stopped ones resume)");
  return failed;
}

std::string write_report(const Study& study, const std::vector<PlannedRun>& runs, const std::string& command) {
  // Figures by arm and seed.
  std::map<std::string, std::map<int64_t, double>> figures;
  std::map<std::string, std::vector<std::map<int64_t, double>>> curves;
  std::string label, key = study.key;
  double total_seconds = 0;
  int64_t finished = 0;
  for (const auto& r : runs) {
    if (r.state != RunState::Finished) continue;
    const auto f = figure_of(study, r);
    figures[r.arm][r.seed] = f.value;
    if (std::isfinite(f.seconds)) total_seconds += f.seconds;
    if (label.empty()) label = f.label;
    if (key.empty()) key = f.label.substr(f.label.rfind(", ") + 2);
    curves[r.arm].push_back(curve_of(r.dir, key));
    ++finished;
  }
  const std::string& base = study.arms[study.baseline].name;
  json out = {{"study", study.name}, {"file", study.file}, {"config", study.config}, {"metric", study.metric},
              {"label", label}, {"unit", "percent"}, {"command", command}, {"cpu", cpu_model_name()},
              {"runs_planned", runs.size()}, {"runs_finished", finished}, {"training_seconds", total_seconds},
              {"baseline", base}, {"arms", json::array()}, {"paired", json::array()}};
  std::ostringstream md;
  md << "# Study `" << study.name << "`\n\n" << (study.description.empty() ? "" : study.description + "\n\n")
     << "- command: `" << command << "`\n"
     << "- study file: `" << study.file << "`; base config `" << study.config << "`"
     << (study.set.empty() ? std::string() : "; every arm with `--set " + [&] {
          std::string s;
          for (const auto& x : study.set) s += (s.empty() ? "" : " ") + x;
          return s;
        }() + "`")
     << "\n- figure: " << (label.empty() ? study.metric : label) << ", in percent; seeds paired (same data order, "
     << "augmentation, shared initial weights and dropout per seed)\n"
     << "- runs: " << finished << " of " << runs.size() << " finished; training time " << duration_text(total_seconds)
     << " in all (sum over runs), " << cpu_model_name() << "\n\n";
  md << "| arm | set | n | mean | sd | 95% CI of the mean | min | max |\n|---|---|---|---|---|---|---|---|\n";
  for (const auto& arm : study.arms) {
    std::vector<double> v;
    for (const auto& [seed, x] : figures[arm.name]) v.push_back(x);
    const auto s = summarize(v);
    std::string sets;
    for (const auto& x : arm.set) sets += (sets.empty() ? "" : " ") + x;
    md << "| " << arm.name << (arm.baseline ? " (baseline)" : "") << " | `" << (sets.empty() ? "-" : sets) << "` | " << s.n
       << " | " << num(s.mean) << " | " << num(s.sd) << " | [" << num(s.ci_low) << ", " << num(s.ci_high) << "] | "
       << num(s.min) << " | " << num(s.max) << " |\n";
    json seeds = json::object();
    for (const auto& [seed, x] : figures[arm.name]) seeds[std::to_string(seed)] = x;
    out["arms"].push_back({{"name", arm.name}, {"set", arm.set}, {"baseline", arm.baseline}, {"figures", seeds},
                           {"n", s.n}, {"mean", s.mean}, {"sd", s.sd}, {"ci95", {s.ci_low, s.ci_high}}, {"min", s.min}, {"max", s.max}});
  }
  // b - a over the seeds both arms finished: a table row, the JSON record, the verdict line.
  const char* header =
      "| arm | pairs | mean diff | sd | 95% CI | paired t p | Wilcoxon p (exact) | signs +/-/0 | seeds for 80% power |\n"
      "|---|---|---|---|---|---|---|---|---|\n";
  std::vector<std::string> verdicts;
  auto compare = [&](const std::string& a_name, const std::string& b_name, const std::string& row_name, json& records) {
    std::vector<double> a, b;
    for (const auto& [seed, x] : figures[b_name]) {
      const auto it = figures[a_name].find(seed);
      if (it == figures[a_name].end()) continue;
      a.push_back(it->second);
      b.push_back(x);
    }
    const auto p = compare_paired(a, b);
    const auto& d = p.diff;
    md << "| " << row_name << " | " << d.n << " | " << pm(d.mean) << " | " << num(d.sd) << " | [" << pm(d.ci_low) << ", "
       << pm(d.ci_high) << "] | " << pval(p.p_t) << " | " << pval(p.wilcoxon.p) << " | " << p.wilcoxon.positive << "/"
       << p.wilcoxon.negative << "/" << p.wilcoxon.zero << " | "
       << (p.seeds_for_power < 0 ? std::string("n/a") : std::to_string(p.seeds_for_power)) << " |\n";
    records.push_back({{"arm", b_name}, {"against", a_name}, {"pairs", d.n}, {"mean", d.mean}, {"sd", d.sd},
                       {"ci95", {d.ci_low, d.ci_high}}, {"t", p.t}, {"p_t", p.p_t}, {"wilcoxon_p", p.wilcoxon.p},
                       {"wilcoxon_r_plus", p.wilcoxon.r_plus}, {"positive", p.wilcoxon.positive},
                       {"negative", p.wilcoxon.negative}, {"zero", p.wilcoxon.zero}, {"seeds_for_80_power", p.seeds_for_power}});
    std::string v = "- `" + b_name + "` - `" + a_name + "`: ";
    if (d.n < 2) {
      v += "fewer than 2 paired seeds so far";
    } else if (d.ci_low > 0 || d.ci_high < 0) {
      v += pm(d.mean) + " points, 95% CI [" + pm(d.ci_low) + ", " + pm(d.ci_high) + "]: the interval excludes 0 (by " +
           num(d.ci_low > 0 ? d.ci_low : -d.ci_high) + " points) at n = " + std::to_string(d.n);
    } else {
      v += pm(d.mean) + " points, 95% CI [" + pm(d.ci_low) + ", " + pm(d.ci_high) + "]: no effect shown at n = " +
           std::to_string(d.n) + " (within " + num(std::max(-d.ci_low, d.ci_high)) + " points)";
    }
    verdicts.push_back(v);
  };
  md << "\nPaired differences against `" << base << "` (arm minus baseline, on the seeds both finished):\n\n" << header;
  for (const auto& arm : study.arms)
    if (!arm.baseline) compare(base, arm.name, arm.name, out["paired"]);
  // With three arms or more, every other pair too (the second minus the first), e.g. EWA against
  // the controls that stand beside it.
  out["paired_other"] = json::array();
  bool first = true;
  for (size_t i = 0; i < study.arms.size(); ++i)
    for (size_t j = i + 1; j < study.arms.size(); ++j) {
      if (study.arms[i].baseline || study.arms[j].baseline) continue;
      if (first) md << "\nThe other pairs (second minus first):\n\n" << header;
      first = false;
      compare(study.arms[i].name, study.arms[j].name, study.arms[j].name + " - " + study.arms[i].name, out["paired_other"]);
    }
  md << "\n";
  for (const auto& v : verdicts) md << v << "\n";
  md << "\nPer seed:\n\n| seed |";
  for (const auto& arm : study.arms) md << " " << arm.name << " |";
  md << "\n|---|";
  for (size_t i = 0; i < study.arms.size(); ++i) md << "---|";
  md << "\n";
  for (const int64_t seed : study.seeds) {
    md << "| " << seed << " |";
    for (const auto& arm : study.arms) {
      const auto it = figures[arm.name].find(seed);
      md << " " << (it == figures[arm.name].end() ? std::string("-") : num(it->second)) << " |";
    }
    md << "\n";
  }
  // Learning curves: the mean and sd over seeds of every evaluated epoch.
  json jc = json::object();
  std::vector<viz::Series> series;
  for (size_t k = 0; k < study.arms.size(); ++k) {
    const auto& arm = study.arms[k];
    std::map<int64_t, std::vector<double>> by_epoch;
    for (const auto& c : curves[arm.name])
      for (const auto& [e, v] : c) by_epoch[e].push_back(v);
    viz::Series s;
    s.name = arm.name + " (mean +- sd)";
    json rows = json::array();
    for (const auto& [e, v] : by_epoch) {
      const auto sm = summarize(v);
      const double sd = std::isfinite(sm.sd) ? sm.sd : 0.0;
      s.x.push_back(double(e));
      s.y.push_back(sm.mean);
      s.low.push_back(sm.mean - sd);
      s.high.push_back(sm.mean + sd);
      rows.push_back({{"epoch", e}, {"n", sm.n}, {"mean", sm.mean}, {"sd", sm.sd}});
    }
    jc[arm.name] = rows;
    series.push_back(s);
  }
  out["curves"] = jc;
  const std::string dir = study.dir();
  ensure_writable_dir(dir);
  if (viz::built_with_cairo() && finished > 0) {
    ensure_writable_dir(dir + "/plots");
    std::vector<std::string> arm_names;
    std::vector<std::vector<double>> values;
    std::vector<std::array<double, 3>> intervals;
    for (const auto& arm : study.arms) {
      arm_names.push_back(arm.name);
      std::vector<double> col;
      std::vector<double> v;
      for (const int64_t seed : study.seeds) {
        const auto it = figures[arm.name].find(seed);
        col.push_back(it == figures[arm.name].end() ? NAN : it->second);
        if (it != figures[arm.name].end()) v.push_back(it->second);
      }
      values.push_back(col);
      const auto s = summarize(v);
      intervals.push_back({s.mean, s.ci_low, s.ci_high});
    }
    viz::write_paired_png(dir + "/plots/study.png", "study " + study.name + ": one dot per seed, lines join paired seeds",
                          (label.empty() ? study.metric : label) + " (%)", arm_names, values, intervals);
    viz::write_charts_png(dir + "/plots/curves.png",
                          {viz::Chart{"study " + study.name + ": test " + key + " per evaluated epoch", "epoch",
                                      key + " (%)", series, false, false}});
  }
  write_text_atomically(dir + "/study.json", out.dump(2) + "\n");
  write_text_atomically(dir + "/study.md", md.str());
  return md.str();
}

SlurmJob write_slurm_array(const Study& study, const std::vector<PlannedRun>& runs, const std::string& exe,
                           int64_t cpus_per_task, const std::vector<std::string>& sbatch_args, bool submit) {
  SlurmJob job;
  const std::string dir = fs::absolute(study.dir() + "/slurm").string();
  ensure_writable_dir(dir);
  ensure_writable_dir(study.dir() + "/logs");
  std::string lines;
  for (const auto& r : runs) {
    if (r.state == RunState::Finished) continue;
    write_stamp(study, r);
    // A task resumes its run when a checkpoint is there (a requeued or repeated array).
    const std::string fresh = r.command_line(exe, cpus_per_task);
    PlannedRun again = r;
    again.state = RunState::Interrupted;
    const std::string resume = again.command_line(exe, cpus_per_task);
    lines += "if [ -f " + shell_quote(r.dir + "/last.pt") + " ]; then " + resume + "; else " + fresh + "; fi >> " +
             shell_quote(fs::absolute(study.dir() + "/logs/" + r.arm + "-s" + std::to_string(r.seed) + ".log").string()) + " 2>&1\n";
    ++job.tasks;
  }
  if (job.tasks == 0) return job;
  write_text_atomically(dir + "/runs.txt", lines);
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# Written by `ewa study --launcher slurm` for study " << study.name << ": task i runs line i + 1 of runs.txt,\n"
    << "# an ordinary `ewa train` call; `ewa study " << study.file << " --report` gathers what has finished.\n"
    << "#SBATCH --job-name=ewa-" << study.name << "\n"
    << "#SBATCH --array=0-" << job.tasks - 1 << "\n"
    << "#SBATCH --cpus-per-task=" << cpus_per_task << "\n"
    << "#SBATCH --output=" << dir << "/task-%a.out\n"
    << "#SBATCH --signal=TERM@120\n";
  for (const auto& a : sbatch_args) s << "#SBATCH " << a << "\n";
  s << "set -u\ncd " << shell_quote(fs::current_path().string()) << "\n"
    << "line=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" " << shell_quote(dir + "/runs.txt") << ")\n"
    << "exec bash -c \"$line\"\n";
  job.script = dir + "/array.sbatch";
  write_text_atomically(job.script, s.str());
  if (submit) {
    const std::string cmd = "sbatch --parsable " + shell_quote(job.script) + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) fail("sbatch: cannot start (is Slurm installed? `--launcher slurm` needs sbatch on PATH)");
    char buf[512];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) job.answer.append(buf, n);
    const int status = ::pclose(p);
    while (!job.answer.empty() && (job.answer.back() == '\n' || job.answer.back() == '\r')) job.answer.pop_back();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail("sbatch " + job.script + " failed: " + (job.answer.empty() ? std::string("no output") : job.answer));
  }
  return job;
}

}  // namespace ewa::study
