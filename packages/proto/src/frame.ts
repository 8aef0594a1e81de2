/**
 * Hand-written codec for the bulk `Frame` message (finetune.collective.v1.Frame).
 *
 * ts-proto's generated codec copies `data` three times on the way out (BinaryWriter chunks →
 * finish() → Buffer.from) and once on the way in (Buffer.from(reader.bytes())). For gradients
 * that is most of the cost of a ring step, so the data plane uses this codec instead: encoding
 * copies `data` once into the output buffer, decoding returns `data` as a view into the received
 * buffer. The bytes on the wire are an ordinary protobuf encoding of Frame (the tests decode them
 * with the generated codec and vice versa).
 *
 * The encoder also writes the `padding` field so that `data` starts at a multiple of 8 bytes from
 * the start of the gRPC length-prefixed message (5-byte prefix + protobuf header). grpc-js hands
 * the deserializer a view at offset 5 of a buffer it allocated 8-aligned, so the receiver can
 * view the payload as a Float32Array or Float64Array without copying.
 */

/** Header fields of a Frame (everything but the payload). */
export interface FrameHeader {
  /** Index of the message on the link, counting from 0. */
  message: number;
  /** Length in bytes of the whole message. */
  messageBytes: number;
  /** Offset of this frame's data within the message. */
  offset: number;
}

/** A decoded Frame whose `data` is a view into the buffer it was decoded from. */
export interface FrameView extends FrameHeader {
  data: Uint8Array;
}

/** Length of the gRPC message prefix (compressed flag + 4-byte length) that precedes a message. */
export const GRPC_MESSAGE_PREFIX_BYTES = 5;
/** `data` of an encoded Frame starts at this alignment, counted from the gRPC message prefix. */
export const FRAME_DATA_ALIGNMENT = 8;

const TAG_MESSAGE = (1 << 3) | 0; // varint
const TAG_MESSAGE_BYTES = (2 << 3) | 0;
const TAG_OFFSET = (3 << 3) | 0;
const TAG_DATA = (4 << 3) | 2; // length-delimited
const TAG_PADDING = (15 << 3) | 2;

function varintLength(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Uint8Array, pos: number, value: number): number {
  while (value >= 0x80) {
    buf[pos++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  buf[pos++] = value;
  return pos;
}

function checkUint(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`Frame.${name} must be a non-negative safe integer, got ${value}`);
  }
}

/** Bytes that encodeFrame writes before `data` for this header and payload length. */
export function frameHeaderLength(header: FrameHeader, dataLength: number): number {
  let base = 0;
  if (header.message !== 0) base += 1 + varintLength(header.message);
  if (header.messageBytes !== 0) base += 1 + varintLength(header.messageBytes);
  if (header.offset !== 0) base += 1 + varintLength(header.offset);
  base += 1 + varintLength(dataLength);
  // padding field: tag + 1-byte length + k zero bytes, k in [0, 8).
  const unpadded = GRPC_MESSAGE_PREFIX_BYTES + base + 2;
  const k = (FRAME_DATA_ALIGNMENT - (unpadded % FRAME_DATA_ALIGNMENT)) % FRAME_DATA_ALIGNMENT;
  return base + 2 + k;
}

/** Bytes encodeFrame writes for this header and payload length. */
export function encodedFrameLength(header: FrameHeader, dataLength: number): number {
  return frameHeaderLength(header, dataLength) + dataLength;
}

/**
 * Writes the Frame fields that precede `data` (message, message_bytes, offset, padding, then the
 * tag and length of data) at `pos`; returns where `data` starts.
 */
function writeFrameFields(out: Uint8Array, pos: number, header: FrameHeader, dataLength: number): number {
  const end = pos + frameHeaderLength(header, dataLength);
  if (header.message !== 0) {
    out[pos++] = TAG_MESSAGE;
    pos = writeVarint(out, pos, header.message);
  }
  if (header.messageBytes !== 0) {
    out[pos++] = TAG_MESSAGE_BYTES;
    pos = writeVarint(out, pos, header.messageBytes);
  }
  if (header.offset !== 0) {
    out[pos++] = TAG_OFFSET;
    pos = writeVarint(out, pos, header.offset);
  }
  const padding = end - pos - 2 - (1 + varintLength(dataLength));
  out[pos++] = TAG_PADDING;
  out[pos++] = padding;
  out.fill(0, pos, pos + padding);
  pos += padding;
  out[pos++] = TAG_DATA;
  return writeVarint(out, pos, dataLength);
}

function checkHeader(header: FrameHeader): void {
  checkUint('message', header.message);
  checkUint('messageBytes', header.messageBytes);
  checkUint('offset', header.offset);
}

/**
 * Encodes a Frame, copying `data` once, into `into` when given (which must hold
 * encodedFrameLength bytes; the result is then a view of its start) or else into a new Buffer.
 * Fields are written in the order message, message_bytes, offset, padding, data.
 */
