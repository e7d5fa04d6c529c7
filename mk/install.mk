# make install: the CLI, the shipped plugins into $(libdir)/kiln/plugins-2,
# the SDK headers and kiln-plugin.pc so third-party plugins build with
# pkg-config alone. PREFIX and DESTDIR as usual.
define kiln_pc
prefix=$(1)
includedir=$(2)
plugindir=$(3)

Name: kiln-plugin
Description: SDK for kiln plugins (ABI 1)
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
	  $(DESTDIR)$(includedir)/kiln $(DESTDIR)$(libdir)/pkgconfig
	install -m 755 $(BUILD)/kiln $(DESTDIR)$(bindir)/kiln
	install -m 644 $(PLUGIN_SOS) $(DESTDIR)$(PLUGINDIR)/
	install -m 644 sdk/include/kiln/*.h $(DESTDIR)$(includedir)/kiln/
	echo "$$kiln_pc_install" > $(DESTDIR)$(libdir)/pkgconfig/kiln-plugin.pc

.PHONY: install
