// Browser steps for webhooks: add one that points at a receiver this test runs on the loopback
// (the stack lets webhook-service call http://127.0.0.1), its signing secret shown once, a test
// ping delivered and listed in the delivery log, the request it made verified with that secret
// (Standard Webhooks: HMAC-SHA256 of `id.timestamp.body`), disable and enable, a rotated secret
// signing from then on, and deletion after a confirmation. A refused URL shows the service's
// sentence. flows.test.mjs registers these steps in its run.
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { apiCall, eventually } from './harness.mjs';

/** A receiver on 127.0.0.1 that records every request (headers and the exact body) and answers 200. */
async function startReceiver() {
	const received = [];
	const server = createServer((req, res) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => {
			received.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
			res.writeHead(200, { 'Content-Type': 'text/plain' });
			res.end('ok');
		});
	});
	await new Promise((done) => server.listen(0, '127.0.0.1', done));
	const { port } = server.address();
	return {
		url: `http://127.0.0.1:${port}/hooks/ftd`,
		received,
		close: () => new Promise((d) => server.close(d))
	};
}

/** Standard Webhooks: does one of the `v1,<base64>` signatures match this secret? */
export function verifies(secret, headers, body) {
	const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
	const signed = `${headers['webhook-id']}.${headers['webhook-timestamp']}.${body.toString('utf8')}`;
	const expected = createHmac('sha256', key).update(signed).digest();
	return String(headers['webhook-signature'] ?? '')
		.split(' ')
		.filter((s) => s.startsWith('v1,'))
		.some((s) => {
			const got = Buffer.from(s.slice(3), 'base64');
			return got.length === expected.length && timingSafeEqual(got, expected);
		});
}

/**
 * @param {object} ctx
 * @param {() => any} ctx.h the harness (set once the browser is up)
 * @param {any} ctx.cfg
 */
