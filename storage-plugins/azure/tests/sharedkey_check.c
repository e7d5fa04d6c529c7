/*
 * Checks of the "azure" backend's Shared Key signer (sharedkey.c), run by
 * tests/exec/storage_azure.sh. Without arguments: two requests whose
 * string to sign was written out by hand from the rules of Microsoft's
 * "Authorize with Shared Key" page, the date format and key decoding;
 * prints "ok NAME" or "FAIL NAME: why" per check. With "sign ACCOUNT KEY
 * METHOD PATH?QUERY [Name:value]...": prints the Authorization value for
 * that request, so the test can compare it with the one Microsoft's
 * JavaScript SDK computes for the same request.
 */
#define _GNU_SOURCE

#include "../sharedkey.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int failures;

static void
check(const char *name, int ok, const char *why)
{
    if (ok) {
        printf("ok sharedkey/%s\n", name);
    } else {
        printf("FAIL sharedkey/%s: %s\n", name, why);
        failures++;
    }
}

/* Prints where two strings part, with newlines shown as \n. */
static void
check_text(const char *name, const char *got, const char *want)
{
    char why[512];
    size_t i = 0;

    if (got == NULL) {
        check(name, 0, "no string to sign (out of memory)");
        return;
    }
    while (got[i] != '\0' && got[i] == want[i]) {
        i++;
    }
    if (got[i] == '\0' && want[i] == '\0') {
        check(name, 1, "");
        return;
    }
    snprintf(why, sizeof why,
             "differs at byte %zu: got \"%.40s\", want "
             "\"%.40s\"",
             i, got + i, want + i);
    for (char *p = why; *p != '\0'; p++) {
        if (*p == '\n') {
            *p = '|';
        }
    }
    check(name, 0, why);
}

static void
vectors(void)
{
    /* A Put Block on the public endpoint: headers in mixed case and
     * order, a non-x-ms header that is not signed, white space to fold,
     * query names to lower-case and sort, a value to use decoded. */
    static const azure_sk_pair put_headers[] = {
        {"X-MS-Version", "2021-08-06"},
        {"Host", "myaccount.blob.core.windows.net"},
        {"x-ms-meta-Note", "  two   words  "},
        {"x-ms-date", "Sun, 11 Oct 2009 21:49:13 GMT"},
    };
    static const azure_sk_pair put_query[] = {
        {"comp", "block"},
        {"Timeout", "30"},
        {"blockid", "a+b/c=="},
    };
    static const char put_want[] = "PUT\n"
                                   "\n"
                                   "\n"
                                   "1024\n"
                                   "\n"
                                   "image/jpeg\n"
                                   "\n"
                                   "\n"
                                   "\n"
                                   "\n"
                                   "\n"
                                   "\n"
                                   "x-ms-date:Sun, 11 Oct 2009 21:49:13 GMT\n"
                                   "x-ms-meta-note:two words\n"
                                   "x-ms-version:2021-08-06\n"
                                   "/myaccount/mycontainer/photos/a%20b.jpg\n"
                                   "blockid:a+b/c==\n"
                                   "comp:block\n"
                                   "timeout:30";
    azure_sk_request put = {
        .verb = "PUT",
        .content_length = 1024,
        .content_type = "image/jpeg",
        .headers = put_headers,
        .n_headers = 4,
        .account = "myaccount",
        .path = "/mycontainer/photos/a%20b.jpg",
        .query = put_query,
        .n_query = 3,
    };
    /* A ranged, conditional Get Blob on an emulator, whose URL path
     * starts with the account: it appears twice in the resource. A zero
     * Content-Length signs as an empty line. */
    static const azure_sk_pair get_headers[] = {
        {"x-ms-version", "2021-08-06"},
        {"x-ms-range", "bytes=100-"},
        {"x-ms-date", "Thu, 01 Jan 1970 00:00:00 GMT"},
    };
    static const char get_want[] = "GET\n"
                                   "\n"
                                   "\n"
                                   "\n"
                                   "\n"
                                   "\n"
                                   "\n"
                                   "\n"
                                   "\"0x8D\"\n"
                                   "\n"
                                   "\n"
                                   "\n"
                                   "x-ms-date:Thu, 01 Jan 1970 00:00:00 GMT\n"
                                   "x-ms-range:bytes=100-\n"
                                   "x-ms-version:2021-08-06\n"
                                   "/devstoreaccount1/devstoreaccount1/c/in/"
                                   "a.jpg";
    azure_sk_request get = {
        .verb = "GET",
        .if_match = "\"0x8D\"",
        .headers = get_headers,
        .n_headers = 3,
        .account = "devstoreaccount1",
        .path = "/devstoreaccount1/c/in/a.jpg",
    };
    char *sts;
    char date[AZURE_SK_DATE_SIZE];
    unsigned char key[AZURE_SK_KEY_MAX];
    size_t key_len = 0;
    char sig[AZURE_SK_SIG_SIZE];

    sts = azure_sk_string_to_sign(&put);
    check_text("put-block-string-to-sign", sts, put_want);
    free(sts);
    sts = azure_sk_string_to_sign(&get);
    check_text("get-range-emulator-string-to-sign", sts, get_want);
    free(sts);

    /* The date of the example on Microsoft's page, and the epoch. */
    azure_sk_date(1255297753, date);
    check_text("date-rfc1123", date, "Sun, 11 Oct 2009 21:49:13 GMT");
    azure_sk_date(0, date);
    check_text("date-epoch", date, "Thu, 01 Jan 1970 00:00:00 GMT");

    check("key-decodes",
          azure_sk_decode_key("a2lsbg==", key, &key_len) == 0 && key_len == 4 &&
              memcmp(key, "kiln", 4) == 0,
          "\"a2lsbg==\" did not decode to \"kiln\"");
    check("key-refuses-bad-characters",
          azure_sk_decode_key("a2l*bg==", key, &key_len) != 0,
          "a key with \"*\" was accepted");
    check("key-refuses-bad-length",
          azure_sk_decode_key("a2lsbg=", key, &key_len) != 0,
          "a key of 7 characters was accepted");
    check("key-refuses-inner-padding",
          azure_sk_decode_key("a2=sbg==", key, &key_len) != 0,
          "a key with \"=\" inside was accepted");

    /* HMAC-SHA256 of "" under "kiln", from `openssl dgst -sha256 -hmac
     * kiln -binary </dev/null | base64`. */
    check("hmac-sha256",
          azure_sk_sign((const unsigned char *)"kiln", 4, "", sig) == 0 &&
              strcmp(sig, "6ikYo252ftKHJnSK1HQ5aUPOxaCbKE+YVh5TA3HimZ4=") == 0,
          sig);
}

