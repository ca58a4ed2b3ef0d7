// Precompiled header for every target that uses LibTorch: <torch/torch.h> costs tens of
// seconds per translation unit, so it is parsed once per build.
#pragma once
#include <torch/torch.h>
