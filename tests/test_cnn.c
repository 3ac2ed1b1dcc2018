/* Tests for the cnn module: every layer type against a naive reference
 * (random shapes; normalised error <= 1e-5, float32 against double), whole-
 * model parity with PyTorch on the committed test vectors (cosine >=
 * 0.99999), the OpenBLAS core choice, batching, threads, and bad files.
 *
 * The test vectors in tests/data/cnn/ come from models/testnet.py:
 *     /usr/bin/python3 models/testnet.py tests/data/cnn
 * and for a shipped model models/NAME.ndm (checked when its vectors exist):
 *     /usr/bin/python3 models/testnet.py --vectors tests/data/cnn/NAME \
 *         --factory MODULE:FN [--state-dict CKPT] --input-hw H W
 */
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <xxhash.h>

#include "blas.h"
#include "cnn_impl.h"
#include "neardup/cnn.h"
#include "lib_fs.h"
#include "test.h"

#define TOL_REL 1e-5    /* layer tests: ||y - ref|| / ||ref|| */
#define TOL_COS 0.99999 /* whole-model parity with PyTorch, per image */

/* ---------- helpers ---------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13, x ^= x >> 7, x ^= x << 17;
	return rng_state = x;
}
static int rnd_int(int lo, int hi) /* [lo, hi] */
{
	return lo + (int)(rnd() % (uint64_t)(hi - lo + 1));
}
static float rnd_f(void) /* about N(0, 1)-ish, in [-2, 2) */
{
	return (float)((double)(rnd() >> 11) / (double)(1ull << 53) * 4.0 - 2.0);
}

/* ---------- an in-memory .ndm writer (independent of models/export.py) ---------- */

typedef struct builder {
	struct ndm_layer layers[64];
	struct ndm_tensor tensors[128];
	int nl, nt;
	uint8_t *data;
	size_t dlen;
	int in_h, in_w;
	int shape[64][3];
} builder;

static void b_init(builder *b, int h, int w)
{
	memset(b, 0, sizeof *b);
	b->in_h = h, b->in_w = w;
}

static int b_tensor(builder *b, const char *name, int ndim, const int *shape, const float *v)
{
	struct ndm_tensor *t = &b->tensors[b->nt];
	size_t n = 1;
	memset(t, 0, sizeof *t);
	snprintf(t->name, sizeof t->name, "%s", name);
	t->dtype = NDM_F32;
	t->ndim = (uint32_t)ndim;
	for (int i = 0; i < 4; i++) {
		t->shape[i] = i < ndim ? (uint32_t)shape[i] : 1;
		n *= t->shape[i];
	}
	t->offset = (b->dlen + 63) & ~(size_t)63;
	t->size = n * 4;
	b->data = realloc(b->data, t->offset + t->size);
	memset(b->data + b->dlen, 0, t->offset - b->dlen);
	memcpy(b->data + t->offset, v, t->size);
	b->dlen = t->offset + t->size;
	return b->nt++;
}

static int od(int i, int k, int s, int p, int d)
{
	return (i + 2 * p - d * (k - 1) - 1) / s + 1;
}

/* Adds a layer; computes its output shape with the rules of FORMAT.md. */
static int b_layer(builder *b, int op, int act, int in0, int in1, int w, int bias,
		   const int *p, int np, const float *f, int nf)
{
	struct ndm_layer *L = &b->layers[b->nl];
	memset(L, 0, sizeof *L);
	L->op = (uint32_t)op, L->act = (uint32_t)act;
	L->in[0] = in0, L->in[1] = in1, L->weight = w, L->bias = bias;
	for (int i = 0; i < np; i++)
		L->p[i] = p[i];
	for (int i = 0; i < nf; i++)
		L->f[i] = f[i];
	snprintf(L->name, sizeof L->name, "layer%d", b->nl);
	int c = in0 < 0 ? 3 : b->shape[in0][0], h = in0 < 0 ? b->in_h : b->shape[in0][1];
	int wd = in0 < 0 ? b->in_w : b->shape[in0][2];
	int *o = b->shape[b->nl];
	switch (op) {
	case NDM_OP_CONV:
		o[0] = p[0], o[1] = od(h, p[1], p[3], p[5], p[7]), o[2] = od(wd, p[2], p[4], p[6], p[8]);
		break;
	case NDM_OP_LINEAR:
		o[0] = p[0], o[1] = o[2] = 1;
		break;
	case NDM_OP_MAXPOOL:
	case NDM_OP_AVGPOOL:
		o[0] = c, o[1] = od(h, p[0], p[2], p[4], 1), o[2] = od(wd, p[1], p[3], p[5], 1);
		break;
	case NDM_OP_GAP:
	case NDM_OP_GEM:
		o[0] = c, o[1] = o[2] = 1;
		break;
	case NDM_OP_FLATTEN:
		o[0] = c * h * wd, o[1] = o[2] = 1;
		break;
	default:
		o[0] = c, o[1] = h, o[2] = wd;
	}
	L->out_shape[0] = (uint32_t)o[0], L->out_shape[1] = (uint32_t)o[1], L->out_shape[2] = (uint32_t)o[2];
	return b->nl++;
}

static size_t al(size_t x)
{
	return (x + 63) & ~(size_t)63;
}

/* Rewrites all section checksums and the trailer of a file image. */
static void fix_checksums(uint8_t *buf, size_t len)
{
	struct ndm_header h;
	memcpy(&h, buf, sizeof h);
	for (uint32_t i = 0; i < h.section_count && i < NDM_MAX_SECTIONS; i++) {
		struct ndm_section s;
		memcpy(&s, buf + h.section_table + i * sizeof s, sizeof s);
		if (s.offset + s.size <= len) {
			s.xxh3 = XXH3_64bits(buf + s.offset, s.size);
			memcpy(buf + h.section_table + i * sizeof s, &s, sizeof s);
		}
	}
	uint64_t x = XXH3_64bits(buf, len - 8);
	memcpy(buf + len - 8, &x, 8);
}

