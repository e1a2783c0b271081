// Reads a whole HTTP body (request or response) into memory with a bound:
// fails with the caller's own error as soon as the bound is passed, before
// buffering more. Leaving the loop early destroys the stream.
import type { Readable } from 'node:stream';

export async function readBounded(stream: Readable, bytesMax: number, tooLarge: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > bytesMax) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}
