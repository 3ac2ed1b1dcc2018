/* neardup — private parts of the cnn module: the .ndm on-disk structures
 * (documented in models/FORMAT.md, written by models/export.py) and the
 * in-memory model, workspace and kernels. */
#ifndef NEARDUP_CNN_IMPL_H
#define NEARDUP_CNN_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "neardup/cnn.h"

/* ---- on-disk format, version 1 (all little-endian) ---- */
#define NDM_MAGIC "NDMODEL\0"
#define NDM_VERSION 1
#define NDM_ALIGN 64
#define NDM_MAX_SECTIONS 32

enum ndm_section_type {
	NDM_SEC_META = 1,       /* struct ndm_meta */
	NDM_SEC_TENSORS = 2,    /* struct ndm_tensor[tensor_count] */
	NDM_SEC_LAYERS = 3,     /* struct ndm_layer[layer_count] */
	NDM_SEC_DATA = 4,       /* tensor bytes, each at a 64-byte aligned offset */
	NDM_SEC_BACKGROUND = 5, /* struct ndm_background + float16 [count][dim] */
	NDM_SEC_CALIB = 6       /* struct ndm_calib (needs BACKGROUND) */
};
#define NDM_SEC_REQUIRED 1u /* section flag: a loader that does not know the type must refuse */

struct ndm_header {
	char magic[8];          /* "NDMODEL\0" */
	uint32_t version;       /* NDM_VERSION */
	uint32_t header_size;   /* sizeof(struct ndm_header) */
	uint64_t file_size;     /* whole file, trailer included */
	uint32_t section_count;
	uint32_t flags;         /* 0 */
	uint64_t section_table; /* offset of struct ndm_section[section_count] */
	uint8_t reserved[24];   /* 0 */
};
_Static_assert(sizeof(struct ndm_header) == 64, "ndm_header size");

struct ndm_section {
	uint32_t type;          /* enum ndm_section_type */
	uint32_t flags;         /* NDM_SEC_REQUIRED */
	uint64_t offset;        /* from file start, multiple of NDM_ALIGN */
	uint64_t size;          /* bytes */
	uint64_t xxh3;          /* XXH3-64 of the section's bytes */
};
_Static_assert(sizeof(struct ndm_section) == 32, "ndm_section size");

struct ndm_meta {
	char name[64];          /* NUL-terminated model name */
	uint32_t in_c, in_h, in_w; /* in_c == 3 */
	uint32_t embed_dim;
	float mean[3], std[3];
	uint32_t layer_count, tensor_count;
	uint32_t output_layer;  /* index of the layer whose output is the embedding */
	uint32_t reserved[11];  /* 0 */
};
_Static_assert(sizeof(struct ndm_meta) == 160, "ndm_meta size");

enum ndm_dtype { NDM_F32 = 1, NDM_F16 = 2 };

struct ndm_tensor {
	char name[56];          /* NUL-terminated */
	uint32_t dtype;         /* NDM_F32 for weights */
	uint32_t ndim;          /* 1..4 */
	uint32_t shape[4];      /* unused dims are 1 */
	uint64_t offset;        /* in the DATA section, multiple of NDM_ALIGN */
	uint64_t size;          /* bytes == product(shape) * sizeof(dtype) */
};
_Static_assert(sizeof(struct ndm_tensor) == 96, "ndm_tensor size");

enum ndm_op {
	NDM_OP_CONV = 1,        /* p: out_c kh kw sh sw ph pw dh dw groups; w [out_c][in_c/groups][kh][kw], b [out_c] */
	NDM_OP_LINEAR = 2,      /* p: out_features; w [out][in], b [out]; input must be [in][1][1] */
	NDM_OP_AFFINE = 3,      /* per channel y = x*w[c] + b[c] (a BatchNorm not after a conv) */
	NDM_OP_ACT = 4,         /* activation only */
	NDM_OP_MAXPOOL = 5,     /* p: kh kw sh sw ph pw */
	NDM_OP_AVGPOOL = 6,     /* p: kh kw sh sw ph pw count_include_pad */
	NDM_OP_GAP = 7,         /* global average pool: [C][H][W] -> [C][1][1] */
	NDM_OP_GEM = 8,         /* f: p eps; (mean(max(x,eps)^p))^(1/p): [C][H][W] -> [C][1][1] */
	NDM_OP_ADD = 9,         /* in[0] + in[1], same shape */
	NDM_OP_FLATTEN = 10,    /* [C][H][W] -> [C*H*W][1][1] */
	NDM_OP_L2NORM = 11,     /* f: eps; x / max(||x||, eps) over [D][1][1] */
	NDM_OP_COUNT_
};

enum ndm_act {
	NDM_ACT_NONE = 0,
	NDM_ACT_RELU = 1,
	NDM_ACT_RELU6 = 2,
	NDM_ACT_HARDSWISH = 3,
	NDM_ACT_SILU = 4,
	NDM_ACT_COUNT_
};

