import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Frame } from './gen/finetune/collective/v1/collective.js';
import { collectiveServiceDefinition } from './service.js';
import { decodeFrame, encodeFrame, encodedFrameLength, encodeFramedMessage, framedHeadLength, writeFramedHead, FRAME_DATA_ALIGNMENT, GRPC_MESSAGE_PREFIX_BYTES } from './frame.js';

function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

const headers = [
  { message: 0, messageBytes: 0, offset: 0 },
  { message: 1, messageBytes: 300, offset: 0 },
  { message: 127, messageBytes: 128, offset: 16383 },
  { message: 2 ** 40 + 3, messageBytes: 2 ** 33, offset: 2 ** 32 + 5 },
  { message: Number.MAX_SAFE_INTEGER, messageBytes: 1, offset: 0 },
];

describe('Frame codec', { timeout: 10_000 }, () => {
  it('is read identically by the generated ts-proto codec', () => {
    for (const header of headers) {
      for (const n of [0, 1, 7, 127, 128, 16384, 70_000]) {
        const data = bytes(n, header.message % 251);
        const decoded = Frame.decode(encodeFrame(header, data));
        assert.equal(decoded.message, header.message);
        assert.equal(decoded.messageBytes, header.messageBytes);
        assert.equal(decoded.offset, header.offset);
        assert.deepEqual(new Uint8Array(decoded.data), data);
      }
    }
  });

  it('reads what the generated codec writes', () => {
    for (const header of headers) {
      const data = bytes(1000, 7);
      const encoded = Frame.encode({ ...header, data: Buffer.from(data), padding: Buffer.alloc(3) }).finish();
      const view = decodeFrame(encoded);
      assert.deepEqual({ ...view, data: undefined }, { ...header, data: undefined });
      assert.deepEqual(view.data, data);
    }
  });

  it('aligns data to 8 bytes after the gRPC prefix and decodes it as a view', () => {
    for (const header of headers) {
      for (const n of [0, 3, 4096]) {
        const encoded = encodeFrame(header, bytes(n));
        // grpc-js prefixes 5 bytes and hands the deserializer a view at offset 5 of an 8-aligned buffer.
        const framed = Buffer.alloc(GRPC_MESSAGE_PREFIX_BYTES + encoded.length);
        encoded.copy(framed, GRPC_MESSAGE_PREFIX_BYTES);
        const view = collectiveServiceDefinition.subscribe.responseDeserialize(framed.subarray(GRPC_MESSAGE_PREFIX_BYTES));
        assert.equal((view.data.byteOffset - framed.byteOffset) % FRAME_DATA_ALIGNMENT, 0);
        assert.equal(view.data.buffer, framed.buffer, 'data must be a view, not a copy');
        assert.deepEqual(view.data, bytes(n));
      }
    }
  });

  it('encodes into a given buffer', () => {
    const header = { message: 5, messageBytes: 1 << 20, offset: 4096 };
    const data = bytes(1000, 3);
    const into = Buffer.alloc(2000, 0xee);
    const encoded = encodeFrame(header, data, into);
    assert.equal(encoded.buffer, into.buffer);
    assert.equal(encoded.byteOffset, into.byteOffset);
    assert.equal(encoded.byteLength, encodedFrameLength(header, data.byteLength));
    assert.deepEqual(encoded, encodeFrame(header, data));
    assert.throws(() => encodeFrame(header, data, Buffer.alloc(100)), /needs \d+ bytes/);
  });

  it('rejects values that are not non-negative safe integers and truncated input', () => {
    assert.throws(() => encodeFrame({ message: -1, messageBytes: 0, offset: 0 }, bytes(1)), /non-negative safe integer/);
    assert.throws(() => encodeFrame({ message: 0.5, messageBytes: 0, offset: 0 }, bytes(1)), /non-negative safe integer/);
    const encoded = encodeFrame({ message: 3, messageBytes: 10, offset: 0 }, bytes(10));
    assert.throws(() => decodeFrame(encoded.subarray(0, encoded.length - 1)), /truncated/);
  });
});

describe('writeFramedHead', () => {
  const headers = [
    { message: 0, messageBytes: 0, offset: 0 },
    { message: 1, messageBytes: 1, offset: 0 },
    { message: 127, messageBytes: 128, offset: 16_383 },
    { message: 128, messageBytes: 4 * 1024 * 1024 + 64, offset: 2 * 1024 * 1024 },
    { message: 2 ** 40 + 3, messageBytes: 2 ** 33, offset: 2 ** 32 + 5 },
  ];

  it('writes a gRPC prefix and Frame head that, followed by the payload, the generated codec decodes', () => {
    for (const header of headers) {
      for (const n of [0, 1, 7, 8, 127, 128, 16_384, 70_000]) {
        const data = Uint8Array.from({ length: n }, (_, i) => (i * 13 + n) & 0xff);
        const whole = encodeFramedMessage(header, data);
        const out = new Uint8Array(framedHeadLength(header, n) + 3).fill(0xaa);
        const end = writeFramedHead(out, 3, header, n); // at an offset, into a dirty buffer
        assert.equal(end - 3, framedHeadLength(header, n));
        assert.equal(end - 3 + n, whole.byteLength, `header ${JSON.stringify(header)}, ${n} bytes`);
        assert.deepEqual(out.subarray(3, end), new Uint8Array(whole.subarray(0, end - 3)));
        // The head plus the payload: a gRPC message whose length prefix is right and which ts-proto's
        // codec decodes as that Frame; the payload 8-byte aligned.
        const framed = Buffer.concat([out.subarray(3, end), data]);
        assert.equal(framed[0], 0, 'not compressed');
        assert.equal(framed.readUInt32BE(1), framed.byteLength - GRPC_MESSAGE_PREFIX_BYTES);
        const frame = Frame.decode(framed.subarray(GRPC_MESSAGE_PREFIX_BYTES));
        assert.deepEqual([frame.message, frame.messageBytes, frame.offset], [header.message, header.messageBytes, header.offset]);
        assert.deepEqual(new Uint8Array(frame.data), data);
        assert.equal((end - 3) % 8, 0);
      }
    }
  });

  it('refuses a buffer too small for the head', () => {
    const header = { message: 5, messageBytes: 100, offset: 0 };
    assert.throws(() => writeFramedHead(new Uint8Array(framedHeadLength(header, 100) - 1), 0, header, 100), /needs \d+ bytes/);
  });
});
