/*
 * The network guard (see netguard.h): address classification, the
 * network.allow list, one checked DNS resolution per host and URL parsing
 * through libcurl's URL API. Used when a request is submitted (a refusal
 * there answers 400) and again when the postback is sent.
 */
#include "netguard.h"

#include "kiln.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

/* An address in IPv6 form (IPv4 as ::ffff:a.b.c.d) and, when it embeds an
 * IPv4 address, that address and the name of the embedding. */
typedef struct ng_view {
    uint8_t b[16];
    bool has_v4;
    uint32_t v4;      /* host order */
    const char *form; /* "IPv4-mapped", "NAT64", ... or NULL */
} ng_view;

typedef struct ng_rule {
    uint32_t net; /* host order */
    unsigned prefix;
    netguard_class cls;
} ng_rule;

static bool ng_view_of(const struct sockaddr *sa, ng_view *v);
static netguard_class ng_classify_v4(uint32_t a);
static netguard_class ng_classify_view(const ng_view *v);

/* IPv4 special-purpose ranges (RFC 6890 and successors), first match wins
 * so 255.255.255.255 comes before 240.0.0.0/4. Documentation, benchmarking
 * and protocol-assignment ranges are refused as "reserved": no callback
 * has a reason to point there, and some networks use them internally. */
static const ng_rule ng_v4_rules[] = {
    {0x00000000u, 8, NETGUARD_UNSPECIFIED}, /* 0.0.0.0/8 "this network" */
    {0x0a000000u, 8, NETGUARD_PRIVATE},     /* 10.0.0.0/8 */
    {0x64400000u, 10, NETGUARD_CGNAT},      /* 100.64.0.0/10 */
    {0x7f000000u, 8, NETGUARD_LOOPBACK},    /* 127.0.0.0/8 */
    {0xa9fe0000u, 16, NETGUARD_LINK_LOCAL}, /* 169.254.0.0/16, metadata */
    {0xac100000u, 12, NETGUARD_PRIVATE},    /* 172.16.0.0/12 */
    {0xc0000000u, 24, NETGUARD_RESERVED},   /* 192.0.0.0/24 IETF */
    {0xc0000200u, 24, NETGUARD_RESERVED},   /* 192.0.2.0/24 TEST-NET-1 */
    {0xc0586300u, 24, NETGUARD_RESERVED},   /* 192.88.99.0/24 6to4 relay */
    {0xc0a80000u, 16, NETGUARD_PRIVATE},    /* 192.168.0.0/16 */
    {0xc6120000u, 15, NETGUARD_RESERVED},   /* 198.18.0.0/15 benchmarking */
    {0xc6336400u, 24, NETGUARD_RESERVED},   /* 198.51.100.0/24 TEST-NET-2 */
    {0xcb007100u, 24, NETGUARD_RESERVED},   /* 203.0.113.0/24 TEST-NET-3 */
    {0xe0000000u, 4, NETGUARD_MULTICAST},   /* 224.0.0.0/4 */
    {0xffffffffu, 32, NETGUARD_BROADCAST},  /* 255.255.255.255 */
    {0xf0000000u, 4, NETGUARD_RESERVED},    /* 240.0.0.0/4 */
};

static const char *const ng_class_names[] = {
    "public", "unspecified",  "loopback",  "private",   "link-local",
    "CGNAT",  "unique-local", "multicast", "broadcast", "reserved"};

/* ------------------------------------------------------ classification */

static bool
ng_prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

static uint32_t
ng_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

/* Fills v from an AF_INET or AF_INET6 sockaddr; false for other
 * families. The embedded IPv4 address is noted for the IPv6 forms that
 * reach an IPv4 host: IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96
 * (deprecated, but some stacks still route it), NAT64 64:ff9b::/96 and
 * 6to4 2002::/16. */