struct ndm_layer {
	uint32_t op;            /* enum ndm_op */
	uint32_t act;           /* enum ndm_act applied to the result (fused) */
	int32_t in[2];          /* producing layer index, -1 = model input; in[1] only for ADD (else -1) */
	int32_t weight, bias;   /* tensor index or -1 */
	int32_t p[12];          /* integer parameters, see enum ndm_op; unused are 0 */
	float f[4];             /* float parameters; unused are 0 */
	uint32_t out_shape[3];  /* C H W of one image's output, as the exporter computed it */
	char name[28];          /* NUL-terminated (the PyTorch node name, truncated) */
};
_Static_assert(sizeof(struct ndm_layer) == 128, "ndm_layer size");

struct ndm_background {
	uint32_t count, dim;    /* dim == embed_dim */
	uint32_t dtype;         /* NDM_F16 */
	uint32_t reserved;      /* 0 */
};
_Static_assert(sizeof(struct ndm_background) == 16, "ndm_background size");

struct ndm_calib {
	uint32_t stat;          /* enum nd_calib_stat */
	uint32_t k;             /* 1..background count */
	float beta;             /* weight of the statistic, 0..8 */
	float offset;           /* added to every score, |offset| <= 8 */
	float phash_weight;     /* score fusion: weight per bit, 0..1 (0: none) */
	float phash_bits;       /* ... of max(0, phash_bits - Hamming distance), 0..64 */
	uint32_t reserved[2];   /* 0 */
};
_Static_assert(sizeof(struct ndm_calib) == 32, "ndm_calib size");

/* ---- in memory ---- */
typedef struct nd_layer {
	int op, act;
	int in0, in1;           /* -1 = model input */
	const float *w, *b;     /* into the file image, or NULL */
	int p[12];
	float f[4];
	int c, h, w_;           /* output shape per image (w_: width) */
	int ic, ih, iw;         /* input shape per image (in0's) */
	size_t out_off;         /* offset of the output in the arena, in floats per image */
	size_t col_per_image;   /* im2col floats per image (0: no im2col) */
	double flops;           /* per image */
	char name[28];
} nd_layer;

struct nd_model {
	uint8_t *file;          /* the whole file, 64-byte aligned copy */
	size_t file_size;
	uint64_t checksum;
	char name[64];
	int in_c, in_h, in_w;
	int embed_dim;
	float mean[3], std[3];
	int nlayers;
	nd_layer *layers;
	int output_layer;
	size_t input_off;       /* arena offset of the input (CNHW), floats per image */
	size_t arena_per_image; /* floats per image */
	size_t act_max;         /* floats of the largest activation (input included) per image */
	size_t col_max;         /* max im2col floats per image over layers */
	size_t col_row_max;     /* max im2col floats per output row over layers */
	size_t dw_scratch;      /* floats of depthwise padding scratch (max over layers) */
	double flops;
	size_t weight_bytes;
	const uint16_t *bg;
	size_t bg_count;
	int bg_dim;
	int has_calib;
	nd_model_calib calib;
};

/* Activations in the arena are kept as [C][N][H][W] (channel-major across the
 * batch), so a 1x1 convolution is a single sgemm over all N images and a KxK
 * one is im2col over a chunk of images + one sgemm. */
struct nd_workspace {
	const nd_model *model;
	int max_batch;
	int micro;              /* images per internal forward pass */
	float *arena;           /* arena_per_image * max_batch floats */
	float *col;             /* col_cap floats */
	size_t col_cap;
	float *dw_pad;          /* model->dw_scratch floats, for depthwise padding */
	size_t bytes;
	double *prof_ns;        /* per-layer nanoseconds, accumulated when non-NULL (bench) */
};

/* ---- kernels (src/cnn_kernels.c); all take CNHW tensors of n images ---- */
/* Each writes out; none allocates. See the definitions for shapes. */
void nd__cnn_act(float *x, size_t len, int act);
void nd__cnn_bias_act(float *x, size_t rows, size_t cols, size_t ld, const float *bias, int act);
void nd__cnn_im2col(const float *in, int c, size_t cstride, int nb, int h, int w,
		    int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
		    int oy0, int noy, int ow, float *col);
void nd__cnn_depthwise(const float *in, int ic, int n, int h, int w,
		       const float *wt, const float *bias, int oc, int kh, int kw,
		       int sh, int sw, int ph, int pw, int dh, int dw, int oh, int ow,
		       int act, float *pad, float *out);
size_t nd__cnn_depthwise_scratch(int h, int w, int ph, int pw);
void nd__cnn_pool(const float *in, int c, int n, int h, int w, int kh, int kw,
		  int sh, int sw, int ph, int pw, int is_max, int count_pad,
		  int oh, int ow, float *out);
void nd__cnn_gap(const float *in, int c, int n, int hw, float *out);
void nd__cnn_gem(const float *in, int c, int n, int hw, float p, float eps, float *out);
void nd__cnn_affine(const float *in, int c, int n, int hw, const float *scale,
		    const float *shift, int act, float *out);
void nd__cnn_add(const float *a, const float *b, size_t len, int act, float *out);
void nd__cnn_flatten(const float *in, int c, int n, int hw, float *out);
void nd__cnn_l2norm(const float *in, int d, int n, float eps, float *out);

/* Layer output size for a strided window: floor((in + 2p - d(k-1) - 1)/s) + 1,
 * or -1 when the window does not fit. */
int nd__cnn_out_dim(int in, int k, int s, int p, int d);

#endif
