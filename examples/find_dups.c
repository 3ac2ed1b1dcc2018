/* Indexes folders into INDEX_DIR and prints their near-duplicate groups, one
 * line each, kept file first:
 *   cc find_dups.c $(pkg-config --cflags --libs neardup) -o find_dups
 *   ./find_dups photos.db ~/Pictures */
#include <neardup/neardup.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	nd_collection *c = NULL;
	nd_dedup_result *r = NULL;
	nd_error err;
	if (argc < 3) {
		fprintf(stderr, "usage: find_dups INDEX_DIR FOLDER...\n");
		return 2;
	}
	if (nd_collection_open(&c, argv[1], NULL, &err) ||
	    nd_collection_add_paths(c, (const char *const *)argv + 2, (size_t)argc - 2, NULL, NULL, &err) ||
	    nd_collection_dedup(c, NULL, &r, &err)) {
		fprintf(stderr, "find_dups: %s\n", err.msg);
		nd_collection_close(c);
		return 1;
	}
	for (size_t g = 0; g < r->n_groups; g++)
		for (size_t i = 0; i < r->groups[g].n; i++)
			printf("%s%c", r->images[r->groups[g].members[i].image].path,
			       i + 1 < r->groups[g].n ? '\t' : '\n');
	nd_dedup_result_free(r);
	nd_collection_close(c);
	return 0;
}
