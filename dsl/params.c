/*
 * The host's parameter parser: an op (or a storage backend) declares its
 * parameters in a spec table and the host parses, type-checks and
 * range-checks the JSON into the op's params struct, so no plugin parses
 * JSON. Lengths are lexed here and resolved later, at bind, against the
 * input shape. Also formats values for `kiln compile` and `kiln ops`.
 */
#include "dsl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "value_lexer.h"

typedef struct pctx {
    arena *a;
    errlist *errs;
    const char *path;
} pctx;

static void
params_error(pctx *x, const char *key, const cJSON *v, kiln_error *e)
{
    char p[300];
    if (key != NULL) {
        snprintf(p, sizeof p, "%s%s%s", x->path, x->path[0] ? "." : "", key);
    } else {
        snprintf(p, sizeof p, "%s", x->path);
    }
    snprintf(e->path, sizeof e->path, "%s", p);
    errlist_add(x->errs, e, v != NULL ? dsl_value_text(x->a, v) : NULL);
}

static void params_fail(pctx *x, const char *key, const cJSON *v,
                        const char *fmt, ...) KILN_PRINTF(4, 5);

static void
params_fail(pctx *x, const char *key, const cJSON *v, const char *fmt, ...)
{
    char p[300];
    snprintf(p, sizeof p, "%s%s%s", x->path,
             key != NULL && x->path[0] ? "." : "", key ? key : "");
    va_list ap;
    va_start(ap, fmt);
    errlist_vaddf(x->errs, p, v != NULL ? dsl_value_text(x->a, v) : NULL, -1, 0,
                  fmt, ap);
    va_end(ap);
}

static void *
params_field(const kiln_param_spec *s, void *params)
{
    return (char *)params + s->offset;
}

static const void *
params_cfield(const kiln_param_spec *s, const void *params)
{
    return (const char *)params + s->offset;
}

/* The value's text as JSON, for messages: "45.123" or "\"abc\"". */
static const char *
params_quote(pctx *x, const cJSON *v)
{
    return dsl_value_text(x->a, v);
}

static int
params_count_decimals(double d)
{
    /* The shortest text that round-trips tells what the user wrote. */
    char buf[64];
    snprintf(buf, sizeof buf, "%.15g", d);
    const char *dot = strchr(buf, '.');
    if (dot == NULL || strchr(buf, 'e') != NULL) {
        return 0;
    }
    return (int)strlen(dot + 1);
}

static bool
params_number(pctx *x, const kiln_param_spec *s, const cJSON *v, double *out)
{
    double d;
    int decimals;
    if (cJSON_IsNumber(v)) {
        d = v->valuedouble;
        decimals = params_count_decimals(d);
    } else if (cJSON_IsString(v)) {
        kiln_error e;
        err_clear(&e);
        if (dsl_lex_number(v->valuestring, &d, &decimals, &e) != KILN_OK) {
            params_error(x, s->name, v, &e);
            return false;
        }
    } else {
        params_fail(x, s->name, v, "expected a number, got %s",
                    params_quote(x, v));
        return false;
    }
    if ((s->flags & KILN_PARAM_INTEGER) && d != floor(d)) {
        params_fail(x, s->name, v, "%s is not a whole number",
                    params_quote(x, v));
        return false;
    }
    if (s->max_decimals > 0 && decimals > s->max_decimals) {
        params_fail(x, s->name, v, "%s has %d decimals (expected at most %d)",
                    params_quote(x, v), decimals, s->max_decimals);
        return false;
    }
    bool exclusive = (s->flags & KILN_PARAM_MIN_EXCLUSIVE) != 0;
    if (d < s->min || d > s->max || (exclusive && d == s->min)) {
        if (exclusive) {
            params_fail(x, s->name, v,
                        "%s is out of range (expected above %g, at most %g)",
                        params_quote(x, v), s->min, s->max);
        } else {
            params_fail(x, s->name, v, "%s is out of range (expected %g..%g)",
                        params_quote(x, v), s->min, s->max);
        }
        return false;
    }
    *out = d;
    return true;
}

