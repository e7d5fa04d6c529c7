// Microsoft's @azure/storage-blob client for tests/exec/storage_azure.sh:
// it puts the test's sources into Azurite and reads back what kiln wrote,
// so the test checks what a real Azure client sees. Run with
// NODE_PATH=build/npm/node_modules and the connection string in AZ_CONN.
// Commands come one per line on stdin (words split on spaces), so one
// Node start serves many; each prints lines starting with its own name:
//
//   mkcontainer C                 create container C
//   upload C BLOB FILE            upload FILE as block blob BLOB
//   download C BLOB FILE          "download BLOB ok" or "download BLOB absent"
//   list C                        "list BLOB" per blob
//   info C BLOB                   "info BLOB SIZE TYPE COMMITTED UNCOMMITTED"
//                                 or "info BLOB absent"
//   lease C BLOB                  takes an infinite lease: "lease BLOB ok"
//   sign ACCOUNT KEY METHOD URL [Name:value]...
//                                 "sign DATE<TAB>AUTHORIZATION" as the SDK's
//                                 own Shared Key policy signs the request
// A failing command prints "error CMD: message" and the exit status is 1.
"use strict";
const { BlobServiceClient } = require("@azure/storage-blob");

let service = null;

function container(name) {
    if (service === null) {
        service = BlobServiceClient.fromConnectionString(process.env.AZ_CONN);
    }
    return service.getContainerClient(name);
}

// Runs f; a 404 prints "WHAT absent" instead of failing.
async function unlessAbsent(what, f) {
    try {
        await f();
    } catch (e) {
        if (e.statusCode !== 404) {
            throw e;
        }
        console.log(`${what} absent`);
    }
}

async function run([cmd, ...args]) {
    switch (cmd) {
    case "mkcontainer":
        await container(args[0]).create();
        return;
    case "upload":
        await container(args[0]).getBlockBlobClient(args[1]).uploadFile(args[2]);
        return;
    case "download":
        return unlessAbsent(`download ${args[1]}`, async () => {
            await container(args[0]).getBlobClient(args[1]).downloadToFile(args[2]);
            console.log(`download ${args[1]} ok`);
        });
    case "list":
        for await (const b of container(args[0]).listBlobsFlat()) {
            console.log(`list ${b.name}`);
        }
        return;
    case "info":
        return unlessAbsent(`info ${args[1]}`, async () => {
            const blob = container(args[0]).getBlockBlobClient(args[1]);
            const p = await blob.getProperties();
            const l = await blob.getBlockList("all");
            console.log(`info ${args[1]} ${p.contentLength} ${p.contentType} ` +
                        `${(l.committedBlocks || []).length} ` +
                        `${(l.uncommittedBlocks || []).length}`);
        });
    case "lease":
        await container(args[0]).getBlobClient(args[1]).getBlobLeaseClient()
            .acquireLease(-1);
        console.log(`lease ${args[1]} ok`);
        return;
    case "sign":
        return sign(args);
    default:
        throw new Error(`unknown command "${cmd}"`);
    }
}

// Signs one request with the SDK's Shared Key policy and prints the date
// it used and the Authorization header it made; nothing is sent.
async function sign([account, key, method, url, ...headers]) {
    const { storageSharedKeyCredentialPolicy } = require("@azure/storage-common");
    const { createPipelineRequest, createHttpHeaders } =
        require("@azure/core-rest-pipeline");
    const h = createHttpHeaders();
    for (const line of headers) {
        const i = line.indexOf(":");
        h.set(line.slice(0, i), line.slice(i + 1));
    }
    const req = createPipelineRequest({ url, method, headers: h });
    const policy = storageSharedKeyCredentialPolicy({
        accountName: account,
        accountKey: Buffer.from(key, "base64"),
    });
    await policy.sendRequest(req, async (r) => {
        console.log(`sign ${r.headers.get("x-ms-date")}\t` +
                    `${r.headers.get("authorization")}`);
        return { request: r, status: 200, headers: createHttpHeaders() };
    });
}

async function main() {
    const input = require("fs").readFileSync(0, "utf8");
    for (const line of input.split("\n")) {
        const words = line.split(" ").filter((w) => w !== "");
        if (words.length === 0) {
            continue;
        }
        try {
            await run(words);
        } catch (e) {
            console.log(`error ${words[0]}: ${String(e.message).split("\n")[0]}`);
            process.exitCode = 1;
        }
    }
}

main();
