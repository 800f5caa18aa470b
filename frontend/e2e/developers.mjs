// Browser steps for the API page: every link to a service's interactive docs and OpenAPI document
// answers 200 through the gateway, the OpenAI-compatible base URL is this gateway's /v1, its
// Python example runs for real with an API key (the `openai` package, through `uv run`), the
// `ftd` lines name this server (and `ftd --base-url <it> jobs list` runs), and "Copy my token"
// copies the session's token. flows.test.mjs registers these steps in its run.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { apiCall } from './harness.mjs';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..');
const SERVICES = ['job-api', 'data-service', 'registry-service', 'model-server', 'webhook-service'];

/**
 * @param {object} ctx
 * @param {() => any} ctx.h the harness (set once the browser is up)
 * @param {any} ctx.cfg
 * @param {string} ctx.stamp
 */
export function registerDeveloperTests(ctx) {
	const { cfg, stamp } = ctx;
	const page = () => ctx.h().page;

	test('API page: each service’s docs and document answer through the gateway', async () => {
		const p = page();
		await p.goto('/finetune');
		await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'API', exact: true }).click();
		await p.waitForURL(/\/developers$/);
		await p.getByRole('heading', { name: 'API', level: 1 }).waitFor();
		const links = await p
			.getByTestId('service-docs')
			.locator('a')
			.evaluateAll((as) => as.map((a) => a.getAttribute('href')));
		const expected = SERVICES.flatMap((s) => [`/docs/${s}`, `/openapi/${s}.json`]);
		assert.deepEqual([...links].sort(), [...expected].sort(), 'a docs page and a document per service');
		for (const href of links) {
			const r = await p.request.get(href);
			assert.equal(r.status(), 200, `${href} through the gateway`);
			if (href.endsWith('.json')) {
				const doc = await r.json();
				assert.ok(doc.openapi && Object.keys(doc.paths).length > 0, `${href} is an OpenAPI document`);
			} else {
				assert.match(await r.text(), /swagger-ui/i, `${href} is the interactive docs`);
			}
		}
		// One followed as a user would: Swagger UI renders the service's operations.
		await p
			.getByRole('link', { name: /webhook-service/ })
			.first()
			.click();
		await p.waitForURL(/\/docs\/webhook-service$/);
		await p.locator('.opblock').first().waitFor({ timeout: 30_000 });
		await p.goBack();
		await p.getByRole('heading', { name: 'API', level: 1 }).waitFor();
		await ctx.h().capture('api');
	});

	test('API page: the /v1 example runs with an API key, the ftd lines name this server', async (t) => {
		const p = page();
		await p.goto('/developers');
		assert.equal((await p.getByTestId('v1-base-url').innerText()).trim(), `${cfg.baseUrl}/v1`);
		await p.getByRole('button', { name: /Copy my token/ }).click();
		assert.equal(await p.evaluate(() => navigator.clipboard.readText()), cfg.token);

		const cli = (await p.getByTestId('cli-lines').locator('pre').innerText()).trim();
		assert.match(cli, /^pip install \.\/libs\/ftd$/m);
		assert.ok(cli.includes(`ftd --base-url ${cfg.baseUrl} login`), cli);
		const listed = await run(
			'uv',
			['run', '--no-sync', 'ftd', '--base-url', cfg.baseUrl, 'jobs', 'list', '--json'],
			{
				cwd: ROOT,
				env: { ...process.env, FTD_TOKEN: cfg.token, FTD_CONFIG_DIR: resolve(cfg.out, 'ftd-config') },
				timeout: 120_000
			}
		);
		const jobs = JSON.parse(listed.stdout).data;
		assert.ok(jobs.length > 0, `ftd lists this user's jobs: ${listed.stdout.slice(0, 300)}`);

		const made = await apiCall(cfg, 'POST', '/api/keys', { body: { name: `e2e-api-page-${stamp}` } });
		if (made.status !== 201 && cfg.allowMissing.has('serving')) {
			t.skip('model-server not running (allowed by E2E_ALLOW_MISSING=serving)');
			return;
		}
		assert.equal(made.status, 201, JSON.stringify(made.body));
		const key = made.body.data.key;
		try {
			const code = (await p.getByTestId('openai-example').locator('pre').innerText()).trim();
			assert.ok(!code.includes(key), 'the example holds no key');
			const out = await run('uv', ['run', '--no-sync', 'python', '-c', code], {
				cwd: ROOT,
				env: { ...process.env, FTD_API_KEY: key },
				timeout: 120_000
			});
			const models = await apiCall(cfg, 'GET', '/v1/models', { token: key });
			const ids = models.body.data.map((m) => m.id);
			assert.deepEqual(out.stdout.split('\n').filter(Boolean), ids, 'the example lists the key’s models');
		} finally {
			await apiCall(cfg, 'DELETE', `/api/keys/${made.body.data.id}`);
		}
	});
}