/* The file image: out_layer's output is the embedding. bg_count > 0 adds a
 * background section; extra_type > 0 adds an unknown section of that type. */
static uint8_t *b_finish(builder *b, int out_layer, int bg_count, int extra_type, int extra_flags,
			 size_t *len)
{
	struct ndm_meta meta;
	memset(&meta, 0, sizeof meta);
	snprintf(meta.name, sizeof meta.name, "built-in-test");
	meta.in_c = 3, meta.in_h = (uint32_t)b->in_h, meta.in_w = (uint32_t)b->in_w;
	meta.embed_dim = (uint32_t)b->shape[out_layer][0];
	for (int i = 0; i < 3; i++)
		meta.mean[i] = 0.5f, meta.std[i] = 0.25f;
	meta.layer_count = (uint32_t)b->nl, meta.tensor_count = (uint32_t)b->nt;
	meta.output_layer = (uint32_t)out_layer;

	const void *body[6];
	size_t size[6];
	uint32_t type[6];
	int ns = 0;
	uint8_t *bg = NULL;
	type[ns] = NDM_SEC_META, body[ns] = &meta, size[ns++] = sizeof meta;
	type[ns] = NDM_SEC_TENSORS, body[ns] = b->tensors, size[ns++] = sizeof b->tensors[0] * (size_t)b->nt;
	type[ns] = NDM_SEC_LAYERS, body[ns] = b->layers, size[ns++] = sizeof b->layers[0] * (size_t)b->nl;
	type[ns] = NDM_SEC_DATA, body[ns] = b->data, size[ns++] = b->dlen;
	if (bg_count) {
		struct ndm_background bh = { (uint32_t)bg_count, meta.embed_dim, NDM_F16, 0 };
		size_t n = sizeof bh + (size_t)bg_count * meta.embed_dim * 2;
		bg = calloc(1, n);
		memcpy(bg, &bh, sizeof bh);
		uint16_t *v = (uint16_t *)(bg + sizeof bh);
		for (size_t i = 0; i < (size_t)bg_count * meta.embed_dim; i++)
			v[i] = (uint16_t)(0x3c00 + i); /* 1.0, then the next halves */
		type[ns] = NDM_SEC_BACKGROUND, body[ns] = bg, size[ns++] = n;
	}
	static const char extra[40] = "an extension from a newer writer";
	if (extra_type)
		type[ns] = (uint32_t)extra_type, body[ns] = extra, size[ns++] = sizeof extra;

	size_t pos = al(sizeof(struct ndm_header) + sizeof(struct ndm_section) * (size_t)ns);
	size_t offs[6];
	for (int i = 0; i < ns; i++) {
		offs[i] = pos;
		pos = al(pos + size[i]);
	}
	*len = pos + 8;
	uint8_t *buf = calloc(1, *len);
	struct ndm_header h;
	memset(&h, 0, sizeof h);
	memcpy(h.magic, NDM_MAGIC, 8);
	h.version = NDM_VERSION, h.header_size = sizeof h, h.file_size = *len;
	h.section_count = (uint32_t)ns, h.section_table = sizeof h;
	memcpy(buf, &h, sizeof h);
	for (int i = 0; i < ns; i++) {
		struct ndm_section s = { type[i], NDM_SEC_REQUIRED, offs[i], size[i], 0 };
		if (type[i] == NDM_SEC_BACKGROUND || (int)type[i] == extra_type)
			s.flags = type[i] == NDM_SEC_BACKGROUND ? 0 : (uint32_t)extra_flags;
		memcpy(buf + sizeof h + i * sizeof s, &s, sizeof s);
		if (size[i])
			memcpy(buf + offs[i], body[i], size[i]);
	}
	fix_checksums(buf, *len);
	free(bg);
	free(b->data);
	b->data = NULL;
	return buf;
}

/* Loads a built model, runs n images of input x, returns 0 and fills out. */
static int run_built(const uint8_t *buf, size_t len, const float *x, int n, float *out)
{
	nd_model *m = NULL;
	nd_workspace *ws = NULL;
	nd_error err;
	int rc = nd_model_load_mem(buf, len, "built", &m, &err);
	if (rc) {
		fprintf(stderr, "load: %s\n", err.msg);
		return rc;
	}
	rc = nd_workspace_create(m, n, &ws, &err);
	if (!rc)
		rc = nd_model_forward(m, ws, x, n, out, &err);
	if (rc)
		fprintf(stderr, "forward: %s\n", err.msg);
	nd_workspace_free(ws);
	nd_model_free(m);
	return rc;
}

