# bridged: the two commands are `make demo` and `make test` (see README.md).
# Both set up what they need: a virtualenv in .venv and, when run as root, the Debian packages.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.bridged-installed
DEMO_STAMP := $(VENV)/.bridged-demo

# Debian packages the demo needs: the venv, and for the BlueZ emulation a private dbus-daemon
# and what dbus-python (python-dbusmock's binding, built from source by pip) needs to build
# against libdbus and GLib.
DEMO_APT_PACKAGES := python3-venv python3-dev build-essential pkg-config \
	dbus libdbus-1-dev libglib2.0-dev
# What the suite needs besides: the toolchain that builds DTLSSocket (the DTLS extra) from
# source, libcoap's command-line client (an interop peer), and Node.js for the npm interop peers
# unless a Node.js with npm is already there.
TEST_APT_PACKAGES := autoconf automake libtool libcoap3-bin \
	$(if $(shell command -v npm),,nodejs npm)
# The Debian package (`make deb`, and the suite's package checks): its build dependencies
# (packaging/debian/control; libsystemd-dev builds systemd-python, sd_notify and the journal
# handler of the daemon, which the suite tests too), lintian, and systemd-analyze to verify the
# unit.
TEST_APT_PACKAGES += debhelper dpkg-dev fakeroot lintian help2man python3-pip libsystemd-dev pkgconf systemd
# packaging/release-check: the .deb built, installed and run on Debian 13 too, in a debootstrap
# root it caches in /var/cache/bridged-release (tests/packaging/test_release.py), for this
# machine's architecture and for arm64 through QEMU user emulation (qemu-user-static, whose
# handler binfmt-register below registers where nothing did).
TEST_APT_PACKAGES += debootstrap qemu-user-static
# Eclipse Leshan, the reference LwM2M server, as interop peers (tests/peers/leshan and
# tests/peers/leshan-m15): a JRE runs them and Maven fetches and builds them, unless a Java
# and a Maven are already there.
TEST_APT_PACKAGES += $(if $(shell command -v java),,default-jre-headless) \
	$(if $(shell command -v mvn),,maven)
NODE_PEERS := tests/peers/node
LESHAN_POM := tests/peers/leshan/pom.xml
LESHAN_JAR := build/peers/leshan/leshan-server-demo.jar
LESHAN_M15 := tests/peers/leshan-m15
LESHAN_M15_STAMP := build/peers/leshan-m15/.built

.PHONY: test demo lint typecheck unit system-deps demo-deps clean deb

test: system-deps $(STAMP) lint typecheck unit

# The demo is not part of the installed product: it runs from the repository root, with the
# emulated radios and the LwM2M test server of tests/ on the path (demo/__main__.py). It
# installs only what it needs (the `demo` extra, DEMO_APT_PACKAGES), not the suite's tools.
demo: demo-deps $(DEMO_STAMP)
	PYTHONPATH=tests $(BIN)/python -m demo

demo-deps:
	@$(call apt_install,$(DEMO_APT_PACKAGES))

system-deps:
	@$(call apt_install,$(DEMO_APT_PACKAGES) $(TEST_APT_PACKAGES))
	@$(call binfmt_register,aarch64)

# Installs the Debian packages $(1) that are missing, as root; otherwise prints the command.
define apt_install
missing=""; \
	for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "Missing Debian packages:$$missing"; \
	  echo "Install them with: sudo apt-get install$$missing"; \
	fi
endef

# Registers qemu-user-static's handler for $(1) (aarch64) with binfmt_misc, as root, so that the
# kernel runs that architecture's programs through QEMU. systemd-binfmt does it at boot from
# /usr/lib/binfmt.d, but not in a container, or before the next boot; where the kernel refuses
# (an unprivileged container), the arm64 package check is skipped and says why.
define binfmt_register
conf=/usr/lib/binfmt.d/qemu-$(1).conf; dir=/proc/sys/fs/binfmt_misc; \
	if [ "$$(id -u)" != 0 ] || [ ! -e $$conf ] || [ -e $$dir/qemu-$(1) ]; then exit 0; fi; \
	[ -e $$dir/register ] || mount -t binfmt_misc binfmt_misc $$dir 2>/dev/null; \
	if [ -e $$dir/qemu-$(1) ] || cat $$conf > $$dir/register 2>/dev/null; then \
	  echo "Registered QEMU's $(1) handler with binfmt_misc"; \
	else \
	  echo "Cannot register QEMU's $(1) handler with binfmt_misc: the arm64 package check is skipped"; \
	fi
endef

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py packaging/debian/changelog | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,dtls]'
	touch $@ $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml setup.py packaging/debian/changelog | $(BIN)/python
	$(BIN)/pip install -q -e '.[demo]'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy needs the installed package layout (bridged/, bridged/objects/, bridged/transports/),
# which the repository spreads over three folders: build a tree of links that shows it.
typecheck: $(STAMP)
	@rm -rf build/typecheck && mkdir -p build/typecheck/bridged
	@for f in bridged/*; do ln -s "$(CURDIR)/$$f" build/typecheck/bridged/; done
	@ln -s "$(CURDIR)/objects" build/typecheck/bridged/objects
	@ln -s "$(CURDIR)/transports" build/typecheck/bridged/transports
	cd build/typecheck && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml \
	  --cache-dir $(CURDIR)/.mypy_cache -p bridged

unit: $(STAMP) $(NODE_PEERS)/node_modules/.package-lock.json $(LESHAN_JAR) $(LESHAN_M15_STAMP)
	$(BIN)/pytest

# The npm interop peers, reinstalled when their lockfile changes.
$(NODE_PEERS)/node_modules/.package-lock.json: $(NODE_PEERS)/package-lock.json
	npm ci --prefix $(NODE_PEERS) --no-audit --no-fund --loglevel=error

# The Leshan LwM2M server peer, fetched from Maven Central again when its pom changes (the pom
# pins the version and copies the jar here, under build/, which git ignores).
$(LESHAN_JAR): $(LESHAN_POM)
	mvn -q -B -Dstyle.color=never -f $(LESHAN_POM) dependency:copy
	touch $@

# Leshan 2.0.0-M15's bootstrap server and LwM2M server peers (their launchers, and Leshan from
# Maven Central into ~/.m2), rebuilt into build/peers/leshan-m15 when the pom or a source changes.
$(LESHAN_M15_STAMP): $(LESHAN_M15)/pom.xml $(wildcard $(LESHAN_M15)/*.java)
	rm -rf $(dir $@)lib
	mvn -q -B -Dstyle.color=never -f $(LESHAN_M15)/pom.xml package
	touch $@

# The Debian package, built from a copy of the sources into build/deb (see packaging/build-deb).
deb: system-deps
	packaging/build-deb build/deb

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache .hypothesis
