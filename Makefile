# Builds and installs the C library (the `ffi` feature) the way C libraries ship:
#
#   make                                 target/capi/: libkinesis_batcher.so.$(VERSION)
#                                        (soname libkinesis_batcher.so.$(SOVERSION), with
#                                        the .so.$(SOVERSION) and .so symlinks) and
#                                        libkinesis_batcher.a
#   make install PREFIX=/usr/local DESTDIR=
#                                        lib/ (both libraries), include/kinesis_batcher.h,
#                                        lib/pkgconfig/kinesis_batcher.pc (links the .so)
#                                        and kinesis_batcher-static.pc (links the .a)
#   make uninstall                       removes exactly what install put there
#   make clean                           removes target/capi
#
# scripts/install-test.sh checks all of this against a temporary prefix. GNU make.
#
# Both libraries come from the cargo profile `capi` (release with panic = "abort": a
# panic never unwinds into C). Cargo's own build directory for them is
# target/capi/cargo, not target/capi: cargo puts its copy of the cdylib at
# <target-dir>/capi/libkinesis_batcher.so, the very name of the symlink shipped here,
# and would replace that symlink with a plain file on every build.
#
# Make rebuilds when a source, Cargo.toml or Cargo.lock is newer than the library, so
# `sudo make install` after `make` runs no cargo as root. After changing RUSTFLAGS or
# the toolchain, `make clean` (or `make -B`).

CARGO ?= cargo
INSTALL ?= install
LN_S ?= ln -sf

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR ?=

# The version comes from the [package] table of Cargo.toml, and only from there (the
# header's KB_VERSION is generated from the same place).
VERSION := $(shell sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml)
ifeq ($(VERSION),)
$(error could not read the package version from Cargo.toml)
endif
# The soname carries the major version only. For 0.x that is 0, although Cargo treats
# 0.1 -> 0.2 as breaking: while the major is 0, a release that breaks the C ABI must
# raise the major or set SOVERSION by hand (cargo-c would use 0.MINOR here).
SOVERSION ?= $(firstword $(subst ., ,$(VERSION)))

NAME := kinesis_batcher
LIB := lib$(NAME)
SO := $(LIB).so
SONAME := $(SO).$(SOVERSION)
SO_REAL := $(SO).$(VERSION)
STATIC := $(LIB).a
PC := $(NAME).pc
STATIC_PC := $(NAME)-static.pc
HEADER := include/$(NAME).h

OUT := target/capi
CARGO_TARGET := $(OUT)/cargo
# Where cargo puts a `--profile capi` build's libraries under its target directory.
CARGO_OUT := $(CARGO_TARGET)/capi
CARGO_RUSTC := $(CARGO) rustc -p kinesis-batcher --lib --profile capi --features ffi \
	--target-dir $(CARGO_TARGET)

SOURCES := Cargo.toml Cargo.lock $(shell find src -name '*.rs')

# libdir and includedir relative to ${prefix} in the .pc file when they are under it.
pc_path = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

.PHONY: all install uninstall clean FORCE

all: $(OUT)/$(SO_REAL) $(OUT)/$(SONAME) $(OUT)/$(SO) $(OUT)/$(STATIC)

$(OUT)/$(SO_REAL): $(SOURCES)
	$(CARGO_RUSTC) --crate-type cdylib -- -C link-arg=-Wl,-soname,$(SONAME)
	cp -f $(CARGO_OUT)/$(SO) $@

$(OUT)/$(SONAME): $(OUT)/$(SO_REAL)
	$(LN_S) $(SO_REAL) $@

$(OUT)/$(SO): $(OUT)/$(SONAME)
	$(LN_S) $(SONAME) $@

# The system libraries a Rust staticlib needs, as rustc lists them with
# `-- --print native-static-libs` (a fresh build only; scripts/install-test.sh compares
# the two). Libs.private of kinesis_batcher.pc and Libs of kinesis_batcher-static.pc.
NATIVE_STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

$(OUT)/$(STATIC): $(SOURCES)
	$(CARGO_RUSTC) --crate-type staticlib
	cp -f $(CARGO_OUT)/$(STATIC) $@

# Made at every install: they hold PREFIX, LIBDIR and INCLUDEDIR, which may differ
# from one `make install` to the next. Two files because `pkg-config --static` cannot
# choose the archive: it only adds Libs.private, and `-lkinesis_batcher` finds the .so
# first. kinesis_batcher-static.pc names the archive by path instead (and cgo, which
# takes no pkg-config options, can ask for it by name).
$(OUT)/%.pc: %.pc.in FORCE
	@mkdir -p $(OUT)
	sed -e 's|@PREFIX@|$(PREFIX)|g' \
	    -e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|g' \
	    -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@NATIVE_STATIC_LIBS@|$(NATIVE_STATIC_LIBS)|g' \
	    $< > $@.tmp
	mv -f $@.tmp $@

install: all $(OUT)/$(PC) $(OUT)/$(STATIC_PC)
	$(INSTALL) -d -m 755 $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	$(INSTALL) -m 755 $(OUT)/$(SO_REAL) $(DESTDIR)$(LIBDIR)/$(SO_REAL)
	$(LN_S) $(SO_REAL) $(DESTDIR)$(LIBDIR)/$(SONAME)
	$(LN_S) $(SONAME) $(DESTDIR)$(LIBDIR)/$(SO)
	$(INSTALL) -m 644 $(OUT)/$(STATIC) $(DESTDIR)$(LIBDIR)/$(STATIC)
	$(INSTALL) -m 644 $(HEADER) $(DESTDIR)$(INCLUDEDIR)/$(NAME).h
	$(INSTALL) -m 644 $(OUT)/$(PC) $(DESTDIR)$(PKGCONFIGDIR)/$(PC)
	$(INSTALL) -m 644 $(OUT)/$(STATIC_PC) $(DESTDIR)$(PKGCONFIGDIR)/$(STATIC_PC)

# Directories are left in place: they may have been there before the install.
uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(SO_REAL) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/$(SO) $(DESTDIR)$(LIBDIR)/$(STATIC) \
	      $(DESTDIR)$(INCLUDEDIR)/$(NAME).h $(DESTDIR)$(PKGCONFIGDIR)/$(PC) \
	      $(DESTDIR)$(PKGCONFIGDIR)/$(STATIC_PC)

clean:
	rm -rf $(OUT)

FORCE:
