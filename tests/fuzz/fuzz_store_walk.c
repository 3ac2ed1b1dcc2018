/* libFuzzer target: the LMDB file walker (src/store_verify.c) on arbitrary
 * data.mdb contents. Each input is written to a data.mdb in a scratch
 * directory and walked, light and full. Seeds: small LMDB files (e.g. a
 * data.mdb of `neardup ingest data/` and of tests/test_store_verify) in
 * tests/fuzz/seeds/fuzz_store_walk/. Run with `make fuzz`. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "store_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static char dir[64], path[96];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/nd-fuzz-walk.XXXXXX");
		if (!mkdtemp(dir))
			abort();
		snprintf(path, sizeof(path), "%s/data.mdb", dir);
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		abort();
	close(fd);
	nd__store_walk_info wi;
	nd_error err;
	for (int full = 0; full <= 1; full++) {
		int rc = nd__store_walk(dir, full, 0, &wi, &err);
		if (rc != 0 && rc != ND_ECORRUPT && rc != ND_ENOMEM)
			abort();
	}
	return 0;
}
