/* neardup apply — carries out the decisions exported from the HTML review
 * page (dedup_html.c): exactly the files marked there, nothing else.
 *
 * The decision file is read with jansson (a complete, strict JSON parser).
 * It is refused as a whole, before anything is touched, when it is not what
 * the page writes, when it names another index than the one opened, when a
 * path is not in the index or the index's record (content hash, size,
 * device, inode) differs from the decision's, when a group with marked
 * files has no single keeper or a file is named twice, or when a marked or
 * kept file cannot be reached by a walk that follows no symbolic link or
 * no longer hashes to its recorded hash. Then the marked files of each
 * group go to dd_act (dedup_act.c) with their group's keeper as the kept
 * file: it checks every member and the keeper again just before acting,
 * journals each action (neardup undo reverses moves and trashes) and never
 * acts on a file whose keeper is not there and verified. Without --yes it
 * is a dry run. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dedup.h"
#include "output.h"
#include "safe_fs.h"

static const char usage_text[] =
	"usage: neardup apply DECISIONS.json --action trash|move|hardlink|delete [--to DIR]\n"
	"                     [--index DIR] [--yes]\n"
	"\n"
	"Carries out the decisions exported from the review page of\n"
	"'neardup dedup --format html': every file marked there is trashed, moved,\n"
	"hard-linked to its group's keeper or deleted; no other file is touched.\n"
	"Refuses the whole file when a path is not in the index or a marked or kept\n"
	"file no longer holds the content it had. Without --yes, a dry run.\n"
	"\n"
	"options:\n"
	"      --action A     trash, move (needs --to), hardlink or delete\n"
	"      --to DIR       where --action move puts the files (their paths below DIR)\n"
	"      --yes          carry it out; without it, print what would be done\n"
	"      --index DIR    the index (default: the one the decision file names)\n"
	"  -q, --quiet        no summary lines\n"
	"  -h, --help         show this help\n";

#define DECISIONS_FORMAT "neardup-decisions"
#define DECISIONS_VERSION 1

struct apply {
	const char *file;   /* the decision file, for messages */
	int bad;            /* problems found (each printed) */
	nd_index *ix;
	struct dd_result res;
	size_t cap_nodes;
};

/* "neardup: refusing 'FILE': <why>" */
static void __attribute__((format(printf, 2, 3))) problem(struct apply *a, const char *fmt, ...)
{
	char msg[1200], q[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cli_msg("%s: %s", cli_quote(a->file, q, sizeof(q)), msg);
	a->bad++;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_hex(const char *s, uint8_t *out, size_t n)
{
	if (!s || strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int h = hexval(s[2 * i]), l = hexval(s[2 * i + 1]);
		if (h < 0 || l < 0)
			return -1;
		out[i] = (uint8_t)(h << 4 | l);
	}
	return 0;
}

/* Decodes standard base64 (the page's path_b64, for names that are not
 * UTF-8) into a malloc-ed NUL-terminated string; NULL when invalid or when
 * it holds a NUL byte. */
static char *unbase64(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(n / 4 * 3 + 1);
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	if (!out || n % 4)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i], v;
		if (c == '=') {
			if (i + 2 < n || (i + 1 < n && s[i + 1] != '='))
				goto bad;
			break;
		}
		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+')
			v = 62;
		else if (c == '/')
			v = 63;
		else
			goto bad;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o] = (char)(acc >> bits & 0xff);
			if (!out[o])
				goto bad;
			o++;
		}
	}
	out[o] = 0;
	return out;
bad:
	free(out);
	return NULL;
}

/* 1 when the decision's device or inode (a decimal string, as the page
 * writes it, or a number; absent: not checked here) is v. */
static int same_id(json_t *j, uint64_t v)
{
	if (!j)
		return 1;
	if (json_is_integer(j))
		return json_integer_value(j) >= 0 && (uint64_t)json_integer_value(j) == v;
	const char *s = json_string_value(j);
	char *end;
	if (!s || *s < '0' || *s > '9')
		return 0;
	errno = 0;
	unsigned long long n = strtoull(s, &end, 10);
	return !errno && !*end && n == v;
}

/* The node for one file of the decision file, from the index's record;
 * checks the decision against it. Returns the node's index or -1. */
