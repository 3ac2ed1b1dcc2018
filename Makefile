# neardup — plain Makefile. Targets:
#   make            release build: build/rel/neardup, build/rel/libneardup.a and .so
#   make test       unit + end-to-end tests (ends with "N passed, N failed")
#   make test-html  the HTML review page driven in headless Chromium
#   make demo       the main job on the bundled sample corpus in data/
#   make fuzz       libFuzzer targets, each for FUZZ_TIME seconds (clang)
#   make bench      quick benchmarks (see bench/README.md)
#   make coverage   tests under gcov, with a line-coverage summary
#   make install    PREFIX=/usr/local DESTDIR= (binary, libraries, headers, neardup.pc,
#                   model, the Python package for /usr/bin/python3)
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
# strcpy, strcat, sprintf and vsprintf do not compile (see src/banned.h)
ALL_CFLAGS += -include src/banned.h
ALL_LDFLAGS := $(LDFLAGS) -pthread
LIBS := -ljpeg -lpng16 -lwebpdemux -lwebp -lgif -ltiff -lheif -ldeflate -lz -lopenblas -llmdb -lexif -lxxhash -ljansson -lmicrohttpd -lm

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
TEST_LIB_SRC := $(wildcard tests/lib_*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
BENCH_SRC := $(wildcard bench/bench_*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(O)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(O)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(O)/tests/%)
# tests link the shared fixtures (tests/lib_*.c) and, for the CLI's modules,
# the CLI's objects but main (never #include a .c file)
TEST_LIB := $(O)/tests/libtest.a
CLI_LIB := $(O)/libneardup-cli.a
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(O)/bench/%)
LIB := $(O)/libneardup.a
BIN := $(O)/neardup
# The shared library: soname libneardup.so.$(SOMAJOR); it exports the nd_
# functions declared in include/neardup/*.h and nothing else (the objects
# are compiled with hidden visibility, the public headers force-included
# with default visibility, and src/libneardup.map drops the rest).
VERSION := $(shell sed -n 's/.*ND_VERSION_STRING "\(.*\)"/\1/p' include/neardup/common.h)
SOMAJOR := 0
SONAME := libneardup.so.$(SOMAJOR)
SHLIB := $(O)/libneardup.so.$(VERSION)
PUBLIC_H := $(sort $(wildcard include/neardup/*.h))
EXPORT_H := $(O)/export.h
PYTHON ?= /usr/bin/python3

.PHONY: all build shared examples deps test-deps test test-html demo fuzz bench bench-full coverage install clean mpi test-mpi
# Dependencies first, then the build (a recursive make so that -j never
# compiles before the packages are there).
all: deps
	@$(MAKE) --no-print-directory build

build: $(BIN) $(LIB) shared

shared: $(SHLIB) $(O)/libneardup.so

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(OBJ_CFLAGS) -MMD -MP -c $< -o $@

# Library objects serve both libraries: position-independent, hidden unless
# a public header declares them.
$(LIB_OBJ): OBJ_CFLAGS = -fPIC -fvisibility=hidden -include $(EXPORT_H)
# the force-included headers fix the feature macros before the source's own
# `#define _GNU_SOURCE` (empty, as on the command line) would be seen
GNU_OBJ := $(patsubst %.c,$(O)/%.o,$(shell grep -l '^\#define _GNU_SOURCE' $(LIB_SRC)))
$(GNU_OBJ): OBJ_CFLAGS += -D_GNU_SOURCE=
$(LIB_OBJ): $(EXPORT_H)
$(EXPORT_H): $(PUBLIC_H) Makefile
	@mkdir -p $(dir $@)
	{ echo '#pragma GCC visibility push(default)'; \
	  for h in $(PUBLIC_H:include/%=%); do echo "#include \"$$h\""; done; \
	  echo '#pragma GCC visibility pop'; } >$@

# the review page's script and style are assembled into this object (.incbin)
$(O)/src/cli/report_assets.o: src/cli/report/review.js src/cli/report/review.css

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SHLIB): $(LIB_OBJ) src/libneardup.map
	$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/libneardup.map \
		-Wl,--no-undefined -o $@ $(LIB_OBJ) $(LIBS)
$(O)/libneardup.so: $(SHLIB)
	ln -sf $(notdir $(SHLIB)) $(O)/$(SONAME)
	ln -sf $(SONAME) $@

$(CLI_LIB): $(filter-out $(O)/src/cli/main.o,$(CLI_OBJ))
	rm -f $@
	ar rcs $@ $^

$(TEST_LIB): $(TEST_LIB_SRC:%.c=$(O)/%.o)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LIBS)

$(O)/tests/%: tests/%.c tests/test.h $(TEST_LIB) $(CLI_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DTEST_DATA_DIR='"tests/data"' -MMD -MP $(ALL_LDFLAGS) -o $@ $< $(TEST_LIB) $(CLI_LIB) \
		$(LIB) $(LIBS)

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

# make test T=test_index runs one program (or T=e2e_cli.sh one script), and
# C=recall one case of it (tests/test.h)
TEST_ALL := $(TEST_BIN) $(wildcard tests/e2e_*.sh) $(CURDIR)/scripts/check_cycles.py \
	$(CURDIR)/scripts/check_hygiene.sh
TEST_RUN := $(if $(T),$(filter %/$(T) %/$(T).sh $(T),$(TEST_ALL)),$(TEST_ALL))
test: test-deps
	$(if $(TEST_RUN),,$(error no test named '$(T)'))
	@$(MAKE) --no-print-directory $(BIN) $(filter $(O)/%,$(TEST_RUN)) shared
	@NEARDUP_BIN=$(CURDIR)/$(BIN) NEARDUP_LIBDIR=$(CURDIR)/$(O) PYTHON=$(PYTHON) \
		SANITIZE='$(SANITIZE)' VARIANT=$(VARIANT) ND_BUILD_DIR=$(CURDIR)/$(O) ND_TEST_CASE=$(C) \
		tests/run.sh $(TEST_RUN)

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
FUZZ_CFLAGS := -std=gnu11 -O1 -g -Iinclude -Isrc -include src/banned.h -fsanitize=fuzzer-no-link,address,undefined \
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
# Debian's python3 reads /usr/lib/python3/dist-packages and
# /usr/local/lib/python3.X/dist-packages.
PYVER = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PYDIR ?= $(if $(filter /usr,$(PREFIX)),$(PREFIX)/lib/python3/dist-packages,$(PREFIX)/lib/python$(PYVER)/dist-packages)
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PCDIR) \
		$(DESTDIR)$(PREFIX)/include/neardup $(DESTDIR)$(PREFIX)/share/neardup/models \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PYDIR)/neardup
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/neardup
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libneardup.a
	install -m 755 $(SHLIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf $(notdir $(SHLIB)) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libneardup.so
	install -m 644 python/neardup/*.py $(DESTDIR)$(PYDIR)/neardup/
	install -m 644 include/neardup/*.h $(DESTDIR)$(PREFIX)/include/neardup/
	for m in models/*.ndm models/*.ndb; do [ -f "$$m" ] && install -m 644 "$$m" $(DESTDIR)$(PREFIX)/share/neardup/models/; done; true
	[ -f doc/neardup.1 ] && install -m 644 doc/neardup.1 $(DESTDIR)$(PREFIX)/share/man/man1/ || true
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(shell sed -n 's/.*ND_VERSION_STRING "\(.*\)"/\1/p' include/neardup/common.h)|' \
		neardup.pc.in > $(DESTDIR)$(PCDIR)/neardup.pc

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
