// wasi:keyvalue/store for the second host (preview2-shim has none): one
// in-memory map per bucket name, for the life of the Node process.
const buckets = new Map();
export class Bucket {
  constructor(map) { this.map = map; }
  get(key) { return this.map.get(key); }
  set(key, value) { this.map.set(key, value); }
  delete(key) { this.map.delete(key); }
}
export function open(identifier) {
  if (!buckets.has(identifier)) buckets.set(identifier, new Bucket(new Map()));
  return buckets.get(identifier);
}