/* Decodes %XX escapes in place. */
static void
url_decode(char *s)
{
    char *o = s;

    for (; *s != '\0'; s++) {
        if (s[0] == '%' && s[1] != '\0' && s[2] != '\0') {
            char hex[3] = {s[1], s[2], '\0'};

            *o++ = (char)strtol(hex, NULL, 16);
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

/* sign ACCOUNT KEY METHOD PATH?QUERY [Name:value]... */
static int
sign(int argc, char **argv)
{
    azure_sk_request r = {.verb = argv[3], .account = argv[1]};
    azure_sk_pair headers[32];
    azure_sk_pair query[16];
    unsigned char key[AZURE_SK_KEY_MAX];
    size_t key_len;
    char sig[AZURE_SK_SIG_SIZE];
    char *path = strdup(argv[4]);
    char *q = strchr(path, '?');
    char *sts;

    if (azure_sk_decode_key(argv[2], key, &key_len) != 0) {
        fprintf(stderr, "bad key\n");
        return 2;
    }
    if (q != NULL) {
        *q++ = '\0';
        for (char *tok = strtok(q, "&"); tok != NULL && r.n_query < 16;
             tok = strtok(NULL, "&")) {
            char *eq = strchr(tok, '=');

            if (eq != NULL) {
                *eq++ = '\0';
                url_decode(eq);
            }
            query[r.n_query++] = (azure_sk_pair){tok, eq != NULL ? eq : ""};
        }
    }
    r.path = path;
    r.query = query;
    for (int i = 5; i < argc && r.n_headers < 32; i++) {
        char *colon = strchr(argv[i], ':');
        const char *v;

        if (colon == NULL) {
            continue;
        }
        *colon = '\0';
        v = colon + 1;
        if (strcasecmp(argv[i], "Content-Length") == 0) {
            r.content_length = strtoull(v, NULL, 10);
        } else if (strcasecmp(argv[i], "Content-Type") == 0) {
            r.content_type = v;
        } else if (strcasecmp(argv[i], "If-Match") == 0) {
            r.if_match = v;
        } else if (strcasecmp(argv[i], "Range") == 0) {
            r.range = v;
        } else {
            headers[r.n_headers++] = (azure_sk_pair){argv[i], v};
        }
    }
    r.headers = headers;
    sts = azure_sk_string_to_sign(&r);
    if (sts == NULL || azure_sk_sign(key, key_len, sts, sig) != 0) {
        fprintf(stderr, "signing failed\n");
        return 2;
    }
    printf("SharedKey %s:%s\n", r.account, sig);
    free(sts);
    free(path);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "sign") == 0) {
        return sign(argc - 1, argv + 1);
    }
    if (argc != 1) {
        fprintf(stderr,
                "usage: %s [sign ACCOUNT KEY METHOD PATH "
                "[Name:value]...]\n",
                argv[0]);
        return 2;
    }
    vectors();
    return failures == 0 ? 0 : 1;
}