static bool
ng_view_of(const struct sockaddr *sa, ng_view *v)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t zero[12] = {0};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
    memset(v, 0, sizeof *v);
    if (sa == NULL) {
        return false;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(v->b, mapped, 12);
        memcpy(v->b + 12, &in->sin_addr, 4);
        v->has_v4 = true;
        v->v4 = ntohl(in->sin_addr.s_addr);
        return true;
    }
    if (sa->sa_family != AF_INET6) {
        return false;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    memcpy(v->b, &in6->sin6_addr, 16);
    if (memcmp(v->b, mapped, 12) == 0) {
        v->form = "IPv4-mapped";
    } else if (memcmp(v->b, zero, 12) == 0 && ng_be32(v->b + 12) > 1) {
        v->form = "IPv4-compatible"; /* :: and ::1 are themselves */
    } else if (memcmp(v->b, nat64, 12) == 0) {
        v->form = "NAT64";
    } else if (v->b[0] == 0x20 && v->b[1] == 0x02) {
        v->form = "6to4";
        v->has_v4 = true;
        v->v4 = ng_be32(v->b + 2);
        return true;
    }
    if (v->form != NULL) {
        v->has_v4 = true;
        v->v4 = ng_be32(v->b + 12);
    }
    return true;
}

static netguard_class
ng_classify_v4(uint32_t a)
{
    for (size_t i = 0; i < sizeof ng_v4_rules / sizeof ng_v4_rules[0]; i++) {
        const ng_rule *r = &ng_v4_rules[i];
        uint32_t mask = r->prefix == 0 ? 0 : 0xffffffffu << (32 - r->prefix);
        if ((a & mask) == r->net) {
            return r->cls;
        }
    }
    return NETGUARD_PUBLIC;
}

/* IPv6: anything outside global unicast 2000::/3 is refused (IANA
 * allocates nothing else), and inside it the special-purpose blocks:
 * 2001::/23 (IETF protocol assignments, Teredo's 2001::/32 among them),
 * 2001:db8::/32 and 3fff::/20 (documentation). The embedded forms take the
 * class of their IPv4 address; 64:ff9b:1::/48 (local-use NAT64, where the
 * IPv4 address sits at a site-chosen offset) is reserved. */
static netguard_class
ng_classify_view(const ng_view *v)
{
    static const uint8_t zero[16] = {0};
    static const uint8_t nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};
    static const uint8_t doc[16] = {0x20, 0x01, 0x0d, 0xb8};
    static const uint8_t doc2[16] = {0x3f, 0xff};
    static const uint8_t ietf[16] = {0x20, 0x01};
    const uint8_t *b = v->b;

    if (v->has_v4) {
        return ng_classify_v4(v->v4);
    }
    if (memcmp(b, zero, 16) == 0) {
        return NETGUARD_UNSPECIFIED;
    }
    if (memcmp(b, zero, 15) == 0 && b[15] == 1) {
        return NETGUARD_LOOPBACK;
    }
    if (b[0] == 0xff) {
        return NETGUARD_MULTICAST;
    }
    if ((b[0] & 0xfe) == 0xfc) {
        return NETGUARD_UNIQUE_LOCAL;
    }
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) {
        return NETGUARD_LINK_LOCAL;
    }
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) {
        return NETGUARD_PRIVATE; /* fec0::/10, deprecated site-local */
    }
    if (memcmp(b, nat64_local, 6) == 0) {
        return NETGUARD_RESERVED;
    }
    if ((b[0] & 0xe0) != 0x20) {
        return NETGUARD_RESERVED; /* outside 2000::/3 */
    }
    if (ng_prefix_eq(b, doc, 32) || ng_prefix_eq(b, doc2, 20) ||
        ng_prefix_eq(b, ietf, 23)) {
        return NETGUARD_RESERVED;
    }
    return NETGUARD_PUBLIC;
}

netguard_class
netguard_classify(const struct sockaddr *sa)
{
    ng_view v;
    if (!ng_view_of(sa, &v)) {
        return NETGUARD_RESERVED;
    }
    return ng_classify_view(&v);
}

const char *
netguard_class_name(netguard_class c)
{
    if ((unsigned)c >= sizeof ng_class_names / sizeof ng_class_names[0]) {
        return "reserved";
    }
    return ng_class_names[c];
}

