/* Tests for the LMDB file walker (src/store_verify.c) on environments made
 * here with LMDB itself: named databases, integer keys, sorted duplicates
 * in value sets and grown into sub-databases, overflow values, a free list.
 * A sound file walks clean; a damaged page header, a truncated file and a
 * flipped byte anywhere give ND_ECORRUPT or a clean walk, never a crash. */
#include "store_impl.h"
#include "lib_fs.h"
#include "test.h"

#include <fcntl.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

#define MRC(x) CHECK_EQ_INT((x), 0)

/* An environment with every kind of page the walker knows. */
static void make_env(void)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi plain, ints, dups, vdups;
	MRC(mdb_env_create(&env));
	mdb_env_set_maxdbs(env, 8);
	mdb_env_set_mapsize(env, (size_t)64 << 20);
	MRC(mdb_env_open(env, dir, MDB_NOSYNC, 0644));
	MRC(mdb_txn_begin(env, NULL, 0, &txn));
	MRC(mdb_dbi_open(txn, "plain", MDB_CREATE, &plain));
	MRC(mdb_dbi_open(txn, "ints", MDB_CREATE | MDB_INTEGERKEY, &ints));
	MRC(mdb_dbi_open(txn, "dups", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED | MDB_INTEGERDUP, &dups));
	MRC(mdb_dbi_open(txn, "vdups", MDB_CREATE | MDB_DUPSORT, &vdups));
	static char big[20000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	for (uint32_t i = 0; i < 3000; i++) {
		char k[32];
		int kl = snprintf(k, sizeof(k), "key-%05u-%u", i * 7919 % 3000, i);
		MDB_val kv = { (size_t)kl, k }, vv = { i % 100 == 0 ? 9000 + i : 40 + i % 50, big };
		MRC(mdb_put(txn, plain, &kv, &vv, 0));
		uint32_t ik = i * 2654435761u;
		MDB_val ikv = { 4, &ik }, ivv = { 24, big };
		MRC(mdb_put(txn, ints, &ikv, &ivv, 0));
		/* key 0 gets 1500 values (a sub-database), others a few (a value set) */
		uint32_t dk = i % 3 == 0 ? 0 : i % 40, dv = i * 40503u;
		MDB_val dkv = { 4, &dk }, dvv = { 4, &dv };
		MRC(mdb_put(txn, dups, &dkv, &dvv, 0));
		char vd[40];
		int vl = snprintf(vd, sizeof(vd), "value %u", i * 31u);
		MDB_val vk = { 3, i % 2 ? "odd" : "eve" }, vvv = { (size_t)vl, vd };
		if (i % 5 == 0)
			vk = (MDB_val){ 4, "rare" };
		MRC(mdb_put(txn, vdups, &vk, &vvv, 0));
	}
	MRC(mdb_txn_commit(txn));
	/* deletions: a free list, and pages reused */
	for (int round = 0; round < 3; round++) {
		MRC(mdb_txn_begin(env, NULL, 0, &txn));
		for (uint32_t i = (uint32_t)round; i < 3000; i += 4) {
			uint32_t ik = i * 2654435761u;
			MDB_val ikv = { 4, &ik };
			int rc = mdb_del(txn, ints, &ikv, NULL);
			CHECK(rc == 0 || rc == MDB_NOTFOUND);
		}
		MRC(mdb_txn_commit(txn));
	}
	mdb_env_close(env);
}

static int walk(int full, nd__store_walk_info *wi, nd_error *err)
{
	nd_error_clear(err);
	return nd__store_walk(dir, full, 0, wi, err);
}

static void test_sound_file(void)
{
	nd__store_walk_info wi, light;
	nd_error err;
	CHECK_MSG(walk(1, &wi, &err) == 0, "%s", err.msg);
	CHECK_MSG(walk(0, &light, &err) == 0, "%s", err.msg);
	CHECK(wi.psize >= 512 && wi.txnid >= 4);
	CHECK(wi.pages > 100 && wi.free_pages > 0);
	CHECK(light.pages < wi.pages); /* the light walk reads the main tree only */
	CHECK(wi.pages + wi.free_pages <= wi.last_pg + 1 - 2);
	printf("walked %llu pages, %llu free, of %llu\n", (unsigned long long)wi.pages,
	       (unsigned long long)wi.free_pages, (unsigned long long)wi.last_pg + 1);
}

static char data_path[128];

static void put_byte(long off, unsigned char b)
{
	int fd = open(data_path, O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, &b, 1, off) == 1);
	close(fd);
}

