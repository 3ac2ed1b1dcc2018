/* libFuzzer target: AVIF decoding through libheif (tests/fuzz/fuzz_image.h).
 * Seeds: tests/fuzz/seeds/fuzz_avif/. Run with `make fuzz`. */
#define FUZZ_FORMAT ND_FMT_AVIF
#include "fuzz_image.h"
