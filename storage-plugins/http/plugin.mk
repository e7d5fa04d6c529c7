# storage-http: libcurl for the transfers and URL parsing; pthreads for
# the connection pool lock.
$(BUILD)/pobj/storage-plugins/http/%.o: PLUGIN_CFLAGS += $(shell pkg-config --cflags libcurl 2>/dev/null)
$(BUILD)/plugins/storage-http.so: PLUGIN_LIBS += $(shell pkg-config --libs libcurl 2>/dev/null) -lpthread
