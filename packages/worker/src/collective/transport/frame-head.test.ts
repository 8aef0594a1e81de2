import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFrame, encodeFramedMessage, GRPC_MESSAGE_PREFIX_BYTES } from '@finetune/proto';
import { framedHeadLength, writeFramedHead } from './frame-head.js';

describe('writeFramedHead', () => {
  const headers = [
    { message: 0, messageBytes: 0, offset: 0 },
    { message: 1, messageBytes: 1, offset: 0 },
    { message: 127, messageBytes: 128, offset: 16_383 },
    { message: 128, messageBytes: 4 * 1024 * 1024 + 64, offset: 2 * 1024 * 1024 },
    { message: 2 ** 40 + 3, messageBytes: 2 ** 33, offset: 2 ** 32 + 5 },
  ];

  it('writes exactly the bytes encodeFramedMessage puts before the payload', () => {
    for (const header of headers) {
      for (const n of [0, 1, 7, 8, 127, 128, 16_384, 70_000]) {
        const data = Uint8Array.from({ length: n }, (_, i) => (i * 13 + n) & 0xff);
        const whole = encodeFramedMessage(header, data);
        const out = new Uint8Array(framedHeadLength(header, n) + 3).fill(0xaa);
        const end = writeFramedHead(out, 3, header, n); // at an offset, into a dirty buffer
        assert.equal(end - 3, framedHeadLength(header, n));
        assert.equal(end - 3 + n, whole.byteLength, `header ${JSON.stringify(header)}, ${n} bytes`);
        assert.deepEqual(out.subarray(3, end), new Uint8Array(whole.subarray(0, end - 3)));
        // And the head plus the payload decode as that Frame, the payload 8-byte aligned.
        const framed = Buffer.concat([out.subarray(3, end), data]);
        const frame = decodeFrame(framed.subarray(GRPC_MESSAGE_PREFIX_BYTES));
        assert.deepEqual({ ...frame, data: undefined }, { ...header, data: undefined });
        assert.equal((end - 3) % 8, 0);
      }
    }
  });

  it('refuses a buffer too small for the head', () => {
    const header = { message: 5, messageBytes: 100, offset: 0 };
    assert.throws(() => writeFramedHead(new Uint8Array(framedHeadLength(header, 100) - 1), 0, header, 100), /needs \d+ bytes/);
  });
});
