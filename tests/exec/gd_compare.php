<?php
/*
 * Reference side of tests/exec/gd_php.sh: applies PHP GD's imagefilter()
 * to an input PNG and compares the colour channels with kiln's output.
 *
 * Usage: php gd_compare.php MANIFEST
 * MANIFEST lines: NAME INPUT.png KILN_OUTPUT.png OP [ARG...]
 *   OP: brightness L | colorize R G B | contrast GD_ARG | negate |
 *       grayscale | bw | edgedetect | emboss | blurgaussian | meanremoval |
 *       smooth WEIGHT | blurselective | sepia (not GD: kiln's definition,
 *       computed here in integers)
 *   or, to compare two images as they are: same (every pixel) | visible
 *   (only pixels that are not fully transparent in either)
 * Prints one line per case: "NAME MAXDIFF NDIFF WxH" (largest colour
 * difference in levels, number of differing pixels), or "NAME ERROR why".
 * Alpha is not compared (GD keeps 7 bits of it); the shell checks alpha.
 */

function gd_apply($im, $op, $args)
{
    switch ($op) {
    case 'brightness':
        return imagefilter($im, IMG_FILTER_BRIGHTNESS, (int)$args[0]);
    case 'colorize':
        return imagefilter($im, IMG_FILTER_COLORIZE, (int)$args[0],
                           (int)$args[1], (int)$args[2], 0);
    case 'contrast':
        return imagefilter($im, IMG_FILTER_CONTRAST, (int)$args[0]);
    case 'negate':
        return imagefilter($im, IMG_FILTER_NEGATE);
    case 'grayscale':
        return imagefilter($im, IMG_FILTER_GRAYSCALE);
    case 'bw':
        /* No GD filter: grayscale, then threshold at 128 in PHP. */
        if (!imagefilter($im, IMG_FILTER_GRAYSCALE)) {
            return false;
        }
        $w = imagesx($im);
        $h = imagesy($im);
        for ($y = 0; $y < $h; $y++) {
            for ($x = 0; $x < $w; $x++) {
                $c = imagecolorat($im, $x, $y);
                $v = ($c & 0xff) >= 128 ? 255 : 0;
                imagesetpixel($im, $x, $y,
                              ($c & 0x7f000000) | ($v << 16) | ($v << 8) | $v);
            }
        }
        return true;
    case 'sepia':
        /* ops.md's matrix, truncating the exact decimal result, clamped:
         * coefficients times 10000 are integers. */
        $m = [[3588, 7044, 1368], [2990, 5870, 1140], [2392, 4696, 912]];
        $w = imagesx($im);
        $h = imagesy($im);
        for ($y = 0; $y < $h; $y++) {
            for ($x = 0; $x < $w; $x++) {
                $c = imagecolorat($im, $x, $y);
                $rgb = [($c >> 16) & 255, ($c >> 8) & 255, $c & 255];
                $o = $c & 0x7f000000;
                foreach ($m as $i => $row) {
                    $v = intdiv($row[0] * $rgb[0] + $row[1] * $rgb[1] +
                                $row[2] * $rgb[2], 10000);
                    $o |= min($v, 255) << (16 - 8 * $i);
                }
                imagesetpixel($im, $x, $y, $o);
            }
        }
        return true;
    case 'edgedetect':
        return imagefilter($im, IMG_FILTER_EDGEDETECT);
    case 'emboss':
        return imagefilter($im, IMG_FILTER_EMBOSS);
    case 'blurgaussian':
        return imagefilter($im, IMG_FILTER_GAUSSIAN_BLUR);
    case 'meanremoval':
        return imagefilter($im, IMG_FILTER_MEAN_REMOVAL);
    case 'smooth':
        return imagefilter($im, IMG_FILTER_SMOOTH, (float)$args[0]);
    case 'blurselective':
        return imagefilter($im, IMG_FILTER_SELECTIVE_BLUR);
    case 'same':
    case 'visible':
        return true;
    }
    return false;
}

/* The colour pixels as an uncompressed 24-bit BMP (no alpha), for a quick
 * equality test; false when that fails, which forces the pixel loop. */
function gd_bytes($im)
{
    ob_start();
    $ok = imagebmp($im, null, false);
    $s = ob_get_clean();
    return $ok && strlen($s) >= 3 * imagesx($im) * imagesy($im) ? $s : false;
}

$cache = [];
foreach (file($argv[1], FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) as $line) {
    $f = preg_split('/\s+/', trim($line));
    list($name, $in, $out, $op) = $f;
    $args = array_slice($f, 4);

    $ref = @imagecreatefrompng($in);
    $got = @imagecreatefrompng($out);
    if (!$ref || !$got) {
        echo "$name ERROR cannot read ", $ref ? $out : $in, "\n";
        continue;
    }
    imagepalettetotruecolor($ref);
    imagepalettetotruecolor($got);
    /* Write filtered colours as they are, never blended over the old. */
    imagealphablending($ref, false);
    imagesavealpha($ref, true);
    if (!gd_apply($ref, $op, $args)) {
        echo "$name ERROR imagefilter $op failed\n";
        continue;
    }
    $w = imagesx($ref);
    $h = imagesy($ref);
    if (imagesx($got) != $w || imagesy($got) != $h) {
        echo "$name ERROR size ", imagesx($got), "x", imagesy($got),
             ", GD gives {$w}x{$h}\n";
        continue;
    }
    $visible = $op == 'visible';
    $rb = gd_bytes($ref);
    if (!$visible && $rb !== false && $rb === gd_bytes($got)) {
        echo "$name 0 0 {$w}x{$h}\n";
        continue;
    }
    $max = 0;
    $n = 0;
    for ($y = 0; $y < $h; $y++) {
        for ($x = 0; $x < $w; $x++) {
            $a = imagecolorat($ref, $x, $y);
            $b = imagecolorat($got, $x, $y);
            if ((($a ^ $b) & 0xffffff) == 0) {
                continue;
            }
            /* GD alpha 127: fully transparent. */
            if ($visible && ($a >> 24 == 127 || $b >> 24 == 127)) {
                continue;
            }
            $d = max(abs((($a >> 16) & 255) - (($b >> 16) & 255)),
                     abs((($a >> 8) & 255) - (($b >> 8) & 255)),
                     abs(($a & 255) - ($b & 255)));
            $max = max($max, $d);
            $n++;
        }
    }
    echo "$name $max $n {$w}x{$h}\n";
}
