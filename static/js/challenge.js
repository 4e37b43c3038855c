/*
 * CivicGrid proof-of-work challenge (portal.challenge): find a counter such that
 * SHA-256("<challenge>:<counter>") starts with `bits` zero bits.
 *
 * Uses the browser's Web Crypto (crypto.subtle.digest), many digests at once.
 * Where Web Crypto is missing (a page served over plain http from another
 * machine), a SHA-256 written out from FIPS 180-4 below does the same work in
 * small slices, so the page stays responsive.
 *
 * window.CivicGridChallenge.solve(token, bits) -> Promise<string counter>
 */
(function () {
  "use strict";

  const encoder = new TextEncoder();
  const BATCH = 256;
  const MAX_COUNTER = 2 ** 40;

  function leadingZeroBits(bytes) {
    let bits = 0;
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (b === 0) {
        bits += 8;
        continue;
      }
      return bits + Math.clz32(b) - 24;
    }
    return bits;
  }

  async function solveWithSubtle(token, bits) {
    const prefix = token + ":";
    for (let start = 0; start < MAX_COUNTER; start += BATCH) {
      const pending = [];
      for (let i = 0; i < BATCH; i++) {
        pending.push(crypto.subtle.digest("SHA-256", encoder.encode(prefix + (start + i))));
      }
      const digests = await Promise.all(pending);
      for (let i = 0; i < BATCH; i++) {
        if (leadingZeroBits(new Uint8Array(digests[i])) >= bits) return String(start + i);
      }
    }
    throw new Error("no solution");
  }

  // --- SHA-256 (FIPS 180-4) for browsers without Web Crypto ------------------------------

  function firstPrimes(count) {
    const primes = [];
    for (let n = 2; primes.length < count; n++) {
      if (primes.every((p) => n % p !== 0)) primes.push(n);
    }
    return primes;
  }

  // The constants are the first 32 bits of the fractional parts of the square roots
  // (initial hash) and cube roots (round constants) of the first primes.
  const PRIMES = firstPrimes(64);
  const fraction32 = (x) => Math.floor((x - Math.floor(x)) * 4294967296) >>> 0;
  const K = Uint32Array.from(PRIMES, (p) => fraction32(Math.cbrt(p)));
  const H0 = Uint32Array.from(PRIMES.slice(0, 8), (p) => fraction32(Math.sqrt(p)));
  const W = new Uint32Array(64);

  const rotr = (x, n) => (x >>> n) | (x << (32 - n));

  function sha256(message) {
    const length = message.length;
    const padded = new Uint8Array((((length + 8) >> 6) + 1) << 6);
    padded.set(message);
    padded[length] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(length / 0x20000000));
    view.setUint32(padded.length - 4, (length << 3) >>> 0);
    const H = Uint32Array.from(H0);
    for (let offset = 0; offset < padded.length; offset += 64) {
      for (let t = 0; t < 16; t++) W[t] = view.getUint32(offset + 4 * t);
      for (let t = 16; t < 64; t++) {
        const w15 = W[t - 15];
        const w2 = W[t - 2];
        const s0 = rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >>> 3);
        const s1 = rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >>> 10);
        W[t] = (W[t - 16] + s0 + W[t - 7] + s1) >>> 0;
      }
      let a = H[0], b = H[1], c = H[2], d = H[3], e = H[4], f = H[5], g = H[6], h = H[7];
      for (let t = 0; t < 64; t++) {
        const S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        const ch = (e & f) ^ (~e & g);
        const t1 = (h + S1 + ch + K[t] + W[t]) >>> 0;
        const S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        const maj = (a & b) ^ (a & c) ^ (b & c);
        const t2 = (S0 + maj) >>> 0;
        h = g;
        g = f;
        f = e;
        e = (d + t1) >>> 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) >>> 0;
      }
      H[0] = (H[0] + a) >>> 0;
      H[1] = (H[1] + b) >>> 0;
      H[2] = (H[2] + c) >>> 0;
      H[3] = (H[3] + d) >>> 0;
      H[4] = (H[4] + e) >>> 0;
      H[5] = (H[5] + f) >>> 0;
      H[6] = (H[6] + g) >>> 0;
      H[7] = (H[7] + h) >>> 0;
    }
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    H.forEach((word, i) => outView.setUint32(4 * i, word));
    return out;
  }

  function toHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function solveInSlices(token, bits) {
    const prefix = token + ":";
    const SLICE = 4000;
    for (let start = 0; start < MAX_COUNTER; start += SLICE) {
      for (let counter = start; counter < start + SLICE; counter++) {
        if (leadingZeroBits(sha256(encoder.encode(prefix + counter))) >= bits) return String(counter);
      }
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    throw new Error("no solution");
  }

  function hasSubtle() {
    return Boolean(window.crypto && window.crypto.subtle && window.crypto.subtle.digest);
  }

  window.CivicGridChallenge = {
    solve(token, bits, { fallback = false } = {}) {
      return !fallback && hasSubtle() ? solveWithSubtle(token, bits) : solveInSlices(token, bits);
    },
    sha256Hex: (text) => toHex(sha256(encoder.encode(text))),
    leadingZeroBits,
  };
})();
