/*
 * The registry of what plugins provide: ops, storage backends, services.
 * Descriptors are copied into full-size structs so that a plugin built
 * against an older, smaller descriptor reads as zeros past its end (OBS's
 * registration by size). Every entry remembers its owner, so a plugin
 * whose init fails can be undone.
 */
#include "host.h"
#include <stdlib.h>
#include <string.h>

/* Grows an array of `elem` bytes; false when out of memory. */
static bool
registry_grow(void **items, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) {
        return true;
    }
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, ncap * elem);
    if (p == NULL) {
        return false;
    }
    *items = p;
    *cap = ncap;
    return true;
}

static bool
registry_valid_name(const char *name)
{
    if (name == NULL || name[0] == '\0' || strlen(name) > 64) {
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-')) {
            return false;
        }
    }
    return true;
}

static size_t
registry_field_size(kiln_param_kind kind)
{
    switch (kind) {
    case KILN_PARAM_BOOL:
        return sizeof(bool);
    case KILN_PARAM_NUMBER:
        return sizeof(double);
    case KILN_PARAM_LENGTH:
        return sizeof(kiln_length);
    case KILN_PARAM_COLOR:
        return sizeof(kiln_color);
    case KILN_PARAM_ENUM:
        return sizeof(int);
    case KILN_PARAM_STRING:
        return sizeof(const char *);
    case KILN_PARAM_GRAVITY:
        return sizeof(kiln_gravity);
    }
    return 0;
}

int
registry_check_specs(const registry *r, const char *what,
                     const kiln_param_spec *specs, size_t n, size_t struct_size,
                     kiln_error *err)
{
    registry_length_fn check_length = r != NULL ? r->check_length : NULL;
    if (n > 0 && specs == NULL) {
        return err_set(err, KILN_EINVAL, "%s: %zu params but no spec table",
                       what, n);
    }
    for (size_t i = 0; i < n; i++) {
        const kiln_param_spec *s = &specs[i];
        size_t fs = registry_field_size(s->kind);
        if (s->name == NULL || s->name[0] == '\0') {
            return err_set(err, KILN_EINVAL, "%s: param %zu has no name", what,
                           i);
        }
        if (fs == 0) {
            return err_set(err, KILN_EINVAL,
                           "%s: param \"%s\" has unknown kind %d", what,
                           s->name, (int)s->kind);
        }
        if (s->offset + fs > struct_size) {
            return err_set(err, KILN_EINVAL,
                           "%s: param \"%s\" lies outside its %zu-byte "
                           "struct",
                           what, s->name, struct_size);
        }
        if (s->kind == KILN_PARAM_ENUM && s->values == NULL) {
            return err_set(err, KILN_EINVAL,
                           "%s: enum param \"%s\" has no values", what,
                           s->name);
        }
        if (s->def_length != NULL) {
            kiln_length len;
            kiln_error le;
            err_clear(&le);
            if (s->kind != KILN_PARAM_LENGTH ||
                (s->flags & (KILN_PARAM_REQUIRED | KILN_PARAM_ONE_OF))) {
                return err_set(err, KILN_EINVAL,
                               "%s: param \"%s\" has a length default but "
                               "is %s",
                               what, s->name,
                               s->kind != KILN_PARAM_LENGTH
                                   ? "not a length"
                                   : "required or one of a group");
            }
            if (check_length != NULL &&
                check_length(s->def_length, s->units ? s->units : KILN_UNIT_PX,
                             &len, &le) != KILN_OK) {
                return err_set(err, KILN_EINVAL,
                               "%s: param \"%s\": its default \"%s\" is not "
                               "a length it accepts: %s",
                               what, s->name, s->def_length, le.message);
            }
        }
        if (s->kind == KILN_PARAM_NUMBER && s->min > s->max) {
            return err_set(err, KILN_EINVAL,
                           "%s: param \"%s\" has min above max", what, s->name);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(specs[j].name, s->name) == 0) {
                return err_set(err, KILN_EINVAL,
                               "%s: param \"%s\" is declared twice", what,
                               s->name);
            }
        }
    }
    return KILN_OK;
}

