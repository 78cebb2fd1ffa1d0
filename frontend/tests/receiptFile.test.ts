import { expect, test } from 'vitest';
import { domainMismatch, parseReceiptFile } from '../src/receiptFile';

// The shape pollen/receipts.py writes (Receipt.to_json + signature + domain).
const file = {
  receipt: {
    server: '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc', version_id: 1, first_block: 0, last_block: 4, term: 2, kind: 2,
    session_id: `0x${'ab'.repeat(32)}`, step: 3, input_hash: `0x${'01'.repeat(32)}`, output_hash: `0x${'02'.repeat(32)}`,
    blocks_root: `0x${'03'.repeat(32)}`, issued_at: 1795504421,
  },
  signature: `0x${'11'.repeat(65)}`,
  domain: { chainId: 31337, court: '0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9' },
};
const court = '0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9';

test('parses the client receipt file into the contract struct', () => {
  const s = parseReceiptFile(JSON.stringify(file));
  expect(s.receipt).toEqual({
    server: '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC', versionId: 1n, firstBlock: 0, lastBlock: 4, term: 2, kind: 2,
    sessionId: file.receipt.session_id, step: 3n, inputHash: file.receipt.input_hash, outputHash: file.receipt.output_hash,
    blocksRoot: file.receipt.blocks_root, issuedAt: 1795504421n,
  });
  expect(s.domain).toEqual({ chainId: 31337, court });
  expect(domainMismatch(s, 31337, court)).toBeNull();
});

test('says why a receipt belongs to another deployment', () => {
  const s = parseReceiptFile(JSON.stringify(file));
  expect(domainMismatch(s, 100, court)).toMatch(/signed for chain 31337/);
  expect(domainMismatch(s, 31337, '0x5FbDB2315678afecb367f032d93F642f64180aa3')).toMatch(/not this deployment/);
});

test('rejects broken files with a reason', () => {
  const broken = (patch: (f: typeof file) => unknown) => () => parseReceiptFile(JSON.stringify(patch(structuredClone(file))));
  expect(() => parseReceiptFile('not json')).toThrow(/not JSON/);
  expect(broken(() => ({ hello: 1 }))).toThrow(/no "receipt"/);
  expect(broken((f) => { f.receipt.server = 'nobody'; return f; })).toThrow(/server is not an address/);
  expect(broken((f) => { f.receipt.input_hash = '0x1234'; return f; })).toThrow(/input hash must be 32 bytes/);
  expect(broken((f) => { f.receipt.last_block = 0; return f; })).toThrow(/span is empty/);
  expect(broken((f) => { f.receipt.kind = 3; return f; })).toThrow(/kind 3 is unknown/);
  expect(broken((f) => { f.receipt.blocks_root = '0x00'; return f; })).toThrow(/blocks root must be 32 bytes/);
  expect(broken((f) => { f.signature = '0x12'; return f; })).toThrow(/65-byte/);
  expect(broken((f) => { (f as { domain: unknown }).domain = {}; return f; })).toThrow(/court address/);
});
