/* libFuzzer target: BMP decoding (tests/fuzz/fuzz_image.h).
 * Seeds: tests/fuzz/seeds/fuzz_bmp/. Run with `make fuzz`. */
#define FUZZ_FORMAT ND_FMT_BMP
#include "fuzz_image.h"
