/* libFuzzer target: GIF decoding (tests/fuzz/fuzz_image.h).
 * Seeds: tests/fuzz/seeds/fuzz_gif/. Run with `make fuzz`. */
#define FUZZ_FORMAT ND_FMT_GIF
#include "fuzz_image.h"
