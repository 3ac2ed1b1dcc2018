/* libFuzzer target: .ndm model files (src/cnn_model.c's validator), and a
 * forward pass through any model that loads and is small.
 * Built with -DND_FUZZING, which skips the checksums (the fuzzer could not
 * get past them) so that every other check is reached.
 * Seeds: tests/fuzz/seeds/fuzz_model/ (testnet_b.ndm from models/testnet.py;
 * tiny.ndm: the command in tests/fuzz/seeds/fuzz_model/README). */
#include <stdint.h>
#include <stdlib.h>

#include "neardup/calib.h"
#include "neardup/cnn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	nd_model *m = NULL;
	nd_workspace *ws = NULL;
	nd_error err;
	nd_model_info info;
	if (nd_model_load_mem(data, len, "fuzz", &m, &err) != 0)
		return 0;
	nd_model_get_info(m, &info);
	/* run what is cheap enough to run thousands of times a second */
	if (info.flops < 2e7 && nd_workspace_create(m, 2, &ws, &err) == 0 &&
	    nd_workspace_bytes(ws) < ((size_t)64 << 20)) {
		size_t nin = (size_t)2 * 3 * info.input_h * info.input_w;
		float *in = calloc(nin, sizeof *in);
		float *out = calloc((size_t)2 * info.embed_dim, sizeof *out);
		if (!in || !out)
			abort();
		for (size_t i = 0; i < nin; i++)
			in[i] = (float)(i % 17) * 0.25f - 2.0f;
		if (nd_model_forward(m, ws, in, 2, out, &err) != 0)
			abort(); /* a validated model must run */
		free(in);
		free(out);
	}
	/* a calibration that loads must work on any embedding */
	nd_calib *c = NULL;
	if (nd_calib_create(m, &c, &err) == 0) {
		float x[2 * 64], st[2];
		if (info.embed_dim <= 64) {
			for (int i = 0; i < 2 * info.embed_dim; i++)
				x[i] = (float)(i % 5) * 0.1f - 0.2f;
			if (nd_calib_stat(c, x, 2, st, &err) != 0 || !(st[0] == st[0]) || !(st[1] == st[1]))
				abort();
		}
		nd_calib_free(c);
	}
	nd_workspace_free(ws);
	nd_model_free(m);
	return 0;
}