static long add_node(struct apply *a, json_t *file)
{
	char q[1024];
	json_t *jp = json_object_get(file, "path"), *jb = json_object_get(file, "path_b64");
	char *path = NULL;
	if (json_is_string(jb))
		path = unbase64(json_string_value(jb));
	else if (json_is_string(jp) && strlen(json_string_value(jp)) == json_string_length(jp))
		path = strdup(json_string_value(jp));
	if (!path || !*path) {
		problem(a, "a file without a valid \"path\"");
		free(path);
		return -1;
	}
	cli_quote(path, q, sizeof(q));
	uint8_t hash[16];
	json_t *js = json_object_get(file, "size");
	if (parse_hex(json_string_value(json_object_get(file, "hash")), hash, 16) || !json_is_integer(js)) {
		problem(a, "'%s': no valid \"hash\" (32 hex digits) and \"size\"", q);
		free(path);
		return -1;
	}
	uint32_t id;
	nd_error err;
	nd_error_clear(&err);
	int rc = nd_index_lookup_path(a->ix, path, &id, &err);
	nd_record rec;
	char pbuf[ND_PATH_MAX + 1];
	if (rc == 0)
		rc = nd_index_get_record(a->ix, id, &rec, pbuf, sizeof(pbuf), &err);
	if (rc == ND_ENOTFOUND) {
		problem(a, "'%s' is not in the index", q);
		free(path);
		return -1;
	}
	if (rc) {
		problem(a, "'%s': cannot read the index: %s", q, err.msg[0] ? err.msg : nd_strerror(rc));
		free(path);
		return -1;
	}
	if (memcmp(rec.hash, hash, 16) || rec.size != (uint64_t)json_integer_value(js) ||
	    !same_id(json_object_get(file, "dev"), rec.dev) || !same_id(json_object_get(file, "ino"), rec.ino)) {
		problem(a, "'%s' was indexed again since the report (its hash, size or identity "
			   "differ); make a new report", q);
		free(path);
		return -1;
	}
	for (size_t i = 0; i < a->res.n_nodes; i++)
		if (a->res.nodes[i].id == id) {
			problem(a, "'%s' is named twice", q);
			free(path);
			return -1;
		}
	if (a->res.n_nodes == a->cap_nodes) {
		size_t c = a->cap_nodes ? 2 * a->cap_nodes : 64;
		struct dd_node *n = realloc(a->res.nodes, c * sizeof(*n));
		if (!n) {
			free(path);
			return -2;
		}
		a->res.nodes = n;
		a->cap_nodes = c;
	}
	struct dd_node *nd = &a->res.nodes[a->res.n_nodes];
	memset(nd, 0, sizeof(*nd));
	nd->id = id;
	nd->width = rec.width;
	nd->height = rec.height;
	nd->size = rec.size;
	nd->mtime_ns = rec.mtime_ns;
	memcpy(nd->hash, rec.hash, 16);
	nd->path = path;
	nd->dev = rec.dev;
	nd->ino = rec.ino;
	return (long)a->res.n_nodes++;
}

/* Reaches nd's file by the safe walk and hashes it: 0 when it is what the
 * decision describes (printed and counted otherwise). */
static void preflight(struct apply *a, const struct dd_node *nd)
{
	struct sfs_file f;
	char why[SFS_WHY], q[1024];
	uint8_t h[16];
	uint64_t len;
	cli_quote(nd->path, q, sizeof(q));
	if (sfs_open(nd->path, &f, why)) {
		problem(a, "'%s': %s", q, why);
		return;
	}
	if ((nd->dev || nd->ino) && ((uint64_t)f.st.st_dev != nd->dev || (uint64_t)f.st.st_ino != nd->ino))
		problem(a, "'%s' is another file than the one indexed (device and inode differ)", q);
	else if (sfs_hash_fd(f.fd, h, &len, why))
		problem(a, "'%s': %s", q, why);
	else if (len != nd->size || memcmp(h, nd->hash, 16))
		problem(a, "'%s' changed since the report (its content no longer matches its hash)", q);
	sfs_close(&f);
}

/* One group: its keeper first, then its marked files. Returns 0, -1 on a
 * problem (printed), -2 out of memory. */