/* Copies a plugin's struct of `size` bytes (its own `size` member) into
 * `full`, this host's `known` bytes: a smaller one must hold at least
 * `min` bytes (the members of ABI 2.0), a larger one (a newer 2.x SDK) is
 * accepted when every byte this host does not know is zero, as a plugin
 * needs the minor of the features it uses. KILN_OK, or KILN_EABI with a
 * message naming `what`. */
int
registry_take_struct(const char *what, const char *name, const void *p,
                     size_t size, size_t min, size_t known, void *full,
                     kiln_error *err)
{
    memset(full, 0, known);
    if (p == NULL || size < min) {
        return err_set(err, KILN_EABI,
                       "%s of %zu bytes (host knows %zu; set .size = sizeof "
                       "the struct)",
                       what, size, known);
    }
    memcpy(full, p, size < known ? size : known);
    const unsigned char *b = p;
    for (size_t i = known; i < size; i++) {
        if (b[i] != 0) {
            return err_set(err, KILN_EABI,
                           "%s%s%s%s sets members this host (ABI %d.%d) does "
                           "not know: it needs a newer host",
                           what, name != NULL ? " \"" : "",
                           name != NULL ? name : "", name != NULL ? "\"" : "",
                           KILN_ABI_MAJOR, KILN_ABI_MINOR);
        }
    }
    return KILN_OK;
}

/* Copies a plugin's spec table into entries of this host's size, checked
 * (registry_check_specs). Each entry carries its size (the KILN_P_*
 * macros set it), by which the table is stepped through: a plugin built
 * with a newer 2.x SDK has larger entries, accepted when every member
 * this host does not know is zero (unused); a member it set that this
 * host would ignore is refused. *out is NULL for an empty table; free it
 * with free(). */
static int
registry_copy_specs(const registry *r, const char *what,
                    const kiln_param_spec *specs, size_t n, size_t struct_size,
                    kiln_param_spec **out, kiln_error *err)
{
    *out = NULL;
    if (n == 0) {
        return KILN_OK;
    }
    if (specs == NULL) {
        return err_set(err, KILN_EINVAL, "%s: %zu params but no spec table",
                       what, n);
    }
    size_t stride = specs[0].size;
    if (stride < sizeof(kiln_param_spec) || stride % sizeof(void *) != 0) {
        return err_set(err, KILN_EABI,
                       "%s: param specs of %zu bytes (host knows %zu; build "
                       "them with the KILN_P_* macros)",
                       what, stride, sizeof(kiln_param_spec));
    }
    kiln_param_spec *copy = calloc(n, sizeof *copy);
    if (copy == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    const unsigned char *base = (const unsigned char *)specs;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *e = base + i * stride;
        size_t es;
        memcpy(&es, e, sizeof es);
        if (es != stride) {
            free(copy);
            return err_set(err, KILN_EABI,
                           "%s: param spec %zu is of %zu bytes, the first of "
                           "%zu (one table, one size)",
                           what, i, es, stride);
        }
        memcpy(&copy[i], e, sizeof copy[i]);
        for (size_t b = sizeof copy[i]; b < stride; b++) {
            if (e[b] != 0) {
                const char *name = copy[i].name ? copy[i].name : "?";
                err_set(err, KILN_EABI,
                        "%s: param \"%s\" sets members this host (ABI "
                        "%d.%d) does not know: it needs a newer host",
                        what, name, KILN_ABI_MAJOR, KILN_ABI_MINOR);
                free(copy);
                return KILN_EABI;
            }
        }
    }
    int rc = registry_check_specs(r, what, copy, n, struct_size, err);
    if (rc != KILN_OK) {
        free(copy);
        return rc;
    }
    *out = copy;
    return KILN_OK;
}