/* ---------------------------------------------------------- allow list */

/* Strict decimal 0..max with no sign, no spaces and at most 3 digits. */
static bool
ng_parse_prefix(const char *s, unsigned max, unsigned *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 3) {
        return false;
    }
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max) {
        return false;
    }
    *out = v;
    return true;
}

int
netguard_allow_add(netguard_allow *a, const char *entry, kiln_error *err)
{
    static const char expected[] =
        "expected an IP address or CIDR range such as 10.0.0.0/8 or fd00::/8";
    char addr[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(entry, '/');
    size_t alen = slash ? (size_t)(slash - entry) : strlen(entry);
    netguard_range r;
    bool is_v4;
    unsigned prefix, max;

    memset(&r, 0, sizeof r);
    if (alen == 0 || alen >= sizeof addr) {
        return err_set(err, KILN_EINVAL, "bad range \"%s\" (%s)", entry,
                       expected);
    }
    memcpy(addr, entry, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, r.addr + 12) == 1) {
        is_v4 = true;
        r.addr[10] = r.addr[11] = 0xff;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, r.addr) == 1) {
        is_v4 = false;
        max = 128;
    } else {
        return err_set(err, KILN_EINVAL,
                       "bad range \"%s\": \"%s\" is not an IP address (%s)",
                       entry, addr, expected);
    }
    prefix = max;
    if (slash != NULL && !ng_parse_prefix(slash + 1, max, &prefix)) {
        return err_set(err, KILN_EINVAL,
                       "bad range \"%s\": prefix length \"%s\" is not a "
                       "number in 0..%u (expected for an %s address)",
                       entry, slash + 1, max, is_v4 ? "IPv4" : "IPv6");
    }
    r.prefix = is_v4 ? 96 + prefix : prefix;

    /* Bits after the prefix are most likely a typo ("10.0.0.1/8"): refuse
     * them and say which range was probably meant. */
    netguard_range net = r;
    for (unsigned bit = r.prefix; bit < 128; bit++) {
        net.addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
    }
    if (memcmp(net.addr, r.addr, 16) != 0) {
        char text[INET6_ADDRSTRLEN];
        if (is_v4) {
            inet_ntop(AF_INET, net.addr + 12, text, sizeof text);
        } else {
            inet_ntop(AF_INET6, net.addr, text, sizeof text);
        }
        return err_set(err, KILN_EINVAL,
                       "bad range \"%s\": bits are set after the prefix "
                       "(expected %s/%u)",
                       entry, text, prefix);
    }

    netguard_range *grown =
        realloc(a->ranges, (a->n_ranges + 1) * sizeof *a->ranges);
    if (grown == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    a->ranges = grown;
    a->ranges[a->n_ranges++] = r;
    return KILN_OK;
}

int
netguard_allow_parse(const char *const *entries, size_t n, netguard_allow *out,
                     kiln_error *err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        int rc = netguard_allow_add(out, entries[i], err);
        if (rc != KILN_OK) {
            if (err != NULL) {
                snprintf(err->path, sizeof err->path, "network.allow[%zu]", i);
            }
            netguard_allow_free(out);
            return rc;
        }
    }
    return KILN_OK;
}

void
netguard_allow_free(netguard_allow *a)
{
    if (a == NULL) {
        return;
    }
    free(a->ranges);
    a->ranges = NULL;
    a->n_ranges = 0;
}

static bool
ng_allow_match_view(const netguard_allow *a, const ng_view *v)
{
    uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (a == NULL) {
        return false;
    }
    if (v->has_v4) {
        mapped[12] = (uint8_t)(v->v4 >> 24);
        mapped[13] = (uint8_t)(v->v4 >> 16);
        mapped[14] = (uint8_t)(v->v4 >> 8);
        mapped[15] = (uint8_t)v->v4;
    }
    for (size_t i = 0; i < a->n_ranges; i++) {
        const netguard_range *r = &a->ranges[i];
        if (ng_prefix_eq(v->b, r->addr, r->prefix)) {
            return true;
        }
        if (v->has_v4 && ng_prefix_eq(mapped, r->addr, r->prefix)) {
            return true;
        }
    }
    return false;
}

