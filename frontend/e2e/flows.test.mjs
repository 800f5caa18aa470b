// End-to-end browser tests of the web UI against a running stack (see e2e/README.md).
//
//   E2E_BASE_URL=http://localhost:8000 E2E_TOKEN=$(make -s token SUB=e2e) npm run e2e
//
// The steps run in order in one browser, as a user would: sign in, upload a broken file and see
// the line named, upload a good one, create a job, watch it run to completion while the chart
// grows, find the model in the registry and deploy it, cancel another job, add a worker of one's
// own (token and setup shown once), see a job for it wait with the command that starts one, revoke
// it (e2e/workers.mjs), add a webhook and see its test ping delivered, signed and logged
// (e2e/webhooks.mjs), use the trained models (e2e/serving.mjs) and the API page's docs links and
// examples (e2e/developers.mjs). Every page is captured wide and narrow under $E2E_OUT/screenshots, checked
// with axe-core and for horizontal overflow on a phone-sized screen; any console error fails the run.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { apiCall, config, eventually, launch } from './harness.mjs';
import { badFile, goodFile } from './data.mjs';
import { registerWorkerTests } from './workers.mjs';
import { registerServingTests } from './serving.mjs';
import { registerWebhookTests } from './webhooks.mjs';
import { registerDeveloperTests } from './developers.mjs';

const cfg = config();
const stamp = Date.now().toString(36);
let h;
let page;
let sub = 'e2e';
const services = { data: true, registry: true };
const state = { jobId: null, secondJobId: null, pointsSeen: [] };

function needs(t, service) {
	if (services[service]) return false;
	if (!cfg.allowMissing.has(service)) {
		assert.fail(
			`${service === 'data' ? 'data-service' : 'registry-service'} is not reachable through ${cfg.baseUrl}`
		);
	}
	t.skip(`${service} service not running (allowed by E2E_ALLOW_MISSING)`);
	return true;
}

before(async () => {
	// Which services answer behind the base URL (a 404/5xx from the gateway means absent).
	const datasets = await apiCall(cfg, 'GET', '/api/finetune/datasets?limit=1');
	services.data = datasets.status === 200;
	const models = await apiCall(cfg, 'GET', '/api/models?limit=1');
	services.registry = models.status === 200;

	const payload = JSON.parse(Buffer.from(cfg.token.split('.')[1] ?? '', 'base64url').toString() || '{}');
	sub = payload.sub ?? sub;
	h = await launch(cfg);
	page = h.page;
	// Pages ask an absent, allowed-missing service and get the gateway's 404/502: not a UI error.
	for (const [service, pattern] of [
		['data', /\/api\/finetune\/(upload|datasets)/],
		['registry', /\/api\/models/]
	]) {
		if (!services[service] && cfg.allowMissing.has(service))
			for (const s of [404, 502, 503]) h.expectFailure(pattern, s);
	}
	// The sign-in page asks whether a dev sign-in exists; outside development that is a 404.
	h.expectFailure(/\/api\/auth\/dev-token$/, 404);
	h.expectFailure(/\/api\/auth\/dev-token$/, 405);
});

after(async () => {
	await h?.writeReport({ services, state });
	await h?.close();
});

async function selectOption(selector, value) {
	await page.locator(selector).selectOption(value);
}

async function fillForm({ output, useUpload }) {
	await page.goto('/finetune/new');
	await page
		.getByRole('radio', {
			name: { embedding: 'Sentence embedding', classifier: 'Text classifier', llm_lora: 'LLM LoRA' }[
				cfg.jobType
			]
		})
		.check();
	await eventually(async () => (await page.locator('#base_model option').count()) > 0, {
		what: 'base models'
	});
	if (!useUpload) {
		await page.getByRole('radio', { name: 'Link an https URL' }).check();
		await page.getByLabel('Training data URL').fill(cfg.dataUrl);
	}
	await selectOption('#gpu_provider', cfg.provider);
	await fillOutput(output);
}

/** The output name as `owner/name`: the owner is chosen among the user's namespaces. */
async function fillOutput(output) {
	const [owner, name] = output.split('/');
	await page.locator(`#output_owner option[value="${owner}"]`).waitFor({ state: 'attached' });
	await selectOption('#output_owner', owner);
	await page.getByLabel('Model name').fill(name);
}

