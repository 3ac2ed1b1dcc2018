# neardup — plain Makefile. Targets:
#   make            release build: build/rel/neardup and build/rel/libneardup.a
#   make test       unit + end-to-end tests (ends with "N passed, N failed")
#   make test-html  the HTML review page driven in headless Chromium
#   make demo       the main job on the bundled sample corpus in data/
#   make fuzz       libFuzzer targets, each for FUZZ_TIME seconds (clang)
#   make bench      quick benchmarks (see bench/README.md)
#   make coverage   tests under gcov, with a line-coverage summary
#   make install    PREFIX=/usr/local (binary, library, headers, neardup.pc, model)
# Options: SANITIZE=address,undefined  DEVELOPER=1 (warnings fatal)
#          ARCH=... (default: x86-64-v3 where the CPU has AVX2)  NEARDUP_NO_DEPS=1

CC ?= cc
PREFIX ?= /usr/local
FUZZ_TIME ?= 60
SANITIZE ?=
DEVELOPER ?=
COVERAGE ?=

# The CPU's vector extensions where safe: AVX2+FMA (x86-64-v3) when present.
# Not -march=native: AVX-512 code would break valgrind and binaries copied to
# older machines; the heavy GEMM work is in OpenBLAS, which dispatches itself.
ifeq ($(origin ARCH),undefined)
ARCH := $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && echo -march=x86-64-v3)
endif

ifneq ($(SANITIZE),)
VARIANT ?= san
else ifneq ($(COVERAGE),)
VARIANT ?= cov
else
VARIANT ?= rel
endif
O := build/$(VARIANT)

WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
ifneq ($(DEVELOPER),)
WARNINGS += -Werror
endif

OPT ?= -O2
CFLAGS ?= $(OPT) -g
ALL_CFLAGS := -std=gnu11 $(CFLAGS) $(ARCH) $(WARNINGS) -pthread -Iinclude -Isrc \
	-DND_DATADIR='"$(PREFIX)/share/neardup"'
ALL_LDFLAGS := $(LDFLAGS) -pthread
LIBS := -ljpeg -lpng16 -lwebpdemux -lwebp -lgif -ltiff -lheif -ldeflate -lz -lopenblas -llmdb -lexif -lxxhash -ljansson -lm

ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
ALL_LDFLAGS += -fsanitize=$(SANITIZE)
endif
ifneq ($(COVERAGE),)
ALL_CFLAGS += --coverage -O0
ALL_LDFLAGS += --coverage
endif

LIB_SRC := $(filter-out src/cli/% src/mpi/%,$(wildcard src/*.c src/*/*.c))
CLI_SRC := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
BENCH_SRC := $(wildcard bench/bench_*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(O)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(O)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(O)/tests/%)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(O)/bench/%)
LIB := $(O)/libneardup.a
BIN := $(O)/neardup

.PHONY: all build deps test-deps test test-html demo fuzz bench bench-full coverage install clean mpi test-mpi
# Dependencies first, then the build (a recursive make so that -j never
# compiles before the packages are there).
all: deps
	@$(MAKE) --no-print-directory build

build: $(BIN) $(LIB)

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# the review page's script and style are assembled into this object (.incbin)
$(O)/src/cli/report_assets.o: src/cli/report/review.js src/cli/report/review.css

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LIBS)

$(O)/tests/%: tests/%.c tests/test.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DTEST_DATA_DIR='"tests/data"' -MMD -MP $(ALL_LDFLAGS) -o $@ $< $(LIB) $(LIBS)

$(O)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< $(LIB) $(LIBS)

