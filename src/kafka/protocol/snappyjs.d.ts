// snappyjs ships no types: the two functions the gateway calls (raw Snappy, no framing).
declare module "snappyjs" {
  /** Decompresses raw Snappy; throws when the declared length passes `maxLength`. */
  export function uncompress(compressed: Uint8Array, maxLength?: number): Uint8Array;
  export function compress(uncompressed: Uint8Array): Uint8Array;
}
