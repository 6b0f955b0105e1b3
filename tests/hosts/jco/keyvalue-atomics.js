// wasi:keyvalue/atomics over the in-memory store (Node runs the guest on one thread).
export function increment(bucket, key, delta) {
  const current = bucket.get(key);
  const n = (current ? BigInt(new TextDecoder().decode(current)) : 0n) + delta;
  bucket.set(key, new TextEncoder().encode(n.toString()));
  return n;
}
