/* Tests for random-hyperplane LSH and multi-probe sequences (src/lsh.c). */
#include "neardup/lsh.h"
#include "test.h"

#include "lib_synth.h"

static void rand_unit(synth_rng *r, float *x, uint32_t d)
{
	synth_unit_gauss(r, x, d);
}

/* The documented fixed-order dot product, written out in scalar code. */
static float ref_dot(const float *a, const float *b, size_t n)
{
	float l[8] = { 0 };
	size_t i = 0, n8 = n & ~(size_t)7;
	for (; i < n8; i += 8)
		for (int k = 0; k < 8; k++)
			l[k] = fmaf(a[i + k], b[i + k], l[k]);
	for (int k = 0; i < n; i++, k++)
		l[k] = fmaf(a[i], b[i], l[k]);
	return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

static void test_dot_is_build_independent(void)
{
	synth_rng r = { 5, 0, 0 };
	float a[300], b[300];
	for (size_t n = 1; n <= 300; n += 7) {
		rand_unit(&r, a, (uint32_t)n);
		rand_unit(&r, b, (uint32_t)n);
		float x = nd_lsh_dot(a, b, n), y = ref_dot(a, b, n);
		CHECK_MSG(memcmp(&x, &y, sizeof(float)) == 0, "n %zu: %.9g vs %.9g", n, x, y);
	}
}

static void test_params_and_determinism(void)
{
	nd_lsh *a = NULL, *b = NULL, *c = NULL;
	nd_error err;
	CHECK_EQ_INT(nd_lsh_create(&a, 0, 4, 8, 1, &err), ND_EINVAL);
	CHECK_EQ_INT(nd_lsh_create(&a, 16, 0, 8, 1, &err), ND_EINVAL);
	CHECK_EQ_INT(nd_lsh_create(&a, 16, 4, 31, 1, &err), ND_EINVAL);
	CHECK(a == NULL);
	CHECK_EQ_INT(nd_lsh_create(&a, 128, 8, 12, 42, &err), 0);
	CHECK_EQ_INT(nd_lsh_create(&b, 128, 8, 12, 42, &err), 0);
	CHECK_EQ_INT(nd_lsh_create(&c, 128, 8, 12, 43, &err), 0);
	CHECK_EQ_INT(nd_lsh_tables(a), 8);
	CHECK_EQ_INT(nd_lsh_bits(a), 12);
	synth_rng r = { 9, 0, 0 };
	float x[128], proj[96];
	uint32_t sa[8], sb[8], sc[8], sp[8];
	int differ = 0;
	for (int i = 0; i < 50; i++) {
		rand_unit(&r, x, 128);
		nd_lsh_sign(a, x, 1, sa);
		nd_lsh_sign(b, x, 1, sb);
		nd_lsh_sign(c, x, 1, sc);
		nd_lsh_project(a, x, proj);
		nd_lsh_sign_proj(a, proj, sp);
		CHECK(memcmp(sa, sb, sizeof(sa)) == 0);
		CHECK(memcmp(sa, sp, sizeof(sa)) == 0);
		for (int t = 0; t < 8; t++) {
			CHECK(sa[t] < (1u << 12));
			differ += sa[t] != sc[t];
		}
	}
	CHECK(differ > 300); /* another seed gives other buckets */
	nd_lsh_free(a);
	nd_lsh_free(b);
	nd_lsh_free(c);
}

/* For a pair at angle theta, each bit agrees with probability 1 - theta/pi. */
static void test_collision_probability(void)
{
	nd_lsh *l = NULL;
	const uint32_t d = 64, L = 16, K = 16;
	CHECK_EQ_INT(nd_lsh_create(&l, d, L, K, 7, NULL), 0);
	synth_rng r = { 11, 0, 0 };
	double cosines[] = { 0.95, 0.8, 0.5, 0.0 };
	float a[64], u[64], b[64];
	for (size_t ci = 0; ci < 4; ci++) {
		double c = cosines[ci], agree = 0, total = 0;
		for (int rep = 0; rep < 200; rep++) {
			rand_unit(&r, a, d);
			rand_unit(&r, u, d);
			double dot = 0;
			for (uint32_t i = 0; i < d; i++)
				dot += a[i] * u[i];
			for (uint32_t i = 0; i < d; i++)
				u[i] = (float)(u[i] - dot * a[i]);
			synth_normalize(u, d);
			for (uint32_t i = 0; i < d; i++)
				b[i] = (float)(c * a[i] + sqrt(1 - c * c) * u[i]);
			uint32_t sa[16], sb[16];
			nd_lsh_sign(l, a, 1, sa);
			nd_lsh_sign(l, b, 1, sb);
			for (uint32_t t = 0; t < L; t++) {
				agree += K - (double)__builtin_popcount(sa[t] ^ sb[t]);
				total += K;
			}
		}
		double expect = 1 - acos(c) / M_PI;
		CHECK_MSG(fabs(agree / total - expect) < 0.02, "cos %.2f: agree %.4f expected %.4f", c,
			  agree / total, expect);
	}
	nd_lsh_free(l);
}

static void test_probe_sequence(void)
{
	nd_lsh *l = NULL;
	const uint32_t d = 32, L = 3, K = 4;
	CHECK_EQ_INT(nd_lsh_create(&l, d, L, K, 3, NULL), 0);
	synth_rng r = { 13, 0, 0 };
	float x[32], proj[12];
	uint16_t tab[64];
	uint32_t bkt[64], home[3];
	size_t n = 0;
	for (int rep = 0; rep < 20; rep++) {
		rand_unit(&r, x, d);
		nd_lsh_project(l, x, proj);
		nd_lsh_sign_proj(l, proj, home);
		/* every bucket of every table exactly once: L * 2^K = 48 */
		CHECK_EQ_INT(nd_lsh_probe_seq(l, proj, 60, tab, bkt, &n, NULL), 0);
		CHECK_EQ_INT(n, 48);
		int seen[3][16] = { { 0 } };
		for (size_t i = 0; i < n; i++)
			seen[tab[i]][bkt[i]]++;
		for (int t = 0; t < 3; t++)
			for (int b = 0; b < 16; b++)
				CHECK_EQ_INT(seen[t][b], 1);
		for (uint32_t t = 0; t < L; t++)
			CHECK(tab[t] == t && bkt[t] == home[t]);
		/* scores (sum of squared margins of flipped bits) never decrease */
		double prev = 0;
		for (size_t i = L; i < n; i++) {
			uint32_t flip = bkt[i] ^ home[tab[i]];
			double s = 0;
			for (uint32_t j = 0; j < K; j++)
				if (flip >> j & 1)
					s += (double)proj[tab[i] * K + j] * proj[tab[i] * K + j];
			CHECK_MSG(s >= prev - 1e-6, "probe %zu score %g after %g", i, s, prev);
			prev = s;
		}
		/* the first extra probe flips the globally smallest margin */
		uint32_t bt = 0, bj = 0;
		for (uint32_t t = 0; t < L; t++)
			for (uint32_t j = 0; j < K; j++)
				if (fabsf(proj[t * K + j]) < fabsf(proj[bt * K + bj])) {
					bt = t;
					bj = j;
				}
		CHECK(tab[L] == bt && bkt[L] == (home[bt] ^ (1u << bj)));
		/* zero extra probes: just the home buckets */
		CHECK_EQ_INT(nd_lsh_probe_seq(l, proj, 0, tab, bkt, &n, NULL), 0);
		CHECK_EQ_INT(n, L);
	}
	nd_lsh_free(l);
}

/* More probes find more near neighbours' buckets (that is the point). */
static void test_multiprobe_helps(void)
{
	nd_lsh *l = NULL;
	const uint32_t d = 128, L = 4, K = 14;
	CHECK_EQ_INT(nd_lsh_create(&l, d, L, K, 21, NULL), 0);
	synth_rng r = { 17, 0, 0 };
	synth s;
	CHECK_EQ_INT(synth_init(&s, d, 10, 3), 0);
	float a[128], b[128], proj[4 * 14];
	uint16_t tab[4 + 200];
	uint32_t bkt[4 + 200], sb[4];
	uint32_t probes[] = { 0, 10, 50, 200 };
	int found[4] = { 0 };
	for (int rep = 0; rep < 300; rep++) {
		synth_background(&s, &r, a);
		synth_perturb(&s, &r, a, b);
		nd_lsh_project(l, a, proj);
		nd_lsh_sign(l, b, 1, sb);
		for (int pi = 0; pi < 4; pi++) {
			size_t n;
			CHECK_EQ_INT(nd_lsh_probe_seq(l, proj, probes[pi], tab, bkt, &n, NULL), 0);
			int hit = 0;
			for (size_t i = 0; i < n; i++)
				hit |= bkt[i] == sb[tab[i]];
			found[pi] += hit;
		}
	}
	for (int pi = 1; pi < 4; pi++)
		CHECK_MSG(found[pi] >= found[pi - 1], "probes %u found %d < %d", probes[pi], found[pi],
			  found[pi - 1]);
	CHECK_MSG(found[3] > found[0] + 60, "multi-probe gain too small: %d -> %d of 300", found[0],
		  found[3]);
	synth_free(&s);
	nd_lsh_free(l);
}

int main(int argc, char **argv)
{
	test_select(argc, argv);
	RUN(test_dot_is_build_independent);
	RUN(test_params_and_determinism);
	RUN(test_collision_probability);
	RUN(test_probe_sequence);
	RUN(test_multiprobe_helps);
	return test_summary();
}
