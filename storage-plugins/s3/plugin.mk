# The s3 storage backend: libcurl for HTTP, OpenSSL's libcrypto for SigV4.
$(BUILD)/plugins/storage-s3.so: PLUGIN_LIBS += \
    $(shell pkg-config --libs libcurl libcrypto 2>/dev/null)
$(BUILD)/pobj/storage-plugins/s3/%.o: PLUGIN_CFLAGS += \
    $(shell pkg-config --cflags libcurl libcrypto 2>/dev/null)

# The SigV4 signer against the AWS test suite; run by
# tests/exec/storage_s3.sh from $(BUILD)/tests/.
TEST_BINS += $(BUILD)/tests/s3-sigv4-vectors
S3_VECTOR_SRC := storage-plugins/s3/tests/sigv4_vectors.c \
                 storage-plugins/s3/sigv4.c
$(BUILD)/tests/s3-sigv4-vectors: $(S3_VECTOR_SRC) storage-plugins/s3/sigv4.h
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -fvisibility=hidden -MMD -MP,$(PLUGIN_CFLAGS)) \
	    -o $@ $(S3_VECTOR_SRC) $(LDFLAGS) \
	    $(shell pkg-config --libs libcjson libcrypto 2>/dev/null)
