import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

// FTD_UI_OUT_DIR: build (and `vite preview`) in a folder of one's own instead of build/ and
// .svelte-kit/, so that builds running at once (the test suite's stacks) cannot overwrite each other.
// It must lie inside this folder (the built server code resolves its packages from node_modules/):
// the tests use .private-builds/<name>.
const privateOut = process.env.FTD_UI_OUT_DIR;
const pages = privateOut ? `${privateOut}/build` : 'build';

/** @type {import('@sveltejs/kit').Config} */
const config = {
	preprocess: vitePreprocess(),
	kit: {
		// A single-page app: plain files the gateway serves at `/`, with index.html as the
		// fallback for every client-side route (/finetune/<id>, /models, ...).
		adapter: adapter({ pages, assets: pages, fallback: 'index.html', strict: true }),
		...(privateOut ? { outDir: `${privateOut}/svelte-kit` } : {}),
		csp: {
			mode: 'hash',
			directives: {
				'default-src': ['self'],
				'script-src': ['self'],
				'style-src': ['self', 'unsafe-inline'],
				'img-src': ['self', 'data:'],
				'connect-src': ['self'],
				'object-src': ['none'],
				'base-uri': ['self']
			}
		}
	}
};

export default config;