async function uploadGood() {
	await page.locator('#file').setInputFiles(goodFile(cfg.jobType));
	await page.locator('[data-testid="validation-report"][data-valid="true"]').waitFor({ timeout: 60_000 });
}

async function submitJob() {
	await page.getByRole('button', { name: 'Create job' }).click();
	await page.waitForURL(/\/finetune\/[0-9a-f-]{36}$/, { timeout: 30_000 });
	return page.url().split('/').pop();
}

test('sign in with a pasted token, by keyboard only', async () => {
	await page.goto('/finetune');
	await page.waitForURL(/\/signin/);
	await page.getByRole('heading', { name: 'Sign in' }).waitFor();
	await h.capture('signin');
	// Tab to the token field, type, tab to the button, press Enter: no mouse.
	await page.locator('body').focus();
	await eventually(
		async () => {
			await page.keyboard.press('Tab');
			return page.evaluate(() => document.activeElement?.id === 'token');
		},
		{ what: 'keyboard focus on the token field', timeoutMs: 10_000, intervalMs: 10 }
	);
	await page.keyboard.type(cfg.token);
	await page.keyboard.press('Tab');
	assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'Sign in with token');
	await page.keyboard.press('Enter');
	await page.waitForURL(/\/finetune$/);
	assert.equal(await page.evaluate(() => sessionStorage.getItem('ftd.token')), cfg.token);
	assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
	assert.ok(!page.url().includes(cfg.token), 'the token is never in a URL');
});

test('development sign-in mints a token for the user named', async (t) => {
	const offered = await apiCall(cfg, 'GET', '/api/auth/dev-token', { token: null });
	if (offered.status !== 200) {
		// Outside FTD_ENV=development the route is 404 and the page offers only the pasted token.
		assert.equal(offered.status, 404);
		t.skip('development sign-in is off on this deployment');
		return;
	}
	const user = `e2e-dev-${stamp}`;
	await page.evaluate(() => sessionStorage.clear());
	await page.goto('/signin');
	await page.getByLabel('User id').fill(user);
	await page.getByRole('button', { name: 'Sign in as this user' }).click();
	await page.waitForURL(/\/finetune$/);
	const minted = await page.evaluate(() => sessionStorage.getItem('ftd.token'));
	assert.ok(minted, 'a token is kept for the session');
	const claims = JSON.parse(Buffer.from(minted.split('.')[1], 'base64url').toString());
	assert.equal(claims.sub, user);
	assert.ok(!page.url().includes(minted), 'the token is never in a URL');
	// Back to the test user for the rest of the run.
	await page.evaluate((token) => sessionStorage.setItem('ftd.token', token), cfg.token);
	await page.goto('/finetune');
	await page.waitForURL(/\/finetune$/);
});

test('dashboard lists jobs or shows the empty state', async () => {
	await page.goto('/finetune');
	await page.locator('[data-testid="job-list"], [data-testid="empty-state"]').first().waitFor();
	await page.getByRole('link', { name: 'Create job' }).waitFor();
	await h.capture('dashboard');
});

test('upload a file with an error: the report names the line', async (t) => {
	if (needs(t, 'data')) return;
	await page.goto('/finetune/new');
	await page
		.getByRole('radio', {
			name: { embedding: 'Sentence embedding', classifier: 'Text classifier', llm_lora: 'LLM LoRA' }[
				cfg.jobType
			]
		})
		.check();
	h.expectFailure(/\/api\/finetune\/upload/, 400);
	h.expectFailure(/\/api\/finetune\/upload/, 422);
	await page.locator('#file').setInputFiles(badFile(cfg.jobType));
	const report = page.locator('[data-testid="validation-report"][data-valid="false"]');
	await report.waitFor({ timeout: 60_000 });
	const errors = await page.locator('[data-testid="validation-errors"]').innerText();
	assert.match(errors, /Line 3\b/, `the errors name line 3: ${errors}`);
	await h.capture('new-job-bad-file');
});

test('upload a good file: stats and preview before submitting', async (t) => {
	if (needs(t, 'data')) return;
	await uploadGood();
	const text = await page.locator('[data-testid="validation-report"]').innerText();
	assert.match(text, /valid/i);
	assert.match(text, /rows/i);
	await h.capture('new-job-good-file');
});

