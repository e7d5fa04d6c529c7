/*
 * Postbacks (api.md): when a process with a callback changes status, the
 * GET /status body is stored as a postback owed to the callback URL
 * (every change with notify_status, else only FINISHED, FAILED or
 * CANCELLED), and sender threads deliver it with libcurl: POST, JSON
 * body, signed with the service's secret, to the address the network
 * guard checked. A failed attempt is retried after 1, 3, 15 and 600 s
 * unless the request said retry_postback: false; the schedule lives in
 * the job store, so a restart loses no postback.
 */
#ifndef KILN_SERVER_POSTBACK_H
#define KILN_SERVER_POSTBACK_H

#include "../core/netguard.h"
#include "server.h"

typedef struct postbacker postbacker;

/* "sha256=" and 64 hex digits, NUL-terminated. */
#define POSTBACK_SIG_LEN 72
/* One attempt may take this long (connect included) before it fails. */
#define POSTBACK_TIMEOUT_MS 10000

/* X-Kiln-Signature's value: HMAC-SHA256 of the body with `secret`. */
void postback_sign(const char *secret, const char *body, size_t len,
                   char out[POSTBACK_SIG_LEN]);

/* "PROCESS_ID.N" and a NUL: Kiln-Delivery-Id's value. */
#define POSTBACK_DELIVERY_ID_LEN (JOBSTORE_ID_LEN + 22)

/* Kiln-Delivery-Id's value for postback pb: its process's id and its own
 * id in the job store (as GET /status/{id}/postbacks shows it),
 * "Fcl_b6psriLi7lBYAshhp.42". Delivery is at least once: every attempt
 * of one postback, and a redelivery after a sender died holding it,
 * sends the same value, and no other postback has it, so a receiver
 * drops what it has already taken. */
void postback_delivery_id(const jobstore_postback *pb,
                          char out[POSTBACK_DELIVERY_ID_LEN]);

/* Checks a callback URL with the network guard (scheme, host, resolved
 * addresses against network.allow). KILN_OK or the guard's status, with
 * a message that starts "callback ...". */
int postback_check_url(const kiln_engine *e, const char *url, kiln_error *err);

/* One delivery attempt of `body` to `url`: resolves and checks the host
 * again (connecting to the checked address only), POSTs, and fills
 * *http_status (0 when no answer came). KILN_OK for a 2xx answer;
 * otherwise an error that says why (refused address, timeout, the
 * status code). `secret` may be NULL: then no signature header;
 * `delivery_id` (postback_delivery_id) may be NULL: then no
 * Kiln-Delivery-Id. */
int postback_deliver(const kiln_engine *e, const char *url, const char *body,
                     const char *secret, const char *delivery_id,
                     int *http_status, kiln_error *err);

/* Makes every status change of the store's processes owe its postback:
 * when a process has a callback and the change is final (FINISHED,
 * FAILED) or its request asked notify_status, the status body is stored
 * as a postback in the same transaction as the change, and the senders
 * are woken. */
void postback_attach(kiln_server *s);

/* Starts n sender threads; they claim due postbacks until stopped. */
int postbacker_start(kiln_server *s, int n_threads, postbacker **out,
                     kiln_error *err);
void postbacker_wake(postbacker *pb);
/* Waits for attempts in flight (each is bounded by POSTBACK_TIMEOUT_MS)
 * and frees the senders; pending postbacks stay in the store. */
void postbacker_stop(postbacker *pb);

#endif /* KILN_SERVER_POSTBACK_H */
