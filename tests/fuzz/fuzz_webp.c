/* libFuzzer target: WEBP decoding (tests/fuzz/fuzz_image.h).
 * Seeds: tests/fuzz/seeds/fuzz_webp/. Run with `make fuzz`. */
#define FUZZ_FORMAT ND_FMT_WEBP
#include "fuzz_image.h"