# neardup-mpi: the same commands under mpirun over a sharded collection,
# built with mpicc (Open MPI) apart from neardup, which needs no MPI.
MPICC ?= mpicc
MPI_SRC := $(wildcard src/mpi/*.c)
MPI_OBJ := $(MPI_SRC:%.c=$(O)/%.o)
MPI_BIN := $(O)/neardup-mpi
$(O)/src/mpi/%.o: src/mpi/%.c
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@
$(MPI_BIN): $(MPI_OBJ) $(filter-out $(O)/src/cli/main.o,$(CLI_OBJ)) $(LIB)
	$(MPICC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
mpi:
	@scripts/deps.sh mpi
	@$(MAKE) --no-print-directory $(BIN) $(MPI_BIN)

# the MPI tests: mpirun -np 4 --oversubscribe on this machine
test-mpi: mpi
	@NEARDUP_BIN=$(CURDIR)/$(BIN) NEARDUP_MPI_BIN=$(CURDIR)/$(MPI_BIN) tests/run.sh $(wildcard tests/mpi_*.sh)

test: test-deps
	@$(MAKE) --no-print-directory $(BIN) $(TEST_BIN)
	@NEARDUP_BIN=$(CURDIR)/$(BIN) tests/run.sh $(TEST_BIN) $(wildcard tests/e2e_*.sh)

# The review page driven in headless Chromium (chromium-driver, selenium),
# its export applied by neardup apply (not part of `make test`).
test-html:
	@scripts/deps.sh html
	@$(MAKE) --no-print-directory $(BIN)
	@NEARDUP_BIN=$(CURDIR)/$(BIN) tests/run.sh $(CURDIR)/tests/html_review.py

demo: all
	@scripts/demo.sh $(BIN)

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build $(BENCH_BIN)
	@O=$(O) bench/run.sh quick

bench-full:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build $(BENCH_BIN)
	@O=$(O) bench/run.sh full

# libFuzzer: the library rebuilt with clang, ASan and UBSan, one binary per target.
FUZZ_O := build/fuzz
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_O)/%.o)
FUZZ_CFLAGS := -std=gnu11 -O1 -g -Iinclude -Isrc -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=all -DND_FUZZING
$(FUZZ_O)/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_O)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_image.h $(FUZZ_LIB_OBJ)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) $(LIBS) -pthread
fuzz:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_O)/%)
	@for f in $(FUZZ_SRC:tests/fuzz/%.c=%); do \
		mkdir -p $(FUZZ_O)/corpus/$$f; \
		seeds=tests/fuzz/seeds/$$f; [ -d $$seeds ] || seeds=; \
		echo "== $$f ($(FUZZ_TIME) s)"; \
		$(FUZZ_O)/$$f -max_total_time=$(FUZZ_TIME) -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_O)/$$f- \
			$(FUZZ_O)/corpus/$$f $$seeds >$(FUZZ_O)/$$f.log 2>&1; st=$$?; \
		tail -n 12 $(FUZZ_O)/$$f.log; \
		[ $$st -eq 0 ] || { echo "== $$f failed (status $$st, log $(FUZZ_O)/$$f.log)"; exit 1; }; \
	done

coverage:
	@$(MAKE) --no-print-directory COVERAGE=1 test
	@cd build/cov && gcov -n $(LIB_SRC:%.c=%.o) 2>/dev/null | \
		awk '/^File/{f=$$2; gsub("\047", "", f)} /^Lines executed/ && f ~ /^src\//{print f, $$2, $$3, $$4}'

PCDIR := $(PREFIX)/lib/pkgconfig
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PCDIR) \
		$(DESTDIR)$(PREFIX)/include/neardup $(DESTDIR)$(PREFIX)/share/neardup/models \
		$(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/neardup
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libneardup.a
	install -m 644 include/neardup/*.h $(DESTDIR)$(PREFIX)/include/neardup/
	for m in models/*.ndm models/*.ndb; do [ -f "$$m" ] && install -m 644 "$$m" $(DESTDIR)$(PREFIX)/share/neardup/models/; done; true
	[ -f doc/neardup.1 ] && install -m 644 doc/neardup.1 $(DESTDIR)$(PREFIX)/share/man/man1/ || true
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(shell sed -n 's/.*ND_VERSION_STRING "\(.*\)"/\1/p' include/neardup/common.h)|' \
		neardup.pc.in > $(DESTDIR)$(PCDIR)/neardup.pc

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