bool
netguard_allow_match(const netguard_allow *a, const struct sockaddr *sa)
{
    ng_view v;
    if (!ng_view_of(sa, &v)) {
        return false;
    }
    return ng_allow_match_view(a, &v);
}

bool
netguard_is_allowed(const netguard_allow *allow, const struct sockaddr *sa)
{
    ng_view v;
    if (!ng_view_of(sa, &v)) {
        return false;
    }
    return ng_classify_view(&v) == NETGUARD_PUBLIC ||
           ng_allow_match_view(allow, &v);
}

/* ---------------------------------------------------------- resolution */

static void
ng_addr_text(const struct sockaddr *sa, char *buf, size_t size)
{
    const void *p =
        sa->sa_family == AF_INET
            ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
            : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (inet_ntop(sa->sa_family, p, buf, (socklen_t)size) == NULL) {
        snprintf(buf, size, "?");
    }
}

/* The refusal message; the address is shown as resolved, with the
 * embedded IPv4 address named when that is what was judged. */
static int
ng_refuse(kiln_error *err, const char *what, const char *host,
          const struct sockaddr *sa, const ng_view *v, netguard_class cls)
{
    char text[INET6_ADDRSTRLEN], embedded[INET6_ADDRSTRLEN + 32] = "";
    const char *name = netguard_class_name(cls);
    ng_addr_text(sa, text, sizeof text);
    if (v->form != NULL) {
        struct in_addr in = {htonl(v->v4)};
        char v4[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in, v4, sizeof v4);
        snprintf(embedded, sizeof embedded, " (%s %s)", v->form, v4);
    }
    return err_set(err, KILN_EPERM,
                   "%s host \"%s\" resolves to %s%s, %s %s address (allow it "
                   "with network.allow)",
                   what, host, text, embedded,
                   cls == NETGUARD_UNSPECIFIED ? "an" : "a", name);
}

static bool
ng_same_addr(const netguard_addr *a, const struct sockaddr *sa, socklen_t len)
{
    return a->len == len && memcmp(&a->sa, sa, len) == 0;
}

