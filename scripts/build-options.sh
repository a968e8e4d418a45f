# The CMake options of the normal build tree `build`, sourced by
# scripts/test.sh and scripts/demo.sh so that both configure it alike (the
# demo builds only the binary; it never switches the tests off).
CRUNCHER_NORMAL_OPTIONS=(-DCRUNCHER_BUILD_TESTS=ON -DCRUNCHER_BUILD_BENCH=ON
  -DCRUNCHER_SANITIZE=OFF -DCRUNCHER_TSAN=OFF)
