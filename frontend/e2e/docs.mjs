// Every service's interactive docs through the gateway, in Debian's Chromium (never a downloaded
// one): /docs/<service> renders its operations, "Authorize" takes a user token, and "Try it out" +
// "Execute" on one of its list routes answers 200 with that token. Any request to a host other
// than the gateway's is refused and fails the run (the docs must work offline).
//
// Run by tests/e2e/test_e2e_docs.py against its stack:
//   E2E_BASE_URL=http://127.0.0.1:<gateway> E2E_TOKEN=<jwt> \
//   E2E_DOCS='[{"service": "job-api", "list": "/api/finetune/jobs"}, ...]' node e2e/docs.mjs
// It prints one JSON line per service and exits non-zero on the first failure.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const env = process.env;
const baseUrl = (env.E2E_BASE_URL ?? '').replace(/\/+$/, '');
const token = env.E2E_TOKEN ?? '';
const pages = JSON.parse(env.E2E_DOCS ?? '[]');
if (!baseUrl || !token || pages.length === 0) {
	throw new Error('Set E2E_BASE_URL, E2E_TOKEN and E2E_DOCS (see the header of this file).');
}
const origin = new URL(baseUrl);
assert.equal(origin.hostname, '127.0.0.1', 'the docs are checked on the loopback only');
const TIMEOUT = 30_000;

const browser = await chromium.launch({
	executablePath: env.E2E_CHROMIUM ?? '/usr/bin/chromium',
	headless: true,
	args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
});
const outside = [];
try {
	for (const { service, list } of pages) {
		// A context of its own per page: Swagger UI keeps the token (persistAuthorization) in the
		// origin's storage, which every page behind the gateway shares.
		const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
		// Every request the page makes: anything not for 127.0.0.1 is refused and recorded.
		await context.route('**/*', (route) => {
			const url = new URL(route.request().url());
			if (url.hostname === '127.0.0.1') return route.continue();
			outside.push(url.href);
			return route.abort('blockedbyclient');
		});
		console.log(JSON.stringify(await check(context, service, list)));
		await context.close();
	}
	assert.deepEqual(outside, [], 'no request leaves the machine');
} finally {
	await browser.close();
}

async function check(context, service, list) {
	const page = await context.newPage();
	const requests = [];
	const failed = [];
	const errors = [];
	page.on('request', (r) => requests.push(new URL(r.url()).pathname));
	page.on('response', (r) => {
		if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
	});
	page.on('pageerror', (e) => errors.push(e.message));
	const docs = await page.goto(`${baseUrl}/docs/${service}`, { waitUntil: 'load' });
	assert.equal(docs?.status(), 200, `${service}: /docs/${service}`);

	// Its operations render (the document and Swagger UI's own files came through the gateway).
	const operations = page.locator('.opblock');
	await operations.first().waitFor({ timeout: TIMEOUT });
	const count = await operations.count();
	assert.ok(count > 0, `${service}: operations render`);
	assert.ok(requests.includes(`/openapi/${service}.json`), `${service}: its document, ${requests}`);
	for (const asset of ['swagger-ui-bundle.js', 'swagger-ui.css']) {
		assert.ok(requests.includes(`/docs-assets/${service}/${asset}`), `${service}: ${asset}`);
	}
	const title = await page.locator('.info .title').innerText();
	assert.match(title, new RegExp(service), `${service}: its own document (${title})`);

	// Authorize with a bearer token (the user token scheme; job-api also lists the workers' one).
	await page.locator('.auth-wrapper button.authorize').click();
	const modal = page.locator('.modal-ux');
	const scheme = modal.locator('.auth-container').filter({ hasText: 'userToken' });
	await scheme.locator('input[aria-label="auth-bearer-value"]').fill(token);
	await scheme.locator('button.modal-btn.authorize').click();
	await scheme.getByText('Authorized', { exact: true }).waitFor({ timeout: TIMEOUT });
	await modal.locator('button.btn-done').first().click();
	await modal.waitFor({ state: 'detached', timeout: TIMEOUT });

	// Try it out + Execute on a list route: 200, with the token it was given.
	const operation = page
		.locator('.opblock.opblock-get')
		.filter({ has: page.locator(`.opblock-summary-path[data-path="${list}"]`) });
	await operation.locator('.opblock-summary-control').first().click();
	await operation.locator('button.try-out__btn').click();
	const sent = page.waitForRequest((r) => new URL(r.url()).pathname === list && r.method() === 'GET', {
		timeout: TIMEOUT
	});
	await operation.locator('button.execute').click();
	const request = await sent;
	assert.equal(await request.headerValue('authorization'), `Bearer ${token}`, `${service}: token`);
	const answer = await request.response();
	assert.equal(answer?.status(), 200, `${service}: GET ${list} answers ${answer?.status()}`);
	const status = operation.locator('.live-responses-table tr.response .response-col_status').first();
	await status.waitFor({ timeout: TIMEOUT });
	assert.equal((await status.innerText()).trim(), '200', `${service}: the page shows 200`);

	assert.deepEqual(errors, [], `${service}: no script errors`);
	// Execute's answer is the only request of the page allowed to be 4xx/5xx: none here.
	assert.deepEqual(failed, [], `${service}: no failed request`);
	return { service, operations: count, executed: list, status: answer?.status() };
}