test('create a job', async () => {
	await fillForm({ output: `${sub}/ui-e2e-${stamp}`, useUpload: services.data });
	if (services.data) await uploadGood();
	// The output name is checked as the server checks it, before anything is sent.
	await page.getByLabel('Model name').fill('no spaces allowed');
	await page.getByText(/The name part is not allowed/).waitFor();
	await fillOutput(`${sub}/ui-e2e-${stamp}`);
	// The namespaces offered are the user's own (GET /api/namespaces), theirs first.
	assert.equal(await page.locator('#output_owner').inputValue(), sub);
	await page.getByText('Advanced: hyperparameters').click();
	// The real CPU worker: enough steps for several progress reports while the page watches.
	await page.getByLabel('Epochs').fill(cfg.worker === 'real' ? '2' : '1');
	if (!services.data) await h.capture('new-job-url');
	state.jobId = await submitJob();
	await page.getByRole('heading', { name: `${sub}/ui-e2e-${stamp}` }).waitFor();
});

async function httpWorker(jobId, reports) {
	// Plays a worker over the brief's HTTP worker API (E2E_WORKER=http): for checking the UI against
	// job-api alone, where no real worker runs. The full-stack run uses the real CPU worker.
	// Every update names the worker that claimed: job-api fences updates to the holder.
	const call = (body) =>
		apiCall(cfg, 'PATCH', `/api/finetune/jobs/${jobId}`, {
			token: cfg.workerKey,
			body: { worker_id: 'e2e-http-worker', ...body }
		});
	let r = await call({
		status: 'running',
		worker_id: 'e2e-http-worker',
		log_lines: ['worker e2e-http-worker claimed the job']
	});
	assert.equal(r.status, 200, JSON.stringify(r.body));
	const attempt = r.body.data.attempt;
	for (let i = 1; i <= reports; i++) {
		r = await call({
			attempt,
			progress: (i / (reports + 1)) * 100,
			phase: 'training',
			step: i * 10,
			total_steps: (reports + 1) * 10,
			epoch: i / reports,
			loss: 2.5 / (i + 0.5),
			metrics: { learning_rate: 2e-5 * (1 - i / (reports + 1)), grad_norm: 1 + 1 / i },
			eta_seconds: (reports - i) * 2,
			log_lines: [`step ${i * 10}: loss ${(2.5 / (i + 0.5)).toFixed(4)}`]
		});
		assert.equal(r.status, 200, JSON.stringify(r.body));
		// Wait until the open page has drawn this report: the chart grows while we watch.
		await eventually(
			async () =>
				Number(
					await page.locator('[data-testid="charts"] [role="img"]').first().getAttribute('data-points')
				) >= i,
			{
				what: `chart point ${i}`
			}
		);
		state.pointsSeen.push(i);
	}
	r = await call({
		status: 'completed',
		attempt,
		progress: 100,
		metrics: { eval_cosine_accuracy: 0.91 },
		output_revision: 'e2e',
		log_lines: ['model saved']
	});
	assert.equal(r.status, 200, JSON.stringify(r.body));
}

test('watch the job run to completed while the loss chart grows', async () => {
	assert.ok(state.jobId, 'a job was created');
	const chart = page.locator('[data-testid="charts"] [role="img"]').first();
	const badge = page.locator('.page-header [data-status]').first();
	if (cfg.worker === 'http') {
		await httpWorker(state.jobId, 5);
	} else {
		// The real worker: sample the chart while the job runs; it must grow while the page is open.
		await eventually(
			async () => {
				const points = Number(await chart.getAttribute('data-points'));
				if (state.pointsSeen.at(-1) !== points) state.pointsSeen.push(points);
				const status = await badge.getAttribute('data-status');
				if (status === 'failed' || status === 'cancelled') throw new Error(`the job ended ${status}`);
				return status === 'completed';
			},
			{ timeoutMs: cfg.jobTimeoutMs, intervalMs: 200, what: 'the job to complete' }
		);
	}
	await eventually(async () => (await badge.getAttribute('data-status')) === 'completed', {
		what: 'completed badge'
	});
	// What came with the completion (the model's revision) shows without a reload.
	await eventually(
		async () => !/^—?$/.test((await page.locator('dt:text-is("Revision") + dd').innerText()).trim()),
		{
			what: 'the revision of the completed job'
		}
	);
	const live = Number(await chart.getAttribute('data-points'));
	assert.ok(live >= 2, `the loss chart has points (${live})`);
	assert.ok(
		state.pointsSeen.filter((p) => p > 0).length >= 2,
		`the chart grew while watched: ${state.pointsSeen}`
	);
	const logs = await page.getByTestId('log-viewer').innerText();
	assert.match(logs, /status running → completed|pending → running/);
	await h.capture('job-detail');
	// Reopening the page shows the whole history, not only what arrived while it was open.
	await page.reload();
	await eventually(async () => Number(await chart.getAttribute('data-points')) === live, {
		what: 'the same chart after reopening'
	});
	assert.match(await page.getByTestId('log-viewer').innerText(), /completed/);
});

