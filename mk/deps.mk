# Debian packages the build and the tests need. `make deps` installs the
# missing ones with apt-get (we run as root on a fresh machine); nothing is
# downloaded from anywhere else.
DEB_BUILD := gcc make pkg-config libvips-dev libcjson-dev re2c libfontconfig-dev \
             libsqlite3-dev libpq-dev libcurl4-openssl-dev libmicrohttpd-dev \
             libssl-dev libjpeg-dev libmagickcore-6.q16-dev \
             python3 python3-yaml
DEB_TEST  := libcunit1-dev imagemagick graphviz libvips-tools python3 \
             php8.2-cli php8.2-gd \
             fonts-dejavu-core prometheus postgresql nginx \
             awscli python3-pyftpdlib nodejs jq chromium \
             groff-base man-db systemd
# make bench only: the load generator and the peers it is compared with.
DEB_BENCH := wrk graphicsmagick time
# make fuzz only: clang with its sanitizer and libFuzzer runtimes
# (tests/fuzz/README.md; the replay in make test needs neither).
DEB_FUZZ  := clang libclang-rt-14-dev
DEB_PKGS  := $(DEB_BUILD) $(DEB_TEST)

deps:
	@missing=""; for p in $(DEB_PKGS) $(EXTRA_DEBS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	    grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null || exit 1; \
	fi

.PHONY: deps

# `make bench` adds its own packages to the same install step.
bench-deps:
	@$(MAKE) --no-print-directory deps EXTRA_DEBS="$(DEB_BENCH)"

.PHONY: bench-deps

# `make fuzz` likewise.
fuzz-deps:
	@$(MAKE) --no-print-directory deps EXTRA_DEBS="$(DEB_FUZZ)"

.PHONY: fuzz-deps
