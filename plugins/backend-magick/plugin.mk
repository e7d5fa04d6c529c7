# backend-magick links MagickCore (ImageMagick 6, Q16, from Debian's
# libmagickcore-6.q16-dev) and, as ops-vips, the pixel kernels.
$(BUILD)/pobj/plugins/backend-magick/%.o: PLUGIN_CFLAGS += \
    $(shell pkg-config --cflags MagickCore 2>/dev/null)
$(BUILD)/plugins/backend-magick.so: PLUGIN_LIBS += \
    $(shell pkg-config --libs MagickCore 2>/dev/null)
$(BUILD)/plugins/backend-magick.so: $(patsubst %.c,$(BUILD)/pobj/%.o,$(wildcard kernels/*.c))