static int add_group(struct apply *a, json_t *g, size_t gi)
{
	json_t *files = json_object_get(g, "files");
	if (!json_is_array(files)) {
		problem(a, "group %zu has no \"files\" array", gi + 1);
		return -1;
	}
	size_t n = json_array_size(files), nkeep = 0, nmark = 0;
	long keep = -1;
	long *marked = calloc(n + 1, sizeof(*marked));
	if (!marked)
		return -2;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *f = json_array_get(files, i);
		const char *d = json_string_value(json_object_get(f, "decision"));
		if (!json_is_object(f) || !d || (strcmp(d, "keep") && strcmp(d, "mark") && strcmp(d, "leave"))) {
			problem(a, "group %zu, file %zu: \"decision\" is not keep, mark or leave", gi + 1, i + 1);
			rc = -1;
			continue;
		}
		if (!strcmp(d, "leave"))
			continue; /* never touched: not even looked up */
		long k = add_node(a, f);
		if (k == -2) {
			rc = -2;
			break;
		}
		if (k < 0) {
			rc = -1;
			continue;
		}
		if (!strcmp(d, "keep")) {
			nkeep++;
			keep = k;
		} else {
			marked[nmark++] = k;
		}
	}
	if (rc == 0 && nmark > 0 && nkeep != 1) {
		problem(a, "group %zu has %zu marked files and %zu keepers (one keeper must stay)", gi + 1,
			nmark, nkeep);
		rc = -1;
	}
	if (rc == 0 && nmark > 0) {
		struct dd_group *grp = &a->res.groups[a->res.n_groups];
		grp->n = nmark + 1;
		grp->members = malloc(grp->n * sizeof(*grp->members));
		grp->sims = calloc(grp->n, sizeof(*grp->sims));
		grp->raws = calloc(grp->n, sizeof(*grp->raws));
		if (!grp->members || !grp->sims || !grp->raws) {
			free(grp->members);
			free(grp->sims);
			free(grp->raws);
			free(marked);
			return -2;
		}
		a->res.n_groups++;
		grp->members[0] = (size_t)keep;
		for (size_t i = 0; i < nmark; i++)
			grp->members[i + 1] = (size_t)marked[i];
	}
	free(marked);
	return rc;
}

/* The index the decisions were made on must be the one opened. */
static void check_index(struct apply *a, json_t *jix)
{
	nd_meta m;
	nd_error err;
	nd_error_clear(&err);
	int rc = nd_index_meta(a->ix, &m, &err);
	if (rc) {
		problem(a, "cannot read the index: %s", err.msg[0] ? err.msg : nd_strerror(rc));
		return;
	}
	uint8_t ck[8], sd[8];
	const char *name = json_string_value(json_object_get(jix, "model"));
	if (!name || parse_hex(json_string_value(json_object_get(jix, "model_checksum")), ck, 8) ||
	    parse_hex(json_string_value(json_object_get(jix, "seed")), sd, 8)) {
		problem(a, "\"index\" lacks model, model_checksum or seed");
		return;
	}
	uint64_t c = 0, s = 0;
	for (int i = 0; i < 8; i++) {
		c = c << 8 | ck[i];
		s = s << 8 | sd[i];
	}
	if (strcmp(name, m.model_name) || c != m.model_checksum || s != m.seed)
		problem(a, "made from another index than this one (model or seed differ)");
}

/* Relative paths were relative to the report's working directory. */
static void check_cwd(struct apply *a, json_t *root)
{
	int relative = 0;
	for (size_t i = 0; i < a->res.n_nodes; i++)
		relative |= a->res.nodes[i].path[0] != '/';
	if (!relative)
		return;
	const char *want = json_string_value(json_object_get(root, "cwd"));
	char *here = getcwd(NULL, 0);
	if (!want || !here || strcmp(want, here)) {
		char q[1024];
		problem(a, "its paths are relative to '%s': run neardup apply there",
			want ? cli_quote(want, q, sizeof(q)) : "?");
	}
	free(here);
}

static void free_res(struct dd_result *r)
{
	for (size_t i = 0; i < r->n_nodes; i++)
		free(r->nodes[i].path);
	for (size_t i = 0; i < r->n_groups; i++) {
		free(r->groups[i].members);
		free(r->groups[i].sims);
		free(r->groups[i].raws);
	}
	free(r->nodes);
	free(r->groups);
}