export function registerWebhookTests(ctx) {
	const { cfg } = ctx;
	const page = () => ctx.h().page;
	const state = { receiver: null, available: false, id: null, secret: null };

	function needsWebhooks(t) {
		if (state.available) return false;
		if (!cfg.allowMissing.has('webhooks'))
			assert.fail(`webhook-service (/api/webhooks) is not reachable through ${cfg.baseUrl}`);
		t.skip('webhook-service not running (allowed by E2E_ALLOW_MISSING=webhooks)');
		return true;
	}

	before(async () => {
		state.receiver = await startReceiver();
	});
	after(async () => {
		await state.receiver?.close();
	});

	/** The signing secret the open dialog shows, its copy button checked; then Done. */
	async function readSecret(title, capture) {
		const p = page();
		const dialog = p.getByRole('dialog', { name: title });
		await dialog.waitFor();
		assert.match(await dialog.getByTestId('secret-warning').innerText(), /shown only this time/);
		const secret = (await dialog.getByTestId('webhook-secret-value').locator('pre').innerText()).trim();
		assert.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/, 'a Standard Webhooks secret');
		await dialog.getByRole('button', { name: /Copy secret/ }).click();
		assert.equal(await p.evaluate(() => navigator.clipboard.readText()), secret);
		if (capture) await ctx.h().capture(capture);
		// Escape does not throw the secret away; Done does.
		await p.keyboard.press('Escape');
		await dialog.waitFor();
		await dialog.getByRole('button', { name: 'Done' }).click();
		await p.locator('dialog[data-testid="webhook-secret"]').waitFor({ state: 'hidden' });
		assert.ok(!(await p.content()).includes(secret), 'the secret is gone from the page once closed');
		return secret;
	}

	/** Sends a test ping from the page; answers the request the receiver got and its log row. */
	async function ping(card) {
		const p = page();
		const before = state.receiver.received.length;
		await card.getByRole('button', { name: /^Send test ping to / }).click();
		await p
			.getByTestId('webhook-notice')
			.filter({ hasText: 'Test ping delivered' })
			.waitFor({ timeout: 30_000 });
		await eventually(async () => state.receiver.received.length > before, {
			what: 'the ping at the receiver'
		});
		const request = state.receiver.received.at(-1);
		const id = request.headers['webhook-id'];
		assert.match(id, /^msg_[0-9a-f]{32}$/, `webhook-id: ${id}`);
		const deliveryId = id.slice(4).replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
		const row = card.locator(`[data-testid="delivery-log"] tr[data-delivery-id="${deliveryId}"]`);
		await row.waitFor({ timeout: 30_000 });
		return { request, row };
	}

	test('webhooks: a refused URL shows the service’s sentence; one on the loopback is added, its secret shown once', async (t) => {
		const probe = await apiCall(cfg, 'GET', '/api/webhooks?limit=1');
		state.available = probe.status === 200;
		if (needsWebhooks(t)) return;
		const p = page();
		await p.goto('/finetune');
		await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Webhooks' }).click();
		await p.waitForURL(/\/webhooks$/);
		await p.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
		await p.locator('[data-testid="webhooks"], [data-testid="webhooks-empty"]').first().waitFor();

		await p.getByRole('button', { name: 'Add webhook' }).click();
		const dialog = p.getByRole('dialog', { name: 'Add a webhook' });
		await dialog.waitFor();
		await dialog.getByRole('button', { name: 'Add webhook' }).click();
		await dialog.getByText('Enter the URL events are sent to.').waitFor(); // nothing sent
		// A private address over https: webhook-service refuses it, and the form says its sentence.
		ctx.h().expectFailure(/\/api\/webhooks$/, 422);
		await dialog.getByLabel('Endpoint URL').fill('https://10.1.2.3/hooks/ftd');
		await dialog.getByRole('button', { name: 'Add webhook' }).click();
		const refused = await apiCall(cfg, 'POST', '/api/webhooks', {
			body: { url: 'https://10.1.2.3/hooks/ftd', event_types: ['job.failed'] }
		});
		assert.equal(refused.status, 422, JSON.stringify(refused.body));
		await dialog.getByText(refused.body.error.message).waitFor();

		await dialog.getByLabel('Endpoint URL').fill(state.receiver.url);
		await dialog.getByRole('checkbox', { name: /model\.deployed/ }).check();
		await dialog.getByLabel(/Description/).fill('e2e receiver');
		await ctx.h().capture('webhook-new');
		await dialog.getByRole('button', { name: 'Add webhook' }).click();
		state.secret = await readSecret('Webhook added', 'webhook-created');

		const card = p.locator('article[data-webhook-id]', { hasText: state.receiver.url });
		await card.waitFor();
		state.id = await card.getAttribute('data-webhook-id');
		assert.equal(await card.getAttribute('data-enabled'), 'true');
		const events = await card.getByRole('list', { name: 'Events' }).locator('li').allInnerTexts();
		assert.deepEqual(events, ['job.succeeded', 'job.failed', 'model.deployed']);
		const listed = await apiCall(cfg, 'GET', `/api/webhooks/${state.id}`);
		assert.equal(listed.status, 200);
		assert.ok(!JSON.stringify(listed.body).includes(state.secret), 'the secret is never listed');
	});

	test('webhooks: a test ping is delivered, logged, and signed with the secret shown', async (t) => {
		if (needsWebhooks(t)) return;
		const p = page();
		const card = p.locator(`article[data-webhook-id="${state.id}"]`);
		const { request, row } = await ping(card);
		assert.equal(request.method, 'POST');
		assert.equal(request.url, '/hooks/ftd');
		for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'])
			assert.ok(request.headers[name], `the request carries ${name}`);
		const age = Math.abs(Date.now() / 1000 - Number(request.headers['webhook-timestamp']));
		assert.ok(
			age < 600,
			`webhook-timestamp is seconds since the epoch, now: ${request.headers['webhook-timestamp']}`
		);
		assert.ok(
			verifies(state.secret, request.headers, request.body),
			'the signature verifies with the secret'
		);
		assert.ok(!verifies(`whsec_${Buffer.alloc(32).toString('base64')}`, request.headers, request.body));
		assert.equal(JSON.parse(request.body.toString()).type, 'ping');

		assert.equal(await row.getAttribute('data-state'), 'delivered');
		assert.equal(await row.getAttribute('data-event'), 'ping');
		assert.equal((await row.locator('[data-field="attempts"]').innerText()).trim(), '1');
		assert.equal((await row.locator('[data-field="response"]').innerText()).trim(), 'HTTP 200');
		// Refresh reads the log again from the service: the same delivery, newest first.
		await card.getByRole('button', { name: /^Refresh the delivery log/ }).click();
		await eventually(
			async () => await card.getByRole('button', { name: /^Refresh the delivery log/ }).isEnabled(),
			{
				what: 'the refreshed log'
			}
		);
		await row.waitFor();
		const log = await apiCall(cfg, 'GET', `/api/webhooks/${state.id}/deliveries`);
		assert.equal(log.body.data[0].id, await row.getAttribute('data-delivery-id'));
		assert.equal(log.body.data[0].status, 'delivered');
		await ctx.h().capture('webhooks');
	});

	test('webhooks: disable and enable; a rotated secret signs from then on', async (t) => {
		if (needsWebhooks(t)) return;
		const p = page();
		const card = p.locator(`article[data-webhook-id="${state.id}"]`);
		await card.getByRole('button', { name: /^Disable / }).click();
		await eventually(async () => (await card.getAttribute('data-enabled')) === 'false', { what: 'disabled' });
		assert.equal((await apiCall(cfg, 'GET', `/api/webhooks/${state.id}`)).body.data.enabled, false);
		await card.getByRole('button', { name: /^Enable / }).click();
		await eventually(async () => (await card.getAttribute('data-enabled')) === 'true', { what: 'enabled' });

		await card.getByRole('button', { name: /^Rotate secret of / }).click();
		const confirm = p.getByRole('dialog', { name: 'Rotate the signing secret?' });
		await confirm.getByRole('button', { name: 'Rotate secret' }).click();
		const rotated = await readSecret('New signing secret');
		assert.notEqual(rotated, state.secret);
		const { request } = await ping(card);
		assert.ok(verifies(rotated, request.headers, request.body), 'the new secret signs');
		assert.ok(!verifies(state.secret, request.headers, request.body), 'the old one no longer does');
		const pings = await card.locator('[data-testid="delivery-log"] tr[data-event="ping"]').count();
		assert.equal(pings, 2, 'both pings are in the log');
	});

	test('webhooks: deleting one asks first, then it is gone with its log', async (t) => {
		if (needsWebhooks(t)) return;
		const p = page();
		const card = p.locator(`article[data-webhook-id="${state.id}"]`);
		await card.getByRole('button', { name: /^Delete / }).click();
		const dialog = p.getByRole('dialog', { name: 'Delete this webhook?' });
		await dialog.waitFor();
		assert.match(await dialog.innerText(), new RegExp(state.receiver.url.replace(/[.]/g, '\\.')));
		await dialog.getByRole('button', { name: 'Keep it' }).click();
		await card.waitFor();
		await card.getByRole('button', { name: /^Delete / }).click();
		await dialog.getByRole('button', { name: 'Delete webhook' }).click();
		await card.waitFor({ state: 'detached' });
		await p.getByTestId('webhook-notice').filter({ hasText: 'is deleted' }).waitFor();
		const gone = await apiCall(cfg, 'GET', `/api/webhooks/${state.id}`);
		assert.equal(gone.status, 404);
		assert.equal(gone.body.error.code, 'webhook_not_found');
	});
}
