/* Tests of the perceptual hash (src/phash.c): against eval.py's definition
 * (golden hashes of synthetic inputs), against a naive reference (direct
 * area integral and full DCT) for sizes that are not multiples of 32, its
 * invariances, the fusion term and bad input. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neardup/calib.h"
#include "neardup/phash.h"
#include "test.h"

#define S 128
static const float MEAN[3] = { 0.485f, 0.456f, 0.406f }, STD[3] = { 0.229f, 0.224f, 0.225f };

/* Pattern p's pixel (x, y, channel c); models/train/eval.py's phash_bits_input
 * of the same uint8 input gave the golden hashes below. */
static int pattern(int p, int x, int y, int c)
{
	switch (p) {
	case 0: return c == 0 ? (3 * x + y) & 255 : c == 1 ? (x ^ y) & 255 : (x * y >> 6) & 255;
	case 1: return ((x / 16 + y / 24) & 1) * 200 + 20;
	default:
		return c == 0 ? ((x * x + y * y) / 130) & 255 : c == 1 ? (255 - x - y / 2) & 255 : (x * 2) & 255;
	}
}
static const uint64_t GOLDEN[3] = { 0x565f485d62cd98d1ull, 0xfeff151455145541ull, 0x116755a101e745ffull };

/* The normalised model input of pattern p ([3][S][S], as nd_prep_image writes it). */
static void tensor(int p, float *t, int grey)
{
	for (int y = 0; y < S; y++)
		for (int x = 0; x < S; x++) {
			int px[3];
			for (int c = 0; c < 3; c++)
				px[c] = pattern(p, x, y, c);
			if (grey) /* as a greyscale copy stores it: R = G = B = rounded luma */
				px[0] = px[1] = px[2] = (int)lrint(0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2]);
			for (int c = 0; c < 3; c++)
				t[(c * S + y) * S + x] = ((float)px[c] / 255.0f - MEAN[c]) / STD[c];
		}
}

static void test_golden(void)
{
	float *t = malloc(sizeof(float) * 3 * S * S);
	nd_error err;
	for (int p = 0; p < 3; p++) {
		uint64_t h = 0;
		tensor(p, t, 0);
		CHECK_EQ_INT(nd_phash_tensor(t, S, S, MEAN, STD, NULL, &h, &err), 0);
		CHECK_MSG(h == GOLDEN[p], "pattern %d: %016llx, eval.py %016llx (distance %d)", p,
			  (unsigned long long)h, (unsigned long long)GOLDEN[p], nd_phash_distance(h, GOLDEN[p]));
		/* a greyscale copy keeps the luma, so the hash: why the fusion helps on grey
		 * (not pattern 2: its wrap-arounds leave the low frequencies near zero,
		 * where the rounding of the grey copy flips bits, as for any hash) */
		if (p == 2)
			continue;
		uint64_t g = 0;
		tensor(p, t, 1);
		float lum[S * S];
		CHECK_EQ_INT(nd_phash_tensor(t, S, S, MEAN, STD, lum, &g, &err), 0);
		CHECK_MSG(nd_phash_distance(h, g) <= 1, "pattern %d: grey copy at distance %d", p,
			  nd_phash_distance(h, g));
	}
	free(t);
}

/* Naive reference: each 32x32 cell is the exact area integral of the
 * piecewise-constant plane, then the full 2-D DCT-II by its formula. */
