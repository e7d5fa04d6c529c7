# make install: the CLI, the shipped plugins into $(libdir)/kiln/plugins-2,
# the SDK headers and kiln-plugin.pc so third-party plugins build with
# pkg-config alone, the man pages kiln(1) and kiln.json(5), the systemd
# unit kiln.service and, unless one is there already, the configuration
# it starts with ($(sysconfdir)/kiln/kiln.json, from
# examples/config/installed.json). PREFIX and DESTDIR as usual;
# tests/exec/install.sh checks every file.
mandir     ?= $(PREFIX)/share/man
sysconfdir ?= /etc
unitdir    ?= $(libdir)/systemd/system

define kiln_pc
prefix=$(1)
includedir=$(2)
plugindir=$(3)

Name: kiln-plugin
Description: SDK for kiln plugins (ABI 2)
Version: 0.1.0
Requires: vips
Cflags: -I$${includedir}
endef
export kiln_pc_build = $(call kiln_pc,$(CURDIR),$(CURDIR)/sdk/include,$(CURDIR)/$(BUILD)/plugins)
export kiln_pc_install = $(call kiln_pc,$(PREFIX),$(includedir),$(PLUGINDIR))

$(BUILD)/pkgconfig/kiln-plugin.pc: mk/install.mk
	@mkdir -p $(dir $@)
	@echo "$$kiln_pc_build" > $@

install: all
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(PLUGINDIR) \
	  $(DESTDIR)$(includedir)/kiln $(DESTDIR)$(libdir)/pkgconfig \
	  $(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man5 \
	  $(DESTDIR)$(unitdir) $(DESTDIR)$(sysconfdir)/kiln
	install -m 755 $(BUILD)/kiln $(DESTDIR)$(bindir)/kiln
	install -m 644 $(PLUGIN_SOS) $(DESTDIR)$(PLUGINDIR)/
	install -m 644 sdk/include/kiln/*.h $(DESTDIR)$(includedir)/kiln/
	echo "$$kiln_pc_install" > $(DESTDIR)$(libdir)/pkgconfig/kiln-plugin.pc
	install -m 644 docs/man/kiln.1 $(DESTDIR)$(mandir)/man1/kiln.1
	install -m 644 docs/man/kiln.json.5 $(DESTDIR)$(mandir)/man5/kiln.json.5
	sed -e 's|@bindir@|$(bindir)|g' -e 's|@sysconfdir@|$(sysconfdir)|g' \
	  dist/kiln.service.in > $(DESTDIR)$(unitdir)/kiln.service
	chmod 644 $(DESTDIR)$(unitdir)/kiln.service
	@if [ -e $(DESTDIR)$(sysconfdir)/kiln/kiln.json ]; then \
	  echo "kept $(DESTDIR)$(sysconfdir)/kiln/kiln.json (the shipped one is examples/config/installed.json)"; \
	else \
	  echo "install -m 644 examples/config/installed.json $(DESTDIR)$(sysconfdir)/kiln/kiln.json"; \
	  install -m 644 examples/config/installed.json $(DESTDIR)$(sysconfdir)/kiln/kiln.json; \
	fi

.PHONY: install
