/**
 * The head of a gRPC-framed `Frame` message: everything encodeFramedMessage (@finetune/proto)
 * writes before the payload bytes: the 5-byte gRPC prefix, the header fields, the alignment
 * padding and the tag + length of `data`. The zero-copy send path writes this small head from a
 * reused buffer and the payload straight from the caller's memory, as consecutive writes of one
 * gRPC message: the bytes on the wire are exactly those of encodeFramedMessage (tested), the
 * payload is never copied in user space.
 */
import { frameHeaderLength, GRPC_MESSAGE_PREFIX_BYTES, type FrameHeader } from '@finetune/proto';

const TAG_MESSAGE = (1 << 3) | 0;
const TAG_MESSAGE_BYTES = (2 << 3) | 0;
const TAG_OFFSET = (3 << 3) | 0;
const TAG_DATA = (4 << 3) | 2;
const TAG_PADDING = (15 << 3) | 2;

/** Bytes of the head for this header and payload length (at most ~60). */
export function framedHeadLength(header: FrameHeader, dataLength: number): number {
  return GRPC_MESSAGE_PREFIX_BYTES + frameHeaderLength(header, dataLength);
}

function writeVarint(out: Uint8Array, pos: number, value: number): number {
  while (value >= 0x80) {
    out[pos++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[pos++] = value;
  return pos;
}

/**
 * Writes the head of a framed Frame whose payload has `dataLength` bytes into `out` at `at`;
 * returns where the payload starts. `out` must hold framedHeadLength bytes from `at`.
 */
export function writeFramedHead(out: Uint8Array, at: number, header: FrameHeader, dataLength: number): number {
  const frameHead = frameHeaderLength(header, dataLength);
  const frameLength = frameHead + dataLength;
  if (frameLength > 0xffffffff) throw new RangeError(`a gRPC message holds at most 2^32-1 bytes, this Frame has ${frameLength}`);
  const end = at + GRPC_MESSAGE_PREFIX_BYTES + frameHead;
  if (end > out.byteLength) throw new RangeError(`writeFramedHead needs ${end - at} bytes at ${at}, the buffer holds ${out.byteLength}`);
  out[at] = 0; // not compressed
  out[at + 1] = frameLength >>> 24;
  out[at + 2] = (frameLength >>> 16) & 0xff;
  out[at + 3] = (frameLength >>> 8) & 0xff;
  out[at + 4] = frameLength & 0xff;
  let pos = at + GRPC_MESSAGE_PREFIX_BYTES;
  // Field order and padding as encodeFrame: message, message_bytes, offset, padding, data.
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
  let lengthBytes = 1;
  for (let v = dataLength; v >= 0x80; v = Math.floor(v / 128)) lengthBytes++;
  const padding = end - pos - 2 - 1 - lengthBytes;
  out[pos++] = TAG_PADDING;
  out[pos++] = padding;
  out.fill(0, pos, pos + padding);
  pos += padding;
  out[pos++] = TAG_DATA;
  pos = writeVarint(out, pos, dataLength);
  return pos;
}
