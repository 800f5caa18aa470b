// Browser steps for workers: the Workers page, adding a worker (its token and setup shown once and
// copyable), a job for "My workers" that waits and says how to start one, and revoking the worker.
// flows.test.mjs registers them in its run, so they share its browser, report and final checks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiCall, eventually } from './harness.mjs';

/**
 * @param {object} ctx
 * @param {() => any} ctx.h the harness (set once the browser is up)
 * @param {any} ctx.cfg
 * @param {string} ctx.stamp
 * @param {() => string} ctx.sub the signed-in user
 * @param {(o: {output: string, useUpload: boolean}) => Promise<void>} ctx.fillForm
 * @param {() => Promise<void>} ctx.uploadGood
 * @param {() => Promise<string>} ctx.submitJob
 * @param {() => boolean} ctx.hasData whether data-service answers
 */
export function registerWorkerTests(ctx) {
	const { cfg, stamp } = ctx;
	const name = `e2e-colab-${stamp}`;
	const state = { workerId: null, token: null, jobId: null };
	const page = () => ctx.h().page;
	const clipboard = () => page().evaluate(() => navigator.clipboard.readText());
	const ownActive = async () => {
		const r = await apiCall(cfg, 'GET', '/api/workers?pool=private');
		assert.equal(r.status, 200, JSON.stringify(r.body));
		return r.body.data.filter((w) => w.owner_id === ctx.sub() && w.status !== 'revoked');
	};

	test('workers page: the shared pool, and a place for workers of your own', async () => {
		const p = page();
		await p.goto('/finetune');
		await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Workers' }).click();
		await p.waitForURL(/\/workers$/);
		await p.getByRole('heading', { name: 'Workers', level: 1 }).waitFor();
		await p.locator('[data-testid="workers-mine"], [data-testid="workers-empty"]').first().waitFor();
		if (cfg.worker === 'real') {
			// The stack's CPU worker is in the shared pool, online; a user cannot revoke it.
			const shared = p.locator('[data-testid="workers-shared"] article[data-worker-id]');
			await eventually(
				async () => {
					const statuses = await shared.evaluateAll((els) => els.map((e) => e.getAttribute('data-status')));
					return statuses.some((s) => s === 'idle' || s === 'busy');
				},
				{ what: 'an online shared worker', timeoutMs: 30_000 }
			);
			assert.equal(await shared.getByRole('button', { name: 'Revoke' }).count(), 0);
			const text = await shared.first().innerText();
			assert.match(text, /Sentence embedding/);
			assert.match(text, /Local worker/);
		}
		await ctx.h().capture('workers');
	});

	test('the create form warns that "My workers" needs a worker of your own', async () => {
		if ((await ownActive()).length > 0) return; // a reused stack: this user has one already
		const p = page();
		await p.goto('/finetune/new');
		await p.getByRole('radio', { name: 'My workers' }).check();
		const warning = p.getByTestId('run-on-warning');
		await warning.waitFor();
		assert.equal(await warning.getByRole('link').getAttribute('href'), '/workers');
		await p.getByRole('radio', { name: 'Shared workers' }).check();
		await warning.waitFor({ state: 'detached' });
	});

	test('add a worker: its token and both setups are shown once, each copyable', async () => {
		const p = page();
		await p.goto('/workers');
		await p.getByRole('button', { name: 'Add a worker' }).first().click();
		const dialog = p.getByRole('dialog', { name: 'Add a worker' });
		await dialog.waitFor();
		// Nothing is sent without a name.
		await dialog.getByRole('button', { name: 'Add worker' }).click();
		await dialog.getByText(/Name the worker/).waitFor();
		await dialog.getByLabel('Name', { exact: true }).fill(name);
		await dialog.getByRole('button', { name: 'Add worker' }).click();

		const added = p.getByRole('dialog', { name: `Worker ${name} added` });
		await added.waitFor();
		assert.match(await added.getByTestId('token-warning').innerText(), /shown only this time/);
		const token = (await added.getByTestId('worker-token').locator('pre').innerText()).trim();
		assert.match(token, /^ftdw_[0-9a-f]+_\S+$/, 'a worker token');
		const colab = await added.getByTestId('setup-colab').locator('pre').innerText();
		const shell = await added.getByTestId('setup-shell').locator('pre').innerText();
		assert.ok(
			colab.includes(token) && colab.includes('ftd-worker run'),
			`the Colab cell starts it: ${colab}`
		);
		assert.ok(shell.includes(`FTD_WORKER_TOKEN='${token}'`), `the shell line carries the token: ${shell}`);
		assert.match(shell, /ftd-worker run --api-url \S+/);

		await added.getByRole('button', { name: /Copy token/ }).click();
		assert.equal(await clipboard(), token);
		await added.getByRole('button', { name: /Copy Colab cell/ }).click();
		assert.equal((await clipboard()).trim(), colab.trim());
		await added.getByRole('button', { name: /Copy shell command/ }).click();
		assert.equal((await clipboard()).trim(), shell.trim());
		await ctx.h().capture('add-worker');

		await added.getByRole('button', { name: 'Done' }).click();
		await p.locator('dialog[data-testid="add-worker"]').waitFor({ state: 'hidden' });
		// Shown once: closed, the page holds the token nowhere.
		assert.ok(!(await p.content()).includes(token), 'the token is gone from the page once closed');

		const card = p.locator('[data-testid="workers-mine"] article[data-worker-id]', { hasText: name });
		await card.waitFor();
		// Not started yet: it has never reported in.
		assert.equal(await card.getAttribute('data-status'), 'offline');
		await card.getByRole('button', { name: 'Revoke' }).waitFor();
		state.workerId = await card.getAttribute('data-worker-id');
		state.token = token;
		const listed = await apiCall(cfg, 'GET', `/api/workers/${state.workerId}`);
		assert.equal(listed.status, 200);
		assert.equal(listed.body.data.pool, 'private');
		assert.equal(listed.body.data.name, name);
	});

	test('a job for "My workers" waits and shows the command that starts one', async () => {
		assert.ok(state.workerId, 'a worker was added');
		const p = page();
		await ctx.fillForm({ output: `${ctx.sub()}/ui-e2e-mine-${stamp}`, useUpload: ctx.hasData() });
		if (ctx.hasData()) await ctx.uploadGood();
		await p.getByRole('radio', { name: 'My workers' }).check();
		// The user has a worker of their own now: no warning.
		assert.equal(await p.getByTestId('run-on-warning').count(), 0);
		state.jobId = await ctx.submitJob();

		// Its only worker is not running: nobody takes the job, and the page says how to start one.
		const notice = p.locator('[data-testid="waiting-notice"][data-reason="no_worker"]');
		await notice.waitFor({ timeout: 30_000 });
		const command = (await notice.getByTestId('waiting-command').locator('pre').innerText()).trim();
		assert.match(command, /ftd-worker run/);
		assert.match(command, new RegExp(`--job-type ${cfg.jobType}`));
		assert.doesNotMatch(command, /gpu-worker run/);
		await notice.getByRole('button', { name: /Copy command/ }).click();
		assert.equal((await clipboard()).trim(), command);
		assert.equal(await notice.getByRole('link', { name: /Workers page/ }).getAttribute('href'), '/workers');
		const job = await apiCall(cfg, 'GET', `/api/finetune/jobs/${state.jobId}`);
		assert.equal(job.body.data.worker_pool, 'private');
		assert.equal(job.body.data.waiting.reason, 'no_worker');
		assert.match(await notice.innerText(), new RegExp(escape(job.body.data.waiting.message)));
		await ctx.h().capture('job-waiting');

		// The dashboard's card says the same, shorter.
		await p.goto('/finetune');
		const card = p.locator(`article[data-job-id="${state.jobId}"]`);
		await card.locator('[data-testid="waiting-notice"][data-reason="no_worker"]').waitFor();
		await p.getByTestId('no-worker-banner').getByRole('link', { name: 'Add a worker' }).waitFor();

		const cancelled = await apiCall(cfg, 'DELETE', `/api/finetune/jobs/${state.jobId}`);
		assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
	});

	test('revoke the worker: gone from the list, its token refused', async () => {
		assert.ok(state.workerId, 'a worker was added');
		const p = page();
		await p.goto('/workers');
		const card = p.locator(`article[data-worker-id="${state.workerId}"]`);
		await card.waitFor();
		await card.getByRole('button', { name: 'Revoke' }).click();
		const dialog = p.getByRole('dialog', { name: 'Revoke this worker?' });
		await dialog.waitFor();
		assert.match(await dialog.innerText(), new RegExp(name));
		await dialog.getByRole('button', { name: 'Revoke worker' }).click();
		await card.waitFor({ state: 'detached' });
		await p.getByText(`${name} is revoked`).waitFor();

		await p.getByLabel('Show revoked workers').check();
		await eventually(async () => (await card.getAttribute('data-status').catch(() => null)) === 'revoked', {
			what: 'the revoked worker listed as revoked'
		});
		assert.equal(await card.getByRole('button', { name: 'Revoke' }).count(), 0);
		await ctx.h().capture('workers-revoked');

		const got = await apiCall(cfg, 'GET', `/api/workers/${state.workerId}`);
		assert.equal(got.body.data.status, 'revoked');
		const me = await apiCall(cfg, 'GET', '/api/workers/me', { token: state.token });
		assert.ok(me.status === 401 || me.status === 403, `a revoked token is refused (${me.status})`);
	});
}

function escape(text) {
	return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
