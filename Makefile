# Entry points (see README.md):
#   make demo   install dependencies, build, write the synthetic shapes, train a small
#               point-cloud transformer with EWA on them, convert it to the dense model,
#               print the dense model's test accuracy, write the run's plots and a gallery
#               of test predictions (PNG)
#   make demo-2d the same with a small ViT on Fashion-MNIST
#   make demo-pretrain  Point-MAE pretraining on unlabelled synthetic shapes, then EWA fine-tuning
#               from it on the labelled ones, converted to dense and evaluated
#   make test   install dependencies, build, run every test (ctest), then the same for the minimal
#               variant (build-min: no HDF5, PCL, Open3D, cairo, liblinear, libpng, libjpeg or CUDA, as on a
#               bare GPU image)
#   make test-minimal  only the minimal variant
#   make build  configure and compile only (no dependency install)
#   make bench  ewa bench train-step (the numbers of docs/benchmarks.md)
#   make doc-images  the PNGs of docs/guide.md "Predict and visualize" (after make demo)
#   make bench-dist  1 vs 2 data-parallel processes (bench/dist_scaling.sh, after make demo's data)
#   make sanitize  the test suite built with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan)
#   make fuzz   libFuzzer targets for each of our parsers (clang, build-fuzz), FUZZ_SECONDS each
#               (FUZZ_TARGETS="off npy" runs only those)
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
EWA = $(BUILD)/ewa
DEMO_RUNS = runs/demo
export OMP_WAIT_POLICY ?= PASSIVE
export PATH := /usr/local/cuda/bin:$(PATH)

SYNTH = data/synthetic_shapes

# The minimal variant: none of the optional libraries (what a bare GPU image has, Gloo's headers
# aside), CPU only. Commands that can work without them must work there; CI tests it.
MIN_BUILD ?= build-min
MIN_FLAGS = -DEWA_WITH_HDF5=OFF -DEWA_WITH_PCL=OFF -DEWA_WITH_OPEN3D=OFF -DEWA_WITH_CAIRO=OFF \
            -DEWA_WITH_LIBLINEAR=OFF -DEWA_WITH_PNG=OFF -DEWA_WITH_JPEG=OFF -DEWA_WITH_CUDA=OFF
# What this build has (from `ewa --version`), for the demos: the synthetic shapes as HDF5 where it
# is built in, else as .npy class folders (data.dataset modelnet_folder); plots only with cairo.
has = $(shell $(EWA) --version 2>/dev/null | grep -q '$(1) on' && echo yes)
SYNTH_SET = $(if $(call has,HDF5),modelnet_h5,modelnet_folder)
SYNTH_DIR = $(if $(call has,HDF5),$(SYNTH),$(SYNTH)_npy)

.PHONY: deps configure build test test-minimal test-minimal-only demo demo-run demo-pretrain-run bench-dist-run demo-2d demo-pretrain bench bench-dist bench-reference doc-images clean sanitize fuzz

deps:
	bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: deps
	$(MAKE) build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	$(MAKE) test-minimal-only

test-minimal: deps
	$(MAKE) test-minimal-only

test-minimal-only:
	$(MAKE) build BUILD=$(MIN_BUILD) CMAKE_FLAGS="$(MIN_FLAGS) $(CMAKE_FLAGS)"
	cd $(MIN_BUILD) && ctest --output-on-failure -j $(JOBS)

demo: deps
	$(MAKE) build
	$(MAKE) demo-run

# (a sub-make, so `has` asks the ewa just built)
demo-run:
	test -f $(SYNTH_DIR)/shape_names.txt || $(EWA) data synth -o $(SYNTH_DIR)
	rm -rf $(DEMO_RUNS)/synth_points_ewa
	$(EWA) train --config configs/synth_points_ewa.json --set train.runs_dir=$(DEMO_RUNS) \
	  --set data.dataset=$(SYNTH_SET) --set data.root=$(SYNTH_DIR)
	$(EWA) convert $(DEMO_RUNS)/synth_points_ewa/last.pt -o $(DEMO_RUNS)/synth_points_ewa/dense.pt
	$(EWA) eval $(DEMO_RUNS)/synth_points_ewa/dense.pt
	$(if $(call has,cairo),$(EWA) plot $(DEMO_RUNS)/synth_points_ewa,@echo "plots and gallery skipped: this build has no cairo")
	$(if $(call has,cairo),$(EWA) gallery $(DEMO_RUNS)/synth_points_ewa/dense.pt --split test -n 16)

