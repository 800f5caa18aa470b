// Browser harness for the end-to-end tests: one Chromium (Debian's, never a downloaded one),
// screenshots wide and narrow, an axe-core check per page, and a record of console errors.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

export const WIDE = { width: 1366, height: 900 };
export const NARROW = { width: 390, height: 844 };

export function config() {
	const env = process.env;
	const baseUrl = (env.E2E_BASE_URL ?? '').replace(/\/+$/, '');
	if (!baseUrl) throw new Error('Set E2E_BASE_URL (the UI, with /api/* behind the same origin).');
	if (!env.E2E_TOKEN) throw new Error('Set E2E_TOKEN (a user JWT, e.g. `make token SUB=e2e`).');
	const worker = env.E2E_WORKER ?? 'real';
	if (worker !== 'real' && worker !== 'http') throw new Error('E2E_WORKER is "real" or "http".');
	if (worker === 'http' && !env.E2E_WORKER_KEY) throw new Error('E2E_WORKER=http needs E2E_WORKER_KEY.');
	return {
		baseUrl,
		token: env.E2E_TOKEN,
		out: env.E2E_OUT ?? 'e2e-output',
		chromium: env.E2E_CHROMIUM ?? '/usr/bin/chromium',
		worker,
		workerKey: env.E2E_WORKER_KEY ?? null,
		allowMissing: new Set(
			(env.E2E_ALLOW_MISSING ?? '')
				.split(',')
				.map((s) => s.trim())
				.filter(Boolean)
		),
		jobType: env.E2E_JOB_TYPE ?? 'embedding',
		provider: env.E2E_PROVIDER ?? 'local',
		dataUrl: env.E2E_DATA_URL ?? 'https://data.example.com/train.csv',
		jobTimeoutMs: Number(env.E2E_JOB_TIMEOUT_S ?? 900) * 1000
	};
}

export async function launch(cfg) {
	await mkdir(join(cfg.out, 'screenshots'), { recursive: true });
	const browser = await chromium.launch({
		executablePath: cfg.chromium,
		headless: true,
		args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage']
	});
	const context = await browser.newContext({ viewport: WIDE, baseURL: cfg.baseUrl });
	// make test runs these flows beside the rest of the suite on two cores: an action or a page
	// may wait longer there than playwright's 30 s default without anything being wrong.
	context.setDefaultTimeout(60_000);
	await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: cfg.baseUrl });
	const page = await context.newPage();
	const h = new Harness(cfg, browser, page);
	page.on('console', (msg) => {
		if (msg.type() === 'error')
			h.console.push({ text: msg.text(), url: msg.location()?.url ?? '', page: page.url() });
	});
	page.on('pageerror', (err) =>
		h.console.push({ text: `uncaught: ${err.message}`, url: '', page: page.url() })
	);
	page.on('response', (res) => {
		if (res.status() >= 400) h.failedResponses.push({ status: res.status(), url: res.url() });
	});
	return h;
}

const axeSource = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');

class Harness {
	constructor(cfg, browser, page) {
		this.cfg = cfg;
		this.browser = browser;
		this.page = page;
		this.console = [];
		this.failedResponses = [];
		this.expectedFailures = [];
		this.axe = {};
		this.overflow = {};
	}

	/** Marks 4xx answers a step provokes on purpose (their console line is not an error). */
	expectFailure(pattern, status) {
		this.expectedFailures.push({ pattern, status });
	}

	unexpectedConsoleErrors() {
		return this.console.filter((c) => {
			const m = /the server responded with a status of (\d+)/.exec(c.text);
			if (!m) return true;
			const status = Number(m[1]);
			return !this.expectedFailures.some((f) => f.status === status && f.pattern.test(c.url));
		});
	}

	/** Full-page screenshots wide and narrow, a horizontal-overflow check when narrow, and axe. */
	async capture(name) {
		const { page } = this;
		// Not 'networkidle': the live event stream keeps a request open for good.
		await page.evaluate(() => document.fonts.ready);
		await page.waitForTimeout(300); // transitions (progress bars) settle
		const dir = join(this.cfg.out, 'screenshots');
		await page.screenshot({ path: join(dir, `${name}-wide.png`), fullPage: true });
		this.axe[name] = await this.runAxe();
		await page.setViewportSize(NARROW);
		await page.waitForTimeout(150); // layout and chart resize observers settle
		await page.screenshot({ path: join(dir, `${name}-narrow.png`), fullPage: true });
		this.overflow[name] = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
		const narrowAxe = await this.runAxe();
		this.axe[`${name}-narrow`] = narrowAxe;
		await page.setViewportSize(WIDE);
	}

	async runAxe() {
		// Evaluated through the debugger protocol, so the app's Content-Security-Policy stays on.
		await this.page.evaluate(axeSource);
		return this.page.evaluate(async () => {
			// @ts-expect-error axe is injected above
			const result = await window.axe.run(document, { resultTypes: ['violations'] });
			return result.violations.map((v) => ({
				id: v.id,
				impact: v.impact,
				help: v.help,
				nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' '))
			}));
		});
	}

	seriousAxeViolations() {
		return Object.entries(this.axe).flatMap(([page, vs]) =>
			vs.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => ({ page, ...v }))
		);
	}

	async writeReport(extra = {}) {
		const report = {
			baseUrl: this.cfg.baseUrl,
			worker: this.cfg.worker,
			axe: this.axe,
			overflow: this.overflow,
			console: this.console,
			unexpectedConsoleErrors: this.unexpectedConsoleErrors(),
			...extra
		};
		await writeFile(join(this.cfg.out, 'report.json'), JSON.stringify(report, null, 2));
	}

	async close() {
		await this.browser.close();
	}
}

/** Polls `fn` until it returns a truthy value; fails after `timeoutMs` with `what`. */
export async function eventually(fn, { timeoutMs = 30_000, intervalMs = 250, what = 'condition' } = {}) {
	const deadline = Date.now() + timeoutMs;
	let last;
	for (;;) {
		try {
			const value = await fn();
			if (value) return value;
		} catch (e) {
			last = e;
		}
		if (Date.now() > deadline)
			throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
		await new Promise((r) => setTimeout(r, intervalMs));
	}
}

/** Direct API calls the test makes besides the browser (probing services, the HTTP worker). */
export async function apiCall(cfg, method, path, { token = cfg.token, body } = {}) {
	const res = await fetch(`${cfg.baseUrl}${path}`, {
		method,
		headers: {
			...(token ? { Authorization: `Bearer ${token}` } : {}),
			...(body ? { 'Content-Type': 'application/json' } : {})
		},
		body: body ? JSON.stringify(body) : undefined
	});
	const text = await res.text();
	let json = null;
	try {
		json = text ? JSON.parse(text) : null;
	} catch {
		json = null;
	}
	return { status: res.status, body: json };
}
