import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vitest/config';

// In development the UI runs on :8004 and sends /api/* and /v1/* to the gateway (or to job-api directly):
// FTD_API_URL overrides where.
const api = process.env.FTD_API_URL ?? 'http://127.0.0.1:8000';
// model-server's OpenAI-style API (/v1) is behind the same gateway.
const proxy = {
	'/api': { target: api, changeOrigin: false },
	'/v1': { target: api, changeOrigin: false }
};

// FTD_UI_OUT_DIR (see svelte.config.js): a build of one's own keeps Vite's cache, and so its
// one-build-per-project lock, in that folder too, so it can run beside the default build.
const privateOut = process.env.FTD_UI_OUT_DIR;

export default defineConfig({
	plugins: [sveltekit()],
	...(privateOut ? { cacheDir: `${privateOut}/vite-cache` } : {}),
	server: { host: '127.0.0.1', port: 8004, strictPort: true, proxy },
	preview: { host: '127.0.0.1', port: 8004, strictPort: true, proxy },
	test: {
		include: ['src/**/*.test.ts'],
		environment: 'node'
	}
});
