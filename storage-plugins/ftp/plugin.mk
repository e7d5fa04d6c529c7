# storage-ftp: libcurl for FTP and FTPS (pthread for the pool's lock).
$(BUILD)/plugins/storage-ftp.so: PLUGIN_LIBS += $(shell pkg-config --libs libcurl) -lpthread
$(BUILD)/pobj/storage-plugins/ftp/%.o: PLUGIN_CFLAGS += $(shell pkg-config --cflags libcurl)
