/* libFuzzer target: JPEG decoding (plus prep on whatever decodes).
 * Seeds: tests/fuzz/seeds/fuzz_jpeg/. Run with `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>

#include "neardup/image.h"
#include "neardup/prep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	nd_image_opts o;
	nd_image img;
	nd_image_info info;
	nd_error err;
	nd_image_opts_init(&o);
	/* Small limits keep each run fast and inside libFuzzer's RSS limit. */
	o.max_pixels = (uint64_t)1 << 22;
	o.max_scans = 40;
	if (len & 1) { /* odd lengths take the scaled-decode path */
		o.min_width = 16;
		o.min_height = 16;
	}
	if (nd_image_decode_mem(data, len, &o, &img, &info, &err) == 0) {
		if (info.mem_bytes > o.max_memory) /* the bound checked is the one kept */
			abort();
		static const nd_prep_params p = { 24, 16, { 0.5f, 0.5f, 0.5f }, { 0.25f, 0.25f, 0.25f } };
		static float out[3 * 24 * 16];
		if (nd_prep_image(&img, &p, out, NULL, &err) != 0)
			abort();
		nd_image_free(&img);
	}
	return 0;
}