static double rel_err(const float *y, const double *ref, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		double d = (double)y[i] - ref[i];
		num += d * d;
		den += ref[i] * ref[i];
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ---------- naive references, NCHW per image, double ---------- */

static double act_ref(double x, int act)
{
	switch (act) {
	case NDM_ACT_RELU: return x > 0 ? x : 0;
	case NDM_ACT_RELU6: return x < 0 ? 0 : x > 6 ? 6 : x;
	case NDM_ACT_HARDSWISH: { double t = x + 3; t = t < 0 ? 0 : t > 6 ? 6 : t; return x * t / 6; }
	case NDM_ACT_SILU: return x / (1 + exp(-x));
	default: return x;
	}
}

/* in [n][c][h][w] -> out [n][oc][oh][ow] */
static void conv_ref(const float *in, int n, int c, int h, int w, const float *wt, const float *bias,
		     int oc, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int g,
		     int act, double *out)
{
	int oh = od(h, kh, sh, ph, dh), ow = od(w, kw, sw, pw, dw), cg = c / g, kg = oc / g;
	for (int j = 0; j < n; j++)
		for (int k = 0; k < oc; k++)
			for (int y = 0; y < oh; y++)
				for (int x = 0; x < ow; x++) {
					double acc = bias ? bias[k] : 0;
					int g0 = (k / kg) * cg;
					for (int ci = 0; ci < cg; ci++)
						for (int a = 0; a < kh; a++)
							for (int bb = 0; bb < kw; bb++) {
								int iy = y * sh - ph + a * dh, ix = x * sw - pw + bb * dw;
								if (iy < 0 || iy >= h || ix < 0 || ix >= w)
									continue;
								acc += (double)wt[((size_t)(k * cg + ci) * kh + a) * kw + bb] *
								       in[(((size_t)j * c + g0 + ci) * h + iy) * w + ix];
							}
					out[(((size_t)j * oc + k) * oh + y) * ow + x] = act_ref(acc, act);
				}
}

/* ---------- layer tests ---------- */

static float *rand_buf(size_t n)
{
	float *v = malloc(n * sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = rnd_f();
	return v;
}

/* One convolution (+ flatten as the output) against conv_ref. */
static double check_conv(int n, int c, int h, int w, int oc, int kh, int kw, int sh, int sw, int ph,
			 int pw, int dh, int dw, int g, int act, int with_bias)
{
	builder b;
	b_init(&b, h, w);
	int ws[4] = { oc, c / g, kh, kw };
	size_t nw = (size_t)oc * (c / g) * kh * kw;
	float *wt = rand_buf(nw), *bias = rand_buf((size_t)oc);
	for (size_t i = 0; i < nw; i++)
		wt[i] *= 0.3f;
	int ti = b_tensor(&b, "w", 4, ws, wt), tb = with_bias ? b_tensor(&b, "b", 1, &oc, bias) : -1;
	int p[10] = { oc, kh, kw, sh, sw, ph, pw, dh, dw, g };
	int l0 = b_layer(&b, NDM_OP_CONV, act, -1, -1, ti, tb, p, 10, NULL, 0);
	int l1 = b_layer(&b, NDM_OP_FLATTEN, 0, l0, -1, -1, -1, NULL, 0, NULL, 0);
	size_t len;
	uint8_t *file = b_finish(&b, l1, 0, 0, 0, &len);
	int oh = od(h, kh, sh, ph, dh), ow = od(w, kw, sw, pw, dw);
	size_t nin = (size_t)n * 3 * h * w, nout = (size_t)n * oc * oh * ow;
	(void)c;
	float *x = rand_buf(nin), *y = calloc(nout, sizeof *y);
	double *ref = calloc(nout, sizeof *ref);
	conv_ref(x, n, 3, h, w, wt, with_bias ? bias : NULL, oc, kh, kw, sh, sw, ph, pw, dh, dw, g, act, ref);
	double e = run_built(file, len, x, n, y) ? 1e9 : rel_err(y, ref, nout);
	free(file), free(wt), free(bias), free(x), free(y), free(ref);
	return e;
}

static void test_conv_same_width(void)
{
	/* im2col's fast path: stride 1, output as wide as the input */
	struct { int n, h, w, oc, kh, kw, ph, pw, dh, dw; } cs[] = {
		{ 3, 9, 10, 4, 3, 3, 1, 1, 1, 1 },
		{ 2, 9, 10, 4, 5, 3, 0, 1, 1, 1 },  /* oh = h - 4 */
		{ 2, 7, 11, 5, 3, 3, 2, 2, 2, 2 },  /* dilated: dh = 2 takes the general path */
		{ 2, 7, 11, 5, 3, 3, 1, 2, 1, 2 },  /* dilated across only */
		{ 1, 6, 5, 3, 5, 5, 2, 2, 1, 1 },   /* xoff -2..2 on a 5-wide input */
		{ 2, 4, 1, 3, 3, 1, 1, 0, 1, 1 },   /* w = 1 */
		{ 2, 1, 6, 3, 1, 3, 0, 1, 1, 1 },   /* h = 1 */
		{ 2, 3, 2, 3, 5, 5, 2, 2, 1, 1 },   /* kernel larger than the input */
	};
	for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
		double e = check_conv(cs[i].n, 3, cs[i].h, cs[i].w, cs[i].oc, cs[i].kh, cs[i].kw, 1, 1,
				      cs[i].ph, cs[i].pw, cs[i].dh, cs[i].dw, 1, NDM_ACT_NONE, 1);
		CHECK_MSG(e <= TOL_REL, "case %zu: %g", i, e);
	}
}

static void test_conv_random(void)
{
	/* the input of a one-layer model has 3 channels: groups 1 or 3 */
	for (int t = 0; t < 60; t++) {
		int kh = rnd_int(1, 5), kw = rnd_int(1, 5), sh = rnd_int(1, 3), sw = rnd_int(1, 3);
		int dh = rnd_int(1, 2), dw = rnd_int(1, 2), ph = rnd_int(0, 2), pw = rnd_int(0, 2);
		int h = rnd_int(dh * (kh - 1) + 1, 19), w = rnd_int(dw * (kw - 1) + 1, 21);
		int g = rnd_int(0, 2) ? 1 : 3;
		int oc = g * rnd_int(1, 6), act = rnd_int(0, NDM_ACT_COUNT_ - 1), n = rnd_int(1, 5);
		if (t == 0) /* 1x1 direct path */
			kh = kw = sh = sw = dh = dw = 1, ph = pw = 0;
		double e = check_conv(n, 3, h, w, oc, kh, kw, sh, sw, ph, pw, dh, dw, g, act, t % 4 != 1);
		CHECK_MSG(e <= TOL_REL, "conv n=%d %dx%d oc=%d k=%dx%d s=%dx%d p=%dx%d d=%dx%d g=%d act=%d: %g",
			  n, h, w, oc, kh, kw, sh, sw, ph, pw, dh, dw, g, act, e);
	}
}

/* A stack: stem conv to C channels, then the layer under test on it. Covers
 * wide convs (im2col chunking), depthwise with multipliers, groups. */
static double check_deep_conv(int n, int c, int h, int w, int oc, int k, int s, int p, int g, int act)
{
	builder b;
	b_init(&b, h, w);
	int s0[4] = { c, 3, 1, 1 }, s1[4] = { oc, c / g, k, k };
	size_t n0 = (size_t)c * 3, n1 = (size_t)oc * (c / g) * k * k;
	float *w0 = rand_buf(n0), *w1 = rand_buf(n1), *b1 = rand_buf((size_t)oc);
	for (size_t i = 0; i < n1; i++)
		w1[i] *= 0.2f;
	int t0 = b_tensor(&b, "w0", 4, s0, w0), t1 = b_tensor(&b, "w1", 4, s1, w1);
	int tb = b_tensor(&b, "b1", 1, &oc, b1);
	int p0[10] = { c, 1, 1, 1, 1, 0, 0, 1, 1, 1 }, p1[10] = { oc, k, k, s, s, p, p, 1, 1, g };
	int l0 = b_layer(&b, NDM_OP_CONV, 0, -1, -1, t0, -1, p0, 10, NULL, 0);
	int l1 = b_layer(&b, NDM_OP_CONV, act, l0, -1, t1, tb, p1, 10, NULL, 0);
	int l2 = b_layer(&b, NDM_OP_FLATTEN, 0, l1, -1, -1, -1, NULL, 0, NULL, 0);
	size_t len;
	uint8_t *file = b_finish(&b, l2, 0, 0, 0, &len);
	int o = od(h, k, s, p, 1), ow = od(w, k, s, p, 1);
	size_t nin = (size_t)n * 3 * h * w, nmid = (size_t)n * c * h * w, nout = (size_t)n * oc * o * ow;
	float *x = rand_buf(nin), *y = calloc(nout, sizeof *y), *midf = malloc(nmid * sizeof *midf);
	double *mid = calloc(nmid, sizeof *mid), *ref = calloc(nout, sizeof *ref);
	conv_ref(x, n, 3, h, w, w0, NULL, c, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, mid);
	for (size_t i = 0; i < nmid; i++)
		midf[i] = (float)mid[i];
	conv_ref(midf, n, c, h, w, w1, b1, oc, k, k, s, s, p, p, 1, 1, g, act, ref);
	double e = run_built(file, len, x, n, y) ? 1e9 : rel_err(y, ref, nout);
	free(file), free(w0), free(w1), free(b1), free(x), free(y), free(midf), free(mid), free(ref);
	return e;
}

static void test_conv_wide_grouped_depthwise(void)
{
	struct { int n, c, h, w, oc, k, s, p, g, act; } cs[] = {
		{ 8, 64, 32, 32, 64, 3, 1, 1, 1, NDM_ACT_RELU },   /* 590k col floats/image: row bands */
		{ 3, 40, 30, 20, 16, 5, 1, 2, 1, NDM_ACT_NONE },   /* 5x5 same, bands of 262144/(1000*20) rows */
		{ 2, 300, 12, 12, 8, 3, 2, 1, 1, NDM_ACT_RELU },   /* stride 2, bands on the general path */
		{ 3, 16, 13, 11, 16, 3, 1, 1, 16, NDM_ACT_RELU6 }, /* depthwise */
		{ 2, 16, 14, 15, 16, 3, 2, 1, 16, NDM_ACT_NONE },  /* depthwise stride 2 */
		{ 2, 8, 12, 12, 24, 5, 3, 2, 8, NDM_ACT_SILU },    /* depthwise, multiplier 3, stride 3 */
		{ 2, 8, 20, 21, 8, 3, 2, 0, 8, NDM_ACT_NONE },     /* depthwise stride 2, no padding */
		{ 1, 4, 9, 40, 8, 7, 1, 3, 4, NDM_ACT_RELU },      /* depthwise 7x7, multiplier 2 */
		{ 3, 12, 9, 10, 18, 3, 1, 0, 3, NDM_ACT_HARDSWISH }, /* grouped */
		{ 2, 16, 8, 8, 32, 1, 1, 0, 4, NDM_ACT_RELU },     /* grouped 1x1 direct */
		{ 1, 32, 7, 5, 8, 1, 2, 0, 1, NDM_ACT_NONE },      /* 1x1 stride 2: im2col path */
	};
	for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
		double e = check_deep_conv(cs[i].n, cs[i].c, cs[i].h, cs[i].w, cs[i].oc, cs[i].k, cs[i].s,
					   cs[i].p, cs[i].g, cs[i].act);
		CHECK_MSG(e <= TOL_REL, "case %zu: %g", i, e);
	}
}

