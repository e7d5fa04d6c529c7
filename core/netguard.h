/*
 * The network guard: every outgoing connection the server makes on a
 * request's behalf (postback callbacks, later remote sources) goes through
 * it. It parses the URL with libcurl's own parser, resolves the host once,
 * refuses loopback, private, link-local, CGNAT, unique-local and other
 * non-public addresses unless the config's network.allow covers them, and
 * hands back the checked addresses so the caller connects to exactly those
 * (CURLOPT_RESOLVE) instead of looking the name up a second time.
 */
#ifndef KILN_CORE_NETGUARD_H
#define KILN_CORE_NETGUARD_H

#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "kiln/plugin.h"

/* At most this many checked addresses are kept per host (all of them are
 * checked, however many the resolver returns). */
#define NETGUARD_MAX_ADDRS 16
/* Longest host name accepted (DNS allows 253; IPv6 literals are shorter). */
#define NETGUARD_HOST_MAX 256
/* Room for "host:port:addr,[v6addr],..." with NETGUARD_MAX_ADDRS entries. */
#define NETGUARD_RESOLVE_MAX 1400

/* What an address is. NETGUARD_PUBLIC may be reached; every other class
 * is refused unless network.allow covers the address. */
typedef enum netguard_class {
    NETGUARD_PUBLIC = 0,
    NETGUARD_UNSPECIFIED,  /* 0.0.0.0/8, :: */
    NETGUARD_LOOPBACK,     /* 127.0.0.0/8, ::1 */
    NETGUARD_PRIVATE,      /* 10/8, 172.16/12, 192.168/16, fec0::/10 */
    NETGUARD_LINK_LOCAL,   /* 169.254/16 (cloud metadata), fe80::/10 */
    NETGUARD_CGNAT,        /* 100.64.0.0/10 */
    NETGUARD_UNIQUE_LOCAL, /* fc00::/7 */
    NETGUARD_MULTICAST,    /* 224.0.0.0/4, ff00::/8 */
    NETGUARD_BROADCAST,    /* 255.255.255.255 */
    NETGUARD_RESERVED      /* special-purpose and documentation ranges */
} netguard_class;

/* One range of network.allow, kept in IPv6 form: an IPv4 range a.b.c.d/n
 * is stored as ::ffff:a.b.c.d/(96+n), so it also covers the IPv4-mapped
 * IPv6 spelling of its addresses. */
typedef struct netguard_range {
    uint8_t addr[16];
    unsigned prefix; /* 0..128, in IPv6 bits */
} netguard_range;

/* The parsed network.allow list. Zero-initialise (or netguard_allow_parse)
 * before use; release with netguard_allow_free. An empty list allows
 * nothing beyond public addresses. */
typedef struct netguard_allow {
    netguard_range *ranges;
    size_t n_ranges;
} netguard_allow;

/* A checked address, ready for connect(): sockaddr with the port set, its
 * length, and its numeric text (no brackets, no zone). */
typedef struct netguard_addr {
    struct sockaddr_storage sa;
    socklen_t len;
    char text[INET6_ADDRSTRLEN];
} netguard_addr;

/* A checked http(s) URL: what the caller hands to libcurl besides the URL
 * itself. `resolve` is a CURLOPT_RESOLVE entry "host:port:a,b" pinning the
 * checked addresses (libcurl >= 7.59 takes several); it is "" when the
 * host is an IPv6 literal, which libcurl never looks up. */
typedef struct netguard_target {
    bool is_https;
    char host[NETGUARD_HOST_MAX]; /* as libcurl sees it; IPv6 in [] */
    int port;                     /* explicit or the scheme's default */
    netguard_addr addrs[NETGUARD_MAX_ADDRS];
    size_t n_addrs;
    char resolve[NETGUARD_RESOLVE_MAX];
} netguard_target;

/* Parses one network.allow entry ("127.0.0.0/8", "10.1.2.3", "::1/128",
 * "fd00::/8"; a bare address is a /32 or /128) and appends it to `a`.
 * Addresses must be in inet_pton's strict form, the prefix decimal and in
 * range, and no bits may be set after the prefix. Returns KILN_OK,
 * KILN_EINVAL (message names the entry and what was expected) or
 * KILN_ENOMEM; `a` is unchanged on error. */
int netguard_allow_add(netguard_allow *a, const char *entry, kiln_error *err);

