/* The body shared by the per-format libFuzzer targets (fuzz_webp.c, ...):
 * decode with small limits, check the memory bound kept, and run prep on
 * whatever decodes. FUZZ_FORMAT is the format the target is about: inputs
 * whose first bytes say otherwise are skipped, so each target's time goes
 * to its own decoder. */
#ifndef NEARDUP_FUZZ_IMAGE_H
#define NEARDUP_FUZZ_IMAGE_H

#include <stdint.h>
#include <stdlib.h>

#include "neardup/image.h"
#include "neardup/prep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

/* libheif's AV1 plugin leaves 40 bytes of libdav1d's behind on some corrupt
 * AVIF files: not ours to free, so not a finding */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libdav1d.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	nd_image_opts o;
	nd_image img;
	nd_image_info info;
	nd_error err;
	if (nd_image_sniff(data, len) != FUZZ_FORMAT)
		return 0;
	nd_image_opts_init(&o);
	/* small limits keep each run fast and inside libFuzzer's RSS limit */
	o.max_pixels = (uint64_t)1 << 22;
	o.max_memory = (size_t)32 << 20;
	if (len & 1) { /* odd lengths take the scaled-decode path */
		o.min_width = 16;
		o.min_height = 16;
	}
	if (nd_image_decode_mem(data, len, &o, &img, &info, &err) == 0) {
		static const nd_prep_params p = { 24, 16, { 0.5f, 0.5f, 0.5f }, { 0.25f, 0.25f, 0.25f } };
		static float out[3 * 24 * 16];
		if (info.mem_bytes > o.max_memory || info.format != FUZZ_FORMAT)
			abort();
		if (nd_prep_image(&img, &p, out, NULL, &err) != 0)
			abort();
		nd_image_free(&img);
	}
	return 0;
}

#endif
