/* libFuzzer target: HEIF decoding through libheif (tests/fuzz/fuzz_image.h).
 * Seeds: tests/fuzz/seeds/fuzz_heif/. Run with `make fuzz`. */
#define FUZZ_FORMAT ND_FMT_HEIF
#include "fuzz_image.h"
