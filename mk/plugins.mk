# Plugins: every folder in plugins/ and storage-plugins/ is one shared
# object (storage ones prefixed "storage-"); every file in tests/plugins/
# is one test plugin. Built with hidden visibility so each exports only
# its descriptor, and linked against libvips so RTLD_NOW resolves alone.
PLUGIN_CFLAGS = $(filter-out -D_GNU_SOURCE,$(ALL_CFLAGS)) -fPIC -fvisibility=hidden \
                $(shell pkg-config --cflags fontconfig 2>/dev/null)
PLUGIN_LIBS   = $(shell pkg-config --libs vips fontconfig 2>/dev/null) -lm

# api-http alone also needs libmicrohttpd.
$(BUILD)/pobj/plugins/api-http/%.o: PLUGIN_CFLAGS += \
    $(shell pkg-config --cflags libmicrohttpd 2>/dev/null)
$(BUILD)/plugins/api-http.so: PLUGIN_LIBS += \
    $(shell pkg-config --libs libmicrohttpd 2>/dev/null)

# api-http also serves the OpenAPI document (docs/openapi.yaml) at
# GET /openapi.json (openapi.c): converted to JSON here and built into the
# plugin. $(BUILD)/openapi.json keeps the same bytes for the tests
# (tests/exec/openapi.sh, tests/openapi/proxy.js). Debian's python3 first:
# python3-yaml is installed for it (mk/deps.mk), and a python3 earlier on
# PATH may not have PyYAML.
OPENAPI_PYTHON := $(firstword $(wildcard /usr/bin/python3) python3)
OPENAPI_GEN := $(BUILD)/gen/api-http

$(BUILD)/openapi.json $(OPENAPI_GEN)/openapi_json.h &: docs/openapi.yaml \
    plugins/api-http/openapi_json.py
	@mkdir -p $(OPENAPI_GEN)
	@echo "GEN     $(OPENAPI_GEN)/openapi_json.h $(BUILD)/openapi.json"
	@$(OPENAPI_PYTHON) plugins/api-http/openapi_json.py docs/openapi.yaml \
	    $(BUILD)/openapi.json $(OPENAPI_GEN)/openapi_json.h

$(BUILD)/pobj/plugins/api-http/openapi.o: $(OPENAPI_GEN)/openapi_json.h
$(BUILD)/pobj/plugins/api-http/openapi.o: PLUGIN_CFLAGS += -I$(OPENAPI_GEN)
plugins: $(BUILD)/openapi.json

# A plugin folder may hold a plugin.mk with its own flags, e.g.
#   $(BUILD)/plugins/storage-s3.so: PLUGIN_LIBS += $(shell pkg-config --libs libcurl)
-include $(wildcard plugins/*/plugin.mk storage-plugins/*/plugin.mk)

OP_PLUGINS      := $(filter-out $(BUILTIN_PLUGINS),$(notdir $(wildcard plugins/*)))
STORAGE_PLUGINS := $(notdir $(wildcard storage-plugins/*))
PLUGIN_SOS := $(OP_PLUGINS:%=$(BUILD)/plugins/%.so) \
              $(STORAGE_PLUGINS:%=$(BUILD)/plugins/storage-%.so)

$(BUILD)/pobj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC [so] $<"
	@$(CC) $(PLUGIN_CFLAGS) -c $< -o $@

define op_plugin
$(BUILD)/plugins/$(1).so: $(patsubst %.c,$(BUILD)/pobj/%.o,$(wildcard plugins/$(1)/*.c))
	@mkdir -p $$(dir $$@)
	$$(CC) -shared $$(LDFLAGS) -o $$@ $$^ $$(PLUGIN_LIBS)
endef
define storage_plugin
$(BUILD)/plugins/storage-$(1).so: $(patsubst %.c,$(BUILD)/pobj/%.o,$(wildcard storage-plugins/$(1)/*.c))
	@mkdir -p $$(dir $$@)
	$$(CC) -shared $$(LDFLAGS) -o $$@ $$^ $$(PLUGIN_LIBS)
endef
$(foreach p,$(OP_PLUGINS),$(eval $(call op_plugin,$(p))))
$(foreach p,$(STORAGE_PLUGINS),$(eval $(call storage_plugin,$(p))))

TEST_PLUGIN_SOS := $(patsubst tests/plugins/%.c,$(BUILD)/tests/plugins/%.so,$(wildcard tests/plugins/*.c))
$(BUILD)/tests/plugins/%.so: $(BUILD)/pobj/tests/plugins/%.o
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(PLUGIN_LIBS)

# Keep the objects: make would delete them as intermediates, and with them
# the dependency files that rebuild a test plugin when plugin.h changes.
.SECONDARY:

plugins: $(PLUGIN_SOS)
test-plugins: $(TEST_PLUGIN_SOS)

.PHONY: plugins test-plugins
