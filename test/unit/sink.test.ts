// In-process tests of src/io/sink: how a writer learns that its stream is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { OutputClosedError } from '../../src/errors';
import { Sink } from '../../src/io/sink';

test('a write to a stream destroyed without an error fails at once instead of waiting for a drain that never comes', async () => {
  const stream = new PassThrough({ highWaterMark: 16 });
  const sink = new Sink(stream, 'the test reader');
  await sink.write(Buffer.alloc(8));
  stream.destroy();
  await new Promise((resolve) => stream.once('close', resolve));
  assert.ok(stream.destroyed, 'the stream was never destroyed');
  // Without the check this promise never settles, and node:test reports the test as cancelled.
  await assert.rejects(sink.write(Buffer.alloc(64)), (err: unknown) => err instanceof OutputClosedError && /the test reader/.test(err.message));
});
