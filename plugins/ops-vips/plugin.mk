# ops-vips also holds the pixel kernels (kernels/), as the core does.
$(BUILD)/plugins/ops-vips.so: $(patsubst %.c,$(BUILD)/pobj/%.o,$(wildcard kernels/*.c))
