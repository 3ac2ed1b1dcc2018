/* libFuzzer target: TIFF decoding (tests/fuzz/fuzz_image.h).
 * Seeds: tests/fuzz/seeds/fuzz_tiff/. Run with `make fuzz`. */
#define FUZZ_FORMAT ND_FMT_TIFF
#include "fuzz_image.h"