/* Pools, GAP, GeM, affine, add, act, linear, l2norm on random shapes. */
static void test_other_layers(void)
{
	for (int t = 0; t < 40; t++) {
		int n = rnd_int(1, 4), h = rnd_int(3, 15), w = rnd_int(3, 15), c = 3;
		int kind = t % 8;
		builder b;
		b_init(&b, h, w);
		size_t nin = (size_t)n * c * h * w;
		float *x = rand_buf(nin);
		double *ref = NULL;
		size_t nout = 0;
		int out = -1;
		int act = rnd_int(0, NDM_ACT_COUNT_ - 1);
		float sc[3], sh_[3];
		for (int i = 0; i < 3; i++)
			sc[i] = rnd_f(), sh_[i] = rnd_f();
		if (kind <= 1) { /* max / avg pool */
			int kh = rnd_int(1, 3), kw = rnd_int(1, 3), s1 = rnd_int(1, 3), s2 = rnd_int(1, 3);
			int ph = rnd_int(0, kh / 2), pw = rnd_int(0, kw / 2), cp = rnd_int(0, 1);
			int p[7] = { kh, kw, s1, s2, ph, pw, kind ? cp : 0 };
			int l = b_layer(&b, kind ? NDM_OP_AVGPOOL : NDM_OP_MAXPOOL, act, -1, -1, -1, -1, p, 7, NULL, 0);
			out = b_layer(&b, NDM_OP_FLATTEN, 0, l, -1, -1, -1, NULL, 0, NULL, 0);
			int oh = od(h, kh, s1, ph, 1), ow = od(w, kw, s2, pw, 1);
			nout = (size_t)n * c * oh * ow;
			ref = calloc(nout, sizeof *ref);
			for (int j = 0; j < n; j++)
				for (int k = 0; k < c; k++)
					for (int y = 0; y < oh; y++)
						for (int xx = 0; xx < ow; xx++) {
							double acc = kind ? 0 : -1e300;
							int cnt = 0;
							for (int a = 0; a < kh; a++)
								for (int bb = 0; bb < kw; bb++) {
									int iy = y * s1 - ph + a, ix = xx * s2 - pw + bb;
									if (iy < 0 || iy >= h || ix < 0 || ix >= w)
										continue;
									double v = x[(((size_t)j * c + k) * h + iy) * w + ix];
									acc = kind ? acc + v : (v > acc ? v : acc);
									cnt++;
								}
							if (kind)
								acc /= cp ? kh * kw : cnt;
							ref[(((size_t)j * c + k) * oh + y) * ow + xx] = act_ref(acc, act);
						}
		} else if (kind == 2 || kind == 3) { /* GAP / GeM, then linear, then l2norm */
			float pg = kind == 3 ? (float)rnd_int(1, 8) * 0.5f + 0.5f : 0, eps = 1e-6f;
			float f[2] = { pg, eps };
			int l = b_layer(&b, kind == 2 ? NDM_OP_GAP : NDM_OP_GEM, 0, -1, -1, -1, -1, NULL, 0, f, 2);
			int d = rnd_int(1, 9), ls[2] = { d, c };
			float *lw = rand_buf((size_t)d * c), *lb = rand_buf((size_t)d);
			int tw = b_tensor(&b, "fc.w", 2, ls, lw), tb = b_tensor(&b, "fc.b", 1, &d, lb);
			int pl[1] = { d };
			int l2 = b_layer(&b, NDM_OP_LINEAR, act, l, -1, tw, tb, pl, 1, NULL, 0);
			float fe[1] = { 1e-12f };
			out = b_layer(&b, NDM_OP_L2NORM, 0, l2, -1, -1, -1, NULL, 0, fe, 1);
			nout = (size_t)n * d;
			ref = calloc(nout, sizeof *ref);
			for (int j = 0; j < n; j++) {
				double pool[3], ss = 0;
				for (int k = 0; k < c; k++) {
					double acc = 0;
					for (int i = 0; i < h * w; i++) {
						double v = x[((size_t)j * c + k) * h * w + i];
						if (kind == 3)
							acc += pow(v > eps ? v : eps, pg);
						else
							acc += v;
					}
					acc /= h * w;
					pool[k] = kind == 3 ? pow(acc, 1.0 / pg) : acc;
				}
				for (int o = 0; o < d; o++) {
					double acc = lb[o];
					for (int k = 0; k < c; k++)
						acc += (double)lw[o * c + k] * pool[k];
					ref[(size_t)j * d + o] = act_ref(acc, act);
					ss += ref[(size_t)j * d + o] * ref[(size_t)j * d + o];
				}
				for (int o = 0; o < d; o++)
					ref[(size_t)j * d + o] /= fmax(sqrt(ss), 1e-12);
			}
			free(lw), free(lb);
		} else { /* affine, act, add(input, affine), flatten */
			int cs = 3;
			int ta = b_tensor(&b, "s", 1, &cs, sc), tb = b_tensor(&b, "t", 1, &cs, sh_);
			int l0 = b_layer(&b, NDM_OP_AFFINE, 0, -1, -1, ta, tb, NULL, 0, NULL, 0);
			int l1 = b_layer(&b, NDM_OP_ACT, act, l0, -1, -1, -1, NULL, 0, NULL, 0);
			int l2 = b_layer(&b, NDM_OP_ADD, kind == 7 ? NDM_ACT_RELU : 0, l1, -1, -1, -1, NULL, 0, NULL, 0);
			out = b_layer(&b, NDM_OP_FLATTEN, 0, l2, -1, -1, -1, NULL, 0, NULL, 0);
			nout = nin;
			ref = calloc(nout, sizeof *ref);
			for (size_t i = 0; i < nin; i++) {
				int k = (int)(i / ((size_t)h * w) % 3);
				double v = act_ref((double)x[i] * sc[k] + sh_[k], act) + x[i];
				ref[i] = kind == 7 ? act_ref(v, NDM_ACT_RELU) : v;
			}
		}
		size_t len;
		uint8_t *file = b_finish(&b, out, 0, 0, 0, &len);
		float *y = calloc(nout, sizeof *y);
		double e = run_built(file, len, x, n, y) ? 1e9 : rel_err(y, ref, nout);
		CHECK_MSG(e <= TOL_REL, "kind %d n=%d %dx%d act=%d: %g", kind, n, h, w, act, e);
		free(file), free(x), free(y), free(ref);
	}
}