static bool
params_length(pctx *x, const kiln_param_spec *s, const cJSON *v,
              kiln_length *out)
{
    kiln_length len;
    memset(&len, 0, sizeof len);
    bool is_size = s->axis == KILN_AXIS_WIDTH || s->axis == KILN_AXIS_HEIGHT;
    if (cJSON_IsNumber(v)) {
        len.is_set = true;
        len.unit = KILN_UNIT_PX;
        len.value = v->valuedouble;
        len.text = params_quote(x, v);
    } else if (cJSON_IsString(v)) {
        kiln_error e;
        err_clear(&e);
        unsigned units = s->units ? s->units : KILN_UNIT_PX;
        if (dsl_lex_length(v->valuestring, units, &len, &e) != KILN_OK) {
            params_error(x, s->name, v, &e);
            return false;
        }
        len.text = arena_strdup(x->a, v->valuestring);
    } else {
        params_fail(x, s->name, v,
                    "expected a length like 120, \"120px\", \"50%%\", "
                    "\"50w\" or \"50h\", got %s",
                    params_quote(x, v));
        return false;
    }
    if (is_size && len.value < 0) {
        params_fail(x, s->name, v,
                    "size %s is negative (expected 1..%d px "
                    "or a positive percentage)",
                    params_quote(x, v), KILN_MAX_SIZE);
        return false;
    }
    if (is_size && len.unit == KILN_UNIT_PX) {
        long r = geom_round(len.value);
        if (r < 1 || r > KILN_MAX_SIZE) {
            params_fail(x, s->name, v,
                        "size %s is out of range (expected 1..%d px)",
                        params_quote(x, v), KILN_MAX_SIZE);
            return false;
        }
        len.px = (int)r;
    }
    if (!is_size && len.unit == KILN_UNIT_PX) {
        if (fabs(len.value) > 1e6) {
            params_fail(x, s->name, v, "offset %s is out of range",
                        params_quote(x, v));
            return false;
        }
        len.px = (int)geom_round(len.value);
    }
    *out = len;
    return true;
}

static bool
params_enum(pctx *x, const kiln_param_spec *s, const cJSON *v,
            const char *const *values, int *out)
{
    if (!cJSON_IsString(v)) {
        params_fail(x, s->name, v, "expected a string, got %s",
                    params_quote(x, v));
        return false;
    }
    size_t n = 0;
    for (; values[n] != NULL; n++) {
        if (strcmp(values[n], v->valuestring) == 0) {
            *out = (int)n;
            return true;
        }
    }
    char list[512] = "", hint[128];
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", values[i]);
    }
    suggest_hint(v->valuestring, values, n, hint, sizeof hint);
    kiln_error e;
    err_clear(&e);
    err_set(&e, KILN_EINVAL, "unknown %s \"%s\"%s (expected one of: %s)",
            s->kind == KILN_PARAM_GRAVITY ? "gravity" : "value", v->valuestring,
            hint, list);
    e.offset = 0;
    e.length = (int)strlen(v->valuestring);
    params_error(x, s->name, v, &e);
    return false;
}

static const char *const params_gravity_values[] = {
    "northwest", "north", "northeast", "west",   "center", "east",
    "southwest", "south", "southeast", "middle", NULL};

