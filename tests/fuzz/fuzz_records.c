/* libFuzzer target: decoders of stored LMDB values (metadata, image records,
 * path entries, vectors, posting keys, the phash mark). The first byte picks the decoder; the
 * rest is the value. What decodes must re-encode to the same bytes where the
 * format is canonical (current header versions), and vectors must be usable. */
#include "neardup/store.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	nd_error err;
	if (size < 1)
		return 0;
	uint8_t which = data[0] % 6;
	data++;
	size--;
	uint8_t *buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	switch (which) {
	case 0: {
		nd_meta m;
		if (nd_meta_decode(buf, size, &m, &err) == 0) {
			uint8_t out[ND_META_HDR_V1 + ND_MODEL_NAME_MAX + 1];
			size_t len;
			if (nd_meta_encode(&m, out, sizeof(out), &len, &err) != 0)
				abort();
			nd_meta m2;
			if (nd_meta_decode(out, len, &m2, &err) != 0 || memcmp(&m, &m2, sizeof(m)) != 0)
				abort();
		}
		break;
	}
	case 1: {
		nd_record r;
		if (nd_record_decode(buf, size, &r, &err) == 0) {
			if (strlen(r.path) != r.path_len)
				abort();
			uint8_t *out = malloc(nd_record_encoded_size(r.path_len));
			size_t len;
			if (nd_record_encode(&r, out, nd_record_encoded_size(r.path_len), &len, &err) != 0)
				abort();
			nd_record r2;
			/* version 1 or 2 in, version 2 out: the identity survives */
			if (nd_record_decode(out, len, &r2, &err) != 0 || r2.size != r.size ||
			    r2.mtime_ns != r.mtime_ns || strcmp(r2.path, r.path) != 0 ||
			    r2.dev != r.dev || r2.ino != r.ino)
				abort();
			/* a current (version 2) value re-encodes to its own bytes */
			if (buf[1] == 2 && buf[2] == ND_RECORD_HDR_V2 && buf[3] == 0 &&
			    (len != size || memcmp(out, buf, len) != 0))
				abort();
			free(out);
		}
		break;
	}
	case 2: {
		uint32_t id;
		if (nd_pathval_decode(buf, size, &id, &err) == 0 && id == 0)
			abort();
		break;
	}
	case 3: {
		nd_vec_view v;
		if (nd_vector_decode(buf, size, 0, &v, &err) == 0) {
			float *x = malloc(sizeof(float) * v.dim), *q = calloc(v.dim, sizeof(float));
			nd_vector_dequant(&v, x);
			q[0] = 1.0f;
			volatile float d = nd_vector_dot(&v, q);
			(void)d;
			free(x);
			free(q);
		}
		break;
	}
	case 4: {
		uint32_t t, b, f;
		if (nd_posting_key_decode(buf, size, &t, &b, &f, &err) == 0) {
			uint8_t k[ND_POSTING_KEY_SIZE];
			nd_posting_key(t, b, f, k);
			if (t > 0xFFFF || memcmp(k, buf, sizeof(k)) != 0)
				abort();
		}
		break;
	}
	case 5: {
		uint32_t next;
		uint64_t n;
		if (nd_phash_mark_decode(buf, size, &next, &n, &err) == 0) {
			uint8_t k[ND_PHASH_MARK_SIZE];
			uint32_t next2;
			uint64_t n2;
			nd_phash_mark_encode(next, n, k);
			if (nd_phash_mark_decode(k, sizeof(k), &next2, &n2, &err) != 0 || next2 != next || n2 != n)
				abort();
		}
		break;
	}
	}
	free(buf);
	return 0;
}
