// Ships the kernel fragment and the init's C source inside dist/: the init is compiled on the host
// (gcc -static) into the cache on first use, so that it always matches the host side's protocol.
import { cpSync } from 'node:fs';

cpSync('kernel', 'dist/kernel', { recursive: true });
cpSync('native', 'dist/native', { recursive: true });