static bool
params_one(pctx *x, const kiln_param_spec *s, const cJSON *v, void *params)
{
    void *f = params_field(s, params);
    switch (s->kind) {
    case KILN_PARAM_BOOL:
        if (cJSON_IsBool(v)) {
            *(bool *)f = cJSON_IsTrue(v);
            return true;
        }
        /* The public docs show some values as strings; accept the two
         * spellings of a boolean and nothing else. */
        if (cJSON_IsString(v) && (strcmp(v->valuestring, "true") == 0 ||
                                  strcmp(v->valuestring, "false") == 0)) {
            *(bool *)f = v->valuestring[0] == 't';
            return true;
        }
        params_fail(x, s->name, v, "expected true or false, got %s",
                    params_quote(x, v));
        return false;
    case KILN_PARAM_NUMBER:
        return params_number(x, s, v, f);
    case KILN_PARAM_LENGTH:
        return params_length(x, s, v, f);
    case KILN_PARAM_COLOR: {
        kiln_error e;
        err_clear(&e);
        if (!cJSON_IsString(v)) {
            params_fail(x, s->name, v,
                        "expected a colour such as \"#ff8800\", got %s",
                        params_quote(x, v));
            return false;
        }
        if (dsl_lex_color(v->valuestring, f, &e) != KILN_OK) {
            params_error(x, s->name, v, &e);
            return false;
        }
        return true;
    }
    case KILN_PARAM_ENUM:
        return params_enum(x, s, v, s->values, f);
    case KILN_PARAM_GRAVITY: {
        int g;
        if (!params_enum(x, s, v, params_gravity_values, &g)) {
            return false;
        }
        *(kiln_gravity *)f = g == 9 ? KILN_GRAVITY_CENTER : (kiln_gravity)g;
        return true;
    }
    case KILN_PARAM_STRING: {
        if (!cJSON_IsString(v)) {
            params_fail(x, s->name, v, "expected a string, got %s",
                        params_quote(x, v));
            return false;
        }
        size_t len = strlen(v->valuestring);
        if (len == 0 && s->min_len > 0) {
            params_fail(x, s->name, NULL, "expected a non-empty string");
            return false;
        }
        if (len < s->min_len) {
            params_fail(x, s->name, NULL,
                        "a string of %zu bytes is too short (expected at "
                        "least %zu)",
                        len, s->min_len);
            return false;
        }
        if (s->max_len > 0 && len > s->max_len) {
            params_fail(x, s->name, NULL,
                        "a string of %zu bytes is too long (expected at most "
                        "%zu)",
                        len, s->max_len);
            return false;
        }
        *(const char **)f = arena_strdup(x->a, v->valuestring);
        return true;
    }
    }
    return false;
}

static void
params_default(arena *a, const kiln_param_spec *s, void *params)
{
    void *f = params_field(s, params);
    switch (s->kind) {
    case KILN_PARAM_BOOL:
        *(bool *)f = s->def_bool;
        break;
    case KILN_PARAM_NUMBER:
        *(double *)f = s->def_number;
        break;
    case KILN_PARAM_LENGTH: {
        kiln_length *len = f;
        memset(len, 0, sizeof *len);
        if (s->def_length != NULL) {
            /* Checked when the op was registered: as if written. */
            kiln_error e;
            unsigned units = s->units ? s->units : KILN_UNIT_PX;
            if (dsl_lex_length(s->def_length, units, len, &e) != KILN_OK) {
                memset(len, 0, sizeof *len);
                break;
            }
            len->text = s->def_length;
            if ((s->axis == KILN_AXIS_WIDTH || s->axis == KILN_AXIS_HEIGHT) &&
                len->unit == KILN_UNIT_PX) {
                len->px = (int)geom_round(len->value);
            }
        }
        break;
    }
    case KILN_PARAM_COLOR: {
        kiln_color *c = f;
        memset(c, 0, sizeof *c);
        if (s->def_string != NULL) {
            kiln_error e;
            if (dsl_lex_color(s->def_string, c, &e) != KILN_OK) {
                memset(c, 0, sizeof *c);
            }
            c->is_set = false; /* a default, not given */
        }
        break;
    }
    case KILN_PARAM_ENUM:
        *(int *)f = s->def_enum;
        break;
    case KILN_PARAM_GRAVITY:
        *(kiln_gravity *)f = s->def_gravity;
        break;
    case KILN_PARAM_STRING:
        *(const char **)f = arena_strdup(a, s->def_string);
        break;
    }
}

