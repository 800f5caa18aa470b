// Browser steps for using a trained model: API keys (created, shown once, revoked), the playground
// of a deployed embedding model, of a classifier and of a LoRA adapter of the offline tiny Llama
// (its chat reply streamed), the code beside it run for real (curl with
// child_process, the JavaScript with node's fetch, the Python with the openai package through
// `uv run`), and the job page's warning when the tuned model is no better than the base, with its
// "Train again" link opening the create form prefilled.
// flows.test.mjs registers them in its run, so they share its browser, report and final checks.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { apiCall, eventually } from './harness.mjs';
import { goodFile } from './data.mjs';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..');

/**
 * @param {object} ctx
 * @param {() => any} ctx.h the harness (set once the browser is up)
 * @param {any} ctx.cfg
 * @param {string} ctx.stamp
 * @param {() => string} ctx.sub the signed-in user
 */
export function registerServingTests(ctx) {
	const { cfg, stamp } = ctx;
	const page = () => ctx.h().page;
	const state = {
		serving: false,
		key: null,
		keyName: `e2e-key-${stamp}`,
		jobs: { embedding: null, classifier: null, llm_lora: null },
		models: { embedding: null, classifier: null, llm_lora: null },
		streamed: null
	};

	/** model-server behind the gateway, or a skip where it is allowed missing. */
	function needsServing(t) {
		if (state.serving) return false;
		if (!cfg.allowMissing.has('serving'))
			assert.fail(`model-server (/api/keys, /v1) is not reachable through ${cfg.baseUrl}`);
		t.skip('model-server not running (allowed by E2E_ALLOW_MISSING=serving)');
		return true;
	}

	async function upload(jobType, rows) {
		const file = goodFile(jobType, rows);
		const form = new FormData();
		form.append('job_type', jobType);
		form.append('file', new Blob([file.buffer], { type: file.mimeType }), file.name);
		const res = await fetch(`${cfg.baseUrl}/api/finetune/upload?job_type=${jobType}`, {
			method: 'POST',
			headers: { Authorization: `Bearer ${cfg.token}` },
			body: form
		});
		const body = await res.json();
		assert.ok(res.ok, `upload: ${res.status} ${JSON.stringify(body)}`);
		return body.data ?? body;
	}

	async function createJob(jobType, name, hyperparameters, rows = undefined) {
		const bases = await apiCall(cfg, 'GET', '/api/finetune/base-models');
		assert.equal(bases.status, 200, JSON.stringify(bases.body));
		const entry = bases.body.data.find((e) => e.job_type === jobType);
		const base = (entry.models.find((m) => m.offline) ?? entry.models[0]).id;
		const dataset = await upload(jobType, rows);
		const body = {
			job_type: jobType,
			base_model: base,
			training_data_url: dataset.training_data_url ?? `ftd://datasets/${dataset.id}`,
			output_model: `${ctx.sub()}/${name}`,
			gpu_provider: 'local',
			hyperparameters
		};
		for (let i = 0; ; i++) {
			const r = await apiCall(cfg, 'POST', '/api/finetune/jobs', { body });
			if (r.status === 409 && r.body?.error?.code === 'dataset_not_ready' && i < 10) {
				await new Promise((done) => setTimeout(done, 1000));
				continue;
			}
			assert.equal(r.status, 201, JSON.stringify(r.body));
			return r.body.data;
		}
	}

	/** The job completed, its model registered and deployed, and loaded by model-server. */
	async function deployedModelOf(jobId) {
		await eventually(
			async () => {
				const r = await apiCall(cfg, 'GET', `/api/finetune/jobs/${jobId}`);
				const status = r.body?.data?.status;
				if (status === 'failed' || status === 'cancelled') throw new Error(`the job ended ${status}`);
				return status === 'completed';
			},
			{ timeoutMs: cfg.jobTimeoutMs, intervalMs: 2000, what: `job ${jobId} to complete` }
		);
		const model = await eventually(
			async () => {
				const r = await apiCall(cfg, 'GET', '/api/models?limit=100');
				return r.body?.data?.find((m) => m.job_id === jobId) ?? null;
			},
			{ timeoutMs: 60_000, intervalMs: 1000, what: `the model of job ${jobId}` }
		);
		if (model.status !== 'deployed') {
			const d = await apiCall(cfg, 'POST', `/api/models/${model.id}/deploy`);
			assert.equal(d.status, 200, JSON.stringify(d.body));
		}
		await eventually(
			async () => {
				const r = await apiCall(cfg, 'GET', '/v1/models');
				return r.body?.data?.some((m) => m.ftd_model_id === String(model.id) && m.ftd_loaded);
			},
			{ timeoutMs: 120_000, intervalMs: 1000, what: `model-server to load ${model.name}` }
		);
		return model;
	}

	/** Runs a snippet as the user would paste it, with the key in FTD_API_KEY. */
	async function execute(lang, code) {
		const env = { ...process.env, FTD_API_KEY: state.key };
		const opts = { env, cwd: ROOT, timeout: 120_000, maxBuffer: 4 * 1024 * 1024 };
		if (lang === 'curl') return (await run('bash', ['-c', code], opts)).stdout;
		if (lang === 'python') return (await run('uv', ['run', '--no-sync', 'python', '-c', code], opts)).stdout;
		const dir = await mkdtemp(join(tmpdir(), 'ftd-snippet-'));
		try {
			await writeFile(join(dir, 'snippet.mjs'), code);
			return (await run(process.execPath, [join(dir, 'snippet.mjs')], opts)).stdout;
		} finally {
			await rm(dir, { recursive: true, force: true });
		}
	}

	/** Reads the playground's three snippets, and checks each names the gateway and the model. */
	async function snippetsOnPage(model) {
		const p = page();
		const out = {};
		for (const lang of ['python', 'curl', 'javascript']) {
			out[lang] = (await p.getByTestId(`snippet-${lang}`).locator('pre').textContent()).trim();
			assert.ok(out[lang].includes(`${cfg.baseUrl}/v1`), `${lang} calls the gateway: ${out[lang]}`);
			assert.ok(out[lang].includes(model.name), `${lang} names the model`);
			assert.ok(!out[lang].includes(state.key), `${lang} holds no key`);
		}
		return out;
	}

	async function openPlayground(model) {
		const p = page();
		await p.goto(`/models?highlight=${model.id}`);
		const card = p.locator(`article[data-model-id="${model.id}"]`);
		await card.waitFor();
		await card.getByRole('link', { name: `Try it ${model.name}` }).click();
		await p.waitForURL(new RegExp(`/models/${model.id}$`));
		await p.getByRole('heading', { name: `Try ${model.name}` }).waitFor();
	}

	test('serving: model-server answers behind the gateway; three models start training', async (t) => {
		const keys = await apiCall(cfg, 'GET', '/api/keys');
		state.serving = keys.status === 200;
		if (needsServing(t)) return;
		// Queued now so the worker trains them while the key steps run. The embedding model trains
		// with a learning rate too small to change it: the tuned model is no better than the base.
		state.jobs.embedding = await createJob('embedding', `ui-e2e-serve-emb-${stamp}`, {
			epochs: 1,
			learning_rate: 1e-9,
			max_seq_length: 32
		});
		state.jobs.classifier = await createJob('classifier', `ui-e2e-serve-cls-${stamp}`, {
			epochs: 2,
			learning_rate: 5e-4,
			max_seq_length: 32
		});
		// A LoRA adapter of the catalogue's offline tiny Llama: a few steps on a small file.
		state.jobs.llm_lora = await createJob(
			'llm_lora',
			`ui-e2e-serve-lora-${stamp}`,
			{ epochs: 2, batch_size: 4, learning_rate: 5e-3, max_seq_length: 64, lora_r: 8, lora_alpha: 16 },
			60
		);
		assert.equal(state.jobs.llm_lora.base_model, 'ftd-local/tiny-llama');
	});

	test('API keys: one created is shown once, then listed by its prefix only', async (t) => {
		if (needsServing(t)) return;
		const p = page();
		await p.goto('/finetune');
		await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Keys' }).click();
		await p.waitForURL(/\/keys$/);
		await p.getByRole('heading', { name: 'API keys', level: 1 }).waitFor();
		await p.locator('[data-testid="keys"], [data-testid="keys-empty"]').first().waitFor();
		await p.getByRole('button', { name: 'Create API key' }).click();
		const dialog = p.getByRole('dialog', { name: 'Create an API key' });
		await dialog.waitFor();
		await dialog.getByRole('button', { name: 'Create key' }).click();
		await dialog.getByText(/Name the key/).waitFor(); // nothing is sent without a name
		await dialog.getByLabel('Name', { exact: true }).fill(state.keyName);
		await dialog.getByRole('button', { name: 'Create key' }).click();

		const created = p.getByRole('dialog', { name: `API key ${state.keyName} created` });
		await created.waitFor();
		assert.match(await created.getByTestId('key-warning').innerText(), /shown only this time/);
		const key = (await created.getByTestId('api-key').locator('pre').innerText()).trim();
		assert.match(key, /^ftdk_[0-9a-zA-Z]+_\S+$/, 'an API key');
		await created.getByRole('button', { name: /Copy key/ }).click();
		assert.equal(await p.evaluate(() => navigator.clipboard.readText()), key);
		await ctx.h().capture('key-created');
		// Escape does not throw the key away; Done does, in the same update that closes.
		await p.keyboard.press('Escape');
		await created.waitFor();
		await created.getByRole('button', { name: 'Done' }).click();
		await p.locator('dialog[data-testid="create-key"]').waitFor({ state: 'hidden' });
		assert.ok(!(await p.content()).includes(key), 'the key is gone from the page once closed');

		const row = p.locator('[data-testid="keys"] tr[data-key-id]', { hasText: state.keyName });
		await row.waitFor();
		assert.equal(await row.getAttribute('data-active'), 'true');
		assert.ok(key.startsWith((await row.locator('td.mono').innerText()).replace(/…$/, '')));
		await p.reload();
		await row.waitFor();
		assert.ok(!(await p.content()).includes(key), 'the list never holds the key');
		await ctx.h().capture('keys');

		const models = await apiCall(cfg, 'GET', '/v1/models', { token: key });
		assert.equal(models.status, 200, `the key calls /v1: ${JSON.stringify(models.body)}`);
		state.key = key;
	});

	test('API keys: revoking one asks first, then the key is refused', async (t) => {
		if (needsServing(t)) return;
		const p = page();
		const name = `e2e-revoke-${stamp}`;
		const made = await apiCall(cfg, 'POST', '/api/keys', { body: { name } });
		assert.equal(made.status, 201, JSON.stringify(made.body));
		await p.goto('/keys');
		const row = p.locator('[data-testid="keys"] tr[data-key-id]', { hasText: name });
		await row.getByRole('button', { name: `Revoke ${name}` }).click();
		const dialog = p.getByRole('dialog', { name: 'Revoke this API key?' });
		await dialog.waitFor();
		assert.match(await dialog.innerText(), new RegExp(name));
		await dialog.getByRole('button', { name: 'Keep it' }).click();
		assert.equal(await row.getAttribute('data-active'), 'true', 'keeping it changes nothing');
		await row.getByRole('button', { name: `Revoke ${name}` }).click();
		await dialog.getByRole('button', { name: 'Revoke key' }).click();
		await p.getByText(`${name} is revoked`).waitFor();
		await eventually(async () => (await row.getAttribute('data-active')) === 'false', {
			what: 'revoked row'
		});
		assert.equal(await row.getByRole('button', { name: /Revoke/ }).count(), 0);
		const refused = await apiCall(cfg, 'GET', '/v1/models', { token: made.body.data.key });
		assert.equal(refused.status, 401, `a revoked key is refused (${refused.status})`);
	});

	test('playground: an embedding pair gives a cosine similarity, and its code runs', async (t) => {
		if (needsServing(t)) return;
		assert.ok(state.key, 'a key was created');
		const model = await deployedModelOf(state.jobs.embedding.id);
		state.models.embedding = model;
		await openPlayground(model);
		const p = page();
		await p.getByLabel('First text').fill('The invoice arrived late this morning.');
		await p.getByLabel('Second text').fill('This morning the invoice came late.');
		await p.getByRole('button', { name: 'Compare' }).click();
		const result = p.getByTestId('similarity');
		await result.waitFor({ timeout: 60_000 });
		const value = Number(await result.getAttribute('data-value'));
		assert.ok(value > 0.5 && value <= 1.0001, `two paraphrases are similar: ${value}`);
		const code = await snippetsOnPage(model);
		assert.ok(code.python.includes('The invoice arrived late this morning.'), 'the same pair');
		await ctx.h().capture('playground-embedding');

		for (const lang of ['curl', 'javascript', 'python']) {
			const out = await execute(lang, code[lang]);
			if (lang === 'curl') {
				const body = JSON.parse(out);
				assert.equal(body.data.length, 2, out.slice(0, 300));
				assert.ok(body.data[0].embedding.length >= 32, 'a vector');
			} else {
				const m = /cosine similarity:?\s+(-?[0-9.]+)/.exec(out);
				assert.ok(m, `${lang} prints the similarity: ${out}`);
				assert.ok(Math.abs(Number(m[1]) - value) < 1e-3, `${lang}: ${m[1]} is the page's ${value}`);
			}
		}
	});

	test('playground: a classifier gives a label with every score as a bar, and its code runs', async (t) => {
		if (needsServing(t)) return;
		assert.ok(state.key, 'a key was created');
		const model = await deployedModelOf(state.jobs.classifier.id);
		state.models.classifier = model;
		await openPlayground(model);
		const p = page();
		await p.getByLabel('Text to classify').fill('Our support team works well this morning.');
		await p.getByRole('button', { name: 'Classify' }).click();
		const result = p.getByTestId('classification');
		await result.waitFor({ timeout: 60_000 });
		const label = await result.getAttribute('data-label');
		assert.ok(['positive', 'negative'].includes(label), `a label of the data: ${label}`);
		const bars = await result
			.locator('li[data-label]')
			.evaluateAll((els) =>
				els.map((e) => [e.getAttribute('data-label'), Number(e.getAttribute('data-score'))])
			);
		assert.deepEqual(bars.map(([l]) => l).sort(), ['negative', 'positive']);
		assert.equal(bars[0][0], label, 'the best label first');
		assert.ok(Math.abs(bars[0][1] + bars[1][1] - 1) < 1e-3, `scores are probabilities: ${bars}`);
		const code = await snippetsOnPage(model);
		await ctx.h().capture('playground-classifier');

		for (const lang of ['curl', 'javascript', 'python']) {
			const out = await execute(lang, code[lang]);
			if (lang === 'curl') {
				const body = JSON.parse(out);
				assert.equal(body.data[0].label, label, out.slice(0, 300));
			} else {
				assert.ok(out.trim().startsWith(label), `${lang} prints the label ${label}: ${out}`);
			}
		}
	});

	test('playground: a LoRA adapter streams its chat reply, and its code runs', async (t) => {
		if (needsServing(t)) return;
		assert.ok(state.key, 'a key was created');
		const model = await deployedModelOf(state.jobs.llm_lora.id);
		state.models.llm_lora = model;
		assert.equal(model.base_model, 'ftd-local/tiny-llama');
		await openPlayground(model);
		const p = page();
		// Every text the reply in progress shows, as the page draws it.
		await p.evaluate(() => {
			const seen = [];
			window.__ftdStreamed = seen;
			new MutationObserver(() => {
				const li = document.querySelector('[data-testid="chat"] li[data-streaming="true"]');
				if (!li) return;
				const text = [...li.childNodes]
					.filter((n) => n.nodeType === Node.TEXT_NODE)
					.map((n) => n.textContent)
					.join('');
				if (seen.at(-1) !== text) seen.push(text);
			}).observe(document.body, { subtree: true, childList: true, characterData: true });
		});
		const message = 'Summarise the note.\nThe invoice arrived late this morning.';
		await p.getByLabel('Message').fill(message);
		const answered = p.waitForResponse(
			(r) => new URL(r.url()).pathname === '/v1/chat/completions' && r.request().method() === 'POST',
			{ timeout: 120_000 }
		);
		await p.getByRole('button', { name: 'Send' }).click();
		const response = await answered;
		assert.equal(response.status(), 200);
		assert.match(response.headers()['content-type'] ?? '', /text\/event-stream/);
		const reply = p.locator('[data-testid="chat"] li[data-role="assistant"]:not([data-streaming])');
		await reply.waitFor({ timeout: 120_000 });
		const whole = await reply.evaluate((li) =>
			[...li.childNodes]
				.filter((n) => n.nodeType === Node.TEXT_NODE)
				.map((n) => n.textContent)
				.join('')
		);
		assert.ok(whole.length > 0, 'the model answered');
		// The page showed the reply growing, piece by piece, before it was whole.
		const seen = await p.evaluate(() => window.__ftdStreamed);
		const partial = seen.filter((s) => s.length > 0 && s.length < whole.length && whole.startsWith(s));
		state.streamed = { drawn: seen.length, partial: partial.length };
		assert.ok(partial.length >= 1, `part of the reply showed while it streamed: ${JSON.stringify(seen)}`);
		const asked = await p
			.locator('[data-testid="chat"] li[data-role="user"]')
			.evaluate((li) =>
				[...li.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent)
			);
		assert.deepEqual(asked, [message], 'the message sent is in the conversation');

		// A follow-up in the box: the snippets send the conversation so far with it, as the page would.
		await p.getByLabel('Message').fill('Summarise the note.\nThe support team answered quickly.');
		const code = await snippetsOnPage(model);
		assert.ok(code.python.includes(JSON.stringify(whole)), 'the snippets carry the reply so far');
		await ctx.h().capture('playground-chat');

		for (const lang of ['curl', 'javascript', 'python']) {
			const out = await execute(lang, code[lang]);
			if (lang === 'curl') {
				const lines = out.split(/\r?\n/).filter((l) => l.startsWith('data: '));
				assert.equal(lines.at(-1), 'data: [DONE]', out.slice(-300));
				const text = lines
					.slice(0, -1)
					.map((l) => JSON.parse(l.slice(6)).choices[0]?.delta?.content ?? '')
					.join('');
				assert.ok(text.length > 0, `curl streams text: ${out.slice(0, 300)}`);
				// One `data:` line per piece: the server streams, it does not answer all at once.
				assert.ok(lines.length >= 3, `the reply came in pieces: ${lines.length - 1} chunks`);
			} else {
				assert.ok(out.trim().length > 0, `${lang} prints the streamed reply: ${out}`);
			}
		}
	});

	test('job page: the tuned model is no better than the base, and "Train again" prefills', async (t) => {
		if (needsServing(t)) return;
		const job = state.jobs.embedding;
		assert.ok(job && state.models.embedding, 'the embedding job completed');
		const p = page();
		await p.goto(`/finetune/${job.id}`);
		const evaluation = p.getByTestId('evaluation');
		await evaluation.waitFor({ timeout: 30_000 });
		const headline = evaluation.locator('tr[data-metric]').first();
		// The table shows as soon as one side is known; the base model's value comes with the
		// registry's answer or the run's history, which may land later on a loaded machine.
		await eventually(async () => (await headline.getAttribute('data-improved')) !== null, {
			what: 'both sides of the headline metric'
		});
		assert.equal(await headline.getAttribute('data-improved'), 'false');
		const warning = p.getByTestId('undertrained-warning');
		await warning.waitFor();
		const text = await warning.innerText();
		assert.match(text, /not better than the base model on the held-out split/);
		assert.equal(await warning.getAttribute('data-cause'), 'few_steps');
		assert.match(text, /training steps/);
		// Timing numbers are in the details table, not charts.
		const chartNames = await p.locator('[data-testid="charts"] figcaption .name').allInnerTexts();
		assert.ok(!chartNames.some((n) => /runtime|per_second|preparation_time/.test(n)), `${chartNames}`);
		await ctx.h().capture('job-undertrained');

		const link = warning.getByTestId('retrain');
		const href = await link.getAttribute('href');
		const q = new URL(href, cfg.baseUrl).searchParams;
		assert.equal(q.get('type'), 'embedding');
		assert.equal(q.get('base_model'), job.base_model);
		assert.ok(Number(q.get('epochs')) > 1, `more epochs: ${href}`);
		await link.click();
		await p.waitForURL(/\/finetune\/new\?/);
		await p.getByTestId('prefilled').waitFor();
		assert.ok(await p.getByRole('radio', { name: 'Sentence embedding' }).isChecked());
		await eventually(async () => (await p.locator('#base_model').inputValue()) === job.base_model, {
			what: 'the base model prefilled'
		});
		assert.equal(await p.getByLabel('Epochs').inputValue(), q.get('epochs'));
		// The same data: the earlier upload, its report shown, nothing to upload again.
		await p.locator('[data-testid="validation-report"][data-valid="true"]').waitFor({ timeout: 30_000 });
		await ctx.h().capture('retrain-prefilled');
	});
}
