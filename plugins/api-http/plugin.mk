# api-http also serves the operator dashboard (dashboard.c,
# docs/dashboard.md): the files in plugins/api-http/dashboard/ become a C
# table of bytes at build time (mk/embed.sh, od and sed only), compiled
# into api-http.so. Nothing is read from disk at run time.
DASHBOARD_FILES := $(sort $(wildcard plugins/api-http/dashboard/*.*))
DASHBOARD_C     := $(BUILD)/gen/plugins/api-http/dashboard_assets.c
DASHBOARD_O     := $(BUILD)/pobj/plugins/api-http/dashboard_assets.o

# The list of files, rewritten only when it changes, so that removing a
# file regenerates the table too.
$(BUILD)/gen/dashboard.list: FORCE
	@mkdir -p $(dir $@)
	@echo '$(DASHBOARD_FILES)' | cmp -s - $@ || echo '$(DASHBOARD_FILES)' > $@

$(DASHBOARD_C): $(DASHBOARD_FILES) mk/embed.sh $(BUILD)/gen/dashboard.list
	@mkdir -p $(dir $@)
	@echo "EMBED   $(DASHBOARD_FILES)"
	@sh mk/embed.sh http.h http_asset http_dashboard_assets \
	    $(DASHBOARD_FILES) > $@.tmp && mv $@.tmp $@

$(DASHBOARD_O): $(DASHBOARD_C)
	@mkdir -p $(dir $@)
	@echo "CC [so] $<"
	@$(CC) $(PLUGIN_CFLAGS) -Iplugins/api-http -c $< -o $@

$(BUILD)/plugins/api-http.so: $(DASHBOARD_O)
