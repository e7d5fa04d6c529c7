// bench/peers.sh's sharp side: the same work as the kiln rows, in one Node
// process each, with sharp's defaults (its own prebuilt libvips, its own
// thread settings) except where a row says otherwise.
//   node peers_sharp.js batch OUTDIR CONCURRENCY FILE...
//       each FILE to fit inside 720x588, JPEG quality 80, CONCURRENCY
//       pipelines in flight at once (a pool of async loops)
//   node peers_sharp.js widths FILE OUTDIR W...
//       one input, one sharp() object, a clone() per width (JPEG q80),
//       all in flight at once
//   node peers_sharp.js giant FILE OUT WIDTH
//       one image to WIDTH wide (JPEG q80); sharp's default input limit
//       (0x3FFF * 0x3FFF pixels) is raised to 300 MP, as kiln's config is
//   node peers_sharp.js blur FILE OUT SIGMA
//       Gaussian blur of SIGMA, JPEG quality 70 (the public example's)
// Prints nothing on success; any error exits non-zero.
'use strict';
const path = require('path');
const sharp = require(path.join(__dirname, 'node_modules', 'sharp'));

async function main(argv) {
    const mode = argv[0];
    if (mode === 'batch') {
        const [outdir, conc, ...files] = argv.slice(1);
        let next = 0;
        const lane = async () => {
            while (next < files.length) {
                const f = files[next++];
                await sharp(f)
                    .resize({ width: 720, height: 588, fit: 'inside' })
                    .jpeg({ quality: 80 })
                    .toFile(path.join(outdir, path.basename(f)));
            }
        };
        await Promise.all(Array.from({ length: Number(conc) }, lane));
    } else if (mode === 'widths') {
        const [file, outdir, ...widths] = argv.slice(1);
        const src = sharp(file);
        await Promise.all(widths.map((w) =>
            src.clone().resize({ width: Number(w) }).jpeg({ quality: 80 })
                .toFile(path.join(outdir, `w${w}.jpg`))));
    } else if (mode === 'giant') {
        const [file, out, width] = argv.slice(1);
        await sharp(file, { limitInputPixels: 300000000 })
            .resize({ width: Number(width) }).jpeg({ quality: 80 }).toFile(out);
    } else if (mode === 'blur') {
        const [file, out, sigma] = argv.slice(1);
        await sharp(file).blur(Number(sigma)).jpeg({ quality: 70 }).toFile(out);
    } else {
        throw new Error(`unknown mode ${mode}`);
    }
}

main(process.argv.slice(2)).catch((e) => {
    console.error(`peers_sharp: ${e.message}`);
    process.exit(1);
});
