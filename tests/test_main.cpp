#include <gtest/gtest.h>

#include "common/runtime.h"
#include "common/signals.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ewa::init_threads();
  ewa::install_crash_handler();  // a crash says where (the GPU machine has no debugger)
  return RUN_ALL_TESTS();
}