int
params_parse(arena *a, const kiln_param_spec *specs, size_t n, size_t size,
             const cJSON *obj, const char *path, const char *const *skip,
             void **out, errlist *errs)
{
    pctx x = {a, errs, path};
    size_t before = errs->n;
    void *params = arena_alloc(a, size ? size : 1);
    *out = params;
    if (params == NULL) {
        return KILN_ENOMEM;
    }
    size_t n_skip = 0;
    while (skip != NULL && skip[n_skip] != NULL) {
        n_skip++;
    }
    const char **names = arena_alloc(a, (n + n_skip + 1) * sizeof *names);
    size_t n_names = 0;
    for (size_t i = 0; i < n; i++) {
        names[n_names++] = specs[i].name;
    }
    for (size_t i = 0; i < n_skip; i++) {
        names[n_names++] = skip[i];
    }
    /* Unknown members first, in the order written. */
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        bool known = false;
        for (size_t i = 0; i < n_skip && !known; i++) {
            known = strcmp(m->string, skip[i]) == 0;
        }
        for (size_t i = 0; i < n && !known; i++) {
            known = strcmp(m->string, specs[i].name) == 0 ||
                    (specs[i].alias != NULL &&
                     strcmp(m->string, specs[i].alias) == 0);
        }
        if (!known) {
            char hint[128];
            suggest_hint(m->string, names, n_names, hint, sizeof hint);
            if (n == 0) {
                params_fail(&x, m->string, NULL,
                            "unknown parameter \"%s\" (this takes no "
                            "parameters)",
                            m->string);
            } else {
                params_fail(&x, m->string, NULL, "unknown parameter \"%s\"%s",
                            m->string, hint);
            }
        }
    }
    bool has_one_of = false, got_one_of = false;
    for (size_t i = 0; i < n; i++) {
        const kiln_param_spec *s = &specs[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, s->name);
        if (v == NULL && s->alias != NULL) {
            v = cJSON_GetObjectItemCaseSensitive(obj, s->alias);
        }
        if (s->flags & KILN_PARAM_ONE_OF) {
            has_one_of = true;
            got_one_of = got_one_of || v != NULL;
        }
        params_default(a, s, params);
        if (v == NULL) {
            if (s->flags & KILN_PARAM_REQUIRED) {
                params_fail(&x, s->name, NULL,
                            "missing required parameter \"%s\"", s->name);
            }
            continue;
        }
        params_one(&x, s, v, params);
    }
    if (has_one_of && !got_one_of) {
        char list[256] = "";
        size_t k = 0, total = 0;
        for (size_t i = 0; i < n; i++) {
            total += (specs[i].flags & KILN_PARAM_ONE_OF) != 0;
        }
        for (size_t i = 0; i < n; i++) {
            if (!(specs[i].flags & KILN_PARAM_ONE_OF)) {
                continue;
            }
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s",
                     k == 0 ? "" : (k + 1 == total ? " or " : ", "),
                     specs[i].name);
            k++;
        }
        params_fail(&x, NULL, NULL, "one of %s is required", list);
    }
    return errs->n > before ? KILN_EINVAL : KILN_OK;
}

int
params_bind(const kiln_param_spec *specs, size_t n, void *params,
            const kiln_shape *in, const char *path, errlist *errs)
{
    int rc = KILN_OK;
    for (size_t i = 0; i < n; i++) {
        const kiln_param_spec *s = &specs[i];
        if (s->kind != KILN_PARAM_LENGTH) {
            continue;
        }
        kiln_length *len = params_field(s, params);
        if (!len->is_set) {
            continue;
        }
        kiln_error e;
        err_clear(&e);
        if (geom_resolve_length(len, s->axis, in->width, in->height, &len->px,
                                &e) != KILN_OK) {
            snprintf(e.path, sizeof e.path, "%s.%s", path, s->name);
            errlist_add(errs, &e, NULL);
            rc = KILN_EINVAL;
        }
    }
    return rc;
}

bool
params_is_set(const kiln_param_spec *s, const void *params)
{
    const void *f = params_cfield(s, params);
    switch (s->kind) {
    case KILN_PARAM_LENGTH:
        return ((const kiln_length *)f)->is_set;
    case KILN_PARAM_COLOR:
        return ((const kiln_color *)f)->is_set || s->def_string != NULL;
    case KILN_PARAM_STRING:
        return *(const char *const *)f != NULL;
    default:
        return true;
    }
}

static const char *
params_axis_ref(kiln_axis axis, kiln_unit unit)
{
    if (unit == KILN_UNIT_W) {
        return "in.w";
    }
    if (unit == KILN_UNIT_H) {
        return "in.h";
    }
    return axis == KILN_AXIS_WIDTH || axis == KILN_AXIS_X ? "in.w" : "in.h";
}