int cmd_apply(int argc, char **argv)
{
	enum { O_ACTION = OPT_FIRST_PRIVATE, O_TO, O_YES };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "action", required_argument, NULL, O_ACTION },
		{ "to", required_argument, NULL, O_TO },
		{ "yes", no_argument, NULL, O_YES },
		{ NULL, 0, NULL, 0 }
	};
	struct cli_common com;
	cli_common_init(&com);
	int index_given = 0, yes = 0, opt, status = EXIT_FATAL;
	enum dd_action action = DD_REPORT;
	const char *to_dir = NULL;
	struct apply a = { 0 };
	json_t *root = NULL;
	char q[1024];

	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		if (cli_common_opt(&com, opt, optarg)) {
			index_given |= opt == OPT_INDEX;
			continue;
		}
		switch (opt) {
		case O_ACTION:
			if (dd_parse_action(optarg, 0, &action))
				return EXIT_FATAL;
			break;
		case O_TO:
			to_dir = optarg;
			break;
		case O_YES:
			yes = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_ALL_GOOD;
		default:
			fputs(usage_text, stderr);
			return EXIT_FATAL;
		}
	}
	if (optind != argc - 1) {
		fputs(usage_text, stderr);
		return EXIT_FATAL;
	}
	if (action == DD_REPORT) {
		cli_msg("apply needs --action trash, move, hardlink or delete");
		return EXIT_FATAL;
	}
	if ((action == DD_MOVE) != (to_dir != NULL)) {
		cli_msg(to_dir ? "--to is only for --action move" : "--action move needs --to DIR");
		return EXIT_FATAL;
	}
	a.file = argv[optind];
	cli_quote(a.file, q, sizeof(q));

	json_error_t jerr;
	root = json_load_file(a.file, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (jerr.line < 0)
			cli_msg("cannot read '%s': %s", q, jerr.text);
		else
			cli_msg("cannot read '%s': not valid JSON at line %d, column %d: %s", q, jerr.line,
				jerr.column, jerr.text);
		goto done;
	}
	json_t *jix = json_object_get(root, "index"), *groups = json_object_get(root, "groups");
	const char *fmt = json_string_value(json_object_get(root, "format"));
	if (!fmt || strcmp(fmt, DECISIONS_FORMAT) || !json_is_object(jix) || !json_is_array(groups)) {
		cli_msg("cannot read '%s': not a decision file of neardup's review page", q);
		goto done;
	}
	if (json_integer_value(json_object_get(root, "version")) != DECISIONS_VERSION) {
		cli_msg("cannot read '%s': decision file version %lld (this neardup reads %d)", q,
			(long long)json_integer_value(json_object_get(root, "version")), DECISIONS_VERSION);
		goto done;
	}
	if (!index_given) {
		com.index_dir = json_string_value(json_object_get(jix, "path"));
		if (!com.index_dir) {
			cli_msg("cannot read '%s': no index path (give --index DIR)", q);
			goto done;
		}
	}
	/* the writer lock for --yes: nothing is re-indexed while acting */
	if (cli_index_open(&com, yes, NULL, &a.ix))
		goto done;
	check_index(&a, jix);
	size_t ng = json_array_size(groups);
	a.res.groups = calloc(ng + 1, sizeof(*a.res.groups));
	if (!a.res.groups) {
		cli_msg("out of memory");
		goto done;
	}
	for (size_t i = 0; i < ng && !a.bad; i++) {
		json_t *g = json_array_get(groups, i);
		if (!json_is_object(g)) {
			problem(&a, "group %zu is not an object", i + 1);
			break;
		}
		if (add_group(&a, g, i) == -2) {
			cli_msg("out of memory");
			goto done;
		}
	}
	if (!a.bad)
		check_cwd(&a, root);
	for (size_t i = 0; i < a.res.n_nodes && !a.bad; i++)
		preflight(&a, &a.res.nodes[i]);
	if (a.bad) {
		cli_msg("refusing '%s': nothing was done", q);
		goto done;
	}

	uint32_t *done_ids = malloc((a.res.n_nodes + 1) * sizeof(*done_ids));
	size_t n_done = 0;
	if (!done_ids) {
		cli_msg("out of memory");
		goto done;
	}
	if (yes)
		cli_install_signals(); /* Ctrl-C stops between two files */
	struct dd_act_opts ao = { action, to_dir, yes, 0, NULL, 0, NULL, 0, com.index_dir };
	struct dd_totals totals;
	status = dd_act(stdout, &a.res, &ao, done_ids, &n_done, &totals);
	if (fflush(stdout) != 0) {
		cli_msg("cannot write to standard output");
		status = EXIT_FATAL;
	}
	if (n_done > 0) {
		/* the files changed are no longer what the index describes */
		nd_error err;
		nd_error_clear(&err);
		int rc = nd_index_remove(a.ix, done_ids, n_done, NULL, &err);
		if (rc) {
			cli_msg("cannot remove the changed files from the index: %s",
				err.msg[0] ? err.msg : nd_strerror(rc));
			if (status < EXIT_SKIPPED)
				status = EXIT_SKIPPED;
		}
	}
	free(done_ids);
	if (cli_signal)
		status = 128 + cli_signal;
	if (!com.quiet)
		dd_print_totals(action, yes, &totals);
done:
	json_decref(root);
	free_res(&a.res);
	nd_index_close(a.ix);
	return status;
}