int
netguard_resolve(const char *what, const char *host, int port,
                 const netguard_allow *allow, netguard_addr *out, size_t max,
                 size_t *n_out, kiln_error *err)
{
    char name[NETGUARD_HOST_MAX];
    size_t len = strlen(host);
    struct addrinfo hints, *res = NULL;
    int rc;

    *n_out = 0;
    if (len == 0) {
        return err_set(err, KILN_EINVAL, "%s host is empty", what);
    }
    if (len >= sizeof name) {
        return err_set(err, KILN_EINVAL,
                       "%s host is %zu characters long (expected at most %d)",
                       what, len, NETGUARD_HOST_MAX - 1);
    }
    if (port < 1 || port > 65535) {
        return err_set(err, KILN_EINVAL,
                       "%s port %d for host \"%s\" is outside 1..65535", what,
                       port, host);
    }
    /* "[::1]" as it appears in a URL: getaddrinfo wants it bare. */
    if (host[0] == '[' && len >= 2 && host[len - 1] == ']') {
        memcpy(name, host + 1, len - 2);
        name[len - 2] = '\0';
    } else {
        memcpy(name, host, len + 1);
    }

    /* No AI_ADDRCONFIG: a host with no IPv6 route must still have its
     * IPv6 answers checked, since another path may use them. */
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    int gai = getaddrinfo(name, NULL, &hints, &res);
    if (gai != 0) {
        if (gai == EAI_NONAME || gai == EAI_NODATA) {
            return err_set(err, KILN_ENOTFOUND,
                           "%s host \"%s\" does not resolve (%s)", what, host,
                           gai_strerror(gai));
        }
        return err_set(err, KILN_EIO, "%s host \"%s\" cannot be resolved (%s)",
                       what, host,
                       gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
    }
    rc = netguard_check_addrinfo(what, host, port, res, allow, out, max, n_out,
                                 err);
    freeaddrinfo(res);
    return rc;
}

int
netguard_check_addrinfo(const char *what, const char *host, int port,
                        const struct addrinfo *res, const netguard_allow *allow,
                        netguard_addr *out, size_t max, size_t *n_out,
                        kiln_error *err)
{
    size_t n = 0;

    *n_out = 0;
    if (port < 1 || port > 65535) {
        return err_set(err, KILN_EINVAL,
                       "%s port %d for host \"%s\" is outside 1..65535", what,
                       port, host);
    }
    /* Every answer is judged before any is kept: one refused address
     * refuses the host, so a name that answers both a public and a private
     * address cannot be used to reach the private one. */
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        ng_view v;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof out[0].sa) {
            continue;
        }
        if (!ng_view_of(ai->ai_addr, &v)) {
            continue;
        }
        netguard_class cls = ng_classify_view(&v);
        if (cls != NETGUARD_PUBLIC && !ng_allow_match_view(allow, &v)) {
            return ng_refuse(err, what, host, ai->ai_addr, &v, cls);
        }
    }
    for (const struct addrinfo *ai = res; ai != NULL && n < max;
         ai = ai->ai_next) {
        struct sockaddr_storage ss;
        socklen_t sl = (socklen_t)ai->ai_addrlen;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof ss) {
            continue;
        }
        memset(&ss, 0, sizeof ss);
        memcpy(&ss, ai->ai_addr, sl);
        if (ai->ai_family == AF_INET) {
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        } else {
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
        }
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++) {
            seen = ng_same_addr(&out[i], (struct sockaddr *)&ss, sl);
        }
        if (seen) {
            continue;
        }
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n].sa, &ss, sl);
        out[n].len = sl;
        ng_addr_text((struct sockaddr *)&ss, out[n].text, sizeof out[n].text);
        n++;
    }
    if (n == 0) {
        return err_set(err, KILN_ENOTFOUND,
                       "%s host \"%s\" has no IPv4 or IPv6 address", what,
                       host);
    }
    *n_out = n;
    return KILN_OK;
}

int
netguard_curl_resolve(const char *host, int port, const netguard_addr *addrs,
                      size_t n, char *buf, size_t size, kiln_error *err)
{
    size_t used;
    int w;

    if (size == 0) {
        return err_set(err, KILN_EINVAL, "no room for the resolve entry");
    }
    buf[0] = '\0';
    if (strchr(host, ':') != NULL) {
        return err_set(err, KILN_EINVAL,
                       "host \"%s\" is an IPv6 literal (CURLOPT_RESOLVE cannot "
                       "name one)",
                       host);
    }
    w = snprintf(buf, size, "%s:%d:", host, port);
    if (w < 0 || (size_t)w >= size) {
        goto overflow;
    }
    used = (size_t)w;
    for (size_t i = 0; i < n; i++) {
        bool is_v6 = addrs[i].sa.ss_family == AF_INET6;
        w = snprintf(buf + used, size - used, "%s%s%s%s", i > 0 ? "," : "",
                     is_v6 ? "[" : "", addrs[i].text, is_v6 ? "]" : "");
        if (w < 0 || (size_t)w >= size - used) {
            goto overflow;
        }
        used += (size_t)w;
    }
    return KILN_OK;
overflow:
    buf[0] = '\0';
    return err_set(err, KILN_EINVAL,
                   "the resolve entry for host \"%s\" is longer than %zu bytes",
                   host, size - 1);
}

/* ----------------------------------------------------------------- URLs */

/* Length of a leading "scheme:" per RFC 3986 (letter, then letters,
 * digits, "+", "-", "."), or 0 when there is none. */
static size_t
ng_scheme_len(const char *url)
{
    size_t i = 0;
    if (!((url[0] >= 'a' && url[0] <= 'z') ||
          (url[0] >= 'A' && url[0] <= 'Z'))) {
        return 0;
    }
    for (i = 1; url[i] != '\0' && url[i] != ':'; i++) {
        char c = url[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) {
            return 0;
        }
    }
    return url[i] == ':' ? i : 0;
}