/* ---------- whole model parity with PyTorch ---------- */

/* Runs model file `model` on the vectors tests/data/cnn/NAME.{in,out}.f32. */
static void parity_file(const char *model, const char *name);

static void parity(const char *name)
{
	char path[256];
	snprintf(path, sizeof path, "%s/cnn/%s.ndm", TEST_DATA_DIR, name);
	parity_file(path, name);
}

static void parity_file(const char *model, const char *name)
{
	char path[512];
	nd_model *m = NULL;
	nd_workspace *ws = NULL;
	nd_error err;
	nd_model_info info;
	size_t lin = 0, lout = 0;
	int rc = nd_model_load(model, &m, &err);
	CHECK_MSG(rc == 0, "%s", err.msg);
	if (rc)
		return;
	nd_model_get_info(m, &info);
	if (!strncmp(name, "testnet", 7))
		CHECK(strcmp(info.name, name) == 0);
	snprintf(path, sizeof path, "%s/cnn/%s.in.f32", TEST_DATA_DIR, name);
	float *in = tl_read_file(path, &lin);
	snprintf(path, sizeof path, "%s/cnn/%s.out.f32", TEST_DATA_DIR, name);
	float *want = tl_read_file(path, &lout);
	CHECK(in && want);
	size_t per_in = (size_t)3 * info.input_h * info.input_w * 4, per_out = (size_t)info.embed_dim * 4;
	int n = (int)(lin / per_in);
	CHECK(n >= 1 && lin == (size_t)n * per_in);
	CHECK_EQ_INT(lout, (size_t)n * per_out);
	if (!in || !want || n < 1 || lin != (size_t)n * per_in || lout != (size_t)n * per_out)
		goto done;
	float *got = calloc((size_t)n * info.embed_dim, sizeof *got);
	rc = nd_workspace_create(m, n, &ws, &err);
	CHECK_MSG(rc == 0, "%s", err.msg);
	for (int pass = 0; pass < 2 && !rc; pass++) {
		/* pass 0: the whole batch at once; pass 1: one image per call */
		if (pass == 0)
			rc = nd_model_forward(m, ws, in, n, got, &err);
		for (int j = 0; pass == 1 && j < n && !rc; j++)
			rc = nd_model_forward(m, ws, in + (size_t)j * per_in / 4, 1,
					      got + (size_t)j * info.embed_dim, &err);
		CHECK_MSG(rc == 0, "%s", err.msg);
		for (int j = 0; j < n; j++) {
			double dot = 0, na = 0, nb = 0;
			for (int k = 0; k < info.embed_dim; k++) {
				double a = got[(size_t)j * info.embed_dim + k], b = want[(size_t)j * info.embed_dim + k];
				dot += a * b, na += a * a, nb += b * b;
			}
			double cosv = dot / sqrt(na * nb);
			CHECK_MSG(cosv >= TOL_COS, "%s image %d pass %d: cosine %.8f", name, j, pass, cosv);
			CHECK_NEAR(sqrt(na), 1.0, 1e-4);
		}
	}
	free(got);
done:
	free(in);
	free(want);
	nd_workspace_free(ws);
	nd_model_free(m);
}