void
params_format_value(const kiln_param_spec *s, const void *params, bool bound,
                    char *buf, size_t size)
{
    const void *f = params_cfield(s, params);
    switch (s->kind) {
    case KILN_PARAM_BOOL:
        snprintf(buf, size, "%s", *(const bool *)f ? "true" : "false");
        break;
    case KILN_PARAM_NUMBER:
        snprintf(buf, size, "%g", *(const double *)f);
        break;
    case KILN_PARAM_LENGTH: {
        const kiln_length *l = f;
        if (!l->is_set) {
            snprintf(buf, size, "-");
        } else if (l->unit == KILN_UNIT_PX) {
            snprintf(buf, size, "%d", l->px);
        } else if (bound) {
            snprintf(buf, size, "%d (%s)", l->px, l->text);
        } else {
            snprintf(buf, size, "%g%% of %s", l->value,
                     params_axis_ref(s->axis, l->unit));
        }
        break;
    }
    case KILN_PARAM_COLOR: {
        const kiln_color *c = f;
        snprintf(buf, size, "#%02x%02x%02x%02x", c->r, c->g, c->b, c->a);
        break;
    }
    case KILN_PARAM_ENUM:
        snprintf(buf, size, "%s", s->values[*(const int *)f]);
        break;
    case KILN_PARAM_GRAVITY:
        snprintf(buf, size, "%s", geom_gravity_name(*(const kiln_gravity *)f));
        break;
    case KILN_PARAM_STRING: {
        const char *str = *(const char *const *)f;
        if (s->flags & KILN_PARAM_SECRET) {
            snprintf(buf, size, "\"***\"");
        } else {
            snprintf(buf, size, "\"%.60s%s\"", str ? str : "",
                     str && strlen(str) > 60 ? "..." : "");
        }
        break;
    }
    }
}

void
params_describe(const kiln_param_spec *s, char *buf, size_t size)
{
    switch (s->kind) {
    case KILN_PARAM_BOOL:
        snprintf(buf, size, "bool");
        break;
    case KILN_PARAM_NUMBER:
        snprintf(buf, size, "%s %s%g..%g",
                 s->flags & KILN_PARAM_INTEGER ? "integer" : "number",
                 s->flags & KILN_PARAM_MIN_EXCLUSIVE ? "above " : "", s->min,
                 s->max);
        if (s->max_decimals > 0) {
            size_t l = strlen(buf);
            snprintf(buf + l, size - l, ", at most %d decimals",
                     s->max_decimals);
        }
        break;
    case KILN_PARAM_LENGTH: {
        static const char *const axes[] = {"width", "height", "x offset",
                                           "y offset"};
        char units[64] = "";
        static const kiln_unit all[] = {KILN_UNIT_PX, KILN_UNIT_PERCENT,
                                        KILN_UNIT_W, KILN_UNIT_H};
        for (size_t i = 0; i < 4; i++) {
            if (s->units & all[i]) {
                size_t l = strlen(units);
                snprintf(units + l, sizeof units - l, "%s%s", l ? " " : "",
                         geom_unit_name(all[i]));
            }
        }
        snprintf(buf, size, "length (%s; units: %s)", axes[s->axis], units);
        break;
    }
    case KILN_PARAM_COLOR:
        snprintf(buf, size, "colour");
        break;
    case KILN_PARAM_ENUM: {
        snprintf(buf, size, "one of:");
        for (size_t i = 0; s->values[i] != NULL; i++) {
            size_t l = strlen(buf);
            snprintf(buf + l, size - l, " %s", s->values[i]);
        }
        break;
    }
    case KILN_PARAM_GRAVITY:
        snprintf(buf, size, "gravity");
        break;
    case KILN_PARAM_STRING:
        if (s->max_len > 0) {
            snprintf(buf, size, "string (%zu..%zu bytes)", s->min_len,
                     s->max_len);
        } else {
            snprintf(buf, size, "string");
        }
        break;
    }
}

void
params_describe_default(const kiln_param_spec *s, char *buf, size_t size)
{
    if (s->flags & KILN_PARAM_REQUIRED) {
        snprintf(buf, size, "required");
        return;
    }
    switch (s->kind) {
    case KILN_PARAM_BOOL:
        snprintf(buf, size, "default %s", s->def_bool ? "true" : "false");
        break;
    case KILN_PARAM_NUMBER:
        snprintf(buf, size, "default %g", s->def_number);
        break;
    case KILN_PARAM_ENUM:
        snprintf(buf, size, "default %s", s->values[s->def_enum]);
        break;
    case KILN_PARAM_GRAVITY:
        snprintf(buf, size, "default %s", geom_gravity_name(s->def_gravity));
        break;
    case KILN_PARAM_COLOR:
    case KILN_PARAM_STRING:
        if (s->def_string != NULL) {
            snprintf(buf, size, "default \"%s\"", s->def_string);
        } else {
            snprintf(buf, size, "optional");
        }
        break;
    case KILN_PARAM_LENGTH:
        if (s->def_length != NULL) {
            snprintf(buf, size, "default %s", s->def_length);
        } else {
            snprintf(buf, size, "%s",
                     s->flags & KILN_PARAM_ONE_OF ? "one of the group required"
                                                  : "optional");
        }
        break;
    }
}