int
netguard_check_url(const char *what, const char *url,
                   const netguard_allow *allow, netguard_target *out,
                   kiln_error *err)
{
    CURLU *u = NULL;
    char *host = NULL, *port = NULL;
    size_t slen = ng_scheme_len(url);
    int rc;

    memset(out, 0, sizeof *out);
    if (slen == 0 || strncmp(url + slen, "://", 3) != 0) {
        return err_set(err, KILN_EINVAL,
                       "%s url \"%s\" has no scheme (expected http:// or "
                       "https://)",
                       what, url);
    }
    if (slen == 5 && strncasecmp(url, "https", 5) == 0) {
        out->is_https = true;
    } else if (!(slen == 4 && strncasecmp(url, "http", 4) == 0)) {
        return err_set(err, KILN_EINVAL,
                       "%s url \"%s\" has scheme \"%.*s\" (expected http or "
                       "https)",
                       what, url, (int)slen, url);
    }

    u = curl_url();
    if (u == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        rc = err_set(err, KILN_EINVAL, "%s url \"%s\" is not valid (%s)", what,
                     url, curl_url_strerror(uc));
        goto done;
    }
    uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    if (uc != CURLUE_OK || host == NULL || host[0] == '\0') {
        rc = err_set(err, KILN_EINVAL, "%s url \"%s\" has no host", what, url);
        goto done;
    }
    uc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    if (uc != CURLUE_OK || port == NULL) {
        rc = err_set(err, KILN_EINVAL, "%s url \"%s\" has no port", what, url);
        goto done;
    }
    /* libcurl strips a trailing dot before it looks a name up but keeps it
     * in the name it matches CURLOPT_RESOLVE entries against (or the other
     * way round, depending on the version): a pinned entry could then be
     * missed and a second, unchecked lookup made. No callback needs one. */
    if (host[strlen(host) - 1] == '.') {
        rc = err_set(err, KILN_EINVAL,
                     "%s url \"%s\": host \"%s\" ends with a dot (expected a "
                     "name without the final dot)",
                     what, url, host);
        goto done;
    }
    if (strlen(host) >= sizeof out->host) {
        rc = err_set(err, KILN_EINVAL, "%s url \"%s\": host is too long", what,
                     url);
        goto done;
    }
    snprintf(out->host, sizeof out->host, "%s", host);
    out->port = atoi(port);

    rc = netguard_resolve(what, out->host, out->port, allow, out->addrs,
                          NETGUARD_MAX_ADDRS, &out->n_addrs, err);
    if (rc != KILN_OK) {
        goto done;
    }
    if (out->host[0] != '[') {
        rc = netguard_curl_resolve(out->host, out->port, out->addrs,
                                   out->n_addrs, out->resolve,
                                   sizeof out->resolve, err);
    }
done:
    curl_free(port);
    curl_free(host);
    curl_url_cleanup(u);
    if (rc != KILN_OK) {
        memset(out, 0, sizeof *out);
    }
    return rc;
}

void
netguard_display_url(const char *text, char *buf, size_t size)
{
    snprintf(buf, size, "%s", text != NULL ? text : "");
    if (text == NULL || (strncmp(text, "http://", 7) != 0 &&
                         strncmp(text, "https://", 8) != 0)) {
        return;
    }
    CURLU *u = curl_url();
    char *clean = NULL;
    if (u != NULL && curl_url_set(u, CURLUPART_URL, text, 0) == CURLUE_OK) {
        curl_url_set(u, CURLUPART_USER, NULL, 0);
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        curl_url_set(u, CURLUPART_QUERY, NULL, 0);
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
        if (curl_url_get(u, CURLUPART_URL, &clean, 0) == CURLUE_OK) {
            snprintf(buf, size, "%s", clean);
        }
    } else {
        /* Unparseable: show the scheme only rather than risk a secret. */
        snprintf(buf, size, "%.*s://...", (int)strcspn(text, ":"), text);
    }
    curl_free(clean);
    curl_url_cleanup(u);
}
