import { defineConfig } from 'vite';

// The UI is a static bundle; the deployment it talks to is fetched at run time from
// ./deployment.json or ./deployments/<network>.json (served next to the bundle by scripts/serve.mjs),
// so one build serves any chain.
export default defineConfig({
  base: './',
  build: { outDir: 'dist', target: 'es2022', chunkSizeWarningLimit: 1500 },
  test: { include: ['tests/**/*.test.ts'], environment: 'node' },
});