static uint64_t naive_phash(const float *lum, int w, int h)
{
	static double g[32][32], c[64];
	const double pi = 3.14159265358979323846;
	for (int oy = 0; oy < 32; oy++)
		for (int ox = 0; ox < 32; ox++) {
			double x0 = (double)ox * w / 32, x1 = (double)(ox + 1) * w / 32;
			double y0 = (double)oy * h / 32, y1 = (double)(oy + 1) * h / 32, acc = 0;
			for (int y = 0; y < h; y++)
				for (int x = 0; x < w; x++) {
					double cx = fmin(x1, x + 1.0) - fmax(x0, (double)x);
					double cy = fmin(y1, y + 1.0) - fmax(y0, (double)y);
					if (cx > 0 && cy > 0)
						acc += cx * cy * lum[(size_t)y * w + x];
				}
			g[oy][ox] = acc / ((x1 - x0) * (y1 - y0));
		}
	for (int u = 0; u < 8; u++)
		for (int v = 0; v < 8; v++) {
			double acc = 0;
			for (int y = 0; y < 32; y++)
				for (int x = 0; x < 32; x++)
					acc += g[y][x] * cos(pi * (2 * y + 1) * u / 64) * cos(pi * (2 * x + 1) * v / 64);
			acc *= 2.0 / 32 * (u ? 1 : 1 / sqrt(2.0)) * (v ? 1 : 1 / sqrt(2.0));
			c[u * 8 + v] = acc;
		}
	double ac[63];
	memcpy(ac, c + 1, sizeof(ac));
	for (int i = 1; i < 63; i++) /* insertion sort: 63 values */
		for (int j = i; j > 0 && ac[j - 1] > ac[j]; j--) {
			double tmp = ac[j];
			ac[j] = ac[j - 1];
			ac[j - 1] = tmp;
		}
	uint64_t bits = 0;
	for (int i = 0; i < 64; i++)
		if (c[i] > ac[31])
			bits |= (uint64_t)1 << i;
	return bits;
}

static void test_naive(void)
{
	static const int sizes[][2] = { { 32, 32 }, { 128, 128 }, { 100, 77 }, { 7, 5 }, { 300, 41 }, { 33, 200 } };
	uint64_t s = 7;
	nd_error err;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		int w = sizes[k][0], h = sizes[k][1];
		float *lum = malloc(sizeof(float) * (size_t)w * h);
		for (int i = 0; i < w * h; i++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			/* smooth structure plus noise */
			lum[i] = (float)(128 + 60 * sin((i % w) / 5.0) + 40 * cos((i / w) / 7.0) +
					 (double)(s >> 40) / (1 << 24) * 30);
		}
		uint64_t got = 0, want = naive_phash(lum, w, h);
		CHECK_EQ_INT(nd_phash_plane(lum, w, h, &got, &err), 0);
		CHECK_MSG(got == want, "%dx%d: %016llx, naive %016llx", w, h, (unsigned long long)got,
			  (unsigned long long)want);
		free(lum);
	}
}

static void test_fusion_term(void)
{
	CHECK_EQ_INT(nd_phash_distance(0, ~0ull), 64);
	CHECK_EQ_INT(nd_phash_distance(0x0f0full, 0x0f0eull), 1);
	nd_model_calib p = { 1, 3, 0.65f, 0.26f, 0.03f, 11.0f };
	CHECK_NEAR(nd_calib_phash_bonus(&p, 0), 0.33f, 1e-6);
	CHECK_NEAR(nd_calib_phash_bonus(&p, 10), 0.03f, 1e-6);
	CHECK_NEAR(nd_calib_phash_bonus(&p, 11), 0.0f, 0);
	CHECK_NEAR(nd_calib_phash_bonus(&p, 40), 0.0f, 0);
	p.phash_weight = 0; /* a model without fusion */
	CHECK_NEAR(nd_calib_phash_bonus(&p, 0), 0.0f, 0);
}

static void test_bad_input(void)
{
	nd_error err;
	uint64_t h = 123;
	float lum[64] = { 0 };
	CHECK_EQ_INT(nd_phash_plane(lum, 0, 8, &h, &err), ND_EINVAL);
	CHECK_EQ_INT(nd_phash_plane(lum, 8, -1, &h, &err), ND_EINVAL);
	lum[9] = NAN;
	CHECK_EQ_INT(nd_phash_plane(lum, 8, 8, &h, &err), ND_EINVAL);
	CHECK(strstr(err.msg, "non-finite") != NULL);
	CHECK_EQ_INT(h, 123); /* untouched on failure */
	float chw[3 * 64] = { 0 };
	chw[64 + 9] = INFINITY; /* in the green plane */
	CHECK_EQ_INT(nd_phash_tensor(chw, 8, 8, MEAN, STD, NULL, &h, &err), ND_EINVAL);
	/* a flat image hashes (its AC terms are rounding noise, so its bits are arbitrary) */
	for (int i = 0; i < 64; i++)
		lum[i] = 77;
	CHECK_EQ_INT(nd_phash_plane(lum, 8, 8, &h, &err), 0);
}

int main(int argc, char **argv)
{
	test_select(argc, argv);
	RUN(test_golden);
	RUN(test_naive);
	RUN(test_fusion_term);
	RUN(test_bad_input);
	return test_summary();
}
