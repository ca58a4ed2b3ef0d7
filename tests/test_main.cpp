#include <gtest/gtest.h>

#include "common/runtime.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ewa::init_threads();
  return RUN_ALL_TESTS();
}
