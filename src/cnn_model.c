/* neardup — .ndm model files: reading, validating every field before use,
 * shape inference and the activation memory plan. The format is documented
 * in models/FORMAT.md and written by models/export.py. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "cnn_impl.h"

#define MAX_CHANNELS (1 << 16)
#define MAX_ELEMS_PER_IMAGE ((size_t)1 << 26)   /* floats in one activation */
#define MAX_TENSOR_ELEMS ((size_t)1 << 28)
#define MAX_KERNEL 64
#define MAX_STRIDE 64
#define MAX_PAD 64
#define MAX_BG_COUNT ((size_t)1 << 24)

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .ndm loader reads little-endian data in place"
#endif

/* A failure: err->msg = "model 'LABEL': " + detail. */
static int fail(nd_error *err, const char *label, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(nd_error *err, const char *label, int code, const char *fmt, ...)
{
	char detail[ND_ERRMSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	return nd_error_set(err, code, "model '%s': %s", label ? label : "(memory)", detail);
}

int nd__cnn_out_dim(int in, int k, int s, int p, int d)
{
	long long span = (long long)d * (k - 1) + 1;
	long long num = (long long)in + 2LL * p - span;
	if (s <= 0 || num < 0)
		return -1;
	return (int)(num / s + 1);
}

static int str_ok(const char *s, size_t cap)
{
	return memchr(s, 0, cap) != NULL;
}

struct parse {
	const uint8_t *buf;
	size_t len;
	const char *label;
	const struct ndm_section *sec[NDM_SEC_CALIB + 1];
	const struct ndm_tensor *tensors;
	uint32_t ntensors;
	const uint8_t *data;
	uint64_t data_size;
};

/* Returns the f32 data of tensor t if its shape is exactly dims[0..nd). */
static int get_tensor(struct parse *ps, nd_error *err, int idx, const char *lname,
		      const char *what, int nd, const int *dims, const float **out)
{
	if (idx < 0 || (uint32_t)idx >= ps->ntensors)
		return fail(err, ps->label, ND_ECORRUPT, "layer '%s': %s tensor index %d out of range",
			    lname, what, idx);
	const struct ndm_tensor *t = &ps->tensors[idx];
	int ok = (int)t->ndim == nd;
	for (int i = 0; ok && i < nd; i++)
		ok = (long long)t->shape[i] == dims[i];
	if (!ok) {
		char want[96] = "", have[96] = "";
		for (int i = 0; i < nd; i++)
			snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", i ? "x" : "", dims[i]);
		for (uint32_t i = 0; i < t->ndim && i < 4; i++)
			snprintf(have + strlen(have), sizeof have - strlen(have), "%s%u", i ? "x" : "", t->shape[i]);
		return fail(err, ps->label, ND_ECORRUPT,
			    "shape mismatch: layer '%s' needs %s [%s], tensor '%s' is [%s]",
			    lname, what, want, t->name, have);
	}
	*out = (const float *)(const void *)(ps->data + t->offset);
	return 0;
}

static int check_tensors(struct parse *ps, nd_error *err, size_t *weight_bytes)
{
	*weight_bytes = 0;
	for (uint32_t i = 0; i < ps->ntensors; i++) {
		const struct ndm_tensor *t = &ps->tensors[i];
		if (!str_ok(t->name, sizeof t->name))
			return fail(err, ps->label, ND_ECORRUPT, "tensor %u: name not terminated", i);
		if (t->dtype != NDM_F32)
			return fail(err, ps->label, ND_EUNSUPPORTED, "tensor '%s': dtype %u (only float32)",
				    t->name, t->dtype);
		if (t->ndim < 1 || t->ndim > 4)
			return fail(err, ps->label, ND_ECORRUPT, "tensor '%s': %u dimensions", t->name, t->ndim);
		size_t n = 1;
		for (uint32_t d = 0; d < 4; d++) {
			if (t->shape[d] < 1 || (d >= t->ndim && t->shape[d] != 1))
				return fail(err, ps->label, ND_ECORRUPT, "tensor '%s': bad dimension %u",
					    t->name, t->shape[d]);
			if (nd_mul_size(n, t->shape[d], &n) || n > MAX_TENSOR_ELEMS)
				return fail(err, ps->label, ND_ELIMIT, "tensor '%s': too many elements",
					    t->name);
		}
		if (t->size != (uint64_t)n * 4)
			return fail(err, ps->label, ND_ECORRUPT, "tensor '%s': size %llu bytes, shape says %zu",
				    t->name, (unsigned long long)t->size, n * 4);
		if (t->offset % NDM_ALIGN || t->offset > ps->data_size ||
		    t->size > ps->data_size - t->offset)
			return fail(err, ps->label, ND_ECORRUPT,
				    "tensor '%s': data [%llu, +%llu) outside the data section (%llu bytes)",
				    t->name, (unsigned long long)t->offset, (unsigned long long)t->size,
				    (unsigned long long)ps->data_size);
		*weight_bytes += t->size;
	}
	return 0;
}

static int check_window(struct parse *ps, nd_error *err, const char *lname, const int *p)
{
	/* p: kh kw sh sw ph pw */
	for (int i = 0; i < 2; i++)
		if (p[i] < 1 || p[i] > MAX_KERNEL || p[2 + i] < 1 || p[2 + i] > MAX_STRIDE ||
		    p[4 + i] < 0 || p[4 + i] > MAX_PAD)
			return fail(err, ps->label, ND_ECORRUPT,
				    "layer '%s': bad window (kernel %dx%d, stride %dx%d, padding %dx%d)",
				    lname, p[0], p[1], p[2], p[3], p[4], p[5]);
	return 0;
}

/* Validates layer i and fills its in-memory form, shapes and flops. */
static int build_layer(struct parse *ps, nd_error *err, nd_model *m, int i,
		       const struct ndm_layer *d)
{
	nd_layer *L = &m->layers[i];
	char lname[28];
	int rc;
	memset(L, 0, sizeof *L);
	if (!str_ok(d->name, sizeof d->name))
		return fail(err, ps->label, ND_ECORRUPT, "layer %d: name not terminated", i);
	snprintf(lname, sizeof lname, "%s", d->name);
	memcpy(L->name, lname, sizeof L->name);
	if (d->op < 1 || d->op >= NDM_OP_COUNT_)
		return fail(err, ps->label, ND_EUNSUPPORTED, "layer '%s': unknown operation %u", lname, d->op);
	if (d->act >= NDM_ACT_COUNT_)
		return fail(err, ps->label, ND_EUNSUPPORTED, "layer '%s': unknown activation %u", lname, d->act);
	if (d->in[0] < -1 || d->in[0] >= i)
		return fail(err, ps->label, ND_ECORRUPT, "layer '%s': input %d is not an earlier layer",
			    lname, d->in[0]);
	if (d->op == NDM_OP_ADD ? (d->in[1] < -1 || d->in[1] >= i) : d->in[1] != -1)
		return fail(err, ps->label, ND_ECORRUPT, "layer '%s': bad second input %d", lname, d->in[1]);
	for (int k = 0; k < 4; k++)
		if (!isfinite(d->f[k]))
			return fail(err, ps->label, ND_ECORRUPT, "layer '%s': non-finite parameter", lname);
	if (d->op != NDM_OP_CONV && d->op != NDM_OP_LINEAR && d->op != NDM_OP_AFFINE &&
	    (d->weight != -1 || d->bias != -1))
		return fail(err, ps->label, ND_ECORRUPT, "layer '%s': unexpected weights", lname);

	L->op = (int)d->op;
	L->act = (int)d->act;
	L->in0 = d->in[0];
	L->in1 = d->in[1];
	memcpy(L->p, d->p, sizeof L->p);
	memcpy(L->f, d->f, sizeof L->f);
	if (L->in0 < 0) {
		L->ic = m->in_c, L->ih = m->in_h, L->iw = m->in_w;
	} else {
		const nd_layer *src = &m->layers[L->in0];
		L->ic = src->c, L->ih = src->h, L->iw = src->w_;
	}
	int c = L->ic, h = L->ih, w = L->iw;
	size_t hw_in = (size_t)h * (size_t)w;
	const int *p = d->p;

	switch (L->op) {
	case NDM_OP_CONV: {
		int oc = p[0], kh = p[1], kw = p[2], sh = p[3], sw = p[4], ph = p[5], pw = p[6];
		int dh = p[7], dw = p[8], g = p[9];
		if (oc < 1 || oc > MAX_CHANNELS || g < 1 || c % g || oc % g || dh < 1 || dw < 1 ||
		    dh > MAX_KERNEL || dw > MAX_KERNEL)
			return fail(err, ps->label, ND_ECORRUPT,
				    "layer '%s': bad convolution (%d -> %d channels, %d groups, dilation %dx%d)",
				    lname, c, oc, g, dh, dw);
		int win[6] = { kh, kw, sh, sw, ph, pw };
		if ((rc = check_window(ps, err, lname, win)))
			return rc;
		int oh = nd__cnn_out_dim(h, kh, sh, ph, dh), ow = nd__cnn_out_dim(w, kw, sw, pw, dw);
		if (oh < 1 || ow < 1)
			return fail(err, ps->label, ND_ECORRUPT, "layer '%s': kernel larger than its %dx%d input",
				    lname, h, w);
		int wd[4] = { oc, c / g, kh, kw };
		if ((rc = get_tensor(ps, err, d->weight, lname, "weight", 4, wd, &L->w)))
			return rc;
		if (d->bias != -1 && (rc = get_tensor(ps, err, d->bias, lname, "bias", 1, &oc, &L->b)))
			return rc;
		L->c = oc, L->h = oh, L->w_ = ow;
		L->flops = 2.0 * oc * oh * ow * (double)(c / g) * kh * kw;
		int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
		int depthwise = c / g == 1 && g > 1;
		if (!direct && !depthwise)
			L->col_per_image = (size_t)c * kh * kw * (size_t)oh * ow; /* bounded below */
		if (depthwise && nd__cnn_depthwise_scratch(h, w, ph, pw) > m->dw_scratch)
			m->dw_scratch = nd__cnn_depthwise_scratch(h, w, ph, pw);
		break;
	}
	case NDM_OP_LINEAR: {
		int of = p[0];
		if (h != 1 || w != 1)
			return fail(err, ps->label, ND_ECORRUPT,
				    "layer '%s': linear layer on a %dx%dx%d input (flatten first)", lname, c, h, w);
		if (of < 1 || of > MAX_CHANNELS)
			return fail(err, ps->label, ND_ECORRUPT, "layer '%s': %d output features", lname, of);
		int wd[2] = { of, c };
		if ((rc = get_tensor(ps, err, d->weight, lname, "weight", 2, wd, &L->w)))
			return rc;
		if (d->bias != -1 && (rc = get_tensor(ps, err, d->bias, lname, "bias", 1, &of, &L->b)))
			return rc;
		L->c = of, L->h = 1, L->w_ = 1;
		L->flops = 2.0 * of * c;
		break;
	}
	case NDM_OP_AFFINE:
		if ((rc = get_tensor(ps, err, d->weight, lname, "scale", 1, &c, &L->w)) ||
		    (rc = get_tensor(ps, err, d->bias, lname, "shift", 1, &c, &L->b)))
			return rc;
		L->c = c, L->h = h, L->w_ = w;
		L->flops = 2.0 * c * (double)hw_in;
		break;
	case NDM_OP_ACT:
		L->c = c, L->h = h, L->w_ = w;
		L->flops = (double)c * (double)hw_in;
		break;
	case NDM_OP_MAXPOOL:
	case NDM_OP_AVGPOOL: {
		if ((rc = check_window(ps, err, lname, p)))
			return rc;
		if (p[4] * 2 > p[0] || p[5] * 2 > p[1] || (L->op == NDM_OP_AVGPOOL && (p[6] & ~1)))
			return fail(err, ps->label, ND_ECORRUPT, "layer '%s': padding over half the window",
				    lname);
		int oh = nd__cnn_out_dim(h, p[0], p[2], p[4], 1), ow = nd__cnn_out_dim(w, p[1], p[3], p[5], 1);
		if (oh < 1 || ow < 1)
			return fail(err, ps->label, ND_ECORRUPT, "layer '%s': window larger than its %dx%d input",
				    lname, h, w);
		L->c = c, L->h = oh, L->w_ = ow;
		L->flops = (double)c * oh * ow * p[0] * p[1];
		break;
	}
	case NDM_OP_GAP:
	case NDM_OP_GEM:
		if (L->op == NDM_OP_GEM && (!(d->f[0] >= 0.5f && d->f[0] <= 64.0f) || !(d->f[1] > 0)))
			return fail(err, ps->label, ND_ECORRUPT, "layer '%s': GeM p=%g eps=%g out of range",
				    lname, d->f[0], d->f[1]);
		L->c = c, L->h = 1, L->w_ = 1;
		L->flops = (L->op == NDM_OP_GEM ? 4.0 : 1.0) * c * (double)hw_in;
		break;
	case NDM_OP_ADD: {
		int b1 = L->in1;
		int c1 = b1 < 0 ? m->in_c : m->layers[b1].c, h1 = b1 < 0 ? m->in_h : m->layers[b1].h;
		int w1 = b1 < 0 ? m->in_w : m->layers[b1].w_;
		if (c1 != c || h1 != h || w1 != w)
			return fail(err, ps->label, ND_ECORRUPT,
				    "shape mismatch: layer '%s' adds %dx%dx%d and %dx%dx%d", lname, c, h, w,
				    c1, h1, w1);
		L->c = c, L->h = h, L->w_ = w;
		L->flops = (double)c * (double)hw_in;
		break;
	}
	case NDM_OP_FLATTEN: {
		size_t n = (size_t)c * hw_in;
		if (n > MAX_CHANNELS * 64)
			return fail(err, ps->label, ND_ELIMIT, "layer '%s': flattens to %zu features", lname, n);
		L->c = (int)n, L->h = 1, L->w_ = 1;
		break;
	}
	case NDM_OP_L2NORM:
		if (h != 1 || w != 1)
			return fail(err, ps->label, ND_ECORRUPT, "layer '%s': L2 norm of a %dx%dx%d input",
				    lname, c, h, w);
		if (!(d->f[0] >= 0))
			return fail(err, ps->label, ND_ECORRUPT, "layer '%s': negative eps", lname);
		L->c = c, L->h = 1, L->w_ = 1;
		L->flops = 3.0 * c;
		break;
	default:
		return fail(err, ps->label, ND_EINTERNAL, "layer '%s': operation %d", lname, L->op);
	}
	size_t elems;
	if (nd_mul_size((size_t)L->c * (size_t)L->h, (size_t)L->w_, &elems) || elems > MAX_ELEMS_PER_IMAGE ||
	    L->col_per_image > MAX_ELEMS_PER_IMAGE * 16)
		return fail(err, ps->label, ND_ELIMIT, "layer '%s': %dx%dx%d output is too large",
			    lname, L->c, L->h, L->w_);
	if ((int64_t)d->out_shape[0] != L->c || (int64_t)d->out_shape[1] != L->h ||
	    (int64_t)d->out_shape[2] != L->w_)
		return fail(err, ps->label, ND_ECORRUPT,
			    "shape mismatch: layer '%s' computes %dx%dx%d, the file says %ux%ux%u",
			    lname, L->c, L->h, L->w_, d->out_shape[0], d->out_shape[1], d->out_shape[2]);
	return 0;
}

/* First-fit placement of every activation in one arena (units: floats per
 * image, 16-float aligned). A value lives from the layer that makes it to
 * its last reader; a layer's output never overlaps its own inputs. */
static int plan_memory(nd_model *m, nd_error *err, const char *label)
{
	int nv = m->nlayers + 1; /* value 0 = model input, value i+1 = layer i */
	int *last = NULL, *live = NULL;
	size_t *off = NULL, *size = NULL;
	int rc = 0, nlive = 0;

	last = malloc(sizeof *last * (size_t)nv);
	live = malloc(sizeof *live * (size_t)nv);
	off = malloc(sizeof *off * (size_t)nv);
	size = malloc(sizeof *size * (size_t)nv);
	if (!last || !live || !off || !size) {
		rc = fail(err, label, ND_ENOMEM, "out of memory planning activations");
		goto done;
	}
	for (int v = 0; v < nv; v++) {
		size_t e = v == 0 ? (size_t)m->in_c * m->in_h * m->in_w
				  : (size_t)m->layers[v - 1].c * m->layers[v - 1].h * m->layers[v - 1].w_;
		size[v] = (e + 15) & ~(size_t)15;
		if (e > m->act_max)
			m->act_max = e;
		last[v] = v - 1; /* a value nobody reads lives during its own layer */
	}
	for (int i = 0; i < m->nlayers; i++) {
		last[m->layers[i].in0 + 1] = i;
		if (m->layers[i].in1 >= -1 && m->layers[i].op == NDM_OP_ADD)
			last[m->layers[i].in1 + 1] = i;
	}
	last[m->output_layer + 1] = m->nlayers;
	size_t top = 0;
	for (int v = 0; v < nv; v++) {
		int t = v - 1; /* the layer computing value v */
		int k = 0;
		for (int j = 0; j < nlive; j++) /* drop values dead before layer t */
			if (last[live[j]] >= t)
				live[k++] = live[j];
		nlive = k;
		/* live[] is sorted by offset: find the first gap that fits */
		size_t pos = 0;
		int at = 0;
		for (; at < nlive; at++) {
			if (off[live[at]] >= pos + size[v])
				break;
			size_t end = off[live[at]] + size[live[at]];
			if (end > pos)
				pos = end;
		}
		off[v] = pos;
		memmove(live + at + 1, live + at, sizeof *live * (size_t)(nlive - at));
		live[at] = v;
		nlive++;
		if (pos + size[v] > top)
			top = pos + size[v];
	}
	m->input_off = off[0];
	for (int i = 0; i < m->nlayers; i++)
		m->layers[i].out_off = off[i + 1];
	m->arena_per_image = top;
done:
	free(last);
	free(live);
	free(off);
	free(size);
	return rc;
}

static int parse_model(nd_model *m, const char *label, nd_error *err)
{
	struct parse ps;
	const uint8_t *buf = m->file;
	size_t len = m->file_size;
	struct ndm_header hd;
	memset(&ps, 0, sizeof ps);
	ps.buf = buf, ps.len = len, ps.label = label;

	if (len < sizeof hd)
		return fail(err, label, len >= 8 && !memcmp(buf, NDM_MAGIC, 8) ? ND_ECORRUPT : ND_EFORMAT,
			    "truncated file (%zu bytes)", len);
	memcpy(&hd, buf, sizeof hd);
	if (memcmp(hd.magic, NDM_MAGIC, 8))
		return fail(err, label, ND_EFORMAT, "not a neardup model file (bad magic)");
	if (hd.version != NDM_VERSION)
		return fail(err, label, ND_EVERSION, "format version %u, this build reads version %u",
			    hd.version, NDM_VERSION);
	if (hd.header_size != sizeof hd)
		return fail(err, label, ND_ECORRUPT, "header size %u", hd.header_size);
	if (hd.file_size > len)
		return fail(err, label, ND_ECORRUPT, "truncated file (%zu of %llu bytes)", len,
			    (unsigned long long)hd.file_size);
	if (hd.file_size < len)
		return fail(err, label, ND_ECORRUPT, "%llu unexpected bytes after the end",
			    (unsigned long long)(len - hd.file_size));
	if (len < sizeof hd + 8)
		return fail(err, label, ND_ECORRUPT, "truncated file (%zu bytes)", len);
	size_t body = len - 8;
	uint64_t want;
	memcpy(&want, buf + body, 8);
	m->checksum = want;
#ifndef ND_FUZZING /* the fuzzer could never get past a checksum */
	uint64_t got = XXH3_64bits(buf, body);
	if (got != want)
		return fail(err, label, ND_ECORRUPT, "bad checksum (file says %016llx, contents give %016llx)",
			    (unsigned long long)want, (unsigned long long)got);
#endif
	if (hd.section_count < 1 || hd.section_count > NDM_MAX_SECTIONS || hd.section_table % 8 ||
	    hd.section_table < sizeof hd || hd.section_table > body ||
	    (uint64_t)hd.section_count * sizeof(struct ndm_section) > body - hd.section_table)
		return fail(err, label, ND_ECORRUPT, "bad section table (%u sections at %llu)",
			    hd.section_count, (unsigned long long)hd.section_table);
	const struct ndm_section *secs = (const void *)(buf + hd.section_table);
	for (uint32_t i = 0; i < hd.section_count; i++) {
		const struct ndm_section *s = &secs[i];
		if (s->offset % NDM_ALIGN || s->offset > body || s->size > body - s->offset)
			return fail(err, label, ND_ECORRUPT, "section %u (type %u) outside the file", i,
				    s->type);
		if (s->type < NDM_SEC_META || s->type > NDM_SEC_CALIB) {
			if (s->flags & NDM_SEC_REQUIRED)
				return fail(err, label, ND_EUNSUPPORTED,
					    "required section type %u is unknown to this build", s->type);
			continue; /* an optional extension from a newer writer */
		}
		if (ps.sec[s->type])
			return fail(err, label, ND_ECORRUPT, "section type %u appears twice", s->type);
#ifndef ND_FUZZING
		if (XXH3_64bits(buf + s->offset, s->size) != s->xxh3)
			return fail(err, label, ND_ECORRUPT, "bad checksum in section type %u", s->type);
#endif
		ps.sec[s->type] = s;
	}
	for (int t = NDM_SEC_META; t <= NDM_SEC_DATA; t++)
		if (!ps.sec[t])
			return fail(err, label, ND_ECORRUPT, "section type %d missing", t);

	/* meta */
	struct ndm_meta meta;
	if (ps.sec[NDM_SEC_META]->size != sizeof meta)
		return fail(err, label, ND_ECORRUPT, "meta section is %llu bytes",
			    (unsigned long long)ps.sec[NDM_SEC_META]->size);
	memcpy(&meta, buf + ps.sec[NDM_SEC_META]->offset, sizeof meta);
	if (!str_ok(meta.name, sizeof meta.name))
		return fail(err, label, ND_ECORRUPT, "model name not terminated");
	if (meta.in_c != 3 || meta.in_h < 1 || meta.in_h > ND_MODEL_MAX_INPUT_HW || meta.in_w < 1 ||
	    meta.in_w > ND_MODEL_MAX_INPUT_HW)
		return fail(err, label, ND_ELIMIT, "input %ux%ux%u (want 3 channels, 1..%d pixels a side)",
			    meta.in_c, meta.in_h, meta.in_w, ND_MODEL_MAX_INPUT_HW);
	if (meta.embed_dim < 1 || meta.embed_dim > MAX_CHANNELS)
		return fail(err, label, ND_ELIMIT, "embedding dimension %u", meta.embed_dim);
	for (int k = 0; k < 3; k++)
		if (!isfinite(meta.mean[k]) || !isfinite(meta.std[k]) || !(fabsf(meta.std[k]) > 1e-12f))
			return fail(err, label, ND_ECORRUPT, "bad normalisation for channel %d", k);
	if (meta.layer_count < 1 || meta.layer_count > ND_MODEL_MAX_LAYERS ||
	    meta.tensor_count > ND_MODEL_MAX_TENSORS || meta.output_layer >= meta.layer_count)
		return fail(err, label, ND_ELIMIT, "%u layers, %u tensors, output layer %u",
			    meta.layer_count, meta.tensor_count, meta.output_layer);
	memcpy(m->name, meta.name, sizeof m->name);
	m->in_c = 3, m->in_h = (int)meta.in_h, m->in_w = (int)meta.in_w;
	m->embed_dim = (int)meta.embed_dim;
	memcpy(m->mean, meta.mean, sizeof m->mean);
	memcpy(m->std, meta.std, sizeof m->std);
	m->nlayers = (int)meta.layer_count;
	m->output_layer = (int)meta.output_layer;

	/* tensors */
	if (ps.sec[NDM_SEC_TENSORS]->size != (uint64_t)meta.tensor_count * sizeof(struct ndm_tensor))
		return fail(err, label, ND_ECORRUPT, "tensor table is %llu bytes for %u tensors",
			    (unsigned long long)ps.sec[NDM_SEC_TENSORS]->size, meta.tensor_count);
	ps.tensors = (const void *)(buf + ps.sec[NDM_SEC_TENSORS]->offset);
	ps.ntensors = meta.tensor_count;
	ps.data = buf + ps.sec[NDM_SEC_DATA]->offset;
	ps.data_size = ps.sec[NDM_SEC_DATA]->size;
	int rc = check_tensors(&ps, err, &m->weight_bytes);
	if (rc)
		return rc;

	/* layers */
	if (ps.sec[NDM_SEC_LAYERS]->size != (uint64_t)meta.layer_count * sizeof(struct ndm_layer))
		return fail(err, label, ND_ECORRUPT, "layer table is %llu bytes for %u layers",
			    (unsigned long long)ps.sec[NDM_SEC_LAYERS]->size, meta.layer_count);
	m->layers = calloc((size_t)m->nlayers, sizeof *m->layers);
	if (!m->layers)
		return fail(err, label, ND_ENOMEM, "out of memory");
	const struct ndm_layer *dl = (const void *)(buf + ps.sec[NDM_SEC_LAYERS]->offset);
	m->flops = 0;
	m->col_max = 0;
	m->col_row_max = 0;
	for (int i = 0; i < m->nlayers; i++) {
		rc = build_layer(&ps, err, m, i, &dl[i]);
		if (rc)
			return rc;
		m->flops += m->layers[i].flops;
		if (m->layers[i].col_per_image > m->col_max)
			m->col_max = m->layers[i].col_per_image;
		if (m->layers[i].col_per_image &&
		    m->layers[i].col_per_image / (size_t)m->layers[i].h > m->col_row_max)
			m->col_row_max = m->layers[i].col_per_image / (size_t)m->layers[i].h;
	}
	const nd_layer *o = &m->layers[m->output_layer];
	if (o->c != m->embed_dim || o->h != 1 || o->w_ != 1)
		return fail(err, label, ND_ECORRUPT,
			    "shape mismatch: output layer '%s' gives %dx%dx%d, embedding dimension is %d",
			    o->name, o->c, o->h, o->w_, m->embed_dim);

	/* optional background set */
	const struct ndm_section *bs = ps.sec[NDM_SEC_BACKGROUND];
	if (bs) {
		struct ndm_background bh;
		if (bs->size < sizeof bh)
			return fail(err, label, ND_ECORRUPT, "background section is %llu bytes",
				    (unsigned long long)bs->size);
		memcpy(&bh, buf + bs->offset, sizeof bh);
		if (bh.dtype != NDM_F16 || bh.dim != meta.embed_dim || bh.count > MAX_BG_COUNT ||
		    bs->size != sizeof bh + (uint64_t)bh.count * bh.dim * 2)
			return fail(err, label, ND_ECORRUPT,
				    "bad background set (%u vectors of %u, dtype %u, %llu bytes)", bh.count,
				    bh.dim, bh.dtype, (unsigned long long)bs->size);
		m->bg = (const uint16_t *)(const void *)(buf + bs->offset + sizeof bh);
		m->bg_count = bh.count;
		m->bg_dim = (int)bh.dim;
	}
	/* optional calibration of the similarity (needs the background set) */
	const struct ndm_section *cs = ps.sec[NDM_SEC_CALIB];
	if (cs) {
		struct ndm_calib ch;
		if (cs->size != sizeof ch)
			return fail(err, label, ND_ECORRUPT, "calibration section is %llu bytes, not %zu",
				    (unsigned long long)cs->size, sizeof ch);
		memcpy(&ch, buf + cs->offset, sizeof ch);
		if (!bs)
			return fail(err, label, ND_ECORRUPT, "calibration section without a background set");
		if ((ch.stat != ND_CALIB_MEAN_TOPK && ch.stat != ND_CALIB_KTH) || ch.k < 1 ||
		    ch.k > m->bg_count || !(ch.beta >= 0.0f && ch.beta <= 8.0f) ||
		    !(fabsf(ch.offset) <= 8.0f) || !(ch.phash_weight >= 0.0f && ch.phash_weight <= 1.0f) ||
		    !(ch.phash_bits >= 0.0f && ch.phash_bits <= 64.0f))
			return fail(err, label, ND_ECORRUPT,
				    "bad calibration (statistic %u, k %u of %zu, beta %g, offset %g, "
				    "phash weight %g, bits %g)",
				    ch.stat, ch.k, m->bg_count, (double)ch.beta, (double)ch.offset,
				    (double)ch.phash_weight, (double)ch.phash_bits);
		m->has_calib = 1;
		m->calib = (nd_model_calib){ (int)ch.stat, (int)ch.k, ch.beta, ch.offset, ch.phash_weight,
					     ch.phash_bits };
	}
	return plan_memory(m, err, label);
}

int nd_model_load_mem(const void *buf, size_t len, const char *label, nd_model **out,
		      nd_error *err)
{
	nd_model *m = NULL;
	int rc;
	*out = NULL;
	if (!buf && len)
		return nd_error_set(err, ND_EINVAL, "model: NULL buffer");
	if (len > ND_MODEL_MAX_FILE)
		return fail(err, label, ND_ELIMIT, "%zu bytes is larger than the %llu byte limit", len,
			    ND_MODEL_MAX_FILE);
	m = calloc(1, sizeof *m);
	if (!m)
		return fail(err, label, ND_ENOMEM, "out of memory");
	if (posix_memalign((void **)&m->file, NDM_ALIGN, len ? len : 1)) {
		m->file = NULL;
		rc = fail(err, label, ND_ENOMEM, "out of memory for %zu bytes", len);
		goto fail;
	}
	if (len)
		memcpy(m->file, buf, len);
	m->file_size = len;
	rc = parse_model(m, label, err);
	if (rc)
		goto fail;
	*out = m;
	return 0;
fail:
	nd_model_free(m);
	return rc;
}

int nd_model_load(const char *path, nd_model **out, nd_error *err)
{
	int fd = -1, rc;
	uint8_t *buf = NULL;
	nd_model *m = NULL;
	struct stat st;
	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = fail(err, path, ND_EIO, "cannot open: %s", strerror(errno));
		goto done;
	}
	if (fstat(fd, &st) < 0) {
		rc = fail(err, path, ND_EIO, "cannot stat: %s", strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = fail(err, path, ND_EIO, "not a regular file");
		goto done;
	}
	if ((unsigned long long)st.st_size > ND_MODEL_MAX_FILE) {
		rc = fail(err, path, ND_ELIMIT, "%lld bytes is larger than the %llu byte limit",
			  (long long)st.st_size, ND_MODEL_MAX_FILE);
		goto done;
	}
	size_t len = (size_t)st.st_size;
	m = calloc(1, sizeof *m);
	if (!m || posix_memalign((void **)&buf, NDM_ALIGN, len ? len : 1)) {
		buf = NULL;
		rc = fail(err, path, ND_ENOMEM, "out of memory for %zu bytes", len);
		goto done;
	}
	size_t got = 0;
	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = fail(err, path, ND_EIO, "read error: %s", strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	m->file = buf;
	m->file_size = got; /* a file that shrank reads as truncated */
	buf = NULL;
	rc = parse_model(m, path, err);
	if (rc)
		goto done;
	*out = m;
	m = NULL;
done:
	if (fd >= 0)
		close(fd);
	free(buf);
	nd_model_free(m);
	return rc;
}

void nd_model_free(nd_model *m)
{
	if (!m)
		return;
	free(m->layers);
	free(m->file);
	free(m);
}

void nd_model_get_info(const nd_model *m, nd_model_info *info)
{
	memset(info, 0, sizeof *info);
	info->name = m->name;
	info->input_w = m->in_w;
	info->input_h = m->in_h;
	memcpy(info->mean, m->mean, sizeof info->mean);
	memcpy(info->std, m->std, sizeof info->std);
	info->embed_dim = m->embed_dim;
	info->checksum = m->checksum;
	info->layer_count = m->nlayers;
	info->flops = m->flops;
	info->weight_bytes = m->weight_bytes;
	info->background_count = m->bg_count;
}

int nd_model_background(const nd_model *m, const uint16_t **vecs, size_t *count, int *dim)
{
	if (!m->bg) {
		*vecs = NULL, *count = 0, *dim = 0;
		return ND_ENOTFOUND;
	}
	*vecs = m->bg, *count = m->bg_count, *dim = m->bg_dim;
	return 0;
}

int nd_model_calibration(const nd_model *m, nd_model_calib *c)
{
	if (!m->has_calib) {
		memset(c, 0, sizeof(*c));
		return ND_ENOTFOUND;
	}
	*c = m->calib;
	return 0;
}
