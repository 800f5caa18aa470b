import { describe, expect, it } from 'vitest';
import type { JobEvent } from '$lib/api/types';
import {
	detailMetrics,
	evaluationsFromEvents,
	isCurveMetric,
	isTimingMetric,
	pairMetrics,
	retrainHref,
	underTrained,
	type RunFacts
} from './evaluation';
import { alignSeries } from './charts/series';

const progress = (id: number, step: number, metrics: Record<string, number>, attempt = 1): JobEvent =>
	({
		id,
		job_id: 'j',
		attempt,
		kind: 'progress',
		created_at: '2024-01-01T00:00:00Z',
		data: { step, metrics }
	}) as unknown as JobEvent;

describe('timing metrics', () => {
	it('are runtimes, rates and preparation times, never curves', () => {
		for (const name of [
			'eval_runtime',
			'eval_samples_per_second',
			'eval_steps_per_second',
			'steps_per_second',
			'train_runtime',
			'model_preparation_time'
		]) {
			expect(isTimingMetric(name)).toBe(true);
			expect(isCurveMetric(name)).toBe(false);
		}
		expect(isTimingMetric('eval_loss')).toBe(false);
		expect(isCurveMetric('learning_rate')).toBe(true);
		expect(isCurveMetric('grad_norm')).toBe(true);
		expect(isCurveMetric('eval_loss')).toBe(false); // the validation series of the loss chart
	});

	it('go to the details table, with what is neither a headline nor an evaluation', () => {
		const rows = detailMetrics('classifier', {
			accuracy: 0.9,
			eval_accuracy: 0.9,
			eval_runtime: 1.5,
			global_step: 30,
			train_loss_first: 0.7,
			model_preparation_time: 0.01
		});
		expect(rows.map(([k]) => k)).toEqual([
			'eval_runtime',
			'model_preparation_time',
			'global_step',
			'train_loss_first'
		]);
	});
});

describe('pairMetrics', () => {
	it("pairs the task's metrics, base beside tuned, headline first", () => {
		const pairs = pairMetrics(
			'embedding',
			{ 'retrieval_accuracy@1': 0.8, 'retrieval_mrr@10': 0.85, global_step: 10 },
			{ 'retrieval_accuracy@1': 0.6, 'retrieval_mrr@10': 0.86 }
		);
		expect(pairs.map((p) => [p.name, p.base, p.tuned, p.improved])).toEqual([
			['retrieval_accuracy@1', 0.6, 0.8, true],
			['retrieval_mrr@10', 0.86, 0.85, false]
		]);
	});

	it('treats lower as better for losses, and derives perplexity', () => {
		const pairs = pairMetrics('llm_lora', { eval_loss: 1.0 }, { eval_loss: 2.0 });
		expect(pairs.map((p) => p.name)).toEqual(['eval_loss', 'perplexity']);
		expect(pairs[0]?.improved).toBe(true);
		expect(pairs[1]?.tuned).toBeCloseTo(Math.E);
		expect(pairs[1]?.base).toBeCloseTo(Math.exp(2));
		expect(pairs[1]?.improved).toBe(true);
	});

	it('calls a gain within noise not better, and a missing side unknown', () => {
		const [acc, f1] = pairMetrics('classifier', { accuracy: 0.502, f1_macro: 0.7 }, { accuracy: 0.5 });
		expect(acc?.improved).toBe(false);
		expect(f1).toMatchObject({ base: null, tuned: 0.7, improved: null });
	});

	it("fills from the run's evaluation reports what the registry has not said", () => {
		const events = [
			progress(1, 0, { eval_accuracy: 0.5, eval_loss: 0.69, eval_runtime: 1 }),
			progress(2, 5, { loss: 0.6, steps_per_second: 2 }),
			progress(3, 30, { eval_accuracy: 0.75, eval_loss: 0.5 })
		];
		const evals = evaluationsFromEvents(events);
		expect(evals).toEqual({
			base: { accuracy: 0.5, eval_loss: 0.69 },
			tuned: { accuracy: 0.75, eval_loss: 0.5 }
		});
		const pairs = pairMetrics('classifier', { accuracy: 0.8 }, {}, evals);
		expect(pairs.find((p) => p.name === 'accuracy')).toMatchObject({ base: 0.5, tuned: 0.8 });
	});

	it("reads the latest attempt's evaluations only", () => {
		const evals = evaluationsFromEvents([
			progress(1, 0, { eval_loss: 9 }, 1),
			progress(2, 0, { eval_loss: 2 }, 2)
		]);
		expect(evals.base).toEqual({ eval_loss: 2 });
	});
});