test('the model appears in the registry and deploys', async (t) => {
	if (needs(t, 'registry')) return;
	const card = page.locator(`article[data-model-id]:has(a[href="/finetune/${state.jobId}"])`);
	await eventually(
		async () => {
			await page.goto('/models');
			await page.locator('h1', { hasText: 'Models' }).waitFor();
			return (await card.count()) === 1;
		},
		{ timeoutMs: 60_000, intervalMs: 2000, what: 'the model in the registry' }
	);
	await card.getByRole('button', { name: 'Deploy' }).click();
	await eventually(async () => (await card.getAttribute('data-status')) === 'deployed', { what: 'deployed' });
	await card.getByRole('button', { name: /Copy Python/ }).click();
	const copied = await page.evaluate(() => navigator.clipboard.readText());
	assert.match(copied, new RegExp(`ui-e2e-${stamp}|/v1`));
	await h.capture('models');
});

test('cancel another job', async () => {
	await fillForm({ output: `${sub}/ui-e2e-cancel-${stamp}`, useUpload: services.data });
	if (services.data) await uploadGood();
	state.secondJobId = await submitJob();
	if (cfg.worker === 'http') {
		// Nothing consumes the queue in this mode: the page says so, and how to start a worker.
		await page
			.locator('[data-testid="waiting-notice"][data-reason="no_worker"]')
			.waitFor({ timeout: 30_000 });
	}
	await page.goto('/finetune');
	const card = page.locator(`article[data-job-id="${state.secondJobId}"]`);
	await card.waitFor();
	if (cfg.worker === 'http') await page.getByTestId('no-worker-banner').waitFor();
	await h.capture('dashboard-jobs');
	await card.getByRole('button', { name: 'Cancel' }).click();
	const dialog = page.getByRole('dialog', { name: 'Cancel this job?' });
	await dialog.waitFor();
	await dialog.getByRole('button', { name: 'Cancel job' }).click();
	await eventually(async () => (await card.getAttribute('data-status')) === 'cancelled', {
		what: 'cancelled card'
	});
	const job = await apiCall(cfg, 'GET', `/api/finetune/jobs/${state.secondJobId}`);
	assert.equal(job.body.data.status, 'cancelled');
});

test('filters narrow the list', async () => {
	await page.goto('/finetune?status=cancelled');
	await page.locator(`article[data-job-id="${state.secondJobId}"]`).waitFor();
	assert.equal(await page.locator(`article[data-job-id="${state.jobId}"]`).count(), 0);
	await page.getByLabel('Status').selectOption('completed');
	await page.waitForURL(/status=completed/);
	await page.locator(`article[data-job-id="${state.jobId}"]`).waitFor();
});

registerWorkerTests({
	cfg,
	stamp,
	h: () => h,
	sub: () => sub,
	fillForm,
	uploadGood,
	submitJob,
	hasData: () => services.data
});

registerWebhookTests({ cfg, h: () => h });

registerServingTests({ cfg, stamp, h: () => h, sub: () => sub });

registerDeveloperTests({ cfg, stamp, h: () => h });

test('every page: accessible (axe), usable on a phone, no console errors', async () => {
	// The pages every run must have checked (more are captured along the way).
	const pages = ['signin', 'dashboard', 'job-detail', 'api'];
	if (!cfg.allowMissing.has('webhooks')) pages.push('webhooks', 'webhook-new', 'webhook-created');
	if (!cfg.allowMissing.has('serving')) pages.push('keys', 'playground-chat');
	for (const name of pages) assert.ok(name in h.overflow, `the ${name} page was captured wide and narrow`);
	const serious = h.seriousAxeViolations();
	assert.deepEqual(serious, [], 'no serious or critical axe violations');
	const overflowing = Object.entries(h.overflow).filter(([, px]) => px > 1);
	assert.deepEqual(overflowing, [], 'no page scrolls sideways at 390 px');
	assert.deepEqual(h.unexpectedConsoleErrors(), [], 'no console errors');
});
