/* neardup — a validating walker of LMDB's file format.
 *
 * LMDB keeps no checksums and trusts every byte it maps: a truncated
 * data.mdb faults (SIGBUS) on the first touch past the end, and a flipped
 * byte in a page header or node sends it reading or writing outside the
 * page. So before LMDB maps a file we read it ourselves with pread: the two
 * meta pages and the file size (every open), the main database and the
 * "meta" database (every open: they are all an open reads), or every tree
 * (check, and writers before they write).
 *
 * The layout follows liblmdb 0.9 (mdb.c, data version 1, 64-bit page
 * numbers): a page is a 16-byte header (pgno u64, pad u16, flags u16, lower
 * u16, upper u16 or an overflow page count u32) then an array of u16 node
 * offsets growing up from the header and nodes growing down from the end.
 * A node is lo u16, hi u16, flags u16, ksize u16, the key, then the data
 * (leaf: its size is lo | hi << 16) or nothing (branch: the child page is
 * lo | hi << 16 | flags << 32). */
#include "store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MDB_MAGIC_ 0xBEEFC0DEu
#define MDB_DATA_VERSION_ 1u
#define PAGEHDRSZ 16u
#define NODESIZE 8u
#define NUM_METAS 2u
#define P_INVALID_ (~(uint64_t)0)
#define MIN_PAGESIZE 512u
#define MAX_PAGESIZE 65536u

enum { P_BRANCH = 0x01, P_LEAF = 0x02, P_OVERFLOW = 0x04, P_META = 0x08, P_LEAF2 = 0x20, P_SUBP = 0x40 };
enum { F_BIGDATA = 0x01, F_SUBDATA = 0x02, F_DUPDATA = 0x04 };
enum {
	DB_REVERSEKEY = 0x02, DB_DUPSORT = 0x04, DB_INTEGERKEY = 0x08, DB_DUPFIXED = 0x10,
	DB_INTEGERDUP = 0x20, DB_REVERSEDUP = 0x40
};
#define DB_KNOWN_FLAGS 0x7eu

/* MDB_db as stored: in a meta page and as the value of a named or dup
 * sub-database's node */
struct disk_db {
	uint32_t pad; /* LEAF2 key size (meta's free db: the page size) */
	uint16_t flags, depth;
	uint64_t branch_pages, leaf_pages, overflow_pages, entries, root;
};
_Static_assert(sizeof(struct disk_db) == 48, "MDB_db is 48 bytes");

/* MDB_meta, at offset PAGEHDRSZ of pages 0 and 1 */
struct disk_meta {
	uint32_t magic, version;
	uint64_t address, mapsize;
	struct disk_db dbs[2]; /* free, main */
	uint64_t last_pg, txnid;
};
_Static_assert(sizeof(struct disk_meta) == 136, "MDB_meta is 136 bytes");

#define MAX_DEPTH 24  /* of one tree: far beyond what 2^64 bytes of pages can need */
#define MAX_LEVELS 64 /* pages held at once: main tree + named tree + dup tree */

struct walker {
	int fd;
	const char *dir;
	nd_error *err;
	uint32_t psize;
	uint64_t last_pg;
	uint8_t *seen, *freed;      /* bit per page: in a tree; listed free */
	uint8_t *buf[MAX_LEVELS];   /* one page per recursion level */
	int level;
	int full;                   /* walk every tree, not only main and "meta" */
	nd__store_walk_info *out;
};

/* one tree being walked */
struct tree {
	const char *name;
	unsigned flags;             /* DB_* of the tree's keys */
	int is_main, is_free, is_dup; /* the main database, the free list, a dup sub-database */
	unsigned dup_flags;         /* DB_* of its values, when DUPSORT */
	uint32_t depth, leaf2_ksize;
	uint64_t branch, leaf, overflow, entries;
};

