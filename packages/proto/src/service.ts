/**
 * The CollectiveService definition the workers actually serve and call: the generated one
 * (gen/finetune/collective/v1/collective.ts) with Subscribe's response codec replaced by the
 * zero-copy Frame codec of ./frame.ts. Same wire format, same method paths: a client built from
 * the generated CollectiveServiceClient can still talk to it.
 *
 * On the server, Subscribe writes pre-encoded frames (Buffers from encodeFrame), so the payload is
 * copied when the sender encodes it, not later while the frame sits in grpc-js's write queue:
 * the sender's bytes may be reused as soon as encodeFrame returns. The client receives FrameViews.
 */
import {
  type CallOptions,
  type ChannelCredentials,
  type Client,
  type ClientOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  makeGenericClientConstructor,
  type Metadata,
  type ServiceError,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import {
  CollectiveServiceService,
  type PingRequest,
  type PingResponse,
  type StatusRequest,
  type StatusResponse,
  type SubscribeRequest,
} from './gen/finetune/collective/v1/collective.js';
import { decodeFrame, type FrameView } from './frame.js';

export const COLLECTIVE_SERVICE_NAME = 'finetune.collective.v1.CollectiveService';

export const collectiveServiceDefinition = {
  ...CollectiveServiceService,
  subscribe: {
    ...CollectiveServiceService.subscribe,
    /** Frames arrive already encoded by encodeFrame. */
    responseSerialize: (value: Buffer): Buffer => value,
    responseDeserialize: (value: Buffer): FrameView => decodeFrame(value),
  },
} as const;

/** Server handlers for collectiveServiceDefinition. */
export interface CollectiveServiceHandlers extends UntypedServiceImplementation {
  /** Writes Buffers produced by encodeFrame. */
  subscribe: handleServerStreamingCall<SubscribeRequest, Buffer>;
  ping: handleUnaryCall<PingRequest, PingResponse>;
  status: handleUnaryCall<StatusRequest, StatusResponse>;
}

export interface CollectivePeerClient extends Client {
  subscribe(request: SubscribeRequest, metadata?: Metadata, options?: Partial<CallOptions>): ClientReadableStream<FrameView>;
  ping(
    request: PingRequest,
    metadata: Metadata,
    options: Partial<CallOptions>,
    callback: (error: ServiceError | null, response?: PingResponse) => void,
  ): ClientUnaryCall;
  status(
    request: StatusRequest,
    metadata: Metadata,
    options: Partial<CallOptions>,
    callback: (error: ServiceError | null, response?: StatusResponse) => void,
  ): ClientUnaryCall;
}

/** Client constructor for collectiveServiceDefinition. */
export const CollectivePeerClient = makeGenericClientConstructor(
  collectiveServiceDefinition,
  COLLECTIVE_SERVICE_NAME,
) as unknown as {
  new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>): CollectivePeerClient;
  service: typeof collectiveServiceDefinition;
  serviceName: string;
};