cJSON *
params_spec_json(const kiln_param_spec *s)
{
    static const char *const kinds[] = {
        [KILN_PARAM_BOOL] = "bool",      [KILN_PARAM_NUMBER] = "number",
        [KILN_PARAM_LENGTH] = "length",  [KILN_PARAM_COLOR] = "color",
        [KILN_PARAM_ENUM] = "enum",      [KILN_PARAM_STRING] = "string",
        [KILN_PARAM_GRAVITY] = "gravity"};
    static const char *const axes[] = {"width", "height", "x", "y"};
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddStringToObject(o, "kind", kinds[s->kind]);
    cJSON_AddBoolToObject(o, "required", (s->flags & KILN_PARAM_REQUIRED) != 0);
    cJSON_AddBoolToObject(o, "one_of", (s->flags & KILN_PARAM_ONE_OF) != 0);
    if (s->alias != NULL) {
        cJSON_AddStringToObject(o, "alias", s->alias);
    }
    switch (s->kind) {
    case KILN_PARAM_BOOL:
        cJSON_AddBoolToObject(o, "default", s->def_bool);
        break;
    case KILN_PARAM_NUMBER:
        cJSON_AddNumberToObject(o, "min", s->min);
        cJSON_AddNumberToObject(o, "max", s->max);
        cJSON_AddBoolToObject(o, "min_exclusive",
                              (s->flags & KILN_PARAM_MIN_EXCLUSIVE) != 0);
        cJSON_AddBoolToObject(o, "integer",
                              (s->flags & KILN_PARAM_INTEGER) != 0);
        cJSON_AddNumberToObject(o, "max_decimals", s->max_decimals);
        cJSON_AddNumberToObject(o, "default", s->def_number);
        break;
    case KILN_PARAM_LENGTH: {
        cJSON *u = cJSON_AddArrayToObject(o, "units");
        static const kiln_unit all[] = {KILN_UNIT_PX, KILN_UNIT_PERCENT,
                                        KILN_UNIT_W, KILN_UNIT_H};
        for (size_t i = 0; i < 4; i++) {
            if (s->units & all[i]) {
                cJSON_AddItemToArray(
                    u, cJSON_CreateString(geom_unit_name(all[i])));
            }
        }
        cJSON_AddStringToObject(o, "axis", axes[s->axis]);
        if (s->def_length != NULL) {
            cJSON_AddStringToObject(o, "default", s->def_length);
        }
        break;
    }
    case KILN_PARAM_ENUM: {
        cJSON *v = cJSON_AddArrayToObject(o, "values");
        for (size_t i = 0; s->values[i] != NULL; i++) {
            cJSON_AddItemToArray(v, cJSON_CreateString(s->values[i]));
        }
        cJSON_AddStringToObject(o, "default", s->values[s->def_enum]);
        break;
    }
    case KILN_PARAM_GRAVITY:
        cJSON_AddStringToObject(o, "default",
                                geom_gravity_name(s->def_gravity));
        break;
    case KILN_PARAM_STRING:
        cJSON_AddNumberToObject(o, "min_len", (double)s->min_len);
        cJSON_AddNumberToObject(o, "max_len", (double)s->max_len);
        cJSON_AddBoolToObject(o, "secret", (s->flags & KILN_PARAM_SECRET) != 0);
        break;
    case KILN_PARAM_COLOR:
        break;
    }
    if ((s->kind == KILN_PARAM_STRING || s->kind == KILN_PARAM_COLOR) &&
        s->def_string != NULL) {
        cJSON_AddStringToObject(o, "default", s->def_string);
    }
    if (s->doc != NULL) {
        cJSON_AddStringToObject(o, "doc", s->doc);
    }
    return o;
}
