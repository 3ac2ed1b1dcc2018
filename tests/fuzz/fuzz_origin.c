/* libFuzzer target: the originality record of untrusted bytes (JPEG
 * markers, quantisation tables, EXIF), of whatever decodes (pixels), and
 * the stored record's decoder. Run with `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "neardup/image.h"
#include "neardup/origin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	nd_origin o;
	nd_error err;
	nd_origin_init(&o);
	nd_origin_from_bytes(data, len, &o);
	if (o.quality > 100 || o.camera > 1 || o.taken < 0)
		abort();
	if (len >= ND_ORIGIN_SIZE) {
		nd_origin back;
		uint8_t buf[ND_ORIGIN_SIZE];
		if (nd_origin_decode(data, &back, &err) == 0) {
			nd_origin_encode(&back, buf);
			if (memcmp(buf + 0, data + 0, 34) != 0) /* the fields before the reserved bytes */
				abort();
		}
	}
	nd_image_opts io;
	nd_image img;
	nd_image_info info;
	nd_image_opts_init(&io);
	io.max_pixels = (uint64_t)1 << 20;
	io.max_scans = 40;
	if (nd_image_decode_mem(data, len, &io, &img, &info, &err) == 0) {
		if (nd_origin_from_pixels(&img, info.scale_denom, &o, &err) != 0 ||
		    !(o.margin >= 0 && o.margin <= 1) || !(o.flat >= 0 && o.flat <= 1) ||
		    !(o.colour >= 0 && o.colour <= 1))
			abort();
		nd_image_free(&img);
	}
	return 0;
}