/* Builds `out` from n config strings (kiln_config's network_allow; cast
 * its char ** to const char *const *). On error err->path is
 * "network.allow[i]" for the bad entry and `out` is left empty. */
int netguard_allow_parse(const char *const *entries, size_t n,
                         netguard_allow *out, kiln_error *err);

/* Frees the ranges and leaves `a` empty. Safe on a zeroed list. */
void netguard_allow_free(netguard_allow *a);

/* True when `a` covers the address. For IPv6 forms that embed an IPv4
 * address (mapped, compatible, NAT64, 6to4) the embedded address is
 * matched too, so 127.0.0.0/8 covers ::ffff:127.0.0.1. NULL `a` covers
 * nothing. */
bool netguard_allow_match(const netguard_allow *a, const struct sockaddr *sa);

/* The class of an AF_INET or AF_INET6 address (any other family is
 * NETGUARD_RESERVED). IPv6 forms that embed an IPv4 address
 * (::ffff:0:0/96, ::/96, 64:ff9b::/96, 2002::/16) take the class of the
 * embedded address. */
netguard_class netguard_classify(const struct sockaddr *sa);

/* "loopback", "link-local", "CGNAT", ... ("public" for NETGUARD_PUBLIC). */
const char *netguard_class_name(netguard_class c);

/* True when the address may be reached: public, or covered by `allow`.
 * Meant for a last check where the socket is made (libcurl's
 * CURLOPT_OPENSOCKETFUNCTION), on top of netguard_resolve. */
bool netguard_is_allowed(const netguard_allow *allow,
                         const struct sockaddr *sa);

/* Resolves `host` (a name, a numeric address in any form getaddrinfo
 * takes, or an IPv6 literal with or without brackets) for TCP on `port`,
 * both families, AI_ADDRCONFIG off. If ANY resolved address is refused
 * and not allowed, the whole host is refused. Otherwise the distinct
 * addresses (at most `max`), with the port set, go to out[0..*n_out).
 * `what` starts messages ("callback" -> "callback host \"x\" ...").
 * Returns KILN_OK; KILN_EPERM for a refused address, e.g.
 *   callback host "metadata.internal" resolves to 169.254.169.254, a
 *   link-local address (allow it with network.allow)
 * KILN_ENOTFOUND when the name does not resolve, KILN_EINVAL for a bad
 * host or port, KILN_EIO for other resolver failures. */
int netguard_resolve(const char *what, const char *host, int port,
                     const netguard_allow *allow, netguard_addr *out,
                     size_t max, size_t *n_out, kiln_error *err);

/* The checking half of netguard_resolve, for a resolver's answer list
 * `res` (from getaddrinfo, or built by an asynchronous resolver): the same
 * rules, results and errors, and `res` stays the caller's. */
int netguard_check_addrinfo(const char *what, const char *host, int port,
                            const struct addrinfo *res,
                            const netguard_allow *allow, netguard_addr *out,
                            size_t max, size_t *n_out, kiln_error *err);

/* Formats the CURLOPT_RESOLVE entry "host:port:addr1,[v6addr],..." into
 * buf. Returns KILN_OK or KILN_EINVAL when it does not fit or the host is
 * an IPv6 literal (CURLOPT_RESOLVE cannot name one; libcurl does not look
 * literals up anyway). */
int netguard_curl_resolve(const char *host, int port,
                          const netguard_addr *addrs, size_t n, char *buf,
                          size_t size, kiln_error *err);

/* Checks an http(s) URL: parses it with libcurl's URL API (the parser the
 * connection will use, so both agree on the host), refuses other schemes,
 * a missing scheme or host, and host names ending in a dot, then resolves
 * and checks the host as netguard_resolve does and fills `out`. Returns
 * KILN_OK, KILN_EINVAL (bad URL), KILN_EPERM (refused address),
 * KILN_ENOTFOUND, KILN_EIO or KILN_ENOMEM. */
int netguard_check_url(const char *what, const char *url,
                       const netguard_allow *allow, netguard_target *out,
                       kiln_error *err);

/* Copies `text` into buf for messages: a URL loses its user name,
 * password, query and fragment (they may carry credentials); anything
 * else is copied as is (truncated to fit). */
void netguard_display_url(const char *text, char *buf, size_t size);


#endif /* KILN_CORE_NETGUARD_H */