describe('underTrained', () => {
	const facts = (over: Partial<RunFacts> = {}): RunFacts => ({
		jobType: 'embedding',
		steps: 500,
		hyperparameters: { epochs: 2, learning_rate: 2e-5 },
		trainLossFirst: 1.0,
		trainLossLast: 0.98,
		...over
	});
	const notBetter = pairMetrics(
		'embedding',
		{ 'retrieval_accuracy@1': 0.6 },
		{ 'retrieval_accuracy@1': 0.6 }
	);
	const better = pairMetrics('embedding', { 'retrieval_accuracy@1': 0.7 }, { 'retrieval_accuracy@1': 0.6 });

	it('says nothing when the tuned model is better, or nothing was evaluated', () => {
		expect(underTrained(better, facts())).toBeNull();
		expect(underTrained([], facts())).toBeNull();
		expect(underTrained(pairMetrics('embedding', { 'retrieval_accuracy@1': 0.6 }, {}), facts())).toBeNull();
	});

	it('blames too few steps first, and suggests more epochs within the contract', () => {
		const v = underTrained(notBetter, facts({ steps: 30 }));
		expect(v?.cause).toBe('few_steps');
		expect(v?.reason).toMatch(/30 training steps/);
		expect(v?.suggestion).toEqual({ epochs: 7 }); // 2 epochs × 100/30, at most ×4
		expect(underTrained(notBetter, facts({ steps: 90, hyperparameters: { epochs: 100 } }))?.cause).not.toBe(
			'few_steps'
		);
	});

	it('blames a low learning rate when the training loss barely moved', () => {
		const v = underTrained(notBetter, facts());
		expect(v?.cause).toBe('learning_rate_low');
		expect(v?.suggestion).toEqual({ learning_rate: 6e-5 });
		const capped = underTrained(notBetter, facts({ hyperparameters: { epochs: 2, learning_rate: 0.009 } }));
		expect(capped?.suggestion.learning_rate).toBe(0.01);
	});

	it('blames a high learning rate when the training loss fell but held-out did not improve', () => {
		const v = underTrained(notBetter, facts({ trainLossFirst: 2, trainLossLast: 0.1 }));
		expect(v?.cause).toBe('learning_rate_high');
		expect(v?.suggestion).toEqual({ learning_rate: 1e-5 });
	});

	it('uses the contract defaults when the job sent no hyperparameters', () => {
		const v = underTrained(notBetter, facts({ hyperparameters: {}, steps: 10 }));
		expect(v?.suggestion).toEqual({ epochs: 12 }); // default 3 epochs × 4
	});
});

describe('retrainHref', () => {
	const job = {
		id: 'job-1',
		job_type: 'classifier' as const,
		base_model: 'sentence-transformers/all-MiniLM-L6-v2',
		dataset_id: 'ds-1',
		training_data_url: 'ftd://datasets/ds-1',
		hyperparameters: { epochs: 1, learning_rate: 2e-5, batch_size: 16 }
	};
	it('keeps the type, base model, data and hyperparameters, the suggestion applied', () => {
		const href = retrainHref(job, { epochs: 4 });
		const q = new URL(href, 'http://x').searchParams;
		expect(href.startsWith('/finetune/new?')).toBe(true);
		expect(Object.fromEntries(q)).toEqual({
			type: 'classifier',
			base_model: 'sentence-transformers/all-MiniLM-L6-v2',
			dataset: 'ds-1',
			epochs: '4',
			learning_rate: '0.00002',
			batch_size: '16',
			from: 'job-1'
		});
	});
	it('links the https URL when the data was not uploaded', () => {
		const q = new URL(
			retrainHref({ ...job, dataset_id: null, training_data_url: 'https://d.example/t.csv' }, {}),
			'http://x'
		).searchParams;
		expect(q.get('data_url')).toBe('https://d.example/t.csv');
		expect(q.has('dataset')).toBe(false);
	});
});

describe('alignSeries', () => {
	it('puts two series on the union of their steps, null where one has no point', () => {
		expect(alignSeries({ x: [1, 2, 3], y: [3, 2, 1] }, { x: [0, 3], y: [5, 4] })).toEqual([
			[0, 1, 2, 3],
			[null, 3, 2, 1],
			[5, null, null, 4]
		]);
	});
});