static unsigned char get_byte(long off)
{
	unsigned char b = 0;
	int fd = open(data_path, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, &b, 1, off) == 1);
	close(fd);
	return b;
}

/* The flags of every page in a tree are checked: flipping them is found
 * on exactly the pages the walk reads (free pages and the inside of
 * overflow values are not read as pages). */
static void test_page_headers(void)
{
	nd__store_walk_info wi, w2;
	nd_error err;
	CHECK(walk(1, &wi, &err) == 0);
	uint64_t found = 0;
	for (uint64_t pg = 2; pg <= wi.last_pg; pg++) {
		long off = (long)(pg * wi.psize + 10);
		unsigned char b = get_byte(off);
		put_byte(off, b ^ 0x03);
		int rc = walk(1, &w2, &err);
		CHECK_MSG(rc == 0 || rc == ND_ECORRUPT, "page %llu: %d %s", (unsigned long long)pg, rc, err.msg);
		if (rc == ND_ECORRUPT) {
			found++;
			CHECK_MSG(strstr(err.msg, "is damaged: ") != NULL, "%s", err.msg);
		}
		put_byte(off, b);
	}
	CHECK(walk(1, &w2, &err) == 0);
	CHECK(found > 100 && found <= wi.pages);
	printf("flipped page flags found on %llu of %llu pages walked\n", (unsigned long long)found,
	       (unsigned long long)wi.pages);
}

/* A flipped byte anywhere: a clean walk or ND_ECORRUPT, never a crash
 * (under the sanitizer build: never a read outside a buffer). */
static void test_byte_flips(void)
{
	nd__store_walk_info wi, w2;
	nd_error err;
	CHECK(walk(1, &wi, &err) == 0);
	long size = (long)((wi.last_pg + 1) * wi.psize);
	uint64_t n = 0, found = 0;
	for (long off = 0; off < size; off += 251) {
		unsigned char b = get_byte(off);
		put_byte(off, (unsigned char)~b);
		for (int full = 0; full <= 1; full++) {
			int rc = walk(full, &w2, &err);
			CHECK_MSG(rc == 0 || rc == ND_ECORRUPT, "byte %ld: %d %s", off, rc, err.msg);
			found += full && rc;
		}
		n++;
		put_byte(off, b);
	}
	CHECK(found > 0);
	printf("byte flips: %llu found damaging in %llu copies\n", (unsigned long long)found,
	       (unsigned long long)n);
}

static void test_truncated(void)
{
	nd__store_walk_info wi, w2;
	nd_error err;
	struct stat sb;
	CHECK(walk(1, &wi, &err) == 0);
	CHECK(stat(data_path, &sb) == 0);
	long sizes[] = { sb.st_size - 1, sb.st_size / 2, (long)wi.psize * 2, (long)wi.psize + 50, 100, 0 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		CHECK(truncate(data_path, sizes[i]) == 0);
		CHECK_EQ_INT(walk(0, &w2, &err), ND_ECORRUPT);
		CHECK_MSG(strstr(err.msg, "is damaged: ") != NULL, "%s", err.msg);
	}
}

/* LMDB's own damage codes read as damage too */
static void test_lmdb_codes(void)
{
	int codes[] = { MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INVALID, MDB_VERSION_MISMATCH };
	nd_error err;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		CHECK_EQ_INT(nd__store_err(codes[i], &err, "reading"), ND_ECORRUPT);
		CHECK_MSG(strstr(err.msg, "the index is damaged: reading: ") == err.msg, "%s", err.msg);
	}
	CHECK_EQ_INT(nd__store_err(MDB_MAP_FULL, &err, "x"), ND_STORE_MAPFULL);
	CHECK_EQ_INT(nd__store_err(MDB_READERS_FULL, &err, "x"), ND_ESTORE);
}

int main(int argc, char **argv)
{
	test_select(argc, argv);
	if (tl_scratch_dir(dir, sizeof(dir), "walk"))
		return 1;
	snprintf(data_path, sizeof(data_path), "%s/data.mdb", dir);
	make_env();
	RUN(test_lmdb_codes);
	RUN(test_sound_file);
	RUN(test_page_headers);
	RUN(test_byte_flips);
	RUN(test_truncated); /* last: it cuts the file */
	char p[160];
	unlink(data_path);
	snprintf(p, sizeof(p), "%s/lock.mdb", dir);
	unlink(p);
	rmdir(dir);
	return test_summary();
}