int
registry_add_op(registry *r, kiln_plugin *owner, const kiln_op *op,
                kiln_error *err)
{
    kiln_op full;
    int rc = registry_take_struct("op descriptor", op != NULL ? op->name : NULL,
                                  op, op != NULL ? op->size : 0,
                                  offsetof(kiln_op, resample_to) +
                                      sizeof full.resample_to,
                                  sizeof full, &full, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (!registry_valid_name(full.name)) {
        return err_set(err, KILN_EINVAL,
                       "op name \"%s\" is not valid (expected lower-case "
                       "letters, digits, - or _)",
                       full.name ? full.name : "(null)");
    }
    if (full.infer == NULL) {
        return err_set(err, KILN_EINVAL, "op \"%s\" has no infer", full.name);
    }
    if (full.n_inputs != 1) {
        return err_set(err, KILN_EINVAL,
                       "op \"%s\" takes %u inputs (ABI 2.0 supports 1)",
                       full.name, full.n_inputs);
    }
    kiln_param_spec *specs = NULL;
    rc = registry_copy_specs(r, full.name, full.params, full.n_params,
                             full.params_size, &specs, err);
    if (rc != KILN_OK) {
        return rc;
    }
    full.params = specs;
    const reg_op *dup = registry_find_op(r, full.name);
    if (dup != NULL) {
        free(specs);
        return err_set(err, KILN_EEXIST,
                       "op \"%s\" is already registered by plugin \"%s\"",
                       full.name, dup->owner ? dup->owner->name : "core");
    }
    if (!registry_grow((void **)&r->ops, &r->cap_ops, r->n_ops,
                       sizeof *r->ops)) {
        free(specs);
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    memset(&r->ops[r->n_ops], 0, sizeof r->ops[r->n_ops]);
    r->ops[r->n_ops].op = full;
    r->ops[r->n_ops].owner = owner;
    r->n_ops++;
    return KILN_OK;
}

int
registry_add_op_impl(registry *r, kiln_plugin *owner, const kiln_op_impl *impl,
                     kiln_error *err)
{
    kiln_op_impl full;
    int rc = registry_take_struct(
        "op implementation", impl != NULL ? impl->op : NULL, impl,
        impl != NULL ? impl->size : 0, sizeof full, sizeof full, &full, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (full.op == NULL || full.backend == NULL ||
        !registry_valid_name(full.backend)) {
        return err_set(err, KILN_EINVAL,
                       "an op implementation needs the op's name and a "
                       "backend name (lower-case letters, digits, - or _)");
    }
    reg_op *op = (reg_op *)registry_find_op(r, full.op);
    if (op == NULL) {
        return err_set(err, KILN_ENOTFOUND,
                       "op \"%s\" is not defined: an implementation (for "
                       "backend \"%s\") needs its definition registered first, "
                       "by this plugin or one enabled before it",
                       full.op, full.backend);
    }
    bool vips = strcmp(full.backend, "vips") == 0;
    if (vips ? full.execute == NULL || full.execute_native != NULL ||
                   full.execute_native_reduced != NULL
             : full.execute_native == NULL || full.execute != NULL ||
                   full.execute_reduced != NULL) {
        return err_set(err, KILN_EINVAL,
                       "op \"%s\": the \"%s\" implementation needs %s "
                       "(and only that)",
                       full.op, full.backend,
                       vips ? "execute" : "execute_native");
    }
    if (vips && op->op.sample_scale != NULL && full.execute_reduced == NULL) {
        return err_set(err, KILN_EINVAL,
                       "op \"%s\" has sample_scale: its \"%s\" implementation "
                       "needs execute_reduced",
                       full.op, full.backend);
    }
    const reg_impl *dup = registry_op_impl(op, full.backend);
    if (dup != NULL) {
        return err_set(err, KILN_EEXIST,
                       "op \"%s\" already has a \"%s\" implementation, from "
                       "plugin \"%s\"",
                       full.op, full.backend,
                       dup->owner ? dup->owner->name : "core");
    }
    if (op->n_impls == REG_MAX_IMPLS) {
        return err_set(err, KILN_ELIMIT,
                       "op \"%s\" has %d implementations already (the most)",
                       full.op, REG_MAX_IMPLS);
    }
    op->impls[op->n_impls].impl = full;
    op->impls[op->n_impls].owner = owner;
    op->n_impls++;
    return KILN_OK;
}

const reg_impl *
registry_op_impl(const reg_op *op, const char *backend)
{
    for (size_t i = 0; op != NULL && i < op->n_impls; i++) {
        if (strcmp(op->impls[i].impl.backend, backend) == 0) {
            return &op->impls[i];
        }
    }
    return NULL;
}

int
registry_add_storage(registry *r, kiln_plugin *owner, const kiln_storage *st,
                     kiln_error *err)
{
    kiln_storage full;
    int rc = registry_take_struct(
        "storage descriptor", st != NULL ? st->name : NULL, st,
        st != NULL ? st->size : 0, sizeof full, sizeof full, &full, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (!registry_valid_name(full.name)) {
        return err_set(err, KILN_EINVAL, "storage name \"%s\" is not valid",
                       full.name ? full.name : "(null)");
    }
    if (full.open == NULL || full.open_read == NULL) {
        return err_set(err, KILN_EINVAL,
                       "storage \"%s\" lacks open or open_read", full.name);
    }
    if (full.open_write != NULL &&
        (full.commit == NULL || full.abort == NULL)) {
        return err_set(err, KILN_EINVAL,
                       "storage \"%s\" writes but lacks commit or abort",
                       full.name);
    }
    kiln_param_spec *specs = NULL;
    rc = registry_copy_specs(r, full.name, full.settings, full.n_settings,
                             full.settings_size, &specs, err);
    if (rc != KILN_OK) {
        return rc;
    }
    full.settings = specs;
    if (registry_find_storage(r, full.name) != NULL) {
        free(specs);
        return err_set(err, KILN_EEXIST, "storage \"%s\" is already registered",
                       full.name);
    }
    if (!registry_grow((void **)&r->storages, &r->cap_storages, r->n_storages,
                       sizeof *r->storages)) {
        free(specs);
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    r->storages[r->n_storages].st = full;
    r->storages[r->n_storages].owner = owner;
    r->n_storages++;
    return KILN_OK;
}

int
registry_add_service(registry *r, kiln_plugin *owner, const kiln_service *svc,
                     kiln_error *err)
{
    kiln_service full;
    int rc = registry_take_struct(
        "service descriptor", svc != NULL ? svc->name : NULL, svc,
        svc != NULL ? svc->size : 0, sizeof full, sizeof full, &full, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (!registry_valid_name(full.name) || full.start == NULL) {
        return err_set(err, KILN_EINVAL, "service \"%s\" is not valid",
                       full.name ? full.name : "(null)");
    }
    kiln_param_spec *specs = NULL;
    rc = registry_copy_specs(r, full.name, full.settings, full.n_settings,
                             full.settings_size, &specs, err);
    if (rc != KILN_OK) {
        return rc;
    }
    full.settings = specs;
    for (size_t i = 0; i < r->n_services; i++) {
        if (strcmp(r->services[i].svc.name, full.name) == 0) {
            free(specs);
            return err_set(err, KILN_EEXIST,
                           "service \"%s\" is already registered", full.name);
        }
    }
    if (!registry_grow((void **)&r->services, &r->cap_services, r->n_services,
                       sizeof *r->services)) {
        free(specs);
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    r->services[r->n_services].svc = full;
    r->services[r->n_services].owner = owner;
    r->n_services++;
    return KILN_OK;
}

int
registry_add_backend(registry *r, kiln_plugin *owner, const kiln_backend *b,
                     kiln_error *err)
{
    kiln_backend full;
    int rc = registry_take_struct(
        "backend descriptor", b != NULL ? b->name : NULL, b,
        b != NULL ? b->size : 0, sizeof full, sizeof full, &full, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (!registry_valid_name(full.name)) {
        return err_set(err, KILN_EINVAL, "backend name \"%s\" is not valid",
                       full.name ? full.name : "(null)");
    }
    if (registry_find_backend(r, full.name)) {
        return err_set(err, KILN_EEXIST, "backend \"%s\" is already registered",
                       full.name);
    }
    if (strcmp(full.name, "vips") == 0 && (owner == NULL || !owner->builtin)) {
        /* Ops' "vips" implementations are libvips calls (kiln_op_impl.
         * execute), which only kiln's built-in libvips executor runs. */
        return err_set(err, KILN_EEXIST,
                       "backend \"vips\" is kiln's built-in libvips backend "
                       "(backend-vips): choose another name");
    }
    if (full.probe == NULL || full.decode == NULL || full.encode == NULL ||
        full.shape == NULL || full.to_vips == NULL || full.from_vips == NULL ||
        full.ref == NULL || full.unref == NULL || full.read_formats == NULL ||
        full.write_formats == NULL) {
        return err_set(err, KILN_EINVAL,
                       "backend \"%s\" lacks one of read_formats, "
                       "write_formats, probe, decode, encode, shape, to_vips, "
                       "from_vips, ref, unref",
                       full.name);
    }
    if (!registry_grow((void **)&r->backends, &r->cap_backends, r->n_backends,
                       sizeof *r->backends)) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    r->backends[r->n_backends].be = full;
    r->backends[r->n_backends].owner = owner;
    r->backends[r->n_backends].runs_graphs = false;
    r->n_backends++;
    return KILN_OK;
}

const reg_backend *
registry_find_backend(const registry *r, const char *name)
{
    for (size_t i = 0; name != NULL && i < r->n_backends; i++) {
        if (strcmp(r->backends[i].be.name, name) == 0) {
            return &r->backends[i];
        }
    }
    return NULL;
}

bool
registry_set_runs_graphs(registry *r, const char *name)
{
    reg_backend *be = (reg_backend *)registry_find_backend(r, name);
    if (be != NULL) {
        be->runs_graphs = true;
    }
    return be != NULL;
}

bool
registry_has_backend(const registry *r, const char *name)
{
    return registry_find_backend(r, name) != NULL;
}

const reg_impl *
registry_impl_for(const registry *r, const reg_op *op, const char *backend)
{
    const reg_impl *impl = registry_op_impl(op, backend);
    if (impl == NULL && registry_has_backend(r, backend)) {
        impl = registry_op_impl(op, "vips");
    }
    return impl;
}

void
registry_remove_owner(registry *r, kiln_plugin *owner)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n_ops; i++) {
        if (r->ops[i].owner == owner) {
            free((void *)r->ops[i].op.params); /* registry_copy_specs' */
        } else {
            reg_op *op = &r->ops[i];
            size_t m = 0;
            for (size_t j = 0; j < op->n_impls; j++) {
                if (op->impls[j].owner != owner) {
                    op->impls[m++] = op->impls[j];
                }
            }
            op->n_impls = m;
            r->ops[k++] = *op;
        }
    }
    r->n_ops = k;
    k = 0;
    for (size_t i = 0; i < r->n_storages; i++) {
        if (r->storages[i].owner == owner) {
            free((void *)r->storages[i].st.settings);
        } else {
            r->storages[k++] = r->storages[i];
        }
    }
    r->n_storages = k;
    k = 0;
    for (size_t i = 0; i < r->n_services; i++) {
        if (r->services[i].owner == owner) {
            free((void *)r->services[i].svc.settings);
        } else {
            r->services[k++] = r->services[i];
        }
    }
    r->n_services = k;
    k = 0;
    for (size_t i = 0; i < r->n_backends; i++) {
        if (r->backends[i].owner != owner) {
            r->backends[k++] = r->backends[i];
        }
    }
    r->n_backends = k;
}

const reg_op *
registry_find_op(const registry *r, const char *name)
{
    for (size_t i = 0; i < r->n_ops; i++) {
        if (strcmp(r->ops[i].op.name, name) == 0) {
            return &r->ops[i];
        }
    }
    return NULL;
}

const reg_storage *
registry_find_storage(const registry *r, const char *name)
{
    for (size_t i = 0; i < r->n_storages; i++) {
        if (strcmp(r->storages[i].st.name, name) == 0) {
            return &r->storages[i];
        }
    }
    return NULL;
}

void
registry_free(registry *r)
{
    for (size_t i = 0; i < r->n_ops; i++) {
        free((void *)r->ops[i].op.params);
    }
    for (size_t i = 0; i < r->n_storages; i++) {
        free((void *)r->storages[i].st.settings);
    }
    for (size_t i = 0; i < r->n_services; i++) {
        free((void *)r->services[i].svc.settings);
    }
    free(r->ops);
    free(r->storages);
    free(r->services);
    free(r->backends);
    memset(r, 0, sizeof *r);
}
