#!/usr/bin/env node
// The `borealis` command: loads the TypeScript sources through tsx so that the
// repository runs as checked out, with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