static void test_parity_testnet_a(void)
{
	parity("testnet_a");
}

static void test_parity_testnet_b(void)
{
	parity("testnet_b");
}

/* Every shipped model (models/NAME.ndm) with vectors tests/data/cnn/NAME.*.f32
 * (models/testnet.py --vectors) gets the same parity check. */
static void test_parity_shipped(void)
{
	DIR *d = opendir("models");
	int found = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		size_t l = strlen(e->d_name);
		char name[256], vec[512], model[512];
		if (l < 5 || l > 200 || strcmp(e->d_name + l - 4, ".ndm"))
			continue;
		snprintf(name, sizeof name, "%.*s", (int)(l - 4), e->d_name);
		snprintf(vec, sizeof vec, "%s/cnn/%s.in.f32", TEST_DATA_DIR, name);
		if (access(vec, R_OK))
			continue;
		snprintf(model, sizeof model, "models/%s", e->d_name);
		printf("parity of %s\n", model);
		parity_file(model, name);
		found++;
	}
	if (d)
		closedir(d);
	printf("%d shipped model(s) with test vectors\n", found);
}

static void test_info_and_background(void)
{
	nd_model *m = NULL;
	nd_error err;
	nd_model_info info;
	int rc = nd_model_load(TEST_DATA_DIR "/cnn/testnet_b.ndm", &m, &err);
	CHECK_MSG(rc == 0, "%s", err.msg);
	if (rc)
		return;
	nd_model_get_info(m, &info);
	CHECK_EQ_INT(info.input_h, 30);
	CHECK_EQ_INT(info.input_w, 34);
	CHECK_EQ_INT(info.embed_dim, 20);
	CHECK_NEAR(info.mean[0], 0.485, 1e-7);
	CHECK_NEAR(info.std[2], 0.225, 1e-7);
	CHECK(info.flops > 0);
	CHECK_EQ_INT(info.background_count, 8);
	/* the checksum is the file's XXH3-64 trailer */
	size_t len;
	uint8_t *raw = tl_read_file(TEST_DATA_DIR "/cnn/testnet_b.ndm", &len);
	CHECK(raw && info.checksum == XXH3_64bits(raw, len - 8));
	free(raw);
	const uint16_t *bg;
	size_t count;
	int dim;
	CHECK_EQ_INT(nd_model_background(m, &bg, &count, &dim), 0);
	CHECK_EQ_INT(count, 8);
	CHECK_EQ_INT(dim, 20);
	/* bg[k][d] = (k - d)/16 in half precision: check a few exactly */
	CHECK_EQ_INT(bg[0 * 20 + 0], 0x0000);       /* 0 */
	CHECK_EQ_INT(bg[1 * 20 + 0], 0x2c00);       /* 1/16 */
	CHECK_EQ_INT(bg[0 * 20 + 1], 0xac00);       /* -1/16 */
	CHECK_EQ_INT(bg[7 * 20 + 19], 0xba00);      /* -12/16 = -0.75 */
	nd_model_free(m);

	rc = nd_model_load(TEST_DATA_DIR "/cnn/testnet_a.ndm", &m, &err);
	CHECK_MSG(rc == 0, "%s", err.msg);
	if (!rc) {
		CHECK_EQ_INT(nd_model_background(m, &bg, &count, &dim), ND_ENOTFOUND);
		nd_model_free(m);
	}
}

/* ---------- OpenBLAS ---------- */

/* Loading the library changes nothing: BLAS is set up at nd_cnn_init (or
 * the first workspace), not by a constructor. Runs first. */
static void test_blas_not_at_load(void)
{
	nd_error err;
	const char *threads = getenv("OPENBLAS_NUM_THREADS");
	char saved[64];
	if (threads) {
		snprintf(saved, sizeof(saved), "%s", threads);
		threads = saved;
	}
	CHECK(nd_cnn_blas_core() == NULL);
	CHECK(nd__blas_config() == NULL);
	CHECK_EQ_INT(nd_cnn_init(&err), 0);
	CHECK(nd_cnn_blas_core() != NULL);
	CHECK_EQ_INT(nd_cnn_init(&err), 0); /* idempotent */
	/* the environment is as the user left it */
	const char *now = getenv("OPENBLAS_NUM_THREADS");
	CHECK((!now && !threads) || (now && threads && !strcmp(now, threads)));
}

