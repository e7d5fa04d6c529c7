/*
 * Network guard tests: address classes and their boundaries, IPv6 forms
 * that embed an IPv4 address, network.allow parsing and matching, checked
 * resolution of numeric hosts in odd spellings and of "localhost", and URL
 * parsing. Nothing here touches the network: only numeric hosts and names
 * from /etc/hosts are resolved.
 */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <string.h>

#include "../../core/kiln.h"
#include "../../core/netguard.h"

int test_netguard_register(void);

/* Builds a sockaddr from numeric text (IPv4 or IPv6). */
static bool
mkaddr(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

static void
test_classify_table(void)
{
    static const struct {
        const char *addr;
        netguard_class cls;
    } cases[] = {
        {"8.8.8.8", NETGUARD_PUBLIC},
        {"1.1.1.1", NETGUARD_PUBLIC},
        {"2001:4860:4860::8888", NETGUARD_PUBLIC},
        {"2606:4700::1111", NETGUARD_PUBLIC},
        /* unspecified */
        {"0.0.0.0", NETGUARD_UNSPECIFIED},
        {"0.255.255.255", NETGUARD_UNSPECIFIED},
        {"1.0.0.0", NETGUARD_PUBLIC},
        {"::", NETGUARD_UNSPECIFIED},
        /* loopback */
        {"126.255.255.255", NETGUARD_PUBLIC},
        {"127.0.0.0", NETGUARD_LOOPBACK},
        {"127.0.0.1", NETGUARD_LOOPBACK},
        {"127.255.255.255", NETGUARD_LOOPBACK},
        {"128.0.0.0", NETGUARD_PUBLIC},
        {"::1", NETGUARD_LOOPBACK},
        /* private */
        {"9.255.255.255", NETGUARD_PUBLIC},
        {"10.0.0.0", NETGUARD_PRIVATE},
        {"10.255.255.255", NETGUARD_PRIVATE},
        {"11.0.0.0", NETGUARD_PUBLIC},
        {"172.15.255.255", NETGUARD_PUBLIC},
        {"172.16.0.0", NETGUARD_PRIVATE},
        {"172.31.255.255", NETGUARD_PRIVATE},
        {"172.32.0.0", NETGUARD_PUBLIC},
        {"192.167.255.255", NETGUARD_PUBLIC},
        {"192.168.0.0", NETGUARD_PRIVATE},
        {"192.168.255.255", NETGUARD_PRIVATE},
        {"192.169.0.0", NETGUARD_PUBLIC},
        {"fec0::1", NETGUARD_PRIVATE},
        /* link-local, the metadata address */
        {"169.253.255.255", NETGUARD_PUBLIC},
        {"169.254.0.0", NETGUARD_LINK_LOCAL},
        {"169.254.169.254", NETGUARD_LINK_LOCAL},
        {"169.254.255.255", NETGUARD_LINK_LOCAL},
        {"169.255.0.0", NETGUARD_PUBLIC},
        {"fe80::1", NETGUARD_LINK_LOCAL},
        {"febf:ffff::1", NETGUARD_LINK_LOCAL},
        /* CGNAT */
        {"100.63.255.255", NETGUARD_PUBLIC},
        {"100.64.0.0", NETGUARD_CGNAT},
        {"100.127.255.255", NETGUARD_CGNAT},
        {"100.128.0.0", NETGUARD_PUBLIC},
        /* unique-local */
        {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETGUARD_RESERVED},
        {"fc00::", NETGUARD_UNIQUE_LOCAL},
        {"fd00::1", NETGUARD_UNIQUE_LOCAL},
        {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETGUARD_UNIQUE_LOCAL},
        /* multicast, broadcast, reserved */
        {"223.255.255.255", NETGUARD_PUBLIC},
        {"224.0.0.0", NETGUARD_MULTICAST},
        {"239.255.255.255", NETGUARD_MULTICAST},
        {"240.0.0.0", NETGUARD_RESERVED},
        {"255.255.255.254", NETGUARD_RESERVED},
        {"255.255.255.255", NETGUARD_BROADCAST},
        {"ff02::1", NETGUARD_MULTICAST},
        {"192.0.0.0", NETGUARD_RESERVED},
        {"192.0.0.255", NETGUARD_RESERVED},
        {"192.0.1.0", NETGUARD_PUBLIC},
        {"192.0.2.1", NETGUARD_RESERVED},
        {"192.88.99.1", NETGUARD_RESERVED},
        {"198.17.255.255", NETGUARD_PUBLIC},
        {"198.18.0.0", NETGUARD_RESERVED},
        {"198.19.255.255", NETGUARD_RESERVED},
        {"198.20.0.0", NETGUARD_PUBLIC},
        {"198.51.100.7", NETGUARD_RESERVED},
        {"203.0.113.7", NETGUARD_RESERVED},
        {"2001:db8::1", NETGUARD_RESERVED},
        {"2001::1", NETGUARD_RESERVED},     /* Teredo */
        {"2001:1ff::1", NETGUARD_RESERVED}, /* end of 2001::/23 */
        {"2001:200::1", NETGUARD_PUBLIC},   /* just after it */
        {"3fff::1", NETGUARD_RESERVED},
        {"100::1", NETGUARD_RESERVED}, /* discard-only, not 2000::/3 */
        {"4000::1", NETGUARD_RESERVED},
        {"64:ff9b:1::1", NETGUARD_RESERVED},
        /* IPv6 forms embedding an IPv4 address take its class */
        {"::ffff:127.0.0.1", NETGUARD_LOOPBACK},
        {"::ffff:169.254.169.254", NETGUARD_LINK_LOCAL},
        {"::ffff:10.0.0.1", NETGUARD_PRIVATE},
        {"::ffff:100.64.0.1", NETGUARD_CGNAT},
        {"::ffff:0.0.0.0", NETGUARD_UNSPECIFIED},
        {"::ffff:8.8.8.8", NETGUARD_PUBLIC},
        {"::127.0.0.1", NETGUARD_LOOPBACK},
        {"::10.0.0.1", NETGUARD_PRIVATE},
        {"::8.8.8.8", NETGUARD_PUBLIC},
        {"64:ff9b::127.0.0.1", NETGUARD_LOOPBACK},
        {"64:ff9b::a9fe:a9fe", NETGUARD_LINK_LOCAL},
        {"64:ff9b::8.8.8.8", NETGUARD_PUBLIC},
        {"2002:7f00:1::", NETGUARD_LOOPBACK},
        {"2002:c0a8:101::1", NETGUARD_PRIVATE},
        {"2002:808:808::1", NETGUARD_PUBLIC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_storage ss;
        CU_ASSERT_FATAL(mkaddr(cases[i].addr, &ss));
        netguard_class got = netguard_classify((struct sockaddr *)&ss);
        if (got != cases[i].cls) {
            fprintf(stderr, "\n%s: got %s, expected %s\n", cases[i].addr,
                    netguard_class_name(got),
                    netguard_class_name(cases[i].cls));
        }
        CU_ASSERT_EQUAL(got, cases[i].cls);
    }
    struct sockaddr_storage un;
    memset(&un, 0, sizeof un);
    un.ss_family = AF_UNIX;
    CU_ASSERT_EQUAL(netguard_classify((struct sockaddr *)&un),
                    NETGUARD_RESERVED);
    CU_ASSERT_STRING_EQUAL(netguard_class_name(NETGUARD_CGNAT), "CGNAT");
    CU_ASSERT_STRING_EQUAL(netguard_class_name(NETGUARD_UNIQUE_LOCAL),
                           "unique-local");
}

static void
test_allow_parse(void)
{
    static const char *const good[] = {"127.0.0.0/8", "10.1.2.3",  "::1/128",
                                       "fd00::/8",    "0.0.0.0/0", "::/0"};
    netguard_allow a;
    kiln_error e;
    memset(&e, 0, sizeof e);
    CU_ASSERT_EQUAL(netguard_allow_parse(good, 6, &a, &e), KILN_OK);
    CU_ASSERT_EQUAL(a.n_ranges, 6);
    CU_ASSERT_EQUAL(a.ranges[0].prefix, 104);
    CU_ASSERT_EQUAL(a.ranges[1].prefix, 128);
    CU_ASSERT_EQUAL(a.ranges[2].prefix, 128);
    CU_ASSERT_EQUAL(a.ranges[3].prefix, 8);
    netguard_allow_free(&a);
    CU_ASSERT_EQUAL(a.n_ranges, 0);

    static const struct {
        const char *entry, *message;
    } bad[] = {
        {"", "bad range \"\" (expected an IP address or CIDR range such as "
             "10.0.0.0/8 or fd00::/8)"},
        {"/8", "bad range \"/8\" (expected an IP address or CIDR range such "
               "as 10.0.0.0/8 or fd00::/8)"},
        {"localhost", "bad range \"localhost\": \"localhost\" is not an IP "
                      "address (expected an IP address or CIDR range such as "
                      "10.0.0.0/8 or fd00::/8)"},
        {"127.1/8", "bad range \"127.1/8\": \"127.1\" is not an IP address "
                    "(expected an IP address or CIDR range such as "
                    "10.0.0.0/8 or fd00::/8)"},
        {"10.0.0.0/33", "bad range \"10.0.0.0/33\": prefix length \"33\" is "
                        "not a number in 0..32 (expected for an IPv4 "
                        "address)"},
        {"10.0.0.0/", "bad range \"10.0.0.0/\": prefix length \"\" is not a "
                      "number in 0..32 (expected for an IPv4 address)"},
        {"10.0.0.0/+8", "bad range \"10.0.0.0/+8\": prefix length \"+8\" is "
                        "not a number in 0..32 (expected for an IPv4 "
                        "address)"},
        {"fd00::/129", "bad range \"fd00::/129\": prefix length \"129\" is "
                       "not a number in 0..128 (expected for an IPv6 "
                       "address)"},
        {"10.0.0.1/8", "bad range \"10.0.0.1/8\": bits are set after the "
                       "prefix (expected 10.0.0.0/8)"},
        {"fd00::1/8", "bad range \"fd00::1/8\": bits are set after the "
                      "prefix (expected fd00::/8)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&a, 0, sizeof a);
        CU_ASSERT_EQUAL(netguard_allow_add(&a, bad[i].entry, &e), KILN_EINVAL);
        CU_ASSERT_STRING_EQUAL(e.message, bad[i].message);
        CU_ASSERT_EQUAL(a.n_ranges, 0);
        netguard_allow_free(&a);
    }

    static const char *const mixed[] = {"127.0.0.0/8", "10.0.0.0/88"};
    memset(&e, 0, sizeof e);
    CU_ASSERT_EQUAL(netguard_allow_parse(mixed, 2, &a, &e), KILN_EINVAL);
    CU_ASSERT_STRING_EQUAL(e.path, "network.allow[1]");
    CU_ASSERT_PTR_NULL(a.ranges);
    CU_ASSERT_EQUAL(a.n_ranges, 0);
}

static bool
allowed(const netguard_allow *a, const char *text)
{
    struct sockaddr_storage ss;
    CU_ASSERT_FATAL(mkaddr(text, &ss));
    return netguard_allow_match(a, (struct sockaddr *)&ss);
}

static void
test_allow_match(void)
{
    static const char *const list[] = {"127.0.0.0/8", "fd00::/8",
                                       "192.168.1.7"};
    netguard_allow a;
    kiln_error e;
    CU_ASSERT_EQUAL_FATAL(netguard_allow_parse(list, 3, &a, &e), KILN_OK);
    CU_ASSERT_TRUE(allowed(&a, "127.0.0.1"));
    CU_ASSERT_TRUE(allowed(&a, "127.255.255.255"));
    CU_ASSERT_TRUE(allowed(&a, "::ffff:127.0.0.1"));
    CU_ASSERT_TRUE(allowed(&a, "64:ff9b::7f00:1"));
    CU_ASSERT_FALSE(allowed(&a, "128.0.0.0"));
    CU_ASSERT_FALSE(allowed(&a, "10.0.0.1"));
    CU_ASSERT_FALSE(allowed(&a, "::1"));
    CU_ASSERT_TRUE(allowed(&a, "fd12:3456::1"));
    CU_ASSERT_FALSE(allowed(&a, "fc00::1"));
    CU_ASSERT_TRUE(allowed(&a, "192.168.1.7"));
    CU_ASSERT_FALSE(allowed(&a, "192.168.1.8"));
    CU_ASSERT_FALSE(netguard_allow_match(NULL, NULL));

    struct sockaddr_storage ss;
    mkaddr("127.0.0.1", &ss);
    CU_ASSERT_TRUE(netguard_is_allowed(&a, (struct sockaddr *)&ss));
    CU_ASSERT_FALSE(netguard_is_allowed(NULL, (struct sockaddr *)&ss));
    mkaddr("169.254.169.254", &ss);
    CU_ASSERT_FALSE(netguard_is_allowed(&a, (struct sockaddr *)&ss));
    mkaddr("8.8.8.8", &ss);
    CU_ASSERT_TRUE(netguard_is_allowed(NULL, (struct sockaddr *)&ss));
    netguard_allow_free(&a);
}

/* Every odd spelling of a refused address is refused with the address it
 * really is. */
static void
test_resolve_refused(void)
{
    static const struct {
        const char *host, *message;
    } cases[] = {
        {"127.1", "callback host \"127.1\" resolves to 127.0.0.1, a loopback "
                  "address (allow it with network.allow)"},
        {"0x7f.0.0.1", "callback host \"0x7f.0.0.1\" resolves to 127.0.0.1, "
                       "a loopback address (allow it with network.allow)"},
        {"2130706433", "callback host \"2130706433\" resolves to 127.0.0.1, "
                       "a loopback address (allow it with network.allow)"},
        {"017700000001", "callback host \"017700000001\" resolves to "
                         "127.0.0.1, a loopback address (allow it with "
                         "network.allow)"},
        {"0", "callback host \"0\" resolves to 0.0.0.0, an unspecified "
              "address (allow it with network.allow)"},
        {"[::1]", "callback host \"[::1]\" resolves to ::1, a loopback "
                  "address (allow it with network.allow)"},
        {"::1", "callback host \"::1\" resolves to ::1, a loopback address "
                "(allow it with network.allow)"},
        {"[::ffff:127.0.0.1]", "callback host \"[::ffff:127.0.0.1]\" "
                               "resolves to ::ffff:127.0.0.1 (IPv4-mapped "
                               "127.0.0.1), a loopback address (allow it "
                               "with network.allow)"},
        {"169.254.169.254", "callback host \"169.254.169.254\" resolves to "
                            "169.254.169.254, a link-local address (allow "
                            "it with network.allow)"},
        {"0xa9fea9fe", "callback host \"0xa9fea9fe\" resolves to "
                       "169.254.169.254, a link-local address (allow it "
                       "with network.allow)"},
        {"100.64.1.1", "callback host \"100.64.1.1\" resolves to 100.64.1.1, "
                       "a CGNAT address (allow it with network.allow)"},
        {"fd00::5", "callback host \"fd00::5\" resolves to fd00::5, a "
                    "unique-local address (allow it with network.allow)"},
        {"2002:a00:1::", "callback host \"2002:a00:1::\" resolves to "
                         "2002:a00:1:: (6to4 10.0.0.1), a private address "
                         "(allow it with network.allow)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        netguard_addr out[4];
        size_t n = 99;
        kiln_error e;
        memset(&e, 0, sizeof e);
        int rc = netguard_resolve("callback", cases[i].host, 80, NULL, out, 4,
                                  &n, &e);
        CU_ASSERT_EQUAL(rc, KILN_EPERM);
        CU_ASSERT_EQUAL(n, 0);
        if (strcmp(e.message, cases[i].message) != 0) {
            fprintf(stderr, "\n%s: %s\n", cases[i].host, e.message);
        }
        CU_ASSERT_STRING_EQUAL(e.message, cases[i].message);
    }
}

static void
test_resolve_localhost(void)
{
    netguard_addr out[4];
    size_t n = 99;
    kiln_error e;
    memset(&e, 0, sizeof e);
    CU_ASSERT_EQUAL(
        netguard_resolve("callback", "localhost", 80, NULL, out, 4, &n, &e),
        KILN_EPERM);
    CU_ASSERT_EQUAL(n, 0);
    /* /etc/hosts may list ::1 before 127.0.0.1; either is refused. */
    if (strstr(e.message, "::1") != NULL) {
        CU_ASSERT_STRING_EQUAL(e.message,
                               "callback host \"localhost\" resolves to ::1, "
                               "a loopback address (allow it with "
                               "network.allow)");
    } else {
        CU_ASSERT_STRING_EQUAL(e.message,
                               "callback host \"localhost\" resolves to "
                               "127.0.0.1, a loopback address (allow it with "
                               "network.allow)");
    }
}

static void
test_resolve_allowed(void)
{
    static const char *const list[] = {"127.0.0.0/8", "::1/128"};
    netguard_allow a;
    netguard_addr out[4];
    size_t n = 0;
    kiln_error e;
    CU_ASSERT_EQUAL_FATAL(netguard_allow_parse(list, 2, &a, &e), KILN_OK);

    static const char *const hosts[] = {"localhost",  "127.1",
                                        "0x7f.0.0.1", "2130706433",
                                        "[::1]",      "[::ffff:127.0.0.1]"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        CU_ASSERT_EQUAL(
            netguard_resolve("callback", hosts[i], 8080, &a, out, 4, &n, &e),
            KILN_OK);
        CU_ASSERT_TRUE(n >= 1);
    }

    CU_ASSERT_EQUAL(
        netguard_resolve("callback", "127.1", 8080, &a, out, 4, &n, &e),
        KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1); /* one answer, not one per socket type */
    CU_ASSERT_STRING_EQUAL(out[0].text, "127.0.0.1");
    CU_ASSERT_EQUAL(out[0].sa.ss_family, AF_INET);
    CU_ASSERT_EQUAL(out[0].len, sizeof(struct sockaddr_in));
    CU_ASSERT_EQUAL(ntohs(((struct sockaddr_in *)&out[0].sa)->sin_port), 8080);

    /* 127.0.0.0/8 does not cover 10.0.0.1 nor the metadata address. */
    CU_ASSERT_EQUAL(
        netguard_resolve("callback", "10.0.0.1", 80, &a, out, 4, &n, &e),
        KILN_EPERM);
    CU_ASSERT_EQUAL(
        netguard_resolve("source", "169.254.169.254", 80, &a, out, 4, &n, &e),
        KILN_EPERM);
    CU_ASSERT_STRING_EQUAL(e.message,
                           "source host \"169.254.169.254\" resolves to "
                           "169.254.169.254, a link-local address (allow it "
                           "with network.allow)");

    /* Public numeric hosts pass with no allow list. */
    CU_ASSERT_EQUAL(
        netguard_resolve("callback", "8.8.8.8", 443, NULL, out, 4, &n, &e),
        KILN_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(netguard_resolve("callback", "[2001:4860:4860::8888]", 443,
                                     NULL, out, 4, &n, &e),
                    KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_STRING_EQUAL(out[0].text, "2001:4860:4860::8888");
    CU_ASSERT_EQUAL(ntohs(((struct sockaddr_in6 *)&out[0].sa)->sin6_port), 443);

    /* Bad input. */
    CU_ASSERT_EQUAL(netguard_resolve("callback", "", 80, &a, out, 4, &n, &e),
                    KILN_EINVAL);
    CU_ASSERT_STRING_EQUAL(e.message, "callback host is empty");
    CU_ASSERT_EQUAL(
        netguard_resolve("callback", "8.8.8.8", 0, &a, out, 4, &n, &e),
        KILN_EINVAL);
    CU_ASSERT_STRING_EQUAL(e.message, "callback port 0 for host \"8.8.8.8\" "
                                      "is outside 1..65535");
    netguard_allow_free(&a);
}

/* A name answering a public and a private address (DNS rebinding, mixed
 * answers) is refused as a whole, whichever order the answers come in. */
static void
test_mixed_answers(void)
{
    struct sockaddr_storage ss[3];
    struct addrinfo ai[3];
    netguard_addr out[4];
    size_t n = 99;
    kiln_error e;
    static const char *const addrs[] = {"8.8.8.8", "2001:4860:4860::8888",
                                        "10.0.0.1"};
    memset(ai, 0, sizeof ai);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_FATAL(mkaddr(addrs[i], &ss[i]));
        ai[i].ai_family = ss[i].ss_family;
        ai[i].ai_socktype = SOCK_STREAM;
        ai[i].ai_addr = (struct sockaddr *)&ss[i];
        ai[i].ai_addrlen = ss[i].ss_family == AF_INET
                               ? sizeof(struct sockaddr_in)
                               : sizeof(struct sockaddr_in6);
        ai[i].ai_next = i < 2 ? &ai[i + 1] : NULL;
    }
    CU_ASSERT_EQUAL(netguard_check_addrinfo("callback", "rebind.example", 80,
                                            ai, NULL, out, 4, &n, &e),
                    KILN_EPERM);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_STRING_EQUAL(e.message,
                           "callback host \"rebind.example\" resolves to "
                           "10.0.0.1, a private address (allow it with "
                           "network.allow)");
    /* Kept addresses are capped at max, but all are still checked. */
    CU_ASSERT_EQUAL(netguard_check_addrinfo("callback", "rebind.example", 80,
                                            ai, NULL, out, 1, &n, &e),
                    KILN_EPERM);

    static const char *const list[] = {"10.0.0.0/8"};
    netguard_allow a;
    CU_ASSERT_EQUAL_FATAL(netguard_allow_parse(list, 1, &a, &e), KILN_OK);
    CU_ASSERT_EQUAL(netguard_check_addrinfo("callback", "rebind.example", 80,
                                            ai, &a, out, 4, &n, &e),
                    KILN_OK);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(netguard_check_addrinfo("callback", "rebind.example", 80,
                                            ai, &a, out, 2, &n, &e),
                    KILN_OK);
    CU_ASSERT_EQUAL(n, 2);
    char buf[NETGUARD_RESOLVE_MAX];
    CU_ASSERT_EQUAL(netguard_curl_resolve("rebind.example", 80, out, n, buf,
                                          sizeof buf, &e),
                    KILN_OK);
    CU_ASSERT_STRING_EQUAL(buf,
                           "rebind.example:80:8.8.8.8,[2001:4860:4860::8888]");
    netguard_allow_free(&a);
}

static void
test_curl_resolve(void)
{
    netguard_addr addrs[2];
    char buf[NETGUARD_RESOLVE_MAX];
    size_t n = 0;
    kiln_error e;
    CU_ASSERT_EQUAL(
        netguard_resolve("callback", "8.8.8.8", 443, NULL, addrs, 1, &n, &e),
        KILN_OK);
    CU_ASSERT_EQUAL(netguard_resolve("callback", "2001:4860:4860::8888", 443,
                                     NULL, addrs + 1, 1, &n, &e),
                    KILN_OK);
    CU_ASSERT_EQUAL(netguard_curl_resolve("hooks.example.com", 443, addrs, 2,
                                          buf, sizeof buf, &e),
                    KILN_OK);
    CU_ASSERT_STRING_EQUAL(
        buf, "hooks.example.com:443:8.8.8.8,[2001:4860:4860::8888]");
    CU_ASSERT_EQUAL(
        netguard_curl_resolve("hooks.example.com", 443, addrs, 2, buf, 20, &e),
        KILN_EINVAL);
    CU_ASSERT_STRING_EQUAL(buf, "");
    CU_ASSERT_EQUAL(
        netguard_curl_resolve("[::1]", 443, addrs, 1, buf, sizeof buf, &e),
        KILN_EINVAL);
}

static void
test_check_url(void)
{
    static const char *const list[] = {"127.0.0.0/8"};
    netguard_allow a;
    netguard_target t;
    kiln_error e;
    CU_ASSERT_EQUAL_FATAL(netguard_allow_parse(list, 1, &a, &e), KILN_OK);

    CU_ASSERT_EQUAL(netguard_check_url("callback", "http://127.1:8080/hook?x=1",
                                       &a, &t, &e),
                    KILN_OK);
    CU_ASSERT_FALSE(t.is_https);
    CU_ASSERT_STRING_EQUAL(t.host, "127.0.0.1");
    CU_ASSERT_EQUAL(t.port, 8080);
    CU_ASSERT_EQUAL(t.n_addrs, 1);
    CU_ASSERT_STRING_EQUAL(t.resolve, "127.0.0.1:8080:127.0.0.1");

    CU_ASSERT_EQUAL(
        netguard_check_url("callback", "HTTPS://8.8.8.8", NULL, &t, &e),
        KILN_OK);
    CU_ASSERT_TRUE(t.is_https);
    CU_ASSERT_EQUAL(t.port, 443);
    CU_ASSERT_STRING_EQUAL(t.resolve, "8.8.8.8:443:8.8.8.8");

    CU_ASSERT_EQUAL(netguard_check_url("callback",
                                       "http://[2001:4860:4860::8888]:81/",
                                       NULL, &t, &e),
                    KILN_OK);
    CU_ASSERT_STRING_EQUAL(t.host, "[2001:4860:4860::8888]");
    CU_ASSERT_EQUAL(t.port, 81);
    CU_ASSERT_STRING_EQUAL(t.resolve, "");
    CU_ASSERT_STRING_EQUAL(t.addrs[0].text, "2001:4860:4860::8888");

    /* The host libcurl will connect to is the one checked, however the
     * URL tries to disguise it. */
    static const struct {
        const char *url, *message;
    } refused[] = {
        {"http://user:pw@localhost/", NULL},
        {"http://8.8.8.8@127.0.0.1/", "callback host \"127.0.0.1\" resolves "
                                      "to 127.0.0.1, a loopback address "
                                      "(allow it with network.allow)"},
        {"http://127.0.0.1#@8.8.8.8/", NULL},
        {"http://127.0.0.1?@8.8.8.8/", NULL},
        {"http://0x7f000001/", NULL},
        {"http://017700000001/", NULL},
        {"http://0/", "callback host \"0.0.0.0\" resolves to 0.0.0.0, an "
                      "unspecified address (allow it with network.allow)"},
        {"http://[::1]:8080/", "callback host \"[::1]\" resolves to ::1, a "
                               "loopback address (allow it with "
                               "network.allow)"},
        {"http://[::ffff:a9fe:a9fe]/", "callback host "
                                       "\"[::ffff:a9fe:a9fe]\" resolves to "
                                       "::ffff:169.254.169.254 (IPv4-mapped "
                                       "169.254.169.254), a link-local "
                                       "address (allow it with "
                                       "network.allow)"},
        {"http://[fe80::1%25eth0]/", NULL},
        {"http://%6cocalhost/", NULL},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        memset(&e, 0, sizeof e);
        int rc = netguard_check_url("callback", refused[i].url, NULL, &t, &e);
        if (rc != KILN_EPERM) {
            fprintf(stderr, "\n%s: %d %s\n", refused[i].url, rc, e.message);
        }
        CU_ASSERT_EQUAL(rc, KILN_EPERM);
        if (refused[i].message != NULL) {
            CU_ASSERT_STRING_EQUAL(e.message, refused[i].message);
        }
        CU_ASSERT_EQUAL(t.n_addrs, 0);
    }
    /* The same URLs pass when their loopback target is allowed. */
    CU_ASSERT_EQUAL(
        netguard_check_url("callback", "http://8.8.8.8@127.0.0.1/", &a, &t, &e),
        KILN_OK);

    static const struct {
        const char *url, *message;
    } bad[] = {
        {"ftp://8.8.8.8/x", "callback url \"ftp://8.8.8.8/x\" has scheme "
                            "\"ftp\" (expected http or https)"},
        {"file:///etc/passwd", "callback url \"file:///etc/passwd\" has "
                               "scheme \"file\" (expected http or https)"},
        {"gopher://127.0.0.1/", "callback url \"gopher://127.0.0.1/\" has "
                                "scheme \"gopher\" (expected http or https)"},
        {"8.8.8.8/hook", "callback url \"8.8.8.8/hook\" has no scheme "
                         "(expected http:// or https://)"},
        {"//8.8.8.8/hook", "callback url \"//8.8.8.8/hook\" has no scheme "
                           "(expected http:// or https://)"},
        {"http:8.8.8.8", "callback url \"http:8.8.8.8\" has no scheme "
                         "(expected http:// or https://)"},
        {"", "callback url \"\" has no scheme (expected http:// or "
             "https://)"},
        {"http://[::1/", "callback url \"http://[::1/\" is not valid (Bad "
                         "IPv6 address)"},
        {"http://a b/", "callback url \"http://a b/\" is not valid (Bad "
                        "hostname)"},
        {"http://8.8.8.8:0/", "callback port 0 for host \"8.8.8.8\" is "
                              "outside 1..65535"},
        {"http://localhost./", "callback url \"http://localhost./\": host "
                               "\"localhost.\" ends with a dot (expected a "
                               "name without the final dot)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        CU_ASSERT_EQUAL(netguard_check_url("callback", bad[i].url, &a, &t, &e),
                        KILN_EINVAL);
        CU_ASSERT_STRING_EQUAL(e.message, bad[i].message);
    }
    netguard_allow_free(&a);
}

int
test_netguard_register(void)
{
    CU_pSuite s = CU_add_suite("netguard", NULL, NULL);
    if (s == NULL) {
        return 1;
    }
    CU_add_test(s, "classify: ranges, boundaries, embedded IPv4",
                test_classify_table);
    CU_add_test(s, "allow list: parsing and errors", test_allow_parse);
    CU_add_test(s, "allow list: matching", test_allow_match);
    CU_add_test(s, "resolve: odd numeric hosts refused", test_resolve_refused);
    CU_add_test(s, "resolve: localhost refused", test_resolve_localhost);
    CU_add_test(s, "resolve: allowed by network.allow", test_resolve_allowed);
    CU_add_test(s, "resolve: mixed answers refused", test_mixed_answers);
    CU_add_test(s, "resolve: CURLOPT_RESOLVE entry", test_curl_resolve);
    CU_add_test(s, "check url", test_check_url);
    return CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