export function encodeFrame(header: FrameHeader, data: Uint8Array, into?: Buffer): Buffer {
  checkHeader(header);
  const length = encodedFrameLength(header, data.byteLength);
  if (into && into.byteLength < length) throw new RangeError(`encodeFrame needs ${length} bytes, the buffer holds ${into.byteLength}`);
  const out = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
  out.set(data, writeFrameFields(out, 0, header, data.byteLength));
  return out;
}

/** Bytes encodeFramedMessage writes: the gRPC message prefix plus the encoded Frame. */
export function framedMessageLength(header: FrameHeader, dataLength: number): number {
  return GRPC_MESSAGE_PREFIX_BYTES + encodedFrameLength(header, dataLength);
}

/** Bytes of the head of a framed message (all of it but the payload; at most ~60). */
export function framedHeadLength(header: FrameHeader, dataLength: number): number {
  return GRPC_MESSAGE_PREFIX_BYTES + frameHeaderLength(header, dataLength);
}

/**
 * Writes the head of a framed Frame whose payload has `dataLength` bytes (the gRPC prefix and the
 * Frame fields before `data`) into `out` at `at`; returns where the payload starts. The zero-copy
 * send path writes this small head from a reused buffer and the payload straight from the caller's
 * memory, as consecutive writes of one gRPC message: the bytes on the wire are exactly those of
 * encodeFramedMessage, and the payload is never copied in user space.
 */
export function writeFramedHead(out: Uint8Array, at: number, header: FrameHeader, dataLength: number): number {
  checkHeader(header);
  const frameLength = encodedFrameLength(header, dataLength);
  if (frameLength > 0xffffffff) throw new RangeError(`a gRPC message holds at most 2^32-1 bytes, this Frame has ${frameLength}`);
  const end = at + framedHeadLength(header, dataLength);
  if (end > out.byteLength) throw new RangeError(`writeFramedHead needs ${end - at} bytes at ${at}, the buffer holds ${out.byteLength}`);
  out[at] = 0; // not compressed
  out[at + 1] = frameLength >>> 24;
  out[at + 2] = (frameLength >>> 16) & 0xff;
  out[at + 3] = (frameLength >>> 8) & 0xff;
  out[at + 4] = frameLength & 0xff;
  return writeFrameFields(out, at + GRPC_MESSAGE_PREFIX_BYTES, header, dataLength);
}

/**
 * Encodes a Frame as a complete gRPC length-prefixed message (flag byte 0, 4-byte big-endian
 * length, then the Frame as encodeFrame writes it), copying `data` once, into `into` when given
 * (a view of its start is returned) or else into a new Buffer. A server that writes this buffer
 * as-is (see the collective transport, which skips grpc-js's own prefixing copy) puts exactly the
 * bytes on the wire that grpc-js would have; `data` then starts FRAME_DATA_ALIGNMENT-aligned from
 * the start of the returned buffer.
 */
export function encodeFramedMessage(header: FrameHeader, data: Uint8Array, into?: Buffer): Buffer {
  const length = framedMessageLength(header, data.byteLength);
  if (length - GRPC_MESSAGE_PREFIX_BYTES > 0xffffffff) throw new RangeError(`a gRPC message holds at most 2^32-1 bytes, this Frame has ${length - GRPC_MESSAGE_PREFIX_BYTES}`);
  if (into && into.byteLength < length) throw new RangeError(`encodeFramedMessage needs ${length} bytes, the buffer holds ${into.byteLength}`);
  const out = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
  out.set(data, writeFramedHead(out, 0, header, data.byteLength));
  return out;
}

class FrameDecodeError extends Error {
  override readonly name = 'FrameDecodeError';
}

/**
 * Decodes a Frame from any valid protobuf encoding; `data` is a view into `buf` (no copy).
 * Unknown fields are skipped.
 */
export function decodeFrame(buf: Uint8Array): FrameView {
  const frame: FrameView = { message: 0, messageBytes: 0, offset: 0, data: new Uint8Array(0) };
  let pos = 0;
  const end = buf.byteLength;
  const readVarint = (): number => {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) throw new FrameDecodeError('truncated varint in Frame');
      const byte = buf[pos++]!;
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(result)) throw new FrameDecodeError('Frame field exceeds 2^53');
        return result;
      }
      scale *= 128;
    }
    throw new FrameDecodeError('malformed varint in Frame');
  };
  while (pos < end) {
    const tag = readVarint();
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (wireType === 0) {
      const value = readVarint();
      if (field === 1) frame.message = value;
      else if (field === 2) frame.messageBytes = value;
      else if (field === 3) frame.offset = value;
    } else if (wireType === 2) {
      const length = readVarint();
      if (pos + length > end) throw new FrameDecodeError('truncated bytes field in Frame');
      if (field === 4) frame.data = new Uint8Array(buf.buffer, buf.byteOffset + pos, length);
      pos += length;
    } else if (wireType === 1) {
      pos += 8;
    } else if (wireType === 5) {
      pos += 4;
    } else {
      throw new FrameDecodeError(`unsupported wire type ${wireType} in Frame`);
    }
  }
  if (pos > end) throw new FrameDecodeError('truncated Frame');
  return frame;
}
