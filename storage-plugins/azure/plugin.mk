# storage-azure: libcurl for HTTP, OpenSSL (libcrypto) for HMAC-SHA256 and
# base64. The Shared Key check program links sharedkey.c alone.
$(BUILD)/plugins/storage-azure.so: PLUGIN_LIBS += \
    $(shell pkg-config --libs libcurl libcrypto 2>/dev/null) -lpthread
$(BUILD)/pobj/storage-plugins/azure/%.o: PLUGIN_CFLAGS += \
    $(shell pkg-config --cflags libcurl libcrypto 2>/dev/null)

TEST_BINS += $(BUILD)/tests/azure-sharedkey
$(BUILD)/tests/azure-sharedkey: storage-plugins/azure/tests/sharedkey_check.c \
                                storage-plugins/azure/sharedkey.c \
                                storage-plugins/azure/sharedkey.h
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -fvisibility=hidden -MMD -MP,$(PLUGIN_CFLAGS)) \
	    -o $@ $(filter %.c,$^) $(LDFLAGS) \
	    $(shell pkg-config --libs libcrypto 2>/dev/null)