__attribute__((format(printf, 2, 3)))
static int damaged(struct walker *w, const char *fmt, ...)
{
	char detail[ND_ERRMSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return nd_error_set(w->err, ND_ECORRUPT, "index '%s' is damaged: %s", w->dir, detail);
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static int read_at(struct walker *w, void *buf, size_t n, uint64_t off, const char *what)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(w->fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return nd_error_set(w->err, ND_EIO, "cannot read '%s/data.mdb': %s", w->dir,
					    strerror(errno));
		if (r == 0)
			return damaged(w, "%s lies past the end of data.mdb", what);
		got += (size_t)r;
	}
	return 0;
}

#define BIT_GET(a, i) (((a)[(i) >> 3] >> ((i)&7)) & 1u)
#define BIT_SET(a, i) ((a)[(i) >> 3] |= (uint8_t)(1u << ((i)&7)))

/* Claims page range [pg, pg+n): inside the file, not a meta page, and not
 * claimed before (a page reached twice is a cycle or a shared subtree). */
static int claim(struct walker *w, struct tree *t, uint64_t pg, uint64_t n)
{
	if (pg < NUM_METAS || pg > w->last_pg || n > w->last_pg - pg + 1)
		return damaged(w, "database '%s' refers to page %llu (+%llu), outside pages 2..%llu", t->name,
			       (unsigned long long)pg, (unsigned long long)n, (unsigned long long)w->last_pg);
	if (!w->seen)
		return 0;
	for (uint64_t i = pg; i < pg + n; i++) {
		if (BIT_GET(w->seen, i))
			return damaged(w, "page %llu is reached twice (database '%s')", (unsigned long long)i,
				       t->name);
		BIT_SET(w->seen, i);
	}
	return 0;
}

/* LMDB's orders: memcmp then length; native unsigned integers of 4 or 8 bytes */
static int cmp_keys(unsigned intkey, const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	if (intkey && al == bl && (al == 4 || al == 8)) {
		if (al == 4) {
			uint32_t x, y;
			memcpy(&x, a, 4);
			memcpy(&y, b, 4);
			return x < y ? -1 : x > y;
		}
		uint64_t x = get64(a), y = get64(b);
		return x < y ? -1 : x > y;
	}
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : al < bl ? -1 : al > bl;
}

struct key {
	const uint8_t *p;
	size_t n;
};

static int walk_tree(struct walker *w, struct tree *t, const struct disk_db *db);

/* A named or dup sub-database's record (node data) */
static int sub_db(struct walker *w, struct tree *parent, const uint8_t *data, size_t dsize,
		  const uint8_t *key, size_t ksize, int dup, uint64_t *entries)
{
	struct disk_db db;
	char name[64];
	if (dsize != sizeof(db))
		return damaged(w, "a database record in '%s' is %zu bytes, not %zu", parent->name, dsize,
			       sizeof(db));
	memcpy(&db, data, sizeof(db));
	struct tree sub;
	memset(&sub, 0, sizeof(sub));
	if (dup) {
		/* a value set grown out of its node: the values are its keys */
		if (db.flags & ~(unsigned)(DB_DUPFIXED | DB_INTEGERKEY))
			return damaged(w, "a value set in '%s' has flags 0x%x", parent->name, db.flags);
		sub.name = parent->name;
		sub.flags = (parent->dup_flags & DB_INTEGERDUP ? DB_INTEGERKEY : 0) |
			    (parent->dup_flags & DB_REVERSEDUP ? DB_REVERSEKEY : 0);
		sub.is_dup = 1;
		if (parent->dup_flags & DB_DUPFIXED) {
			if (db.pad == 0 || db.pad > MAX_PAGESIZE / 2)
				return damaged(w, "a value set in '%s' has fixed values of %u bytes", parent->name,
					       db.pad);
			sub.leaf2_ksize = db.pad;
		}
	} else {
		size_t n = ksize < sizeof(name) - 1 ? ksize : sizeof(name) - 1;
		for (size_t i = 0; i < n; i++)
			name[i] = key[i] >= 0x20 && key[i] < 0x7f ? (char)key[i] : '?';
		name[n] = 0;
		if (db.flags & ~DB_KNOWN_FLAGS)
			return damaged(w, "database '%s' has unknown flags 0x%x", name, db.flags);
		if ((db.flags & (DB_DUPFIXED | DB_INTEGERDUP | DB_REVERSEDUP)) && !(db.flags & DB_DUPSORT))
			return damaged(w, "database '%s' has value flags without sorted values (0x%x)", name,
				       db.flags);
		sub.name = name;
		sub.flags = db.flags & (DB_INTEGERKEY | DB_REVERSEKEY);
		if (db.flags & DB_DUPSORT)
			sub.dup_flags = db.flags | DB_DUPSORT;
		/* a light walk reads only what every open reads */
		if (!w->full && !(ksize == sizeof(ND_DB_META) - 1 && !memcmp(key, ND_DB_META, ksize))) {
			if (db.root != P_INVALID_ && (db.root < NUM_METAS || db.root > w->last_pg))
				return damaged(w, "database '%s' has its root at page %llu, outside pages 2..%llu",
					       name, (unsigned long long)db.root,
					       (unsigned long long)w->last_pg);
			*entries += 1;
			return 0;
		}
	}
	int rc = walk_tree(w, &sub, &db);
	if (rc)
		return rc;
	*entries += dup ? db.entries : 1;
	return 0;
}

/* A free-list record: a count n, then n page numbers */
static int free_list(struct walker *w, const uint8_t *v, size_t n)
{
	if (n < 8 || n % 8)
		return damaged(w, "a free-list record is %zu bytes", n);
	uint64_t cnt = get64(v);
	if (cnt != n / 8 - 1)
		return damaged(w, "a free-list record of %zu bytes says %llu pages", n, (unsigned long long)cnt);
	for (uint64_t i = 1; i <= cnt; i++) {
		uint64_t pg = get64(v + i * 8);
		if (pg < NUM_METAS || pg > w->last_pg)
			return damaged(w, "the free list names page %llu, outside pages 2..%llu",
				       (unsigned long long)pg, (unsigned long long)w->last_pg);
		if (w->freed) {
			if (BIT_GET(w->freed, pg))
				return damaged(w, "the free list names page %llu twice", (unsigned long long)pg);
			BIT_SET(w->freed, pg);
		}
		w->out->free_pages++;
	}
	return 0;
}

/* An overflow value: count pages from pg, holding dsize bytes */
static int overflow(struct walker *w, struct tree *t, uint64_t pg, size_t dsize)
{
	uint8_t hdr[PAGEHDRSZ];
	int rc;
	if (pg < NUM_METAS || pg > w->last_pg)
		return damaged(w, "database '%s' refers to page %llu, outside pages 2..%llu", t->name,
			       (unsigned long long)pg, (unsigned long long)w->last_pg);
	if ((rc = read_at(w, hdr, sizeof(hdr), pg * w->psize, "an overflow page")))
		return rc;
	uint32_t count;
	memcpy(&count, hdr + 12, 4);
	if (get64(hdr) != pg || get16(hdr + 10) != P_OVERFLOW)
		return damaged(w, "page %llu is not the overflow page database '%s' expects",
			       (unsigned long long)pg, t->name);
	if (count == 0 || (uint64_t)count * w->psize < PAGEHDRSZ + (uint64_t)dsize)
		return damaged(w, "overflow page %llu holds %u pages, too few for %zu bytes",
			       (unsigned long long)pg, count, dsize);
	if ((rc = claim(w, t, pg, count)))
		return rc;
	t->overflow += count;
	w->out->pages += count;
	if (t->is_free) {
		uint8_t *v = malloc(dsize ? dsize : 1);
		if (!v)
			return nd_error_set(w->err, ND_ENOMEM, "out of memory");
		rc = read_at(w, v, dsize, pg * w->psize + PAGEHDRSZ, "an overflow value");
		if (!rc)
			rc = free_list(w, v, dsize);
		free(v);
	}
	return rc;
}

/* The nodes of a page (or a sub-page of values) of size psz at p: bounds,
 * flags and order; leaf data and children are followed. lo/hi bound the
 * keys (hi exclusive), from the branch above. */
static int walk_nodes(struct walker *w, struct tree *t, const uint8_t *p, size_t psz, int branch,
		      int subpage, uint32_t level, struct key lo, struct key hi);

static int walk_page(struct walker *w, struct tree *t, uint64_t pg, uint32_t level, struct key lo,
		     struct key hi)
{
	int rc;
	if ((rc = claim(w, t, pg, 1)))
		return rc;
	if (w->level >= MAX_LEVELS)
		return damaged(w, "database '%s' nests too deep", t->name);
	if (!w->buf[w->level] && !(w->buf[w->level] = malloc(w->psize)))
		return nd_error_set(w->err, ND_ENOMEM, "out of memory");
	uint8_t *p = w->buf[w->level++];
	if ((rc = read_at(w, p, w->psize, pg * w->psize, "a page")))
		goto done;
	w->out->pages++;
	uint16_t flags = get16(p + 10);
	int branch = level < t->depth;
	uint16_t want = branch ? P_BRANCH : t->leaf2_ksize ? P_LEAF | P_LEAF2 : P_LEAF;
	if (get64(p) != pg) {
		rc = damaged(w, "page %llu says it is page %llu (database '%s')", (unsigned long long)pg,
			     (unsigned long long)get64(p), t->name);
		goto done;
	}
	if (flags != want) {
		rc = damaged(w, "page %llu of database '%s' has flags 0x%x, expected 0x%x at depth %u of %u",
			     (unsigned long long)pg, t->name, flags, want, level, t->depth);
		goto done;
	}
	if (branch)
		t->branch++;
	else
		t->leaf++;
	rc = walk_nodes(w, t, p, w->psize, branch, 0, level, lo, hi);
done:
	w->level--;
	return rc;
}

static int walk_nodes(struct walker *w, struct tree *t, const uint8_t *p, size_t psz, int branch,
		      int subpage, uint32_t level, struct key lo, struct key hi)
{
	uint64_t pg = subpage ? 0 : get64(p);
	uint16_t lower = get16(p + 12), upper = get16(p + 14);
	const char *where = subpage ? "a value set on a page" : "page";
	if (lower < PAGEHDRSZ || (lower - PAGEHDRSZ) % 2 || lower > upper || upper > psz)
		return damaged(w, "%s %llu of database '%s' has bad bounds (lower %u, upper %u, size %zu)", where,
			       (unsigned long long)pg, t->name, lower, upper, psz);
	unsigned n = (lower - PAGEHDRSZ) / 2;
	unsigned dupsort = t->dup_flags & DB_DUPSORT;
	unsigned ordered = !(t->flags & DB_REVERSEKEY);
	unsigned intkey = t->flags & DB_INTEGERKEY;
	if (n == 0 && (branch || level > 1 || subpage))
		return damaged(w, "%s %llu of database '%s' is empty", where, (unsigned long long)pg, t->name);
	uint32_t ks2 = subpage ? get16(p + 8) : t->leaf2_ksize;
	if (ks2 && !branch) {
		/* LEAF2: fixed-size keys packed after the header, no nodes */
		if (ks2 != get16(p + 8) || (uint64_t)n * ks2 > psz - PAGEHDRSZ)
			return damaged(w, "%s %llu of database '%s' has bad fixed-size keys", where,
				       (unsigned long long)pg, t->name);
		for (unsigned i = 0; i < n; i++) {
			const uint8_t *k = p + PAGEHDRSZ + (size_t)i * ks2;
			if (ordered && ((i > 0 && cmp_keys(intkey, k - ks2, ks2, k, ks2) >= 0) ||
					(i == 0 && lo.p && cmp_keys(intkey, lo.p, lo.n, k, ks2) > 0) ||
					(i == n - 1 && hi.p && cmp_keys(intkey, k, ks2, hi.p, hi.n) >= 0)))
				return damaged(w, "%s %llu of database '%s' has keys out of order", where,
					       (unsigned long long)pg, t->name);
		}
		t->entries += n;
		return 0;
	}
	struct key prev = { NULL, 0 };
	for (unsigned i = 0; i < n; i++) {
		uint16_t off = get16(p + PAGEHDRSZ + 2 * i);
		if (off < upper || off % 2 || (size_t)off + NODESIZE > psz)
			return damaged(w, "%s %llu of database '%s': node %u at offset %u outside %u..%zu", where,
				       (unsigned long long)pg, t->name, i, off, upper, psz);
		const uint8_t *nd = p + off;
		uint16_t nlo = get16(nd), nhi = get16(nd + 2), nflags = get16(nd + 4), ksize = get16(nd + 6);
		const uint8_t *key = nd + NODESIZE;
		if ((size_t)off + NODESIZE + ksize > psz)
			return damaged(w, "%s %llu of database '%s': key %u runs past the page", where,
				       (unsigned long long)pg, t->name, i);
		struct key k = { key, ksize };
		/* a branch page's first key is not stored: its child's keys start at lo */
		if (ordered && !(branch && i == 0)) {
			if ((prev.p && cmp_keys(intkey, prev.p, prev.n, key, ksize) >= 0) ||
			    (!prev.p && lo.p && cmp_keys(intkey, lo.p, lo.n, key, ksize) > 0) ||
			    (hi.p && cmp_keys(intkey, key, ksize, hi.p, hi.n) >= 0))
				return damaged(w, "%s %llu of database '%s' has keys out of order", where,
					       (unsigned long long)pg, t->name);
		}
		if (branch) {
			uint64_t child = nlo | (uint64_t)nhi << 16 | (uint64_t)nflags << 32;
			struct key clo = i == 0 ? lo : k, chi = hi;
			if (i + 1 < n) {
				uint16_t noff = get16(p + PAGEHDRSZ + 2 * (i + 1));
				if (noff < upper || (size_t)noff + NODESIZE > psz ||
				    (size_t)noff + NODESIZE + get16(p + noff + 6) > psz)
					return damaged(w, "page %llu of database '%s': node %u runs past the page",
						       (unsigned long long)pg, t->name, i + 1);
				chi = (struct key){ p + noff + NODESIZE, get16(p + noff + 6) };
			}
			int rc = walk_page(w, t, child, level + 1, clo, chi);
			if (rc)
				return rc;
			prev = k;
			continue;
		}
		size_t dsize = nlo | (size_t)nhi << 16;
		const uint8_t *data = key + ksize;
		int rc = 0;
		if (nflags & ~(unsigned)(F_BIGDATA | F_SUBDATA | F_DUPDATA) ||
		    (subpage && nflags) || (t->is_dup && nflags) ||
		    ((nflags & F_BIGDATA) && (nflags & (F_SUBDATA | F_DUPDATA))) ||
		    ((nflags & F_DUPDATA) && !dupsort) || ((nflags & F_SUBDATA) && !(nflags & F_DUPDATA) && !t->is_main))
			return damaged(w, "%s %llu of database '%s': node %u has flags 0x%x", where,
				       (unsigned long long)pg, t->name, i, nflags);
		if (nflags & F_BIGDATA) {
			if ((size_t)off + NODESIZE + ksize + 8 > psz)
				return damaged(w, "%s %llu of database '%s': value %u runs past the page", where,
					       (unsigned long long)pg, t->name, i);
			rc = overflow(w, t, get64(data), dsize);
			t->entries++;
		} else if ((size_t)off + NODESIZE + ksize + dsize > psz) {
			return damaged(w, "%s %llu of database '%s': value %u (%zu bytes) runs past the page", where,
				       (unsigned long long)pg, t->name, i, dsize);
		} else if (nflags & F_SUBDATA) {
			rc = sub_db(w, t, data, dsize, key, ksize, nflags & F_DUPDATA, &t->entries);
		} else if (nflags & F_DUPDATA) {
			/* a small value set kept inside the node: a page of its own */
			struct tree vt;
			memset(&vt, 0, sizeof(vt));
			vt.name = t->name;
			vt.is_dup = 1;
			vt.flags = (t->dup_flags & DB_INTEGERDUP ? DB_INTEGERKEY : 0) |
				   (t->dup_flags & DB_REVERSEDUP ? DB_REVERSEKEY : 0);
			uint16_t want = P_LEAF | P_SUBP | (t->dup_flags & DB_DUPFIXED ? P_LEAF2 : 0);
			/* LMDB leaves its in-memory "dirty" bit (0x10) on value sets */
			if (dsize < PAGEHDRSZ || (get16(data + 10) & ~0x10u) != want ||
			    !(t->dup_flags & DB_DUPFIXED) != !get16(data + 8))
				return damaged(w, "%s %llu of database '%s': value set %u has a bad header", where,
					       (unsigned long long)pg, t->name, i);
			rc = walk_nodes(w, &vt, data, dsize, 0, 1, 1, (struct key){ NULL, 0 },
					(struct key){ NULL, 0 });
			t->entries += vt.entries;
		} else {
			if (t->is_free)
				rc = free_list(w, data, dsize);
			t->entries++;
		}
		if (rc)
			return rc;
		prev = k;
	}
	return 0;
}

static int walk_tree(struct walker *w, struct tree *t, const struct disk_db *db)
{
	if (db->root == P_INVALID_) {
		if (db->depth || db->entries || db->branch_pages || db->leaf_pages || db->overflow_pages)
			return damaged(w, "database '%s' is empty but counts %llu entries at depth %u", t->name,
				       (unsigned long long)db->entries, db->depth);
		return 0;
	}
	if (db->depth == 0 || db->depth > MAX_DEPTH)
		return damaged(w, "database '%s' has depth %u", t->name, db->depth);
	t->depth = db->depth;
	int rc = walk_page(w, t, db->root, 1, (struct key){ NULL, 0 }, (struct key){ NULL, 0 });
	if (rc)
		return rc;
	if (t->branch != db->branch_pages || t->leaf != db->leaf_pages || t->overflow != db->overflow_pages ||
	    t->entries != db->entries)
		return damaged(w,
			       "database '%s' counts %llu entries in %llu+%llu+%llu pages, its tree holds "
			       "%llu in %llu+%llu+%llu",
			       t->name, (unsigned long long)db->entries, (unsigned long long)db->branch_pages,
			       (unsigned long long)db->leaf_pages, (unsigned long long)db->overflow_pages,
			       (unsigned long long)t->entries, (unsigned long long)t->branch,
			       (unsigned long long)t->leaf, (unsigned long long)t->overflow);
	return 0;
}

/* Reads both meta pages; picks the one LMDB will use (the higher txnid of
 * the two that carry the magic), or the one with txnid want when want != 0
 * (*found = 0 when neither has it). */
static int read_metas(struct walker *w, uint64_t want, struct disk_meta *out, int *found)
{
	uint8_t pg[PAGEHDRSZ + sizeof(struct disk_meta)];
	struct disk_meta m[NUM_METAS];
	int rc;
	*found = 0;
	if ((rc = read_at(w, pg, sizeof(pg), 0, "the first meta page")))
		return rc;
	memcpy(&m[0], pg + PAGEHDRSZ, sizeof(m[0]));
	if (m[0].magic != MDB_MAGIC_ || !(get16(pg + 10) & P_META))
		return damaged(w, "data.mdb does not start with an LMDB meta page");
	if (m[0].version != MDB_DATA_VERSION_)
		return damaged(w, "data.mdb has LMDB data version %u, this build reads %u", m[0].version,
			       MDB_DATA_VERSION_);
	uint32_t psize = m[0].dbs[0].pad;
	if (psize < MIN_PAGESIZE || psize > MAX_PAGESIZE || (psize & (psize - 1)))
		return damaged(w, "data.mdb says its pages are %u bytes", psize);
	w->psize = psize;
	if ((rc = read_at(w, pg, sizeof(pg), psize, "the second meta page")))
		return rc;
	memcpy(&m[1], pg + PAGEHDRSZ, sizeof(m[1]));
	if (m[1].magic != MDB_MAGIC_ || !(get16(pg + 10) & P_META))
		return damaged(w, "the second meta page of data.mdb is not an LMDB meta page");
	if (m[1].version != MDB_DATA_VERSION_)
		return damaged(w, "data.mdb has LMDB data version %u, this build reads %u", m[1].version,
			       MDB_DATA_VERSION_);
	int pick = m[1].txnid > m[0].txnid;
	if (want) {
		if (m[0].txnid != want && m[1].txnid != want)
			return 0;
		pick = m[1].txnid == want;
	}
	*out = m[pick];
	*found = 1;
	const struct disk_meta *c = out;
	if (c->dbs[0].pad != psize)
		return damaged(w, "the meta pages of data.mdb disagree on the page size (%u, %u)", psize,
			       c->dbs[0].pad);
	if (c->last_pg < NUM_METAS - 1 || c->last_pg > UINT64_MAX / psize - 1)
		return damaged(w, "data.mdb's meta page says its last page is %llu", (unsigned long long)c->last_pg);
	w->last_pg = c->last_pg;
	return 0;
}

int nd__store_walk(const char *dir, int full, uint64_t want_txnid, nd__store_walk_info *out, nd_error *err)
{
	struct walker w;
	struct disk_meta m;
	char path[4200];
	struct stat sb;
	int rc = 0, found;
	memset(&w, 0, sizeof(w));
	memset(out, 0, sizeof(*out));
	w.dir = dir;
	w.err = err;
	w.full = full;
	w.out = out;
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	w.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (w.fd < 0)
		return nd_error_set(err, errno == ENOENT ? ND_ENOTFOUND : ND_EIO, "cannot open '%s': %s", path,
				    strerror(errno));
	if (fstat(w.fd, &sb) == 0 && sb.st_size == 0) {
		rc = damaged(&w, "data.mdb is empty");
		goto done;
	}
	if ((rc = read_metas(&w, want_txnid, &m, &found)))
		goto done;
	if (!found) {
		rc = ND_EBUSY; /* the snapshot wanted was overwritten: the caller retries */
		goto done;
	}
	/* the size after the metas: a writer extends the file before it
	 * writes the meta page that covers the new pages */
	if (fstat(w.fd, &sb) != 0) {
		rc = nd_error_set(err, ND_EIO, "cannot stat '%s': %s", path, strerror(errno));
		goto done;
	}
	out->file_bytes = (uint64_t)sb.st_size;
	uint64_t need = (w.last_pg + 1) * w.psize;
	if (out->file_bytes < need) {
		rc = damaged(&w, "data.mdb is %llu bytes, its last page needs %llu", (unsigned long long)out->file_bytes,
			     (unsigned long long)need);
		goto done;
	}
	out->psize = w.psize;
	out->last_pg = w.last_pg;
	out->txnid = m.txnid;
	if (full) {
		size_t bytes = (size_t)(w.last_pg / 8 + 1);
		w.seen = calloc(1, bytes);
		w.freed = calloc(1, bytes);
		if (!w.seen || !w.freed) {
			rc = nd_error_set(err, ND_ENOMEM, "out of memory for a map of %llu pages",
					  (unsigned long long)w.last_pg + 1);
			goto done;
		}
	}
	struct tree main_t, free_t;
	memset(&main_t, 0, sizeof(main_t));
	main_t.name = "(main)";
	main_t.is_main = 1;
	main_t.flags = m.dbs[1].flags & (DB_INTEGERKEY | DB_REVERSEKEY);
	if (m.dbs[1].flags & ~DB_KNOWN_FLAGS || m.dbs[1].flags & DB_DUPSORT) {
		rc = damaged(&w, "the main database has flags 0x%x", m.dbs[1].flags);
		goto done;
	}
	if ((rc = walk_tree(&w, &main_t, &m.dbs[1])))
		goto done;
	if (full) {
		memset(&free_t, 0, sizeof(free_t));
		free_t.name = "(free pages)";
		free_t.is_free = 1;
		free_t.flags = DB_INTEGERKEY;
		if ((rc = walk_tree(&w, &free_t, &m.dbs[0])))
			goto done;
		for (uint64_t pg = NUM_METAS; pg <= w.last_pg; pg++)
			if (BIT_GET(w.freed, pg) && BIT_GET(w.seen, pg)) {
				rc = damaged(&w, "page %llu is both in use and listed free", (unsigned long long)pg);
				goto done;
			}
	}
done:
	for (int i = 0; i < MAX_LEVELS; i++)
		free(w.buf[i]);
	free(w.seen);
	free(w.freed);
	close(w.fd);
	return rc;
}