static void test_blas_core(void)
{
	nd_error err;
	const char *user = getenv("OPENBLAS_CORETYPE");
	int had_user = user != NULL;
	CHECK_EQ_INT(nd__blas_init(&err), 0);
	const char *core = nd_cnn_blas_core();
	CHECK(core != NULL);
	if (!core)
		return;
	printf("openblas core: %s (%s)\n", core, nd__blas_config());
	__builtin_cpu_init();
	int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
		     __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
	if (!had_user && avx512)
		CHECK_MSG(strcmp(core, "SkylakeX") == 0 || strcmp(core, "Cooperlake") == 0 ||
				  strcmp(core, "SapphireRapids") == 0,
			  "AVX-512 CPU but OpenBLAS core is %s", core);
	if (had_user)
		CHECK_MSG(strcasecmp(core, user) == 0 || strcmp(core, "unknown") == 0,
			  "OPENBLAS_CORETYPE=%s but core is %s", user, core);
	/* the environment is restored after loading */
	CHECK_EQ_INT(getenv("OPENBLAS_CORETYPE") != NULL, had_user);
	/* a quick sgemm sanity check through the loaded library */
	float a[6] = { 1, 2, 3, 4, 5, 6 }, b[6] = { 1, 0, 0, 1, 1, 1 }, c[4];
	nd__blas_sgemm(2, 2, 3, 1.0f, a, 3, b, 2, 0.0f, c, 2);
	CHECK(c[0] == 4 && c[1] == 5 && c[2] == 10 && c[3] == 11);
}

/* ---------- threads ---------- */

struct thr {
	const nd_model *m;
	const float *in;
	float *out;
	int n, rc;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	nd_workspace *ws = NULL;
	nd_error err;
	t->rc = nd_workspace_create(t->m, t->n, &ws, &err);
	for (int it = 0; it < 20 && !t->rc; it++)
		t->rc = nd_model_forward(t->m, ws, t->in, t->n, t->out, &err);
	nd_workspace_free(ws);
	return NULL;
}

static void test_threads_share_model(void)
{
	nd_model *m = NULL;
	nd_error err;
	size_t lin;
	int rc = nd_model_load(TEST_DATA_DIR "/cnn/testnet_a.ndm", &m, &err);
	CHECK_MSG(rc == 0, "%s", err.msg);
	float *in = tl_read_file(TEST_DATA_DIR "/cnn/testnet_a.in.f32", &lin);
	if (rc || !in)
		goto done;
	struct thr t[3];
	pthread_t id[3];
	for (int i = 0; i < 3; i++) {
		t[i].m = m, t[i].in = in, t[i].n = 4, t[i].rc = -1;
		t[i].out = calloc(4 * 24, sizeof(float));
		pthread_create(&id[i], NULL, thr_main, &t[i]);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(id[i], NULL);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(t[i].rc, 0);
		double md = 0;
		for (int k = 0; k < 4 * 24; k++)
			md = fmax(md, fabs((double)t[i].out[k] - t[0].out[k]));
		CHECK_MSG(md == 0, "thread %d differs by %g", i, md);
	}
	for (int i = 0; i < 3; i++)
		free(t[i].out);
done:
	free(in);
	nd_model_free(m);
}

static void test_forward_args(void)
{
	nd_model *m = NULL, *m2 = NULL;
	nd_workspace *ws = NULL;
	nd_error err;
	float in[3 * 30 * 34] = { 0 }, out[20];
	CHECK_EQ_INT(nd_model_load(TEST_DATA_DIR "/cnn/testnet_b.ndm", &m, &err), 0);
	CHECK_EQ_INT(nd_model_load(TEST_DATA_DIR "/cnn/testnet_b.ndm", &m2, &err), 0);
	if (!m || !m2)
		goto done;
	CHECK_EQ_INT(nd_workspace_create(m, 0, &ws, &err), ND_EINVAL);
	CHECK_EQ_INT(nd_workspace_create(m, ND_MODEL_MAX_BATCH + 1, &ws, &err), ND_EINVAL);
	CHECK_EQ_INT(nd_workspace_create(m, 2, &ws, &err), 0);
	CHECK(nd_workspace_bytes(ws) > 0);
	CHECK_EQ_INT(nd_model_forward(m, ws, in, 3, out, &err), ND_EINVAL);
	CHECK_EQ_INT(nd_model_forward(m, ws, in, 0, out, &err), ND_EINVAL);
	CHECK_EQ_INT(nd_model_forward(m2, ws, in, 1, out, &err), ND_EINVAL);
	CHECK_EQ_INT(nd_model_forward(m, ws, in, 1, out, &err), 0);
done:
	nd_workspace_free(ws);
	nd_model_free(m);
	nd_model_free(m2);
}

/* ---------- bad files ---------- */

static int load_buf(const uint8_t *buf, size_t len, nd_error *err)
{
	nd_model *m = NULL;
	int rc = nd_model_load_mem(buf, len, "bad.ndm", &m, err);
	nd_model_free(m);
	if (rc)
		CHECK_MSG(strstr(err->msg, "'bad.ndm'") != NULL, "message without the file: %s", err->msg);
	return rc;
}

