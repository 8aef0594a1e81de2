/**
 * Renders the report in a real browser (Debian's headless chromium, when installed) and checks the
 * series actually show up as coloured pixels. The PNG decoder below is tested on its own first, so a
 * skipped browser test does not leave it unchecked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { deflateSync, inflateSync } from 'node:zlib';
import { writeReport, REPORT_COLORS } from './html.js';
import { sampleRunSummary } from './sample.js';

const CHROMIUM = process.env.REPORT_TEST_CHROMIUM ?? '/usr/bin/chromium';

interface Image {
  width: number;
  height: number;
  /** RGBA, 8 bits per channel. */
  pixels: Uint8Array;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 }; // grey, RGB, grey+alpha, RGBA

/** Non-interlaced, 8-bit, non-palette PNGs: what browsers write for screenshots. */
function decodePng(file: Uint8Array): Image {
  const buf = Buffer.from(file);
  assert.ok(buf.subarray(0, 8).equals(PNG_SIGNATURE), 'PNG signature');
  let offset = 8;
  let width = 0;
  let height = 0;
  let colorType = -1;
  const idat: Buffer[] = [];
  while (offset < buf.length) {
    const length = buf.readUInt32BE(offset);
    const type = buf.toString('latin1', offset + 4, offset + 8);
    const data = buf.subarray(offset + 8, offset + 8 + length);
    assert.equal(buf.readUInt32BE(offset + 8 + length), crc32(buf.subarray(offset + 4, offset + 8 + length)), `${type} CRC`);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      assert.equal(data[8], 8, 'bit depth 8');
      colorType = data[9]!;
      assert.ok(colorType in CHANNELS, `colour type ${colorType}`);
      assert.equal(data[12], 0, 'not interlaced');
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      break;
    }
    offset += 12 + length;
  }
  const channels = CHANNELS[colorType]!;
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  assert.equal(raw.length, height * (stride + 1), 'decompressed size');
  const rows = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = y * stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? rows[row + i - channels]! : 0;
      const b = y > 0 ? rows[row - stride + i]! : 0;
      const c = y > 0 && i >= channels ? rows[row - stride + i - channels]! : 0;
      const predictor = filter === 0 ? 0 : filter === 1 ? a : filter === 2 ? b : filter === 3 ? (a + b) >> 1 : filter === 4 ? paeth(a, b, c) : NaN;
      assert.ok(!Number.isNaN(predictor), `filter type ${filter}`);
      rows[row + i] = (src[i]! + predictor) & 0xff;
    }
  }
  const pixels = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    const s = rows.subarray(p * channels, (p + 1) * channels);
    const [r, g, b, alpha] = channels === 1 ? [s[0]!, s[0]!, s[0]!, 255] : channels === 2 ? [s[0]!, s[0]!, s[0]!, s[1]!] : [s[0]!, s[1]!, s[2]!, channels === 4 ? s[3]! : 255];
    pixels.set([r, g, b, alpha], p * 4);
  }
  return { width, height, pixels };
}

/** Test-only encoder that cycles through all five row filters, to check the decoder undoes each. */
function encodePng(image: Image, channels: 3 | 4): Buffer {
  const stride = image.width * channels;
  const rows = new Uint8Array(image.height * stride);
  for (let p = 0; p < image.width * image.height; p++) rows.set(image.pixels.subarray(p * 4, p * 4 + channels), p * channels);
  const raw = Buffer.alloc(image.height * (stride + 1));
  for (let y = 0; y < image.height; y++) {
    const filter = y % 5;
    raw[y * (stride + 1)] = filter;
    for (let i = 0; i < stride; i++) {
      const x = rows[y * stride + i]!;
      const a = i >= channels ? rows[y * stride + i - channels]! : 0;
      const b = y > 0 ? rows[(y - 1) * stride + i]! : 0;
      const c = y > 0 && i >= channels ? rows[(y - 1) * stride + i - channels]! : 0;
      const predictor = [0, a, b, (a + b) >> 1, paeth(a, b, c)][filter]!;
      raw[y * (stride + 1) + 1 + i] = (x - predictor) & 0xff;
    }
  }
  const chunk = (type: string, data: Buffer): Buffer => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(image.width, 0);
  ihdr.writeUInt32BE(image.height, 4);
  ihdr.set([8, channels === 4 ? 6 : 2, 0, 0, 0], 8);
  const compressed = deflateSync(raw);
  // Split the data over two IDAT chunks, as encoders may.
  const half = compressed.length >> 1;
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', compressed.subarray(0, half)),
    chunk('IDAT', compressed.subarray(half)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function hexToRgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

/** Pixels within a small distance of a colour (lines are anti-aliased, so exact matches are rarer). */
function countNear(image: Image, rgb: [number, number, number], tolerance = 40): number {
  let count = 0;
  for (let p = 0; p < image.width * image.height; p++) {
    const d = Math.abs(image.pixels[p * 4]! - rgb[0]) + Math.abs(image.pixels[p * 4 + 1]! - rgb[1]) + Math.abs(image.pixels[p * 4 + 2]! - rgb[2]);
    if (d <= tolerance) count++;
  }
  return count;
}

test('PNG decoder undoes every row filter (RGB and RGBA)', () => {
  let s = 99;
  const rand = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24);
  for (const channels of [3, 4] as const) {
    const width = 37;
    const height = 23;
    const pixels = new Uint8Array(width * height * 4);
    for (let p = 0; p < width * height; p++) {
      // Mix of smooth gradients and noise, so every predictor sees wrap-around arithmetic.
      pixels.set([(p * 7) & 0xff, rand(), (p >> 3) & 0xff, channels === 4 ? rand() : 255], p * 4);
    }
    const decoded = decodePng(encodePng({ width, height, pixels }, channels));
    assert.equal(decoded.width, width);
    assert.equal(decoded.height, height);
    assert.deepEqual(decoded.pixels, pixels);
  }
  const bad = encodePng({ width: 2, height: 2, pixels: new Uint8Array(16) }, 3);
  bad[bad.length - 13] ^= 1; // flip a bit of the last IDAT's stored CRC
  assert.throws(() => decodePng(bad), /CRC/);
});

test(
  'headless chromium renders the charts with their series colours',
  { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (the test does not install it)`, timeout: 120_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'report-shot-'));
    const page = join(dir, 'report.html');
    const png = join(dir, 'report.png');
    writeReport(page, sampleRunSummary({ steps: 400, evalEvery: 40 }));
    const args = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${mkdtempSync(join(tmpdir(), 'report-chromium-profile-'))}`,
      `--screenshot=${png}`,
      '--window-size=1200,1600',
      pathToFileURL(page).href,
    ];
    await new Promise<void>((resolve, reject) => {
      execFile(CHROMIUM, args, { timeout: 90_000 }, (err, _stdout, stderr) => {
        if (err && !existsSync(png)) reject(new Error(`chromium failed: ${err.message}\n${stderr}`));
        else resolve();
      });
    });
    t.diagnostic(`screenshot: ${png}`);
    const image = decodePng(readFileSync(png));
    assert.equal(image.width, 1200);
    assert.equal(image.height, 1600);
    // The page background dominates; the series colours must be clearly present on top of it.
    const background = countNear(image, hexToRgb('#f1f5f9'), 6);
    assert.ok(background > image.width * image.height * 0.2, `background pixels: ${background}`);
    for (const [name, hex] of Object.entries(REPORT_COLORS)) {
      const n = countNear(image, hexToRgb(hex));
      assert.ok(n >= 40, `${name} (${hex}): only ${n} pixels`);
    }
  },
);