demo-2d: deps
	$(MAKE) build
	rm -rf $(DEMO_RUNS)/fmnist_vit_ewa
	$(EWA) train --config configs/fmnist_vit_ewa.json --set train.runs_dir=$(DEMO_RUNS)
	$(EWA) convert $(DEMO_RUNS)/fmnist_vit_ewa/last.pt -o $(DEMO_RUNS)/fmnist_vit_ewa/dense.pt
	$(EWA) eval $(DEMO_RUNS)/fmnist_vit_ewa/dense.pt

UNLABELLED = data/synthetic_unlabelled
UNLABELLED_DIR = $(if $(call has,HDF5),$(UNLABELLED),$(UNLABELLED)_npy)

demo-pretrain: deps
	$(MAKE) build
	$(MAKE) demo-pretrain-run

demo-pretrain-run:
	test -f $(SYNTH_DIR)/shape_names.txt || $(EWA) data synth -o $(SYNTH_DIR)
	test -f $(UNLABELLED_DIR)/shape_names.txt || $(EWA) data synth -o $(UNLABELLED_DIR) --train-per-class 500 --test-per-class 25 --seed 7
	rm -rf $(DEMO_RUNS)/synth_pretrain $(DEMO_RUNS)/synth_finetune_ewa
	$(EWA) pretrain --config configs/synth_pretrain.json --set train.runs_dir=$(DEMO_RUNS) \
	  --set data.dataset=$(SYNTH_SET) --set data.root=$(UNLABELLED_DIR)
	$(EWA) finetune --init $(DEMO_RUNS)/synth_pretrain/last.pt --config configs/synth_points_ewa.json \
	  --name synth_finetune_ewa --set train.runs_dir=$(DEMO_RUNS) --set data.dataset=$(SYNTH_SET) --set data.root=$(SYNTH_DIR)
	$(EWA) convert $(DEMO_RUNS)/synth_finetune_ewa/last.pt -o $(DEMO_RUNS)/synth_finetune_ewa/dense.pt
	$(EWA) eval $(DEMO_RUNS)/synth_finetune_ewa/dense.pt

bench: build
	$(EWA) bench train-step --config configs/fmnist_vit_ewa.json
	$(EWA) bench train-step --config configs/synth_points_ewa.json --batch-size 32
	$(EWA) bench train-step --config configs/synth_pretrain.json --batch-size 32
	$(EWA) bench ops

# Our code instrumented (LibTorch is not). Leaks are not checked: LibTorch keeps allocations alive
# at exit; alloc/dealloc pairs across its allocator are not ours to judge.
SAN_BUILD ?= build-asan
SAN_ENV = ASAN_OPTIONS=detect_leaks=0:alloc_dealloc_mismatch=0:protect_shadow_gap=0:abort_on_error=1 \
          UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
sanitize: deps
	cmake -S . -B $(SAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEWA_SANITIZE=address,undefined \
	  -DEWA_WITH_CUDA=OFF $(CMAKE_FLAGS)
	cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && $(SAN_ENV) ctest --output-on-failure -j $(JOBS)

# libFuzzer (clang) on each parser of ours, FUZZ_SECONDS each, from seed corpora written by
# fuzz/make_corpus.py; crashes land in fuzz/artifacts/<target>/ (see fuzz/README.md).
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?=
fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_CXX_COMPILER=clang++ -DEWA_FUZZ=ON -DEWA_SANITIZE=address,undefined -DEWA_WITH_CUDA=OFF \
	  -DEWA_WITH_OPEN3D=OFF -DEWA_WITH_PCL=OFF -DEWA_BUILD_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target ewa_fuzz_targets
	bash fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

bench-reference: build
	EWA=$(EWA) bash bench/vs_reference.sh 3
	EWA=$(EWA) bash bench/vs_reference.sh --pretrain 3
	EWA=$(EWA) bash bench/vs_reference.sh --seg 2
	EWA=$(EWA) bash bench/vs_reference.sh --pointbert 2

bench-dist: build
	$(MAKE) bench-dist-run

bench-dist-run:
	test -f $(SYNTH_DIR)/shape_names.txt || $(EWA) data synth -o $(SYNTH_DIR)
	EWA=$(EWA) bash bench/dist_scaling.sh

doc-images: build
	EWA=$(EWA) bash scripts/make-doc-images.sh

clean:
	rm -rf $(BUILD)