static void test_bad_files(void)
{
	size_t len;
	nd_error err;
	uint8_t *good = tl_read_file(TEST_DATA_DIR "/cnn/testnet_b.ndm", &len);
	CHECK(good != NULL);
	if (!good)
		return;
	uint8_t *buf = malloc(len + 64);
	CHECK_EQ_INT(load_buf(good, len, &err), 0);

	/* missing file: names it */
	nd_model *m = NULL;
	CHECK_EQ_INT(nd_model_load("tests/data/cnn/no-such.ndm", &m, &err), ND_EIO);
	CHECK(strstr(err.msg, "no-such.ndm") != NULL);

	/* every truncation */
	for (size_t n = 0; n < len; n += n < 600 ? 1 : 37) {
		int rc = load_buf(good, n, &err);
		CHECK_MSG(rc == ND_ECORRUPT || rc == ND_EFORMAT, "truncated to %zu: rc %d", n, rc);
	}
	/* appended garbage */
	memcpy(buf, good, len);
	buf[len] = 0;
	CHECK_EQ_INT(load_buf(buf, len + 1, &err), ND_ECORRUPT);

	/* flipped bits anywhere: the checksums catch them */
	for (int t = 0; t < 3000; t++) {
		memcpy(buf, good, len);
		size_t at = t < 512 ? (size_t)t : (size_t)(rnd() % len);
		buf[at] ^= (uint8_t)(1u << (rnd() % 8));
		int rc = load_buf(buf, len, &err);
		CHECK_MSG(rc < 0, "flip at %zu loaded", at);
		if (at >= 64 && at < len - 8 && rc == ND_ECORRUPT)
			CHECK(strstr(err.msg, "checksum") != NULL || strstr(err.msg, "section") != NULL);
	}

	/* magic, version */
	memcpy(buf, good, len);
	buf[0] = 'X';
	CHECK_EQ_INT(load_buf(buf, len, &err), ND_EFORMAT);
	memcpy(buf, good, len);
	buf[8] = 2;
	fix_checksums(buf, len);
	CHECK_EQ_INT(load_buf(buf, len, &err), ND_EVERSION);
	CHECK(strstr(err.msg, "version 2") != NULL);

	/* with valid checksums: field damage the validator must catch */
	struct ndm_header h;
	memcpy(&h, good, sizeof h);
	struct ndm_section secs[8];
	memcpy(secs, good + h.section_table, sizeof secs[0] * h.section_count);
	size_t off_meta = 0, off_layers = 0, off_tensors = 0;
	for (uint32_t i = 0; i < h.section_count; i++) {
		if (secs[i].type == NDM_SEC_META)
			off_meta = secs[i].offset;
		if (secs[i].type == NDM_SEC_LAYERS)
			off_layers = secs[i].offset;
		if (secs[i].type == NDM_SEC_TENSORS)
			off_tensors = secs[i].offset;
	}
	struct {
		size_t off;
		uint32_t val;
		int want;
		const char *what;
	} edits[] = {
		{ off_meta + offsetof(struct ndm_meta, layer_count), 1000000000, ND_ELIMIT, "layer count" },
		{ off_meta + offsetof(struct ndm_meta, in_h), 100000, ND_ELIMIT, "input size" },
		{ off_meta + offsetof(struct ndm_meta, embed_dim), 21, ND_ECORRUPT, "embedding dim" },
		{ off_meta + offsetof(struct ndm_meta, output_layer), 2, ND_ECORRUPT, "output layer" },
		{ off_layers + offsetof(struct ndm_layer, out_shape), 13, ND_ECORRUPT, "out shape" },
		{ off_layers + offsetof(struct ndm_layer, p), 13, ND_ECORRUPT, "conv channels vs weight" },
		{ off_layers + offsetof(struct ndm_layer, p) + 4, 0, ND_ECORRUPT, "kernel 0" },
		{ off_layers + offsetof(struct ndm_layer, p) + 4, 1000, ND_ECORRUPT, "kernel 1000" },
		{ off_layers + offsetof(struct ndm_layer, op), 99, ND_EUNSUPPORTED, "op" },
		{ off_layers + offsetof(struct ndm_layer, in), 5, ND_ECORRUPT, "forward reference" },
		{ off_layers + offsetof(struct ndm_layer, weight), 77, ND_ECORRUPT, "tensor index" },
		{ off_tensors + offsetof(struct ndm_tensor, shape), 0x7fffffff, ND_ELIMIT, "tensor shape" },
		{ off_tensors + offsetof(struct ndm_tensor, offset), 3, ND_ECORRUPT, "tensor offset" },
		{ off_tensors + offsetof(struct ndm_tensor, dtype), 2, ND_EUNSUPPORTED, "tensor dtype" },
		{ offsetof(struct ndm_header, section_count), 1000, ND_ECORRUPT, "section count" },
	};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		memcpy(buf, good, len);
		memcpy(buf + edits[i].off, &edits[i].val, 4);
		fix_checksums(buf, len);
		int rc = load_buf(buf, len, &err);
		CHECK_MSG(rc == edits[i].want, "%s: rc %d (%s)", edits[i].what, rc, err.msg);
	}
	free(buf);
	free(good);
}

static void test_sections(void)
{
	/* a minimal model: GAP -> L2 norm, with optional / required unknown sections */
	nd_error err;
	for (int v = 0; v < 3; v++) {
		builder b;
		b_init(&b, 5, 7);
		int l0 = b_layer(&b, NDM_OP_GAP, 0, -1, -1, -1, -1, NULL, 0, NULL, 0);
		float fe[1] = { 1e-12f };
		int l1 = b_layer(&b, NDM_OP_L2NORM, 0, l0, -1, -1, -1, NULL, 0, fe, 1);
		size_t len;
		uint8_t *file = b_finish(&b, l1, v == 0 ? 5 : 0, v ? 77 : 0, v == 2 ? NDM_SEC_REQUIRED : 0, &len);
		nd_model *m = NULL;
		int rc = nd_model_load_mem(file, len, "sections", &m, &err);
		if (v == 2) {
			CHECK_EQ_INT(rc, ND_EUNSUPPORTED);
		} else {
			CHECK_MSG(rc == 0, "%s", err.msg);
		}
		if (v == 0 && m) {
			const uint16_t *bg;
			size_t count;
			int dim;
			CHECK_EQ_INT(nd_model_background(m, &bg, &count, &dim), 0);
			CHECK_EQ_INT(count, 5);
			CHECK_EQ_INT(dim, 3);
			CHECK_EQ_INT(bg[14], 0x3c00 + 14);
		}
		nd_model_free(m);
		free(file);
	}
}

int main(int argc, char **argv)
{
	test_select(argc, argv);
	RUN(test_blas_not_at_load);
	RUN(test_blas_core);
	RUN(test_parity_testnet_a);
	RUN(test_parity_testnet_b);
	RUN(test_parity_shipped);
	RUN(test_info_and_background);
	RUN(test_conv_same_width);
	RUN(test_conv_random);
	RUN(test_conv_wide_grouped_depthwise);
	RUN(test_other_layers);
	RUN(test_threads_share_model);
	RUN(test_forward_args);
	RUN(test_bad_files);
	RUN(test_sections);
	return test_summary();
}
