/* libFuzzer target: PNM decoding (tests/fuzz/fuzz_image.h).
 * Seeds: tests/fuzz/seeds/fuzz_pnm/. Run with `make fuzz`. */
#define FUZZ_FORMAT ND_FMT_PNM
#include "fuzz_image.h"
